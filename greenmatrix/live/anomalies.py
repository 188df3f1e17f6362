"""Causal anomaly filtering for one metric series: spikes, level shifts, counter resets and gaps.

Every answer for a point is computed from that point and the points before it only, so what the live
loop decided at a moment and what a replay of a longer history says about the same moment agree.
A point is compared with the robust level of its recent history (median, with a spread from the
median and mean absolute deviations); a spike is one point far from it, a level shift is a sustained
one-sided departure found by a CUSUM on the clipped robust residuals, a counter reset is a cumulative
counter that goes down, and a gap is a missing value or a step longer than the series' usual step.

Gaps are reported but not flagged as anomalies: nothing is wrong with the value after a gap, and the
forecaster already skips what is missing. Flagged points are kept out of forecasts
(`clean_series`) and reported as episodes (`anomaly_episodes`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class AnomalyKind(StrEnum):
    NONE = ""
    SPIKE = "spike"
    LEVEL_SHIFT = "level_shift"
    COUNTER_RESET = "counter_reset"
    GAP = "gap"


@dataclass(frozen=True)
class AnomalySettings:
    """The detector's knobs; the defaults are the ones tuned on half of NAB's labelled series.

    ``window`` and ``min_history`` count observed points (not seconds) so that one setting serves
    series of any step. ``spike_z`` and ``shift_h`` are where a point's score reaches 0.5 and it is
    flagged. ``counter`` says the series is cumulative (a Prometheus counter): its resets are
    flagged and its spikes and shifts are judged on the rate between points.
    """

    window: int = 48
    min_history: int = 12
    spike_z: float = 6.0
    spike_z_max: float = float("inf")
    calibration: int = 2016
    margin: float = 0.8
    shift_k: float = 1.0
    shift_h: float = 12.0
    shift_h_max: float = 40.0
    shift_clip: float = 4.0
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
    cfg = settings or AnomalySettings()
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
    kind[observed[_long_steps(t[observed], cfg.gap_factor)]] = AnomalyKind.GAP.value

    work, resets = _judged_values(t[observed], v[observed], cfg.counter)
    spike, shift, expected = _robust_scores(t[observed], work, cfg)
    if cfg.counter:
        # The rate was compared, but the level reported is the counter's own: last value + rate x step.
        expected = np.concatenate(([np.nan], v[observed][:-1])) + expected * np.diff(t[observed], prepend=0)
    best = np.maximum(spike, shift)
    best[resets] = 1.0
    labels = np.where(shift >= spike, AnomalyKind.LEVEL_SHIFT.value, AnomalyKind.SPIKE.value).astype(object)
    labels[resets] = AnomalyKind.COUNTER_RESET.value
    flagged = best >= 0.5
    score[observed] = best
    level[observed] = expected
    kind[observed[flagged]] = labels[flagged]
    anomaly = np.zeros(n, dtype=bool)
    anomaly[observed[flagged]] = True
    return Anomalies(score=score, anomaly=anomaly, kind=kind, level=level)


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
    last one's end, each named by its highest-scoring point's kind; and one episode per gap."""
    t = np.asarray(timestamps, dtype=float)
    episodes: list[AnomalyEpisode] = []
    for idx in _runs(t, anomalies.anomaly, merge_within):
        peak = idx[np.argmax(anomalies.score[idx])]
        episodes.append(
            AnomalyEpisode(
                float(t[idx[0]]),
                float(t[idx[-1]]),
                AnomalyKind(anomalies.kind[peak]),
                float(anomalies.score[peak]),
            )
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


def _long_steps(t: np.ndarray, factor: float, history: int = 64) -> np.ndarray:
    """Whether each observed point comes after a step longer than ``factor`` x the usual one, the
    usual step being the median of the previous ``history`` steps."""
    gap = np.zeros(len(t), dtype=bool)
    if len(t) < 3:
        return gap
    steps = np.diff(t)
    usual, _, _ = _trailing_stats(steps, history)
    # usual[j] is the median of the steps before step j; step j leads to point j + 1.
    gap[1:] = np.isfinite(usual) & (steps > factor * usual) & (usual > 0)
    return gap


def _judged_values(t: np.ndarray, v: np.ndarray, counter: bool) -> tuple[np.ndarray, np.ndarray]:
    """What the level tests look at (the values, or a counter's rate) and where a counter reset."""
    resets = np.zeros(len(v), dtype=bool)
    if not counter:
        return v, resets
    rise = np.diff(v, prepend=np.nan)
    resets[1:] = rise[1:] < 0
    dt = np.diff(t, prepend=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(resets | (dt <= 0), np.nan, rise / dt)
    return rate, resets


def _robust_scores(
    t: np.ndarray, x: np.ndarray, cfg: AnomalySettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spike and level-shift scores in [0, 1] of each finite value against its trailing window (NaN
    values, such as a counter's reset, get 0 and are left out of later windows)."""
    m = len(x)
    spike = np.zeros(m)
    shift = np.zeros(m)
    expected = np.full(m, np.nan)
    ok = np.flatnonzero(np.isfinite(x))
    if len(ok) <= cfg.min_history:
        return spike, shift, expected
    y = x[ok]
    z, med, scale = _robust_z(y, cfg)
    if cfg.season:
        reference = _seasonal_reference(t[ok], y, cfg.season, cfg.seasons)
        known = np.flatnonzero(np.isfinite(reference))
        if len(known) > cfg.min_history:
            seasonal = np.full(len(y), np.nan)
            seasonal_scale = np.full(len(y), np.nan)
            seasonal[known], _, seasonal_scale[known] = _robust_z(y[known] - reference[known], cfg)
            # A point is judged against the same moment of the previous periods where that view has
            # explained the recent past clearly more tightly than the recent level (a cycle's ramp
            # is neither spike nor shift); elsewhere it must be unusual in both views.
            both = np.where(np.abs(seasonal) < np.abs(z), seasonal, z)
            z = np.where(
                seasonal_scale < cfg.season_tighter * scale,
                seasonal,
                np.where(np.isfinite(seasonal), both, z),
            )
    z = np.nan_to_num(z, nan=0.0)
    size = np.abs(z)
    spike[ok] = _squash(size, _calibrated(size, cfg.spike_z, cfg.spike_z_max, cfg), cfg.sharpness)
    drift = _cusum(z, cfg)
    shift[ok] = _squash(drift, _calibrated(drift, cfg.shift_h, cfg.shift_h_max, cfg), cfg.sharpness)
    expected[ok[cfg.min_history :]] = med[cfg.min_history :]
    return spike, shift, expected


def _robust_z(y: np.ndarray, cfg: AnomalySettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value's robust residual against its trailing window, in spreads (NaN while warming up),
    the window's median and its spread."""
    med, mad, mean_ad = _trailing_stats(y, cfg.window)
    scale = np.fmax(np.fmax(1.4826 * mad, 1.2533 * mean_ad), _running_resolution(y))
    scale = np.fmax(scale, 1e-9 * np.maximum(1.0, np.abs(med)))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (y - med) / scale
    z[: cfg.min_history] = np.nan
    return z, med, scale


def _seasonal_reference(t: np.ndarray, y: np.ndarray, period: float, seasons: int) -> np.ndarray:
    """The median of the values observed one, two ... ``seasons`` periods before each point (within
    a 48th of the period), NaN where none was."""
    ordered = np.maximum.accumulate(t)
    found = np.full((len(t), seasons), np.nan)
    tolerance = period / 48.0
    for k in range(1, seasons + 1):
        target = t - k * period
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


def _trailing_stats(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, median absolute deviation and mean absolute deviation (from the median) of the up to
    ``w`` values before each position (NaN for the first, which has none)."""
    m = len(x)
    med = np.full(m, np.nan)
    mad = np.full(m, np.nan)
    mean_ad = np.full(m, np.nan)
    for i in range(1, min(w, m)):
        past = x[:i]
        centre = np.median(past)
        med[i], mad[i], mean_ad[i] = centre, np.median(np.abs(past - centre)), np.mean(np.abs(past - centre))
    if m > w:
        windows = sliding_window_view(x[:-1], w)
        centre = np.median(windows, axis=1)
        dev = np.abs(windows - centre[:, None])
        med[w:], mad[w:], mean_ad[w:] = centre, np.median(dev, axis=1), dev.mean(axis=1)
    return med, mad, mean_ad


def _running_resolution(x: np.ndarray) -> np.ndarray:
    """The smallest non-zero change seen before each position: the series' quantisation (1 for
    counts), below which a spread of zero is not evidence that any change is extraordinary."""
    steps = np.abs(np.diff(x))
    steps[steps == 0] = np.inf
    smallest = np.minimum.accumulate(steps)
    out = np.full(len(x), np.nan)
    out[1:] = np.where(np.isinf(smallest), np.nan, smallest)
    return out


def _cusum(z: np.ndarray, cfg: AnomalySettings) -> np.ndarray:
    """Two-sided CUSUM of the clipped robust residuals. A statistic is capped above the highest
    threshold so that a shift stops being flagged soon after the trailing level has caught up with it."""
    clipped = np.clip(z, -cfg.shift_clip, cfg.shift_clip)
    cap = 1.5 * cfg.shift_h_max
    up = down = 0.0
    out = np.empty(len(z))
    for i, r in enumerate(clipped.tolist()):
        up = min(cap, max(0.0, up + r - cfg.shift_k))
        down = min(cap, max(0.0, down - r - cfg.shift_k))
        out[i] = max(up, down)
    return out


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
    ratio = np.power(np.maximum(stat, 0.0) / threshold, sharpness)
    return ratio / (1.0 + ratio)
