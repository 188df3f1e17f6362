"""Observed series: timestamps in epoch seconds with float values, gaps explicit.

A `Series` is what every live decision reads, whether its rows came from a CSV file or from
Prometheus. A gap is either a missing step or a NaN value; both are data, not errors. Bad input
(unsorted or repeated timestamps, text where a number belongs, negative values) is an error that
names the row and the column, so a user can fix the file in one look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from greenmatrix.errors import GreenMatrixError

MIN_ROWS = 3
# The step comes from the first intervals only, so rows appended later never change it: every
# answer computed from a prefix of the series stays the answer for the whole series.
STEP_FROM_FIRST_INTERVALS = 32


@dataclass(frozen=True)
class Series:
    """Values at strictly increasing timestamps (epoch seconds); NaN marks a missing value."""

    timestamps: np.ndarray
    values: np.ndarray
    step: float = field(init=False)

    def __post_init__(self) -> None:
        times = np.asarray(self.timestamps, dtype=float)
        values = np.asarray(self.values, dtype=float)
        if times.ndim != 1 or times.shape != values.shape:
            raise ValueError("timestamps and values must be 1-D arrays of the same length")
        if len(times) < 2:
            raise ValueError(f"a series needs at least 2 rows to have a step, got {len(times)}")
        if not np.all(np.diff(times) > 0):
            raise ValueError("timestamps must be strictly increasing")
        object.__setattr__(self, "timestamps", times)
        object.__setattr__(self, "values", values)
        first = np.diff(times[: STEP_FROM_FIRST_INTERVALS + 1])
        object.__setattr__(self, "step", float(np.median(first)))

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def span(self) -> float:
        return float(self.timestamps[-1] - self.timestamps[0])


def parse_timestamp(text: str) -> float:
    """Epoch seconds from epoch seconds or ISO 8601 (a time without a zone is UTC); ValueError otherwise."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(text)
    return seconds


def series_from_rows(
    rows: Sequence[Mapping[str, str]], *, min_rows: int = MIN_ROWS, lines: Sequence[int] | None = None
) -> Series:
    """Parse CSV rows (`timestamp` as ISO 8601 or epoch seconds, `value`) into a Series.

    Row numbers in errors are the file's lines (`lines`, one per row, when a reader skipped blank ones),
    else count the header as row 1, as a spreadsheet shows the file.
    """
    if len(rows) < min_rows:
        raise GreenMatrixError("rows", f"{len(rows)} data rows; at least {min_rows} are needed")
    for column in ("timestamp", "value"):
        if column not in rows[0]:
            raise GreenMatrixError(column, "column missing; the file needs columns 'timestamp' and 'value'")
    times = np.empty(len(rows))
    values = np.empty(len(rows))
    for index, row in enumerate(rows):
        line = lines[index] if lines is not None else index + 2
        times[index] = _timestamp_cell(row.get("timestamp"), line)
        values[index] = _value_cell(row.get("value"), line)
        if index and times[index] <= times[index - 1]:
            what = "repeats" if times[index] == times[index - 1] else "is earlier than"
            raise GreenMatrixError(
                f"row {line}, column timestamp",
                f"{(row.get('timestamp') or '').strip()!r} {what} the previous row's; rows must be in "
                "increasing time order with one row per timestamp",
            )
    return Series(times, values)


def _timestamp_cell(text: str | None, line: int) -> float:
    try:
        return parse_timestamp(text or "")
    except ValueError:
        raise GreenMatrixError(
            f"row {line}, column timestamp",
            f"{(text or '').strip()!r} is not a time; use ISO 8601 (2024-05-01T12:00:00Z) or epoch seconds",
        ) from None


def _value_cell(text: str | None, line: int) -> float:
    where = f"row {line}, column value"
    try:
        value = float((text or "").strip())
    except ValueError:
        raise GreenMatrixError(where, f"{(text or '').strip()!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise GreenMatrixError(where, f"{text.strip()} is not a finite number; leave the row out for a gap")
    if value < 0:
        raise GreenMatrixError(where, f"{value:g} is negative; demand and usage cannot be")
    return value


@dataclass(frozen=True)
class Grid:
    """A series on its regular step: `values[k]` is the value at `start + k * step` (NaN when missing).

    `slots[i]` is where row i landed; when two rows round to the same slot the first is kept, so a
    slot's value never changes once a later row has arrived.
    """

    start: float
    step: float
    values: np.ndarray
    slots: np.ndarray


MAX_GRID_SLOTS = 5_000_000


def regular_grid(series: Series) -> Grid:
    """Place a series on its inferred step; missing steps become NaN."""
    slots = np.rint((series.timestamps - series.timestamps[0]) / series.step).astype(np.int64)
    size = int(slots[-1]) + 1
    if size > MAX_GRID_SLOTS:
        raise GreenMatrixError(
            "timestamp",
            f"{series.span:.0f} s at a {series.step:g} s step is {size} steps; the timestamps are too "
            "irregular to put on one step",
        )
    values = np.full(size, np.nan)
    first = np.ones(len(slots), dtype=bool)
    first[1:] = slots[1:] != slots[:-1]
    values[slots[first]] = series.values[first]
    return Grid(float(series.timestamps[0]), series.step, values, slots)
