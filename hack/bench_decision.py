"""How long one live decision takes on 14 days of 1-minute history: can one core keep 10,000 workloads?

    .venv/bin/python hack/bench_decision.py [--series crane/input1.csv] [--evaluations 12]

One evaluation is what the operator does for one workload every 5 minutes: judge the history for
anomalies, keep the flagged points out, forecast the demand over the lead time (a replica's
start-up plus the evaluation interval, one forecast per grid slot of it, the busiest taken),
size the replicas from a replica's capacity, then apply the policy's guardrails. The history
starts at 14 days of a crane series (1-minute steps) and each evaluation adds the next 5 rows.

Two paths side by side, on the same rows:
- full: `detect_anomalies` and `forecast` over the whole history, as the CLI's functions do;
- incremental: what the operator keeps per workload between evaluations (the flags so far, an
  `AnomalyState` and one `ForecastState` per lead-time slot), advanced by the 5 new rows (the
  forecast states together, `advance_together`, so the grid's feature books are built once).
For each evaluation it checks that the two paths' anomaly answers for the new rows, demand forecast
and replicas are equal, and prints how many were. Then the time per evaluation (median, p95) of
each stage, the ratio, and the implied workloads per 5 minutes on one core (300 s / median).
Not a test: wall-clock numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.interval import Interval
from greenmatrix.live.anomalies import AnomalyState, clean_series, detect_anomalies
from greenmatrix.live.assess import WorkloadState, assess
from greenmatrix.live.decide import decide_replicas
from greenmatrix.live.forecast import Forecast, ForecastState, advance_together, forecast
from greenmatrix.live.guardrails import GuardrailState, guardrails_of
from greenmatrix.live.observations import Series

DAY_ROWS = 1440
HISTORY_DAYS = 14
NEW_ROWS = 5
EVALUATION_INTERVAL = 300.0
STARTUP = 180.0
CAPACITY = Interval(0.9, 1.0, 1.1)
CURRENT = 3
BUDGET = 300.0


@dataclass
class Timings:
    anomalies: list[float]
    forecast: list[float]
    decision: list[float]

    def totals(self) -> list[float]:
        return [a + f + d for a, f, d in zip(self.anomalies, self.forecast, self.decision, strict=True)]


@dataclass(frozen=True)
class Evaluation:
    flags: np.ndarray
    scores: np.ndarray
    demand: Interval | None
    replicas: int


@dataclass(frozen=True)
class Carried:
    """What the incremental path keeps per workload between evaluations."""

    flags: np.ndarray
    anomalies: AnomalyState
    states: tuple[ForecastState, ...]


def lead_horizons(step: float) -> list[float]:
    """One forecast per grid slot of the lead time, as the replay asks for them."""
    return [(j + 1) * step for j in range(math.ceil((STARTUP + step) / step - 1e-9))]


def full_path(times: np.ndarray, values: np.ndarray, timings: Timings) -> Evaluation:
    """One decision at the last row's time from the whole history, as the engine's functions give it."""
    start = time.perf_counter()
    judged = detect_anomalies(times, values)
    flags = judged.anomaly
    middle = time.perf_counter()
    series = Series(times, clean_series(values, judged))
    now = float(times[-1])
    answers = [forecast(series, now, horizon) for horizon in lead_horizons(series.step)]
    return decided(flags, judged.score[-NEW_ROWS:], answers, now, timings, (start, middle))


def incremental_path(
    times: np.ndarray, values: np.ndarray, carried: Carried, timings: Timings
) -> tuple[Evaluation, Carried]:
    """The same decision from what the last evaluation carried: only the new rows are judged and
    appended to each horizon's forecast state."""
    start = time.perf_counter()
    rows = slice(len(carried.flags), len(times))
    detector, judged = carried.anomalies.advance(times[rows], values[rows])
    new = judged.anomaly
    flags = np.concatenate((carried.flags, new))
    middle = time.perf_counter()
    clean = clean_series(values[rows], judged)
    states = advance_together(carried.states, times[rows], clean)
    now = float(times[-1])
    answers = [state.forecast(now) for state in states]
    evaluation = decided(flags, judged.score[-NEW_ROWS:], answers, now, timings, (start, middle))
    return evaluation, Carried(flags, detector, states)


def decided(
    flags: np.ndarray,
    scores: np.ndarray,
    answers: list[Forecast],
    now: float,
    timings: Timings,
    marks: tuple[float, float],
) -> Evaluation:
    """The busiest forecast over the lead time, the replicas for it, then the guardrails."""
    intervals = [answer.interval for answer in answers if answer.interval is not None]
    demand = None
    if intervals:
        demand = Interval(*(max(getattr(a, q) for a in intervals) for q in ("p10", "p50", "p90")))
    forecast_done = time.perf_counter()
    replicas = CURRENT
    if demand is not None:
        decision = decide_replicas(CAPACITY, demand, CURRENT, 0.7, anomalous=bool(flags[-1]))
        rails = guardrails_of(Scaling())
        replicas = rails.apply(decision.desired, CURRENT, GuardrailState(), now).replicas
    done = time.perf_counter()
    timings.anomalies.append(marks[1] - marks[0])
    timings.forecast.append(forecast_done - marks[1])
    timings.decision.append(done - forecast_done)
    return Evaluation(flags, scores, demand, replicas)


def read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (
        np.array([float(row["timestamp"]) for row in rows]),
        np.array([float(row["value"]) for row in rows]),
    )


def summary(seconds: list[float]) -> tuple[float, float]:
    return float(np.median(seconds)) * 1e3, float(np.percentile(seconds, 95)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = Path(os.environ.get("GREENMATRIX_DATA", "/work/shared/data"))
    parser.add_argument("--series", type=Path, default=data / "timeseries/crane/input1.csv")
    parser.add_argument("--evaluations", type=int, default=12)
    args = parser.parse_args()
    times, values = read_series(args.series)
    history = HISTORY_DAYS * DAY_ROWS
    needed = history + NEW_ROWS * args.evaluations
    if len(times) < needed:
        raise SystemExit(f"{args.series} has {len(times)} rows, {needed} needed")
    step = float(np.median(np.diff(times[:33])))
    full, incremental = Timings([], [], []), Timings([], [], [])
    agree = agree_assess = 0
    rails = guardrails_of(Scaling())
    # What the operator carries: the history judged and forecast once, before the first evaluation.
    detector, judged = AnomalyState.empty().advance(times[:history], values[:history])
    flags = judged.anomaly
    clean = clean_series(values[:history], judged)
    states = advance_together([ForecastState.empty(h) for h in lead_horizons(step)], times[:history], clean)
    carried = Carried(flags, detector, states)
    # The engine's one call for the same evaluation, `live.assess`, timed as a whole.
    workload = WorkloadState.start(step, STARTUP)
    workload = assess(
        workload, times[:history], values[:history], float(times[history - 1]), CAPACITY, CURRENT, 0.7, rails
    ).state
    assessed: list[float] = []
    for k in range(args.evaluations):
        end = history + NEW_ROWS * (k + 1)
        a = full_path(times[:end], values[:end], full)
        b, carried = incremental_path(times[:end], values[:end], carried, incremental)
        begin = time.perf_counter()
        one = assess(
            workload,
            times[end - NEW_ROWS : end],
            values[end - NEW_ROWS : end],
            float(times[end - 1]),
            CAPACITY,
            CURRENT,
            0.7,
            rails,
        )
        assessed.append(time.perf_counter() - begin)
        workload = one.state
        agree_assess += one.demand == a.demand
        agree += bool(
            np.array_equal(a.flags, b.flags)
            and np.array_equal(a.scores, b.scores)
            and a.demand == b.demand
            and a.replicas == b.replicas
        )
    print(
        f"series {args.series.name}: {history} rows of history ({step:g} s step), "
        f"{args.evaluations} evaluations of {NEW_ROWS} new rows each"
    )
    print(f"incremental answers equal to full-history answers: {agree}/{args.evaluations}")
    print(f"live.assess demand equal to the full-history demand: {agree_assess}/{args.evaluations}")
    print()
    print(
        f"{'stage (ms per evaluation)':<28}{'full median':>12}{'full p95':>10}{'incr. median':>15}"
        f"{'incr. p95':>12}{'ratio':>8}"
    )
    for name in ("anomalies", "forecast", "decision", "total"):
        one = full.totals() if name == "total" else getattr(full, name)
        two = incremental.totals() if name == "total" else getattr(incremental, name)
        (m1, p1), (m2, p2) = summary(one), summary(two)
        print(f"{name:<28}{m1:>12.2f}{p1:>10.2f}{m2:>15.2f}{p2:>12.2f}{m1 / m2:>8.1f}")
    m3, p3 = summary(assessed)
    print(f"{'live.assess (one call)':<28}{'':>12}{'':>10}{m3:>15.2f}{p3:>12.2f}")
    (m1, _), (m2, _) = summary(full.totals()), summary(incremental.totals())
    print()
    print(
        f"workloads per {BUDGET:.0f} s on one core: full {BUDGET / (m1 / 1e3):,.0f}, "
        f"incremental {BUDGET / (m2 / 1e3):,.0f} (target 10,000: {BUDGET / 10_000 * 1e3:.0f} ms each)"
    )
    print(
        f"state kept per workload between evaluations (pickled): {len(pickle.dumps(workload)) / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
