"""Demand forecasts with an 80% interval, causal: only rows at or before the forecast moment are read.

The median is the last value moved by what the history says happens next: recent means pull it back
towards the level (bursts fade), and where the data shows a daily or weekly cycle
(`seasonality.detect_seasonality`), the change the cycle makes between now and the target
(`candidates.Regression`, in the series' units and in logarithms). Each row takes the median of the
candidate whose forecasts at this horizon erred least over the last day of checked targets; the last
value and the median of the last horizon's values are candidates too, so a series no model reads
falls back to one of them. The reason names the seasonality and the candidate. The interval is conformal:
the p10 and p90 of the forecaster's own recent errors at the same horizon, counting only errors whose
targets were observed by the forecast moment, with the two quantile levels nudged after each miss so
that the long-run coverage holds (adaptive conformal inference). Warming up, the answer is empty
and says what is missing.
"""

from __future__ import annotations

import bisect
import copy
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from greenmatrix.interval import Interval
from greenmatrix.live.candidates import (
    MIN_FIT_PAIRS,
    OFFSET_FROM_FIRST_ROWS,
    FitMemory,
    Regression,
    last_value,
    log_offset,
    recent_median,
)
from greenmatrix.live.features import FeatureBook
from greenmatrix.live.observations import Grid, Series, regular_grid
from greenmatrix.live.seasonality import DAY, Seasonality, detect_seasonality, duration_text

HOUR = 3600.0
FIT_EVERY = HOUR
SEASONALITY_EVERY = HOUR
SEASONALITY_SETTLES = 3 * DAY
MIN_HISTORY_ROWS = 33
SELECTION_WINDOW = DAY
MIN_SELECTION_ERRORS = 12
# In the order `_Walk.candidates` gives them; the median over the last horizon is one a burst does
# not move.
CANDIDATES = ("last value", "regression", "regression in logarithms", "median over the last horizon")
# A live state keeps at most this much history: two weekly cycles (what `detect_seasonality` needs to
# tell one) and a day. Once it holds HISTORY_SLACK more, it starts over from the last HISTORY_KEPT, so a
# workload watched for months costs what one watched for three weeks does.
HISTORY_KEPT = 15 * DAY
HISTORY_SLACK = 4 * DAY
CALIBRATION_ERRORS_NEEDED = 20
CALIBRATION_WINDOW = 720
# Step of the quantile levels after a hit or a miss (adaptive conformal inference).
COVERAGE_GAIN = 0.005
LOWER, UPPER = 0.1, 0.9


@dataclass(frozen=True)
class Forecast:
    """The demand expected at `at` (epoch seconds), or None with the reason while warming up."""

    at: float
    interval: Interval | None
    reason: str


@dataclass(frozen=True)
class SeriesForecast:
    """For every row of a series, the forecast of its value made `horizon` before its timestamp.

    NaN in all three quantiles marks a row forecast while warming up; `reasons[i]` says why, or
    which seasonality the forecast used.
    """

    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    reasons: tuple[str, ...]


def forecast(series: Series, now: float, horizon: float) -> Forecast:
    """The p10/p50/p90 of the value at `now + horizon`, from the rows at or before `now` only."""
    _check_horizon(horizon)
    count = int(np.searchsorted(series.timestamps, now, side="right"))
    if count < 2:
        return Forecast(float(now + horizon), None, "warming up: fewer than 2 rows at or before now")
    history = Series(series.timestamps[:count], series.values[:count])
    walk = _Walk(regular_grid(history), horizon)
    walk.run(history)
    return walk.live_forecast(now, history)


def forecast_series(series: Series, horizon: float) -> SeriesForecast:
    """Walk forward: row i's forecast is made at `t_i - horizon` from the rows at or before it."""
    _check_horizon(horizon)
    walk = _Walk(regular_grid(series), horizon)
    return walk.run(series)


@dataclass(frozen=True)
class ForecastState:
    """What the walk at one horizon has learnt from a series so far, so that a live forecast need not
    replay the history: `advance` appends rows, `forecast(now)` answers from them.

    `ForecastState.empty(h).advance(t, v).forecast(now)` is `forecast(Series(t, v), now, h)` (for
    `now` at or after the last row), however the rows were split between the advances: the
    seasons, fits, candidates' errors and calibration carried are the ones a walk over all the rows
    computes, in the same order. Each value is new; none is changed after it is made.
    """

    horizon: float
    timestamps: np.ndarray
    values: np.ndarray
    walk: _Walk | None = None
    errors: _RecentErrors | None = None
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bands: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros(0), np.zeros(0)))
    absorbed: int = 0
    # The row of raw[0] and bands[.][0]: rows already absorbed by the calibration are not kept.
    base: int = 0

    @classmethod
    def empty(cls, horizon: float) -> ForecastState:
        _check_horizon(horizon)
        return cls(horizon, np.zeros(0), np.zeros(0))

    def advance(self, timestamps: np.ndarray, values: np.ndarray) -> ForecastState:
        """The state with rows appended (strictly after the last one; NaN marks a missing value)."""
        return advance_together([self], timestamps, values)[0]

    @property
    def carried(self) -> bool:
        """Whether an advance resumes the walk (or starts it over: the logarithm's offset reads the
        first grid slots, so until the grid holds them every advance starts over)."""
        return self.walk is not None and self.walk.held >= OFFSET_FROM_FIRST_ROWS

    def _advanced(
        self, times: np.ndarray, values: np.ndarray, grid: Grid, books: tuple[FeatureBook | None, ...]
    ) -> ForecastState:
        series = Series(times, values)
        old = self.walk
        if old is None or not self.carried:
            walk = _Walk(grid, self.horizon)
            walk.run(series)
            whole = ForecastState(
                self.horizon, times, values, walk, walk.errors, walk.raw, walk.bands, walk.absorbed
            )
            return whole.trimmed()
        seasons, memories = old.settled()
        walk = _Walk(grid, self.horizon, seasons, memories, books)
        walk.calibration = old.calibration.copy()
        first, base = len(self.timestamps), self.base
        moments = np.searchsorted(times, times - self.horizon, side="right")
        guesses, have = walk.guesses(moments, np.arange(first, len(times)))
        errors = self.errors.extended(values[first:], guesses)
        raw = np.concatenate((self.raw, np.full(len(times) - first, np.nan)))
        raw[have - base], _ = errors.choose(guesses[have - first], moments[have])
        blank = np.full(len(times) - first, np.nan)
        bands = (np.concatenate((self.bands[0], blank)), np.concatenate((self.bands[1], blank)))
        # The same walk over rows counted from `base`: only the rows not yet absorbed are read.
        rows = range(first - base, len(times) - base)
        absorbed = base + walk.calibrate(
            values[base:], moments[base:] - base, raw, bands, rows, self.absorbed - base
        )
        return ForecastState(self.horizon, times, values, walk, errors, raw, bands, absorbed, base).trimmed()

    def trimmed(self) -> ForecastState:
        """The state without the rows no later advance or forecast reads: candidates' errors older
        than a selection window before the last forecast moment, medians and bands already absorbed."""
        if self.errors is None:
            return self
        moment = int(np.searchsorted(self.timestamps, self.timestamps[-1] - self.horizon, side="right"))
        drop = self.absorbed - self.base
        bands = (self.bands[0][drop:], self.bands[1][drop:])
        return replace(
            self, errors=self.errors.since(moment), raw=self.raw[drop:], bands=bands, base=self.absorbed
        )

    def compact(self) -> ForecastState:
        """The state without what only `forecast` reads (the grid and its feature books, most of its
        memory; an advance builds the grid anew from the rows): what to keep between evaluations once
        their forecast is made. It advances exactly as the whole state does; only the advanced state
        forecasts again."""
        if self.walk is None:
            return self
        walk = copy.copy(self.walk)
        walk.models = [_FitOnly(model.memory) for model in self.walk.models]
        grid = self.walk.grid
        walk.grid = Grid(grid.start, grid.step, np.zeros(0), np.zeros(0, dtype=grid.slots.dtype))
        return replace(self, walk=walk)

    def forecast(self, now: float) -> Forecast:
        """The p10/p50/p90 of the value at `now + horizon`, `now` at or after the last row."""
        if self.walk is not None and any(isinstance(model, _FitOnly) for model in self.walk.models):
            raise ValueError("a compacted forecast state forecasts nothing: advance it first")
        if len(self.timestamps) and now < self.timestamps[-1]:
            raise ValueError(
                f"now ({now}) is before the last row ({self.timestamps[-1]}): advance to it first"
            )
        if self.walk is None:
            return Forecast(float(now + self.horizon), None, "warming up: fewer than 2 rows at or before now")
        # A shallow twin: the live forecast absorbs the last rows into its own copy of the calibration.
        walk = copy.copy(self.walk)
        walk.calibration = self.walk.calibration.copy()
        walk.errors, walk.raw, walk.bands, walk.absorbed = self.errors, self.raw, self.bands, self.absorbed
        walk.base = self.base
        return walk.live_forecast(now, Series(self.timestamps, self.values))


@dataclass(frozen=True)
class _FitOnly:
    """What a compacted state keeps of a regression: where its fit stands."""

    memory: FitMemory | None


def advance_together(
    states: Sequence[ForecastState], timestamps: np.ndarray, values: np.ndarray
) -> tuple[ForecastState, ...]:
    """States of one series at several horizons (the slots of a lead time), advanced by the same
    rows: each is its own `advance`, but the grid and its feature books are built once for all."""
    if not states:
        return ()
    first = states[0]
    if any(len(state.timestamps) != len(first.timestamps) for state in states):
        raise ValueError("states advanced together must hold the same rows")
    times = np.concatenate((first.timestamps, np.asarray(timestamps, dtype=float)))
    values = np.concatenate((first.values, np.asarray(values, dtype=float)))
    if len(times) < 2:
        return tuple(ForecastState(state.horizon, times, values) for state in states)
    grid = regular_grid(Series(times, values))
    books: tuple[FeatureBook | None, ...] = (None, None)
    leads = [state.walk.lead for state in states if state.carried and state.walk is not None]
    if leads:
        units = FeatureBook(grid.values, grid.step, min(leads))
        logarithms = FeatureBook(np.log(grid.values + log_offset(grid.values)), grid.step, min(leads))
        books = (units, logarithms)
    return tuple(state._advanced(times, values, grid, books) for state in states)


def within_history(
    states: Sequence[ForecastState], kept: float = HISTORY_KEPT, slack: float = HISTORY_SLACK
) -> tuple[ForecastState, ...]:
    """States of one series (as `advance_together` gives them), started over from their last `kept`
    seconds of rows once they hold `kept + slack`: what they forecast is then what `forecast` gives on
    the rows since that restart. The restart costs one walk over `kept`, once every `slack`."""
    if not states or len(states[0].timestamps) < 2:
        return tuple(states)
    times, values = states[0].timestamps, states[0].values
    if times[-1] - times[0] <= kept + slack:
        return tuple(states)
    first = int(np.searchsorted(times, times[-1] - kept, side="left"))
    empty = [ForecastState.empty(state.horizon) for state in states]
    return advance_together(empty, times[first:], values[first:])


def _check_horizon(horizon: float) -> None:
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be a positive number of seconds, got {horizon}")


class _Walk:
    """One pass over a series: candidates fitted at checkpoints, every row forecast, then calibrated."""

    def __init__(
        self,
        grid: Grid,
        horizon: float,
        seasons: tuple[Seasonality, ...] = (),
        memories: tuple[FitMemory | None, ...] = (None, None),
        books: tuple[FeatureBook | None, ...] = (None, None),
    ) -> None:
        """`seasons` and `memories` are what a walk over a shorter grid of the same series settled;
        `books` the grid's feature books (in the series' units and in logarithms) if already built."""
        self.grid = grid
        # Slots of the grid walked over: kept when a compacted state lets go of the grid itself.
        self.held = len(grid.values)
        self.horizon = horizon
        self.lead = max(1, math.ceil(horizon / grid.step - 1e-9))
        self.fit_every = max(1, round(FIT_EVERY / grid.step))
        checkpoints = np.arange(0, len(grid.values) + 1, self.fit_every)
        self.seasons = self._seasons(checkpoints, seasons)
        periods = [season.periods for season in self.seasons]
        self.models = [
            Regression(
                grid.values,
                grid.step,
                self.lead,
                checkpoints,
                periods,
                logarithmic=logarithmic,
                memory=memory,
                book=book,
            )
            for logarithmic, memory, book in zip((False, True), memories, books, strict=True)
        ]
        self.calibration = _Calibration()
        self.errors: _RecentErrors | None = None
        self.absorbed = 0
        # raw[i] and bands[.][i] belong to row base + i.
        self.base = 0
        self.raw = np.zeros(0)
        self.bands = (self.raw, self.raw)

    def _seasons(self, checkpoints: np.ndarray, known: tuple[Seasonality, ...]) -> list[Seasonality]:
        """The seasonality at each checkpoint after the `known` ones: judged every hour while young,
        every six hours after."""
        seasons = list(known)
        for checkpoint in checkpoints[len(known) :]:
            moment = checkpoint * self.grid.step
            every = SEASONALITY_EVERY if moment < SEASONALITY_SETTLES else 6 * SEASONALITY_EVERY
            if not seasons or moment % every < self.fit_every * self.grid.step:
                seasons.append(detect_seasonality(self.grid.values[: checkpoint + 1], self.grid.step))
            else:
                seasons.append(seasons[-1])
        return seasons

    def settled(self) -> tuple[tuple[Seasonality, ...], tuple[FitMemory | None, ...]]:
        """The seasons and fits of the checkpoints inside the grid: a longer grid keeps them."""
        inside = (self.held - 1) // self.fit_every + 1
        return tuple(self.seasons[:inside]), tuple(model.memory for model in self.models)

    def candidates(self, origins: np.ndarray, leads: np.ndarray) -> np.ndarray:
        """Each candidate's median for each query, in the order of CANDIDATES."""
        fits = origins // self.fit_every
        columns = [last_value(self.grid.values, origins)]
        columns += [model.predict(origins, leads, fits) for model in self.models]
        columns.append(recent_median(self.grid.values, origins, self.lead))
        return np.column_stack(columns)

    def run(self, series: Series) -> SeriesForecast:
        times, values = series.timestamps, series.values
        moments = np.searchsorted(times, times - self.horizon, side="right")
        raw, reasons = self._medians(values, moments)
        p10, p90 = np.full(len(times), np.nan), np.full(len(times), np.nan)
        absorbed = self.calibrate(values, moments, raw, (p10, p90), range(len(times)), 0)
        for row in np.flatnonzero(np.isfinite(raw) & np.isnan(p10)):
            reasons[row] = self._calibrating_reason(times[moments[row] - 1] - times[0])
        self.absorbed, self.raw, self.bands = absorbed, raw, (p10, p90)
        median = np.where(np.isfinite(p10), raw, np.nan)
        return SeriesForecast(p10, median, p90, tuple(reasons))

    def calibrate(
        self,
        values: np.ndarray,
        moments: np.ndarray,
        raw: np.ndarray,
        bands: tuple[np.ndarray, np.ndarray],
        rows: range,
        absorbed: int,
    ) -> int:
        """Fill the bands of `rows` in order, absorbing each checked forecast once its target is
        observed (rows before `absorbed` already are); returns how many are absorbed. A row left NaN
        with a median is still calibrating."""
        p10, p90 = bands
        for row in rows:
            while absorbed < moments[row]:
                self.calibration.absorb(values[absorbed], raw[absorbed], p10[absorbed], p90[absorbed])
                absorbed += 1
            if math.isfinite(raw[row]):
                band = self.calibration.band(raw[row])
                if band is not None:
                    p10[row], p90[row] = band
        return absorbed

    def guesses(self, moments: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every candidate's guess for `rows` (NaN warming up), and the rows that have guesses."""
        guesses = np.full((len(rows), len(CANDIDATES)), np.nan)
        have = rows[moments[rows] >= MIN_HISTORY_ROWS]
        origins = self.grid.slots[moments[have] - 1]
        if len(have):
            guesses[have - rows[0]] = self.candidates(origins, np.maximum(1, self.grid.slots[have] - origins))
        return guesses, have

    def _medians(self, values: np.ndarray, moments: np.ndarray) -> tuple[np.ndarray, list[str]]:
        slots = self.grid.slots
        median = np.full(len(slots), np.nan)
        guesses, have = self.guesses(moments, np.arange(len(slots)))
        origins = slots[moments[have] - 1]
        self.errors = _RecentErrors.of(values, guesses, round(SELECTION_WINDOW / self.grid.step))
        median[have], picked = self.errors.choose(guesses[have], moments[have])
        warming = f"warming up: fewer than {MIN_HISTORY_ROWS} rows at or before the forecast moment"
        reasons = [warming] * len(slots)
        for row, origin, chosen in zip(have, origins, picked, strict=True):
            if math.isfinite(median[row]):
                reasons[row] = f"{self.seasons[origin // self.fit_every].note}; {CANDIDATES[chosen]}"
            else:
                reasons[row] = self._fitting_reason(origin * self.grid.step)
        return median, reasons

    def live_forecast(self, now: float, history: Series) -> Forecast:
        """The forecast at `now` from the walk over `history` (calibration absorbed through its end)."""
        p10, p90 = self.bands
        for row in range(self.absorbed, len(history)):
            at = row - self.base
            self.calibration.absorb(history.values[row], self.raw[at], p10[at], p90[at])
        at = float(now + self.horizon)
        if len(history) < MIN_HISTORY_ROWS or self.errors is None:
            return Forecast(at, None, f"warming up: {len(history)} rows, {MIN_HISTORY_ROWS} needed")
        origin = int(self.grid.slots[-1])
        lead = max(1, round((at - self.grid.start) / self.grid.step) - origin)
        guesses = self.candidates(np.array([origin]), np.array([lead]))
        chosen, picked = self.errors.choose(guesses, np.array([len(history)]))
        guess = float(chosen[0])
        if not math.isfinite(guess):
            return Forecast(at, None, self._fitting_reason(now - self.grid.start))
        band = self.calibration.band(guess)
        if band is None:
            return Forecast(at, None, self._calibrating_reason(now - self.grid.start))
        reason = f"{self.seasons[origin // self.fit_every].note}; {CANDIDATES[picked[0]]}"
        return Forecast(at, Interval(float(band[0]), guess, float(band[1])), reason)

    def _fitting_reason(self, history: float) -> str:
        needed = (self.lead + MIN_FIT_PAIRS + self.fit_every) * self.grid.step
        return f"warming up: {duration_text(history)} of history, about {duration_text(needed)} needed to fit"

    def _calibrating_reason(self, history: float) -> str:
        needed = (2 * self.lead + MIN_FIT_PAIRS + CALIBRATION_ERRORS_NEEDED + self.fit_every) * self.grid.step
        return (
            f"warming up: {duration_text(history)} of history, about {duration_text(needed)} needed "
            f"to calibrate the interval on {CALIBRATION_ERRORS_NEEDED} checked forecasts"
        )


class _RecentErrors:
    """Each candidate's mean absolute error over the recent rows whose targets are observed."""

    def __init__(self, sums: np.ndarray, counts: np.ndarray, window: int, base: int = 0) -> None:
        # sums[i] and counts[i] hold the totals of the rows before row base + i.
        self.sums, self.counts, self.base = sums, counts, base
        self.window = max(MIN_SELECTION_ERRORS, window)

    @classmethod
    def of(cls, values: np.ndarray, guesses: np.ndarray, window: int) -> _RecentErrors:
        return cls(np.zeros((1, guesses.shape[1])), np.zeros(1, dtype=np.int64), window).extended(
            values, guesses
        )

    def extended(self, values: np.ndarray, guesses: np.ndarray) -> _RecentErrors:
        """The errors with rows appended; the running sums continue in the same order, so they are
        the sums a walk over all the rows makes."""
        errors = np.abs(guesses - values[:, None])
        usable = np.all(np.isfinite(errors), axis=1)
        added = np.concatenate((self.sums[-1:], np.where(usable[:, None], errors, 0.0)))
        sums = np.concatenate((self.sums, np.cumsum(added, axis=0)[1:]))
        counts = np.concatenate((self.counts, self.counts[-1] + np.cumsum(usable)))
        return _RecentErrors(sums, counts, self.window, self.base)

    def since(self, moment: int) -> _RecentErrors:
        """The totals a choice at `moment` or later reads; the earlier ones are dropped."""
        keep = max(self.base, moment - self.window)
        return _RecentErrors(
            self.sums[keep - self.base :], self.counts[keep - self.base :], self.window, keep
        )

    def choose(self, guesses: np.ndarray, moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The guess of the candidate with the least recent error (the regression while unproven)."""
        start = np.maximum(0, moments - self.window) - self.base
        count = self.counts[moments - self.base] - self.counts[start]
        error = self.sums[moments - self.base] - self.sums[start]
        error = np.where(np.isfinite(guesses), error, np.inf)
        best = np.argmin(error, axis=1)
        best = np.where(count >= MIN_SELECTION_ERRORS, best, 1)
        return guesses[np.arange(len(guesses)), best], best


class _Calibration:
    """Recent errors of the median at this horizon and the adaptive quantile levels of the band.

    The window is kept sorted as errors arrive (one insertion and one removal each), so a quantile is
    an index, not a sort: the walk asks for one per row.
    """

    def __init__(self) -> None:
        self.arrivals: deque[float] = deque()
        self.ordered: list[float] = []
        self.lower = LOWER
        self.upper = UPPER

    def copy(self) -> _Calibration:
        twin = _Calibration()
        twin.arrivals, twin.ordered = deque(self.arrivals), list(self.ordered)
        twin.lower, twin.upper = self.lower, self.upper
        return twin

    def absorb(self, value: float, median: float, p10: float, p90: float) -> None:
        if not (math.isfinite(value) and math.isfinite(median)):
            return
        error = value - median
        self.arrivals.append(error)
        bisect.insort(self.ordered, error)
        if len(self.arrivals) > CALIBRATION_WINDOW:
            del self.ordered[bisect.bisect_left(self.ordered, self.arrivals.popleft())]
        if math.isfinite(p10):
            # A miss moves its level outwards by 0.9 gain, a hit inwards by 0.1 gain: the levels settle
            # where one forecast in ten misses on each side.
            self.lower += COVERAGE_GAIN * (LOWER - (value < p10))
            self.upper += COVERAGE_GAIN * ((value > p90) - (1 - UPPER))

    def band(self, median: float) -> tuple[float, float] | None:
        if len(self.ordered) < CALIBRATION_ERRORS_NEEDED:
            return None
        low = self._quantile(min(max(self.lower, 0.0), 0.5))
        high = self._quantile(max(min(self.upper, 1.0), 0.5))
        return max(0.0, median + low), max(median, median + high)

    def _quantile(self, level: float) -> float:
        position = level * (len(self.ordered) - 1)
        below = int(position)
        above = min(below + 1, len(self.ordered) - 1)
        share = position - below
        return self.ordered[below] * (1 - share) + self.ordered[above] * share
