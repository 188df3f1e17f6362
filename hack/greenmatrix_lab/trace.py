"""A demand trace (requests/s over time) and how its time maps onto the wall clock of a replay.

The file is the one `greenmatrix forecast --series` reads (`timestamp`, `value`), parsed by the
engine's own `series_from_rows`, so a bad row is named the same way by both commands.
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import greenmatrix


class TraceError(ValueError):
    """A trace file or replay timing that cannot be used; the message names the row or option."""


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str = "--backfill") -> float:
    """Seconds in "90s", "6h", "1d12h"; TraceError naming `option` otherwise."""
    parts = _DURATION_PART.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise TraceError(f"{option}: {text!r} is not a duration (write e.g. 90s, 30m, 6h, 1d)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


@dataclass(frozen=True)
class Trace:
    """Demand in requests/s at strictly increasing trace times (epoch seconds)."""

    times: tuple[float, ...]
    values: tuple[float, ...]

    @property
    def start(self) -> float:
        return self.times[0]

    @property
    def end(self) -> float:
        return self.times[-1]

    @property
    def step(self) -> float:
        """The median spacing of the rows (what the engine calls the series' step)."""
        gaps = sorted(b - a for a, b in zip(self.times, self.times[1:], strict=False))
        return gaps[len(gaps) // 2]

    def demand(self, tau: float) -> float:
        """Requests/s at trace time `tau`, linear between rows (demand is continuous, rows sample it)."""
        if tau <= self.times[0]:
            return self.values[0]
        if tau >= self.times[-1]:
            return self.values[-1]
        right = bisect.bisect_right(self.times, tau)
        t0, t1 = self.times[right - 1], self.times[right]
        v0, v1 = self.values[right - 1], self.values[right]
        return v0 + (v1 - v0) * (tau - t0) / (t1 - t0)

    def rows_between(self, first: float, last: float) -> int:
        """How many rows have a time in [first, last]."""
        return bisect.bisect_right(self.times, last) - bisect.bisect_left(self.times, first)


def read_trace(path: Path) -> Trace:
    """The trace in `path`; TraceError naming the row and column of the first bad cell."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise TraceError(f"--trace: cannot read {path}: {error.strerror or error}") from None
    reader = csv.DictReader(text.splitlines())
    rows, lines = [], []
    for row in reader:
        if not any((cell or "").strip() for cell in row.values() if isinstance(cell, str)):
            continue  # a blank line is no row, but the lines after it keep their numbers
        rows.append(row)
        lines.append(reader.line_num)
    try:
        series = greenmatrix.series_from_rows(rows, lines=lines)
    except greenmatrix.GreenMatrixError as error:
        raise TraceError(f"--trace {path}: {error}") from None
    return Trace(tuple(float(t) for t in series.timestamps), tuple(float(v) for v in series.values))


@dataclass(frozen=True)
class Timeline:
    """Trace time tau runs `speedup` times faster than the wall clock from `live_tau` at `live_wall`.

    wall(tau) = live_wall + (tau - live_tau) / speedup. The first `backfill` seconds of trace time
    land before `live_wall`: they are history, written into Prometheus before serving starts.
    """

    trace: Trace
    speedup: float
    backfill: float
    live_wall: float

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise TraceError(f"--speedup must be > 0, got {self.speedup:g}")
        if self.backfill < 0:
            raise TraceError(f"--backfill must be >= 0, got {self.backfill:g}s")
        span = self.trace.end - self.trace.start
        if self.backfill >= span:
            raise TraceError(
                f"--backfill {self.backfill:g}s covers the whole trace ({span:g}s): "
                "nothing would be served live"
            )

    @property
    def live_tau(self) -> float:
        return self.trace.start + self.backfill

    def wall(self, tau: float) -> float:
        return self.live_wall + (tau - self.live_tau) / self.speedup

    def tau(self, wall: float) -> float:
        return self.live_tau + (wall - self.live_wall) * self.speedup

    @property
    def history_start_wall(self) -> float:
        return self.wall(self.trace.start)

    @property
    def end_wall(self) -> float:
        return self.wall(self.trace.end)
