"""One evaluation's reads from Prometheus: every figure's present value and the demand's new history.

The present is one instant query per figure at `now`, all at once; the history is a range query of
`request_rate` on the grid of whole multiples of `step` (epoch seconds), so rows read at successive
evaluations line up, and only rows after `since` (the last one the engine was fed) are read. A query
Prometheus rejects costs only its own figure; Prometheus down costs the whole evaluation.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greenmatrix_operator.adapters.prometheus import (
    MalformedResponse,
    MetricsError,
    Prometheus,
    PrometheusUnavailable,
    QueryRejected,
    RangeSeries,
    Sample,
)
from greenmatrix_operator.adapters.queries import Query

DEMAND = "request_rate"
# A demand older than this many steps means the target stopped reporting.
STALE_AFTER_STEPS = 3.0


@dataclass(frozen=True)
class Observation:
    """What Prometheus said about one workload at `now`."""

    as_of: float | None
    """Epoch seconds of the newest demand known to be backed by samples; None when there is none."""
    present: dict[str, float | None]
    """Each figure's value at `now`; None when Prometheus has no data for it (or rejected or failed it)."""
    demand_timestamps: np.ndarray
    """The request rate's new rows (on the step grid, after `since`), ready for greenmatrix.Series."""
    demand_values: np.ndarray
    rejected: dict[str, str]
    """Queries Prometheus refused: the spec field (or the figure, for a default) -> Prometheus's error."""
    stale: bool
    """True when the newest demand is more than 3 steps older than `now`."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Figures lost to a transient fault while others were read (figure -> what happened)."""


def demand_grid(now: float, since: float | None, history: float, step: float) -> tuple[float, float] | None:
    """First and last multiples of `step` in [now - history, now] after `since`; None when none is left."""
    if step <= 0 or history < 0:
        raise ValueError("step must be > 0 and history >= 0")
    first = math.ceil((now - history) / step) * step
    if since is not None and first <= since:
        first = (math.floor(since / step) + 1) * step
    last = math.floor(now / step) * step
    return (float(first), float(last)) if first <= last else None


async def observe(
    prometheus: Prometheus,
    queries: Mapping[str, Query],
    now: float,
    since: float | None,
    history: float,
    step: float,
    *,
    demand_query: Query | None = None,
) -> Observation:
    """Read every figure at `now` and the demand's rows after `since`, concurrently.

    `demand_query` reads the history when it should differ from the present's `request_rate`: a
    rate window shorter than `step` samples each step's last window only, while one as long as the
    step (`queries_for(..., window=step)`) counts every request once.
    """
    grid = demand_grid(now, since, history, step)
    calls: dict[str, Awaitable[Any]] = {
        figure: prometheus.instant(query.promql, now) for figure, query in queries.items()
    }
    history_key = f"{DEMAND} (history)"
    history_query = demand_query or queries.get(DEMAND)
    if history_query is not None and grid is not None:
        calls[history_key] = prometheus.range(history_query.promql, grid[0], grid[1], step)
    outcomes = dict(zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True))
    for outcome in outcomes.values():
        if isinstance(outcome, BaseException) and not isinstance(outcome, MetricsError):
            raise outcome  # a bug or a cancellation, not a metrics fault
    _raise_when_nothing_answered(outcomes)

    rejected: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for key, outcome in outcomes.items():
        query = history_query if key == history_key else queries[key]
        if isinstance(outcome, QueryRejected):
            rejected[query.field or query.figure] = outcome.error
        elif isinstance(outcome, MetricsError):
            unavailable[key] = str(outcome)
    present = {
        figure: _total(outcomes[figure]) if isinstance(outcomes[figure], list) else None for figure in queries
    }
    history_rows = outcomes.get(history_key)
    times, values = _summed(history_rows if isinstance(history_rows, list) else [])
    # Without a demand query (a training job: GPU figures only) any current figure dates the data.
    current = (
        present[DEMAND] is not None if DEMAND in present else any(v is not None for v in present.values())
    )
    as_of = _as_of(now, current, times, values)
    stale = as_of is not None and now - as_of > STALE_AFTER_STEPS * step
    return Observation(as_of, present, times, values, rejected, stale, unavailable)


def _raise_when_nothing_answered(outcomes: Mapping[str, Any]) -> None:
    """Prometheus down (or answering garbage) fails the evaluation; rejections alone never do."""
    if not outcomes or any(not isinstance(o, BaseException) for o in outcomes.values()):
        return
    for kind in (PrometheusUnavailable, MalformedResponse):
        for outcome in outcomes.values():
            if isinstance(outcome, kind):
                raise outcome


def _total(samples: list[Sample]) -> float | None:
    """The figure's value: the default queries return one series; an override's several are summed.

    NaN (a quantile over no observations, a ratio of zeros) is no data, not a number to report.
    """
    finite = [s.value for s in samples if math.isfinite(s.value)]
    return float(sum(finite)) if finite else None


def _summed(series: list[RangeSeries]) -> tuple[np.ndarray, np.ndarray]:
    """One row per timestamp, the sum over series of their finite values (NaN where none is)."""
    if len(series) == 1:
        return series[0].timestamps, series[0].values
    totals: dict[float, float] = {}
    for one in series:
        for t, v in zip(one.timestamps.tolist(), one.values.tolist(), strict=True):
            if math.isfinite(v):
                totals[t] = totals.get(t, 0.0) + v
            else:
                totals.setdefault(t, math.nan)
    times = np.array(sorted(totals), dtype=float)
    return times, np.array([totals[t] for t in times.tolist()], dtype=float)


def _as_of(now: float, current: bool, times: np.ndarray, values: np.ndarray) -> float | None:
    # An instant rate at `now` exists only if samples fell inside its window: the data is current.
    if current:
        return now
    known = times[np.isfinite(values)]
    return float(known[-1]) if len(known) else None
