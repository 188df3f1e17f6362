"""Seasonal periods found in the data: a daily or weekly cycle is used only when the series shows it.

The test is the autocorrelation at the period's lag, on 10-minute block means (so minute-level noise
does not hide a clear day shape), in logarithms (so a few bursts do not drown a cycle in the quiet
hours: demand varies by multiples) with a one-day moving mean removed (so a slow trend does not pass
for a cycle). A weekly cycle must explain more than the daily one does: a series whose days are all
alike repeats every week too, and would otherwise be read as weekly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86_400.0
WEEK = 7 * DAY
BLOCKS_PER_DAY = 144
# Thresholds chosen on the tuning series (crane input0-3, two NAB series), see hack/bench_forecast.py.
MIN_AUTOCORRELATION = 0.3
WEEKLY_MARGIN = 0.1
CYCLES_NEEDED = 2.0
# From a day and a quarter of history a daily cycle can be told early, against a shorter moving mean and
# a stricter bar: a few hours of overlap are little evidence.
EARLY_DAYS = 1.25
EARLY_TREND_WIDTH = 3 * 3600.0
EARLY_MIN_AUTOCORRELATION = 0.5


@dataclass(frozen=True)
class Seasonality:
    """The periods found (seconds, shortest first) and their autocorrelations, or why none was."""

    periods: tuple[float, ...]
    strengths: tuple[float, ...]
    note: str


def detect_seasonality(values: np.ndarray, step: float) -> Seasonality:
    """Daily and weekly cycles in a regular-step series (NaN for gaps), judged from the values alone."""
    span = len(values) * step
    if span < EARLY_DAYS * DAY:
        return Seasonality(
            (), (), f"no seasonality yet: {duration_text(span)} of history, 1.25 d needed for a daily cycle"
        )
    blocks = _block_means(values, step)
    if blocks is None:
        return Seasonality((), (), "no seasonality: too few observed values to judge")
    per_day = BLOCKS_PER_DAY if step <= DAY / BLOCKS_PER_DAY else max(1, round(DAY / step))
    # The offset keeps zeros finite and stops near-zero noise from counting as large swings.
    logs = np.log(blocks + 0.1 * float(np.median(blocks)) + 1e-12)
    early = span < CYCLES_NEEDED * DAY
    trend_width = max(1, round(EARLY_TREND_WIDTH / DAY * per_day)) if early else per_day
    residual = logs - _centred_mean(logs, trend_width)
    residual = residual[np.isfinite(residual)]
    daily = _autocorrelation(residual, per_day)
    weekly = _autocorrelation(residual, 7 * per_day) if span >= CYCLES_NEEDED * WEEK else 0.0
    periods, strengths = [], []
    if daily >= (EARLY_MIN_AUTOCORRELATION if early else MIN_AUTOCORRELATION):
        periods.append(DAY)
        strengths.append(daily)
    if weekly >= MIN_AUTOCORRELATION and weekly >= daily + WEEKLY_MARGIN:
        periods.append(WEEK)
        strengths.append(weekly)
    if not periods:
        return Seasonality(
            (), (), f"no seasonality found in {duration_text(span)} (day-lag autocorrelation {daily:.2f})"
        )
    names = " and ".join("daily" if period == DAY else "weekly" for period in periods)
    return Seasonality(tuple(periods), tuple(strengths), f"{names} seasonality")


def _block_means(values: np.ndarray, step: float) -> np.ndarray | None:
    width = max(1, round(DAY / BLOCKS_PER_DAY / step))
    count = len(values) // width
    if count < 4:
        return None
    blocks = values[: count * width].reshape(count, width)
    seen = np.isfinite(blocks)
    totals = np.where(seen, blocks, 0.0).sum(axis=1)
    numbers = seen.sum(axis=1)
    means = np.divide(totals, numbers, out=np.full(count, np.nan), where=numbers > 0)
    known = np.flatnonzero(np.isfinite(means))
    if len(known) < 4:
        return None
    # Gaps are bridged by a straight line: it adds no cycle of its own, so it cannot fake a period.
    return np.interp(np.arange(count), known, means[known])


def _centred_mean(values: np.ndarray, width: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    if len(values) < width:
        return out
    sums = np.concatenate(([0.0], np.cumsum(values)))
    means = (sums[width:] - sums[:-width]) / width
    out[width // 2 : width // 2 + len(means)] = means
    return out


def _autocorrelation(values: np.ndarray, lag: int) -> float:
    if len(values) <= lag + 2:
        return 0.0
    head, tail = values[:-lag], values[lag:]
    head, tail = head - head.mean(), tail - tail.mean()
    scale = float(np.sqrt((head * head).sum() * (tail * tail).sum()))
    return float((head * tail).sum() / scale) if scale > 0 else 0.0


def duration_text(seconds: float) -> str:
    """A duration as a reader says it: 45 min, 5.5 h, 3.0 d."""
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
