"""Synthetic demand for the live tests: a daily cycle with noise, bursts, a gap of hours, scattered
missing values and missing steps."""

from __future__ import annotations

import numpy as np


def daily_series(
    days: float,
    step: float,
    seed: int,
    *,
    gap_hours: float,
    burst_share: float,
    burst_factor: float,
    shift: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(times, values): NaN values and missing steps included; `shift` is added from 70% of the rows on."""
    rng = np.random.default_rng(seed)
    slots = np.arange(int(days * 86_400 / step))
    keep = rng.random(len(slots)) > 0.03
    keep[len(slots) // 3 : len(slots) // 3 + int(gap_hours * 3600 / step)] = False
    times = slots[keep] * step + 1_700_000_000.0
    values = 50 + 30 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 4, len(times))
    values[rng.random(len(times)) < burst_share] *= burst_factor
    values[int(0.7 * len(times)) :] += shift
    values[rng.random(len(times)) < 0.03] = np.nan
    return times, np.abs(values)
