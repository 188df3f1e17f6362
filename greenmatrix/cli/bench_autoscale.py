"""`greenmatrix bench autoscale`: GreenMatrix's replica decisions on the shared demand traces, against
the HPA at targets 0.3-0.9, a static peak allocation and a perfect-foresight oracle.

Each trace's capacity is set so that its peak needs `peak_replicas` replicas (the comparison depends on
demand over capacity, not on the unit). Every strategy starts with the replicas the first known demand
needs at the policy's target, ready (`live.replay`). The claim judged: GreenMatrix spends fewer
GPU-hours than the cheapest HPA target whose overload minutes are no more than GreenMatrix's (the
matched HPA; when every target overloads more, the one overloading least).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.live.replay import (
    Outcome,
    RecentPeak,
    Trace,
    greenmatrix_replicas,
    hpa_replicas,
    outcome,
    static_replicas,
)
from greenmatrix.planning.capacity import replicas_for

# 0.5-0.9 as the issue asks; the lower ones so that a strategy overloading less than HPA@0.5 still
# finds its match.
HPA_TARGETS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
GREENMATRIX_TARGETS = (0.6, 0.7, 0.8, 0.9, 1.0)
# One policy for every trace: bounds wide enough for the peak, steps and windows as a platform team
# would set them; only the target utilisation varies in the sweep.
POLICY = {
    "min_replicas": 1,
    "max_replicas": 200,
    "max_scale_up_step": 20,
    "max_scale_down_step": 5,
    "cooldown": "1m",
    "scale_down_stabilization": "5m",
}
HEADLINE_TARGET = 0.7  # the policy's default
PLAUSIBLE_PEAK_RPS = 200.0


@dataclass(frozen=True)
class Source:
    name: str
    path: str  # under the data folder
    kind: str  # "rate": timestamp,value (0 is a gap); "arrivals": one row per request; "scaled"


SOURCES = (
    Source("servegen/m-large", "traces/servegen_m-large_requests_per_s.csv", "rate"),
    Source("servegen/mm-image", "traces/servegen_mm-image_requests_per_s.csv", "rate"),
    Source("azure-code", "traces/azure_llm_inference_2023_code.csv", "arrivals"),
    Source("crane/input6", "timeseries/crane/input6.csv", "scaled"),
    Source("crane/input7", "timeseries/crane/input7.csv", "scaled"),
)


def load(data: Path, source: Source) -> Trace:
    path = data / source.path
    if source.kind == "arrivals":
        return _per_minute(path)
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    times, values = table[:, 0], table[:, 1]
    if source.kind == "rate":
        # ServeGen writes an exact 0 where collection stopped: a gap, not an idle service.
        values = np.where(values == 0, np.nan, values)
    else:
        # A utilisation series read as demand, scaled to a peak an LLM service plausibly sees.
        values = values * (PLAUSIBLE_PEAK_RPS / np.nanmax(values))
    return Trace(times, values)


def _per_minute(path: Path) -> Trace:
    """Arrival timestamps to requests/s per minute; a minute without arrivals had no demand."""
    with path.open() as handle:
        stamps = [
            datetime.fromisoformat(row["TIMESTAMP"][:26]).replace(tzinfo=UTC).timestamp()
            for row in csv.DictReader(handle)
        ]
    minutes = np.floor(np.asarray(stamps) / 60.0) * 60.0
    grid = np.arange(minutes.min(), minutes.max() + 60.0, 60.0)
    counts = np.bincount(((minutes - grid[0]) / 60.0).astype(int), minlength=len(grid))
    return Trace(grid, counts / 60.0)


def oracle_replicas(trace: Trace, capacity: float, startup: float) -> np.ndarray:
    """Perfect foresight: enough for the highest demand until the next row's replicas are ready."""
    demand, times, durations = trace.demand, trace.timestamps, trace.durations
    asked = np.empty(len(demand), int)
    for i, (start, duration) in enumerate(zip(times, durations, strict=True)):
        end = np.searchsorted(times, start + duration + startup, side="left")
        ahead = demand[i : max(end, i + 1)]
        ahead = ahead[np.isfinite(ahead)]
        asked[i] = replicas_for(float(ahead.max()) if ahead.size else 0.0, capacity, 1.0)
    return asked


def anomalous_rows(trace: Trace) -> np.ndarray:
    """Rows `live.anomalies` keeps out of a forecast (spikes, counter resets; a level shift is demand)."""
    from greenmatrix.live.anomalies import clean_series, detect_anomalies

    found = detect_anomalies(trace.timestamps, trace.demand)
    return np.isnan(clean_series(trace.demand, found)) & np.isfinite(trace.demand)


def _policy(target: float) -> Scaling:
    return Scaling(**POLICY, target_utilization=target)


def bench(
    trace: Trace,
    startup: float,
    peak_replicas: int = 20,
    *,
    stand_in: bool = False,
    anomalies: bool = False,
) -> dict:
    """Every strategy on one trace. `stand_in`: GreenMatrix forecasts with `RecentPeak` alone instead
    of `live.forecast`; `anomalies`: the rows `live.anomalies` flags are kept out of its forecast."""
    capacity = float(np.nanmax(trace.demand)) / peak_replicas
    ahead = RecentPeak() if stand_in else None
    flags = anomalous_rows(trace) if anomalies else None
    base = _policy(HEADLINE_TARGET)
    initial = trace.initial_replicas(capacity, base)

    def judged(name: str, asked: np.ndarray) -> Outcome:
        return outcome(name, trace, asked, capacity, startup, initial=initial)

    hpa = [judged(f"HPA@{t:g}", hpa_replicas(trace, capacity, startup, base, t)) for t in HPA_TARGETS]
    ours = [
        judged(
            f"GreenMatrix@{t:g}",
            greenmatrix_replicas(trace, capacity, startup, _policy(t), forecaster=ahead, anomalous=flags),
        )
        for t in GREENMATRIX_TARGETS
    ]
    static = outcome("static peak", trace, static_replicas(trace, capacity), capacity, startup)
    oracle = judged("oracle", oracle_replicas(trace, capacity, startup))
    headline = next(o for o in ours if o.name == f"GreenMatrix@{HEADLINE_TARGET:g}")
    room = 1.0 - oracle.gpu_hours / next(h for h in hpa if h.name == "HPA@0.5").gpu_hours
    return {
        "rows_in_trace": len(trace.demand),
        "capacity_rps": capacity,
        "anomalous_rows": 0 if flags is None else int(flags.sum()),
        "oracle_saving_vs_hpa_0.5": round(room, 3),
        "rows": [_row(o) for o in (*ours, *hpa, static, oracle)],
        "matches": [matched_hpa(o, hpa) for o in (*ours, oracle)],
        "headline": matched_hpa(headline, hpa),
    }


def _row(o: Outcome) -> dict:
    return {
        "strategy": o.name,
        "gpu_hours": round(o.gpu_hours, 1),
        "overload_minutes": round(float(o.overload_minutes), 1),
        "actions": o.actions,
    }


def matched_hpa(o: Outcome, hpa: list[Outcome]) -> dict:
    """The cheapest HPA target with no more overload minutes than `o`, and the GPU-hours `o` saves
    against it. When every target overloads more, the one that overloads least stands in
    (`fewer_overloads`)."""
    fits = [h for h in hpa if h.overload_minutes <= o.overload_minutes]
    fewer = not fits
    if fewer:
        least = min(h.overload_minutes for h in hpa)
        fits = [h for h in hpa if h.overload_minutes == least]
    cheapest = min(fits, key=lambda h: h.gpu_hours)
    return {
        "strategy": o.name,
        "matched_hpa": cheapest.name,
        "fewer_overloads": fewer,
        "saving": round(1.0 - o.gpu_hours / cheapest.gpu_hours, 3),
    }


CAPTION = (
    "GPU-h: replica-hours asked for. overload min: minutes of known demand above ready capacity. "
    "actions: replica count changes. HPA@t: the Kubernetes HPA at target utilisation t; static peak: "
    "the trace's peak all along (hindsight); oracle: perfect foresight. matched HPA: the cheapest HPA "
    "target with no more overload minutes (* every target overloads more: the one overloading least); "
    "saving: GPU-hours saved against it."
)


def tables(results: dict[str, dict], startup: float) -> list[Any]:
    """One rich table per trace, and the headline (the policy's default target) across traces."""
    from rich.table import Table

    out = []
    for name, result in results.items():
        flagged = f", {result['anomalous_rows']} rows flagged" if result["anomalous_rows"] else ""
        table = Table(
            title=f"{name}: {result['rows_in_trace']} rows, capacity {result['capacity_rps']:.3g} rps per "
            f"replica, start-up {startup / 60:g} min{flagged}",
            caption=f"perfect foresight saves {result['oracle_saving_vs_hpa_0.5']:.1%} against HPA@0.5",
        )
        for column in ("strategy", "GPU-h", "overload min", "actions", "matched HPA", "saving"):
            table.add_column(column, justify="left" if column in ("strategy", "matched HPA") else "right")
        matches = {m["strategy"]: m for m in result["matches"]}
        for row in result["rows"]:
            match = matches.get(row["strategy"])
            table.add_row(
                row["strategy"],
                f"{row['gpu_hours']:.1f}",
                f"{row['overload_minutes']:.1f}",
                str(row["actions"]),
                "" if match is None else match["matched_hpa"] + ("*" if match["fewer_overloads"] else ""),
                "" if match is None else f"{match['saving']:+.1%}",
            )
        out.append(table)
    headline = Table(
        title=f"Headline: GreenMatrix at the policy's target {HEADLINE_TARGET:g} against the matched HPA"
    )
    for column in ("trace", "matched HPA", "GPU-hours saved"):
        headline.add_column(column, justify="right" if column == "GPU-hours saved" else "left")
    for name, result in results.items():
        head = result["headline"]
        mark = "*" if head["fewer_overloads"] else ""
        headline.add_row(name, head["matched_hpa"] + mark, f"{head['saving']:+.1%}")
    out.extend([headline, CAPTION])
    return out
