"""Causal anomaly filtering for one metric series: spikes, level shifts, counter resets and gaps.

Every answer for a point is computed from that point and the points before it only, so what the live
loop decided at a moment and what a replay of a longer history says about the same moment agree.
A point is compared with the robust level of its recent history (median, with a spread from the
median and mean absolute deviations) or, for a series with a daily cycle, with the same moment of the
previous days, whichever has explained the recent past better. A spike is one point far from it, a
level shift a sustained one-sided departure (a CUSUM on the clipped robust residuals), a counter reset
a cumulative counter that goes down, and a gap a missing value or a step longer than the usual one.
Thresholds are calibrated on the series' own recent past: a point is flagged when it departs further
than (a margin of) anything in the last ``calibration`` points, so heavy-tailed noise sets its own bar.

Gaps are reported but not flagged as anomalies: nothing is wrong with the value after a gap, and the
forecaster already skips what is missing. Flagged points are kept out of forecasts
(`clean_series`) and reported as episodes (`anomaly_episodes`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Steps the usual step is the median of.
GAP_HISTORY = 64


class AnomalyKind(StrEnum):
    NONE = ""
    SPIKE = "spike"
    LEVEL_SHIFT = "level_shift"
    COUNTER_RESET = "counter_reset"
    GAP = "gap"


@dataclass(frozen=True)
class AnomalySettings:
    """The detector's knobs; the defaults are the ones tuned on half of NAB's labelled series.

    ``window``, ``min_history`` and ``calibration`` count observed points (not seconds) so that one
    setting serves series of any step. A point's threshold is ``margin`` x the largest statistic of
    the previous ``calibration`` points, kept within [``spike_z``, ``spike_z_max``] spreads for a
    spike and [``shift_h``, ``shift_h_max``] for the CUSUM of a shift; its score is 0.5 there.
    ``season`` is the cycle's period in seconds (None: no seasonal view), compared over ``seasons``
    periods back. ``counter`` says the series is cumulative (a Prometheus counter): its resets are
    flagged and its spikes and shifts are judged on the rate between points.
    """

    window: int = 48
    min_history: int = 12
    spike_z: float = 5.0
    spike_z_max: float = float("inf")
    calibration: int = 2016
    margin: float = 0.7
    shift_k: float = 1.0
    shift_h: float = 24.0
    shift_h_max: float = 40.0
    shift_clip: float = 4.0
    shift_run: int = 4
    season: float | None = 86400.0
    seasons: int = 3
    season_tighter: float = 0.5
    counter: bool = False
    gap_factor: float = 1.5
    sharpness: float = 4.0


@dataclass(frozen=True)
class Anomalies:
    """Per-point answers, aligned with the series given.

    ``score`` is in [0, 1] (0.5 at the flagging threshold, 0 for missing values and while warming
    up); ``kind`` holds `AnomalyKind` values (the empty kind for a normal point); ``level`` is the
    robust level the point was compared with (NaN while warming up or missing).
    """

    score: np.ndarray
    anomaly: np.ndarray
    kind: np.ndarray
    level: np.ndarray


@dataclass(frozen=True)
class AnomalyEpisode:
    """A run of flagged points (or one gap), for reporting: times in the series' epoch seconds."""

    start: float
    end: float
    kind: AnomalyKind
    peak_score: float


def detect_anomalies(
    timestamps: np.ndarray, values: np.ndarray, settings: AnomalySettings | None = None
) -> Anomalies:
    """Score and flag every point of a series from the points up to and including it.

    ``timestamps`` are epoch seconds in order; ``values`` NaN where missing.
    """
    return AnomalyState.empty(settings or AnomalySettings()).advance(timestamps, values)[1]


@dataclass(frozen=True)
class AnomalyState:
    """What the detector carries from the points it has judged to judge the next ones without the
    whole history: the recent points each test looks back on (the usual step's 64, the trailing
    window, the seasons' periods, the calibration's statistics), the CUSUM's two sums and the
    smallest steps seen. `advance` judges new points exactly as `detect_anomalies` judges them in
    the whole series (it is the same computation: the whole series is one advance from `empty`).
    """

    settings: AnomalySettings
    observed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last: tuple[float, float] = (np.nan, np.nan)
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    judged: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seen: int = 0
    known: int = 0
    seasonal: np.ndarray = field(default_factory=lambda: np.zeros(0))
    resolutions: tuple[float, float] = (np.inf, np.inf)
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    drifts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    departures: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sums: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def empty(cls, settings: AnomalySettings | None = None) -> AnomalyState:
        return cls(settings or AnomalySettings())

    def advance(self, timestamps: np.ndarray, values: np.ndarray) -> tuple[AnomalyState, Anomalies]:
        """The state after the new points (later than the last one) and their answers."""
        cfg = self.settings
        t = np.asarray(timestamps, dtype=float)
        v = np.asarray(values, dtype=float)
        if t.shape != v.shape or t.ndim != 1:
            raise ValueError("timestamps and values must be one-dimensional and of the same length")
        n = len(v)
        score = np.zeros(n)
        kind = np.full(n, AnomalyKind.NONE.value, dtype=object)
        level = np.full(n, np.nan)
        observed = np.flatnonzero(np.isfinite(v))
        kind[~np.isfinite(v)] = AnomalyKind.GAP.value
        kind[observed[_long_steps(t[observed], cfg.gap_factor, self.observed)]] = AnomalyKind.GAP.value

        work, resets = _judged_values(t[observed], v[observed], cfg.counter, self.last)
        scores, state = self._scores(t[observed], work)
        spike, shift, expected, sustained = scores
        if cfg.counter:
            # The rate was compared, but the level reported is the counter's own: last value + rate x step.
            before = np.concatenate(([self.last[1]], v[observed][:-1]))
            steps = np.diff(t[observed], prepend=0 if np.isnan(self.last[0]) else self.last[0])
            expected = before + expected * steps
        best = np.maximum(spike, shift)
        best[resets] = 1.0
        shifted = (shift >= spike) | sustained
        labels = np.where(shifted, AnomalyKind.LEVEL_SHIFT.value, AnomalyKind.SPIKE.value).astype(object)
        labels[resets] = AnomalyKind.COUNTER_RESET.value
        flagged = best >= 0.5
        score[observed] = best
        level[observed] = expected
        kind[observed[flagged]] = labels[flagged]
        anomaly = np.zeros(n, dtype=bool)
        anomaly[observed[flagged]] = True
        if len(observed):
            state = replace(
                state,
                observed=np.concatenate((self.observed, t[observed]))[-(GAP_HISTORY + 1) :],
                last=(float(t[observed[-1]]), float(v[observed[-1]])),
            )
        return state, Anomalies(score=score, anomaly=anomaly, kind=kind, level=level)

    def _scores(self, t: np.ndarray, x: np.ndarray) -> tuple[tuple[np.ndarray, ...], AnomalyState]:
        """Spike and level-shift scores in [0, 1] of each finite value, the level it was judged
        against, and whether it ends a run of departures on one side (NaN values, such as a
        counter's reset, get 0 and are left out of later windows)."""
        cfg = self.settings
        m = len(x)
        spike, shift = np.zeros(m), np.zeros(m)
        expected = np.full(m, np.nan)
        sustained = np.zeros(m, dtype=bool)
        ok = np.flatnonzero(np.isfinite(x))
        if len(ok) == 0:
            return (spike, shift, expected, sustained), self
        y = x[ok]
        (residual, scale, level), carried = self._judged_view(t[ok], y)
        with np.errstate(invalid="ignore", divide="ignore"):
            size = np.nan_to_num(np.abs(residual / scale), nan=0.0)
            z = residual / scale
        sizes = np.concatenate((self.sizes, size))
        spike[ok] = _squash(
            size, _calibrated(sizes, cfg.spike_z, cfg.spike_z_max, cfg)[-len(ok) :], cfg.sharpness
        )
        drift, sums = _cusum(residual, scale, cfg, self.sums)
        drifts = np.concatenate((self.drifts, drift))
        shift[ok] = _squash(
            drift, _calibrated(drifts, cfg.shift_h, cfg.shift_h_max, cfg)[-len(ok) :], cfg.sharpness
        )
        departures = np.concatenate((self.departures, z))
        sustained[ok] = _sustained(departures, cfg.shift_run, cfg.shift_clip / 2.0)[-len(ok) :]
        expected[ok] = level
        state = replace(
            carried,
            sizes=sizes[-cfg.calibration :],
            drifts=drifts[-cfg.calibration :],
            departures=departures[max(0, len(departures) - cfg.shift_run + 1) :]
            if cfg.shift_run > 1
            else z[:0],
            sums=sums,
        )
        return (spike, shift, expected, sustained), state

    def _judged_view(self, t: np.ndarray, y: np.ndarray) -> tuple[tuple[np.ndarray, ...], AnomalyState]:
        """Each value's residual, the spread it is measured in and the level it departs from, in the
        view that judges it: the recent level, or the same moment of the previous periods where that
        view has explained the recent past clearly more tightly (a cycle's ramp is neither spike nor
        shift); where both exist but neither is clearly tighter, the calmer of the two."""
        cfg = self.settings
        own_resolution, season_resolution = self.resolutions
        own = _robust_view(y, cfg, self.judged, self.seen, own_resolution)
        times = np.concatenate((self.times, t))
        judged = np.concatenate((self.judged, y))
        keep_from = times[-1] - (cfg.seasons * (cfg.season or 0.0) + 2 * (cfg.season or 0.0) / 48.0)
        kept = max(0, min(int(np.searchsorted(times, keep_from)), len(times) - max(cfg.window, GAP_HISTORY)))
        state = replace(
            self,
            times=times[kept:],
            judged=judged[kept:],
            seen=self.seen + len(y),
            resolutions=(
                _smallest_step(
                    judged[len(self.judged) - 1 :] if len(self.judged) else judged, own_resolution
                ),
                season_resolution,
            ),
        )
        if not cfg.season:
            return own, state
        reference = _seasonal_reference(times, judged, cfg.season, cfg.seasons, len(y))
        known = np.flatnonzero(np.isfinite(reference))
        views = np.full((3, len(y)), np.nan)
        if len(known):
            departures = y[known] - reference[known]
            views[:, known] = _robust_view(departures, cfg, self.seasonal, self.known, season_resolution)[:3]
            seasonal = np.concatenate((self.seasonal, departures))
            state = replace(
                state,
                known=self.known + len(known),
                seasonal=seasonal[-cfg.window :],
                resolutions=(
                    state.resolutions[0],
                    _smallest_step(
                        seasonal[len(self.seasonal) - 1 :] if len(self.seasonal) else seasonal,
                        season_resolution,
                    ),
                ),
            )
        if state.known <= cfg.min_history:
            return own, state
        views[2] += reference
        residual, scale, _ = own
        with np.errstate(invalid="ignore", divide="ignore"):
            calmer = np.abs(views[0] / views[1]) < np.abs(residual / scale)
        tighter = (views[1] < cfg.season_tighter * scale) | calmer
        return tuple(np.where(tighter, views[i], mine) for i, mine in enumerate(own)), state


def clean_series(values: np.ndarray, anomalies: Anomalies, keep_level_shifts: bool = True) -> np.ndarray:
    """The values a forecaster should learn from: flagged points become NaN (missing).

    A confirmed level shift is a real change of demand the forecast must follow, so its points stay
    unless ``keep_level_shifts`` is False.
    """
    out = np.array(values, dtype=float, copy=True)
    drop = anomalies.anomaly.copy()
    if keep_level_shifts:
        drop &= anomalies.kind != AnomalyKind.LEVEL_SHIFT.value
    out[drop] = np.nan
    return out


def anomaly_episodes(
    timestamps: np.ndarray, anomalies: Anomalies, merge_within: float = 1800.0
) -> list[AnomalyEpisode]:
    """Runs of flagged points, merged when the next starts within ``merge_within`` seconds of the
    last one's end, and one episode per gap. A run is a level shift when any of its points is one
    (its onset reads as a spike until the departure persists), otherwise its highest point's kind."""
    t = np.asarray(timestamps, dtype=float)
    episodes: list[AnomalyEpisode] = []
    for idx in _runs(t, anomalies.anomaly, merge_within):
        peak = idx[np.argmax(anomalies.score[idx])]
        kinds = set(anomalies.kind[idx])
        kind = (
            AnomalyKind.LEVEL_SHIFT if AnomalyKind.LEVEL_SHIFT in kinds else AnomalyKind(anomalies.kind[peak])
        )
        episodes.append(
            AnomalyEpisode(float(t[idx[0]]), float(t[idx[-1]]), kind, float(anomalies.score[peak]))
        )
    gaps = (anomalies.kind == AnomalyKind.GAP.value) & ~anomalies.anomaly
    for idx in _runs(t, gaps, 0.0):
        start = float(t[idx[0] - 1]) if idx[0] > 0 else float(t[idx[0]])
        episodes.append(AnomalyEpisode(start, float(t[idx[-1]]), AnomalyKind.GAP, 0.0))
    return sorted(episodes, key=lambda e: (e.start, e.end))


def _runs(t: np.ndarray, mask: np.ndarray, merge_within: float) -> list[np.ndarray]:
    """Indices of the flagged points grouped into runs; a run continues across unflagged points when
    the next flagged point is at most ``merge_within`` seconds after the previous one."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero((np.diff(idx) > 1) & (np.diff(t[idx]) > merge_within)) + 1
    return np.split(idx, breaks)


def _long_steps(t: np.ndarray, factor: float, before: np.ndarray) -> np.ndarray:
    """Whether each observed point comes after a step longer than ``factor`` x the usual one, the
    usual step being the median of the previous ``GAP_HISTORY`` steps (``before``: the times of the
    points observed earlier, at least the last ``GAP_HISTORY + 1`` of them)."""
    times = np.concatenate((before, t))
    gap = np.zeros(len(times), dtype=bool)
    if len(times) < 3:
        return gap[len(before) :]
    steps = np.diff(times)
    usual, _, _ = _trailing_stats(steps, GAP_HISTORY, spread=False)
    # usual[j] is the median of the steps before step j; step j leads to point j + 1.
    gap[1:] = np.isfinite(usual) & (steps > factor * usual) & (usual > 0)
    return gap[len(before) :]


def _judged_values(
    t: np.ndarray, v: np.ndarray, counter: bool, last: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """What the level tests look at (the values, or a counter's rate since the `last` point observed,
    time and value) and where a counter reset."""
    resets = np.zeros(len(v), dtype=bool)
    if not counter:
        return v, resets
    rise = np.diff(v, prepend=last[1])
    with np.errstate(invalid="ignore"):
        resets = rise < 0
    dt = np.diff(t, prepend=last[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(resets | (dt <= 0), np.nan, rise / dt)
    return rate, resets


def _robust_view(
    y: np.ndarray, cfg: AnomalySettings, before: np.ndarray, seen: int, resolution: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value's residual from the median of its trailing window, the window's robust spread and
    median (all NaN while warming up). ``before`` holds at least the last ``window`` earlier values
    (all of them when fewer), ``seen`` counts them all, ``resolution`` is their smallest step."""
    tail = before[-cfg.window :]
    med, mad, mean_ad = (stat[len(tail) :] for stat in _trailing_stats(np.concatenate((tail, y)), cfg.window))
    steps = _running_resolution(np.concatenate((tail[-1:], y)), resolution)[len(tail[-1:]) :]
    scale = np.fmax(np.fmax(1.4826 * mad, 1.2533 * mean_ad), steps)
    scale = np.fmax(scale, 1e-9 * np.maximum(1.0, np.abs(med)))
    residual = y - med
    for series in (residual, scale, med):
        series[: max(0, cfg.min_history - seen)] = np.nan
    return residual, scale, med


def _smallest_step(values: np.ndarray, seed: float) -> float:
    """The smallest non-zero change between consecutive ``values``, or ``seed`` if smaller."""
    steps = np.abs(np.diff(values))
    steps = steps[steps != 0]
    return min(seed, float(steps.min())) if len(steps) else seed


def _seasonal_reference(t: np.ndarray, y: np.ndarray, period: float, seasons: int, last: int) -> np.ndarray:
    """The median of the values observed one, two ... ``seasons`` periods before each of the ``last``
    points (within a 48th of the period), NaN where none was."""
    ordered = np.maximum.accumulate(t)
    found = np.full((last, seasons), np.nan)
    tolerance = period / 48.0
    for k in range(1, seasons + 1):
        target = t[len(t) - last :] - k * period
        right = np.clip(np.searchsorted(ordered, target), 1, len(t) - 1)
        nearer = np.where(
            np.abs(ordered[right - 1] - target) <= np.abs(ordered[right] - target), right - 1, right
        )
        close = np.abs(ordered[nearer] - target) <= tolerance
        found[close, k - 1] = y[nearer[close]]
    with warnings.catch_warnings():
        # A point with no earlier period is expected here (NaN), not worth a warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(found, axis=1)


def _trailing_stats(x: np.ndarray, w: int, spread: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, median absolute deviation and mean absolute deviation (from the median) of the up to
    ``w`` values before each position (NaN for the first, which has none; the deviations stay NaN
    when ``spread`` is False)."""
    m = len(x)
    med = np.full(m, np.nan)
    mad = np.full(m, np.nan)
    mean_ad = np.full(m, np.nan)
    for i in range(1, min(w, m)):
        past = x[:i]
        med[i] = np.median(past)
        if spread:
            dev = np.abs(past - med[i])
            mad[i], mean_ad[i] = np.median(dev), dev.mean()
    if m > w:
        windows = sliding_window_view(x[:-1], w)
        med[w:] = np.median(windows, axis=1)
        if spread:
            dev = np.abs(windows - med[w:, None])
            mad[w:], mean_ad[w:] = np.median(dev, axis=1), dev.mean(axis=1)
    return med, mad, mean_ad


def _running_resolution(x: np.ndarray, seed: float = np.inf) -> np.ndarray:
    """The smallest non-zero change seen before each position (``seed``: the smallest before ``x``):
    the series' quantisation (1 for counts), below which a spread of zero is not evidence that any
    change is extraordinary."""
    steps = np.abs(np.diff(x))
    steps[steps == 0] = np.inf
    smallest = np.minimum.accumulate(np.concatenate(([seed], steps)))
    out = np.full(len(x), np.nan)
    out[1:] = np.where(np.isinf(smallest[1:]), np.nan, smallest[1:])
    return out


def _sustained(z: np.ndarray, run: int, size: float) -> np.ndarray:
    """Whether each point ends ``run`` points in a row at least ``size`` spreads away on the same
    side: what tells a shift that has begun from a spike, whichever test crossed its threshold."""
    out = np.zeros(len(z), dtype=bool)
    if len(z) < run:
        return out
    with np.errstate(invalid="ignore"):
        high, low = np.nan_to_num(z, nan=0.0) >= size, np.nan_to_num(z, nan=0.0) <= -size
    out[run - 1 :] = sliding_window_view(high, run).all(axis=1) | sliding_window_view(low, run).all(axis=1)
    return out


def _cusum(
    residual: np.ndarray, scale: np.ndarray, cfg: AnomalySettings, sums: tuple[float, float]
) -> tuple[np.ndarray, tuple[float, float]]:
    """Two-sided CUSUM of the clipped robust residuals, from the upward and downward ``sums`` the
    earlier points left, and the sums after these. A statistic is capped above the highest
    threshold so that a shift stops being flagged soon after the trailing level has caught up with it."""
    with np.errstate(invalid="ignore", divide="ignore"):
        clipped = np.nan_to_num(np.clip(residual / scale, -cfg.shift_clip, cfg.shift_clip), nan=0.0)
    cap = 1.5 * cfg.shift_h_max
    up, down = sums
    out = np.empty(len(clipped))
    for i, z in enumerate(clipped.tolist()):
        up = min(cap, max(0.0, up + z - cfg.shift_k))
        down = min(cap, max(0.0, down - z - cfg.shift_k))
        out[i] = max(up, down)
    return out, (up, down)


def _calibrated(stat: np.ndarray, low: float, high: float, cfg: AnomalySettings) -> np.ndarray:
    """Each point's threshold: the largest statistic of the previous ``calibration`` points (times
    ``margin``), kept between ``low`` and ``high``. A series whose ordinary noise is heavy-tailed
    thereby sets its own bar, so a point is flagged when it is beyond what the recent past has seen,
    which bounds how often a steady series is flagged; a statistic above ``high`` is always flagged."""
    recent = _trailing_max(np.minimum(stat, high), cfg.calibration)
    return np.clip(cfg.margin * np.nan_to_num(recent, nan=0.0), low, high)


def _trailing_max(x: np.ndarray, w: int) -> np.ndarray:
    """The maximum of the up to ``w`` values before each position (NaN for the first), in O(n): the
    maxima of blocks of ``w`` accumulated forwards and backwards cover any window between them."""
    m = len(x)
    out = np.full(m, np.nan)
    if m < 2:
        return out
    head = min(w, m)
    out[1:head] = np.maximum.accumulate(x[: head - 1])
    if m > w:
        blocks = -(-m // w)
        padded = np.full(blocks * w, -np.inf)
        padded[:m] = x
        forward = np.maximum.accumulate(padded.reshape(blocks, w), axis=1).ravel()
        backward = np.maximum.accumulate(padded.reshape(blocks, w)[:, ::-1], axis=1)[:, ::-1].ravel()
        starts = np.arange(m - w)
        # Window [j, j + w) spans the tail of j's block (backward) and the head of the next (forward).
        out[w:] = np.maximum(backward[starts], forward[starts + w - 1])
    return out


def _squash(stat: np.ndarray, threshold: np.ndarray | float, sharpness: float) -> np.ndarray:
    """Map a non-negative statistic to [0, 1): 0.5 at ``threshold``, towards 1 far above it."""
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.power(np.maximum(stat, 0.0) / threshold, sharpness)
        return np.where(np.isinf(ratio), 1.0, ratio / (1.0 + ratio))
