"""Replay a demand trace for one deployment: what GreenMatrix, the Kubernetes HPA and a static peak
allocation would have asked for, and what each cost and missed.

A row of the trace is the demand (requests/s) over its interval, from its timestamp to the next one;
NaN is a gap (nothing known). Every strategy decides at the start of a row from the rows before it
only, so cutting the trace after any row leaves every earlier row's answer unchanged. A replica
serves `capacity` requests/s within the SLO once it is ready, `startup` seconds after it is asked
for; removing replicas takes effect at once, the youngest first (as a ReplicaSet does), so the
replicas ready at a moment are the fewest asked for over the start-up before it. Replicas are paid
from the moment they are asked for. Before the first row the deployment runs, ready, the replicas
the first known demand needs at the policy's target utilisation, whichever strategy follows.

GreenMatrix decides on the demand forecaster of `live.forecast` (`WalkForwardForecast`), the
stand-in `RecentPeak` answering while it warms up; any `DemandForecaster` plugs in instead.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.interval import Interval
from greenmatrix.live.decide import Quantiles, decide_replicas
from greenmatrix.live.forecast import SeriesForecast, forecast_series
from greenmatrix.live.guardrails import GuardrailState, guardrails_of
from greenmatrix.live.observations import STEP_FROM_FIRST_INTERVALS as STEP_ROWS
from greenmatrix.live.observations import Series
from greenmatrix.planning.capacity import replicas_for

DAY = 86400.0
HOUR = 3600.0
HPA_TOLERANCE = 0.1
HPA_STABILIZATION = 300.0


class DemandForecaster(Protocol):
    def peak(self, timestamps: np.ndarray, values: np.ndarray, now: float, lead: float) -> Quantiles | None:
        """The highest demand over [now, now + lead] from rows before `now` (NaN: a gap or a point
        kept out as an anomaly); None while too little is known."""


@dataclass(frozen=True)
class RecentPeak:
    """A causal stand-in while the demand forecaster warms up, and a yardstick: p90 is `margin` times
    the highest of the last `window` seconds and of the same lead time one `season` ago; p50 the
    higher of the last value and that day's mean over the lead time; p10 the lowest of the last
    `window` seconds."""

    window: float = HOUR
    season: float = DAY
    margin: float = 1.1

    def peak(self, timestamps: np.ndarray, values: np.ndarray, now: float, lead: float) -> Quantiles | None:
        recent = _finite(_between(timestamps, values, now - self.window, now))
        if recent.size == 0:
            return None
        ago = _finite(_between(timestamps, values, now - self.season, now - self.season + lead))
        high = max(recent.max(), ago.max(initial=0.0))
        middle = max(recent[-1], ago.mean() if ago.size else 0.0)
        return Interval(float(recent.min()), float(middle), float(self.margin * high))


class WalkForwardForecast:
    """`live.forecast` behind the protocol, for a replay: its walk-forward runs once per horizon.

    The trace is laid on a regular grid of its step (the median of its first intervals; an
    off-grid row is left out), extended by the lead time so that every decision finds its targets
    whether or not later rows exist. A decision at `now` forecasts each slot of the lead time from
    the last slot whose interval had ended by `now`; until the step is settled (fewer rows than
    those intervals) it answers nothing, so a shorter trace never sees another step."""

    def __init__(self, trace: Trace, startup: float) -> None:
        self.start, self.step = float(trace.timestamps[0]), trace.step_known_at(STEP_ROWS)
        self.walks: list[SeriesForecast] = []
        if self.step <= 0:
            return
        slots = np.rint((trace.timestamps - self.start) / self.step)
        on_grid = np.isclose(trace.timestamps, self.start + slots * self.step)
        self.slots = math.ceil((startup + self.step) / self.step - 1e-9)
        values = np.full(int(slots.max()) + 1 + self.slots, np.nan)
        values[slots[on_grid].astype(int)] = trace.demand[on_grid]
        grid = Series(self.start + np.arange(len(values)) * self.step, values)
        self.walks = [forecast_series(grid, (j + 1) * self.step) for j in range(self.slots)]

    def peak(self, timestamps: np.ndarray, values: np.ndarray, now: float, lead: float) -> Quantiles | None:
        if len(timestamps) < STEP_ROWS or not self.walks:
            return None
        made = math.floor((now - self.start) / self.step + 1e-9) - 1
        if made < 0:
            return None
        ahead = np.array(
            [
                (w.p10[made + 1 + j], w.p50[made + 1 + j], w.p90[made + 1 + j])
                for j, w in enumerate(self.walks)
            ]
        )
        ahead = ahead[np.isfinite(ahead).all(axis=1)]
        if ahead.size == 0:
            return None
        p10, p50, p90 = ahead.max(axis=0)
        return Interval(float(p10), float(p50), float(p90))


@dataclass(frozen=True)
class UntilWarm:
    """The `primary` forecaster's answer, or the `fallback`'s while the primary is warming up."""

    primary: DemandForecaster
    fallback: DemandForecaster

    def peak(self, timestamps: np.ndarray, values: np.ndarray, now: float, lead: float) -> Quantiles | None:
        answer = self.primary.peak(timestamps, values, now, lead)
        return answer if answer is not None else self.fallback.peak(timestamps, values, now, lead)


@dataclass(frozen=True)
class Outcome:
    """What one strategy asked for on each row, and what it cost and missed."""

    name: str
    replicas: np.ndarray
    gpu_hours: float
    overload_minutes: float
    actions: int


@dataclass(frozen=True)
class Trace:
    """Demand in requests/s over intervals starting at strictly increasing `timestamps` (seconds)."""

    timestamps: np.ndarray
    demand: np.ndarray

    def __post_init__(self) -> None:
        times = np.asarray(self.timestamps, dtype=float)
        demand = np.asarray(self.demand, dtype=float)
        if times.ndim != 1 or times.shape != demand.shape or times.size < 1:
            raise ValueError("timestamps and demand must be non-empty 1-D arrays of the same length")
        if np.any(np.diff(times) <= 0):
            raise ValueError("timestamps must be strictly increasing")
        if np.any(demand < 0) or np.any(np.isinf(demand)):
            raise ValueError("demand must be a non-negative number (NaN for a gap)")
        object.__setattr__(self, "timestamps", times)
        object.__setattr__(self, "demand", demand)

    @property
    def durations(self) -> np.ndarray:
        """Seconds each row describes; the last row lasts as long as the typical step."""
        steps = np.diff(self.timestamps)
        last = float(np.median(steps[:STEP_ROWS])) if steps.size else 60.0
        return np.append(steps, last)

    def step_known_at(self, row: int) -> float:
        """The typical step as known at `row`'s start (its own end is not known yet): 0 at the first."""
        seen = np.diff(self.timestamps[: min(row, STEP_ROWS) + 1])
        return float(np.median(seen)) if seen.size else 0.0

    def initial_replicas(self, capacity: float, scaling: Scaling) -> int:
        known = _finite(self.demand)
        need = replicas_for(float(known[0]) if known.size else 0.0, capacity, scaling.target_utilization)
        return min(max(need, scaling.min_replicas, 1), scaling.max_replicas)


def greenmatrix_replicas(
    trace: Trace,
    capacity: float,
    startup: float,
    scaling: Scaling,
    *,
    paused: bool = False,
    forecaster: DemandForecaster | None = None,
    anomalous: np.ndarray | None = None,
) -> np.ndarray:
    """Per row, the replicas GreenMatrix asks for: the decision on the forecast over the lead time
    (start-up plus the typical step), capped by the policy's guardrails. The forecaster is
    `live.forecast` unless another is given; while it warms up, the stand-in `RecentPeak` answers.
    `anomalous[j]` flags row
    j as its anomaly detector judged it: kept out of the forecast, and no action on it alone."""
    flags = np.zeros(len(trace.demand), bool) if anomalous is None else np.asarray(anomalous, bool)
    clean = np.where(flags, np.nan, trace.demand)
    if forecaster is None:
        forecaster = WalkForwardForecast(Trace(trace.timestamps, clean), startup)
    forecaster = UntilWarm(forecaster, RecentPeak())
    rails = guardrails_of(scaling, paused=paused)
    each = Interval(capacity, capacity, capacity)
    current = trace.initial_replicas(capacity, scaling)
    state = GuardrailState()
    asked = np.empty(len(clean), int)
    for i, now in enumerate(trace.timestamps):
        lead = startup + trace.step_known_at(i)
        demand = forecaster.peak(trace.timestamps[:i], clean[:i], float(now), lead)
        desired = current
        if demand is not None:
            latest_flagged = bool(i and flags[i - 1])
            decision = decide_replicas(
                each, demand, current, scaling.target_utilization, anomalous=latest_flagged
            )
            desired = decision.desired
        guarded = rails.apply(desired, current, state, float(now))
        current, state = guarded.replicas, guarded.state
        asked[i] = current
    return asked


def hpa_replicas(
    trace: Trace, capacity: float, startup: float, scaling: Scaling, target: float = 0.7
) -> np.ndarray:
    """Per row, the replicas the Kubernetes HPA asks for on a requests-per-replica metric at `target`
    of `capacity`: desired = ceil(current x utilisation / target) from the previous row, nothing
    within a 10% tolerance, scale-in to the highest desired of the last 300 s, replicas still
    starting counted as idle when scaling out (as the HPA does), within the policy's bounds."""
    low, high = max(scaling.min_replicas, 1), scaling.max_replicas
    current = trace.initial_replicas(capacity, scaling)
    initial = current
    asked = np.empty(len(trace.demand), int)
    window: list[tuple[float, int]] = []
    for i, now in enumerate(trace.timestamps):
        previous = trace.demand[i - 1] if i else math.nan
        if math.isfinite(previous):
            ready = _ready_at(trace.timestamps, asked[:i], initial, startup, float(now))
            desired = _hpa_desired(previous / capacity, max(ready, 1), current, target)
            window = [(at, n) for at, n in window if at > now - HPA_STABILIZATION] + [(float(now), desired)]
            if desired < current:
                desired = min(current, max(n for _, n in window))
            current = min(max(desired, low), high)
        asked[i] = current
    return asked


def _hpa_desired(load: float, ready: int, current: int, target: float) -> int:
    """The HPA's replica count for `load` replicas' worth of demand served by `ready` of `current`."""
    ratio = load / ready / target
    if abs(ratio - 1.0) <= HPA_TOLERANCE:
        return current
    if ratio > 1.0 and ready < current:
        ratio = load / current / target
        if ratio <= 1.0 + HPA_TOLERANCE:
            return current
    return max(1, math.ceil(load / target - 1e-9))


def static_replicas(trace: Trace, capacity: float, *, hindsight: bool = True) -> np.ndarray:
    """The peak allocation: the replicas the highest demand of the whole trace needs, on every row
    (known only in hindsight: the yardstick that never overloads). Without `hindsight`, the highest
    demand up to each row: a static allocation raised to every new peak, causal like the others."""
    if hindsight:
        known = _finite(trace.demand)
        peak = replicas_for(float(known.max()) if known.size else 0.0, capacity, 1.0)
        return np.full(len(trace.demand), peak, int)
    seen = np.fmax.accumulate(np.where(np.isfinite(trace.demand), trace.demand, 0.0))
    return np.array([replicas_for(float(d), capacity, 1.0) for d in seen], int)


def outcome(
    name: str,
    trace: Trace,
    asked: np.ndarray,
    capacity: float,
    startup: float,
    *,
    initial: int | None = None,
    gpus_per_replica: int = 1,
) -> Outcome:
    """GPU-hours asked for, minutes of known demand above ready capacity, and the number of changes.

    `initial`: the replicas ready before the first row (default: the first row's)."""
    asked = np.asarray(asked, int)
    before = int(asked[0]) if initial is None else initial
    durations = trace.durations
    gpu_hours = float(np.sum(asked * durations)) / HOUR * gpus_per_replica
    over = 0.0
    for i, (start, duration) in enumerate(zip(trace.timestamps, durations, strict=True)):
        demand = trace.demand[i]
        if not math.isfinite(demand):
            continue
        for a, b in _pieces(trace.timestamps, float(start), float(start + duration), startup):
            ready = _ready_at(trace.timestamps, asked[: i + 1], before, startup, (a + b) / 2)
            if demand > ready * capacity * (1 + 1e-9):
                over += b - a
    actions = int(np.count_nonzero(np.diff(np.concatenate(([before], asked)))))
    return Outcome(name, asked, gpu_hours, over / 60.0, actions)


@dataclass(frozen=True)
class Replay:
    """The three strategies on one trace, judged alike."""

    greenmatrix: Outcome
    hpa: Outcome
    static: Outcome


def replay(
    trace: Trace,
    capacity: float,
    startup: float,
    scaling: Scaling,
    *,
    paused: bool = False,
    hpa_target: float = 0.7,
    gpus_per_replica: int = 1,
    forecaster: DemandForecaster | None = None,
    anomalous: np.ndarray | None = None,
    static_hindsight: bool = True,
) -> Replay:
    """GreenMatrix under the policy, the HPA at `hpa_target` and the static peak, from the same
    replicas running before the first row (`static_hindsight`: see `static_replicas`)."""
    initial = trace.initial_replicas(capacity, scaling)
    ours = greenmatrix_replicas(
        trace, capacity, startup, scaling, paused=paused, forecaster=forecaster, anomalous=anomalous
    )
    judged = {"initial": initial, "gpus_per_replica": gpus_per_replica}
    return Replay(
        greenmatrix=outcome("GreenMatrix", trace, ours, capacity, startup, **judged),
        hpa=outcome(
            "HPA",
            trace,
            hpa_replicas(trace, capacity, startup, scaling, hpa_target),
            capacity,
            startup,
            **judged,
        ),
        static=outcome(
            "static",
            trace,
            static_replicas(trace, capacity, hindsight=static_hindsight),
            capacity,
            startup,
            gpus_per_replica=gpus_per_replica,
        ),
    )


def _pieces(timestamps: np.ndarray, start: float, end: float, startup: float) -> list[tuple[float, float]]:
    """[start, end) cut where replicas asked for at an earlier row start become ready."""
    first = np.searchsorted(timestamps, start - startup, side="right")
    last = np.searchsorted(timestamps, end - startup, side="left")
    cuts = [t + startup for t in timestamps[first:last] if start < t + startup < end]
    edges = [start, *cuts, end]
    return list(itertools.pairwise(edges))


def _ready_at(timestamps: np.ndarray, asked: np.ndarray, initial: int, startup: float, moment: float) -> int:
    """Replicas ready at `moment`: the fewest asked for over the start-up before it (rows `asked`
    cover the first len(asked) intervals; before the first row, `initial` ran)."""
    row = int(np.searchsorted(timestamps, moment, side="right")) - 1
    first = int(np.searchsorted(timestamps, moment - startup, side="right")) - 1
    window = asked[max(first, 0) : row + 1]
    lowest = int(window.min()) if window.size else initial
    return min(lowest, initial) if first < 0 else lowest


def _between(timestamps: np.ndarray, values: np.ndarray, start: float, end: float) -> np.ndarray:
    return values[
        np.searchsorted(timestamps, start, side="left") : np.searchsorted(timestamps, end, side="left")
    ]


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]
