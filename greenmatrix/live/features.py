"""What the forecaster knows at a forecast origin, as differences from the last observed value.

Every feature at origin slot g reads grid slots at or before g only. The recent means say how far
the last value sits from the level it came from; the seasonal terms (one set per candidate period)
say what the cycle did around the target's phase in past cycles, smoothed over a quarter of an hour
either side so minute noise does not pass for shape. Gaps are NaN on the grid and simply drop out of
the means; a feature with nothing to average is 0 (the last value stands).
"""

from __future__ import annotations

import copy

import numpy as np

from greenmatrix.live.seasonality import DAY, WEEK

CANDIDATE_PERIODS = (DAY, WEEK)
# Cycles averaged for each period's profile: a week of days, two weeks of weeks.
CYCLES_AVERAGED = {DAY: 7, WEEK: 2}
SMOOTHING_HALF_WIDTH = 300.0
LEVEL_WINDOWS = (0.25, 1.0, 4.0)
LEVEL_COLUMNS = len(LEVEL_WINDOWS)
SEASONAL_COLUMNS = 5


class FeatureBook:
    """Features of a regular-step series at any origin and lead, computed once for the whole grid."""

    def __init__(self, values: np.ndarray, step: float, lead: int) -> None:
        self.size = len(values)
        seen = np.isfinite(values)
        self.last = _forward_filled(values, seen)
        self.sums = np.concatenate(([0.0], np.cumsum(np.where(seen, values, 0.0))))
        self.counts = np.concatenate(([0], np.cumsum(seen)))
        self.values = values
        self.lead = lead
        self.windows = tuple(max(2, round(share * lead)) for share in LEVEL_WINDOWS)
        self.half = int(SMOOTHING_HALF_WIDTH // step)
        smooth_sum, smooth_count = self._centred(self.half)
        raw_sum, raw_count = np.where(seen, values, 0.0), seen.astype(float)
        self.periods: list[tuple[float, int, int, tuple[np.ndarray, ...]]] = []
        for period in CANDIDATE_PERIODS:
            slots = round(period / step)
            if slots >= 4 and slots > 2 * lead:
                tables = tuple(
                    _phase_cumulative(table, slots)
                    for table in (smooth_sum, smooth_count, raw_sum, raw_count)
                )
                self.periods.append((period, slots, CYCLES_AVERAGED[period], tables))
        self.width = LEVEL_COLUMNS + SEASONAL_COLUMNS * len(self.periods)

    def for_lead(self, lead: int) -> FeatureBook:
        """The same book read at another lead (not shorter than this one's): only the windows and the
        periods long enough for it change, so forecasts at several leads share one pass over the grid."""
        if lead < self.lead:
            raise ValueError(f"a book built for lead {self.lead} cannot serve the shorter lead {lead}")
        twin = copy.copy(self)
        twin.lead = lead
        twin.windows = tuple(max(2, round(share * lead)) for share in LEVEL_WINDOWS)
        twin.periods = [entry for entry in self.periods if entry[1] > 2 * lead]
        twin.width = LEVEL_COLUMNS + SEASONAL_COLUMNS * len(twin.periods)
        return twin

    def columns(self, periods: tuple[float, ...]) -> np.ndarray:
        """Indices of the level columns and of the seasonal columns of `periods`."""
        chosen = list(range(LEVEL_COLUMNS))
        for index, (period, *_) in enumerate(self.periods):
            if period in periods:
                first = LEVEL_COLUMNS + SEASONAL_COLUMNS * index
                chosen.extend(range(first, first + SEASONAL_COLUMNS))
        return np.asarray(chosen, dtype=np.int64)

    def training(self, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features at observed origins at the nominal lead, and the change to the observed target."""
        features, last = self.queries(origins, np.full(len(origins), self.lead))
        return features, self.values[origins + self.lead] - last

    def queries(self, origins: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features at each (origin, lead) and the last value observed at the origin."""
        last = self.last[origins]
        columns = [self._trailing_mean(origins, window) - last for window in self.windows]
        for _, slots, cycles, (smooth_sum, smooth_count, raw_sum, raw_count) in self.periods:
            targets = origins + leads
            # The earliest past cycle whose smoothing window ends at or before the origin.
            first = np.maximum(1, -(-(leads + self.half) // slots))
            recent = _cycle_mean(smooth_sum, smooth_count, targets, first, 1, slots)
            profile = _cycle_mean(smooth_sum, smooth_count, targets, first, cycles, slots)
            now_first = max(1, -(-self.half // slots))
            profile_now = _cycle_mean(smooth_sum, smooth_count, origins, now_first, cycles, slots)
            # Unsmoothed, the same time one and several cycles ago: a job that starts on the minute
            # every day is an edge that smoothing would blur.
            raw_first = np.maximum(1, -(-leads // slots))
            raw_recent = _cycle_mean(raw_sum, raw_count, targets, raw_first, 1, slots)
            raw_profile = _cycle_mean(raw_sum, raw_count, targets, raw_first, cycles, slots)
            columns += [
                recent - last,
                profile - last,
                profile - profile_now,
                raw_recent - last,
                raw_profile - last,
            ]
        features = np.column_stack(columns) if columns else np.zeros((len(origins), 0))
        return np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0), last

    def _trailing_mean(self, origins: np.ndarray, window: int) -> np.ndarray:
        end = origins + 1
        start = np.maximum(0, end - window)
        count = self.counts[end] - self.counts[start]
        total = self.sums[end] - self.sums[start]
        return np.divide(total, count, out=self.last[origins].copy(), where=count > 0)

    def _centred(self, half: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.arange(self.size)
        start = np.maximum(0, index - half)
        end = np.minimum(self.size, index + half + 1)
        count = (self.counts[end] - self.counts[start]).astype(float)
        total = self.sums[end] - self.sums[start]
        mean = np.divide(total, count, out=np.zeros(self.size), where=count > 0)
        return mean, (count > 0).astype(float)


def _forward_filled(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    index = np.where(seen, np.arange(len(values)), -1)
    np.maximum.accumulate(index, out=index)
    filled = values[np.maximum(index, 0)]
    return np.where(index >= 0, filled, np.nan)


def _phase_cumulative(values: np.ndarray, period: int) -> np.ndarray:
    """cumulative[x] = values[x] + values[x - period] + ... (one running sum per phase of the cycle)."""
    rows = -(-len(values) // period)
    padded = np.zeros(rows * period)
    padded[: len(values)] = values
    return np.cumsum(padded.reshape(rows, period), axis=0).ravel()[: len(values)]


def _cycle_mean(
    sums: np.ndarray,
    counts: np.ndarray,
    targets: np.ndarray,
    first: np.ndarray | int,
    cycles: int,
    period: int,
) -> np.ndarray:
    """Mean of the smoothed values `first` .. `first + cycles - 1` periods before each target."""
    high = targets - first * period
    low = high - cycles * period

    def at(table: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.where(index >= 0, table[np.clip(index, 0, len(table) - 1)], 0.0)

    total = at(sums, high) - at(sums, low)
    count = at(counts, high) - at(counts, low)
    return np.where((high >= 0) & (count > 0), total / np.maximum(count, 1e-12), np.nan)
