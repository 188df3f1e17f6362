#!/usr/bin/env python3
"""Benchmark of the replica decisions on real demand: GreenMatrix against the HPA at targets 0.5-0.9,
a static peak allocation, and a perfect-foresight oracle, with a 3-minute start-up.

    .venv/bin/python hack/bench_autoscale.py [--data DIR] [--startup 180] [--peak-replicas 20]
        [--forecaster live|stand-in] [--anomalies] [-o json]

Each trace's capacity is set so that its peak needs `--peak-replicas` replicas (the comparison does
not depend on the unit, only on demand over capacity). Every strategy starts with the replicas the
first known demand needs at the policy's target, ready (`live.replay`). The claim judged: GreenMatrix
spends at least 25% fewer GPU-hours than the cheapest HPA target whose overload minutes are no more
than GreenMatrix's (`matched HPA`; when every target overloads more, the one overloading least).
GreenMatrix forecasts with `live.forecast` (`replay.RecentPeak` while it warms up, or alone with
`--forecaster stand-in`); `--anomalies` keeps the rows `live.anomalies` flags out of the forecast.

The oracle asks, on each row, for the replicas the highest demand until the next decision's
replicas are ready needs (it knows the future): the GPU-hours no causal strategy can beat at zero
overload, so `oracle vs HPA@0.5` is the room any forecaster has.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.live.anomalies import clean_series, detect_anomalies
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

# 0.5-0.9 as the issue asks; lower ones only so that a strategy overloading less than HPA@0.5 still
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
    path: str
    kind: str  # "rate": timestamp,value (0 is a gap); "arrivals": one row per request; "scaled"


SOURCES = (
    Source("servegen/m-large", "traces/servegen_m-large_requests_per_s.csv", "rate"),
    Source("servegen/mm-image", "traces/servegen_mm-image_requests_per_s.csv", "rate"),
    Source("azure-code (per min)", "traces/azure_llm_inference_2023_code.csv", "arrivals"),
    Source("crane/input6 (scaled)", "timeseries/crane/input6.csv", "scaled"),
    Source("crane/input7 (scaled)", "timeseries/crane/input7.csv", "scaled"),
)


def load(data: Path, source: Source) -> Trace:
    path = data / source.path
    if source.kind == "arrivals":
        return _per_minute(path)
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    times, values = table[:, 0], table[:, 1]
    if source.kind == "rate":
        # ServeGen writes an exact 0 where collection stopped: a gap, not an idle service.
        values = np.where(values == 0, np.nan, values)
    else:
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
    found = detect_anomalies(trace.timestamps, trace.demand)
    return np.isnan(clean_series(trace.demand, found)) & np.isfinite(trace.demand)


def bench(trace: Trace, startup: float, peak_replicas: int, forecaster: str, anomalies: bool) -> dict:
    capacity = float(np.nanmax(trace.demand)) / peak_replicas
    ahead = RecentPeak() if forecaster == "stand-in" else None
    flags = anomalous_rows(trace) if anomalies else None
    base = Scaling(**POLICY, target_utilization=HEADLINE_TARGET)
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
    rows = [*ours, *hpa, static, oracle]
    headline = next(o for o in ours if o.name == f"GreenMatrix@{HEADLINE_TARGET:g}")
    room = 1.0 - oracle.gpu_hours / next(h for h in hpa if h.name == "HPA@0.5").gpu_hours
    return {
        "capacity_rps": capacity,
        "anomalous_rows": 0 if flags is None else int(flags.sum()),
        "oracle_saving_vs_hpa_0.5": round(room, 3),
        "rows": [_row(o) for o in rows],
        "matches": [_match(o, hpa) for o in (*ours, oracle)],
        "headline": _match(headline, hpa),
    }


def _policy(target: float) -> Scaling:
    return Scaling(**POLICY, target_utilization=target)


def _row(o: Outcome) -> dict:
    return {
        "strategy": o.name,
        "gpu_hours": round(o.gpu_hours, 1),
        "overload_minutes": round(float(o.overload_minutes), 1),
        "actions": o.actions,
    }


def _match(o: Outcome, hpa: list[Outcome]) -> dict:
    """The cheapest HPA target with no more overload minutes, and the GPU-hours saved against it.

    When every target overloads more, the one that overloads least stands in (`fewer_overloads`)."""
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


def render(results: dict[str, dict]) -> str:
    lines = []
    for name, result in results.items():
        flagged = f", {result['anomalous_rows']} rows flagged" if result["anomalous_rows"] else ""
        lines.append(f"\n{name}  (capacity {result['capacity_rps']:.3g} rps per replica{flagged})")
        lines.append(f"  {'strategy':<18}{'GPU-h':>10}{'overload min':>14}{'actions':>9}")
        for row in result["rows"]:
            lines.append(
                f"  {row['strategy']:<18}{row['gpu_hours']:>10.1f}"
                f"{row['overload_minutes']:>14.1f}{row['actions']:>9}"
            )
        for match in result["matches"]:
            note = " (overloads less than every HPA target)" if match["fewer_overloads"] else ""
            lines.append(
                f"  {match['strategy']:<18} vs {match['matched_hpa']}: "
                f"{match['saving']:+.1%} GPU-hours saved{note}"
            )
        lines.append(f"  perfect foresight saves {result['oracle_saving_vs_hpa_0.5']:.1%} against HPA@0.5")
    lines.append("\nHeadline (policy target 0.7) against the matched HPA, target >= 25% saved:")
    for name, result in results.items():
        head = result["headline"]
        note = "  (overloads less than every HPA target)" if head["fewer_overloads"] else ""
        lines.append(f"  {name:<24} {head['matched_hpa']:<10} {head['saving']:+.1%}{note}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("GREENMATRIX_DATA", "/work/shared/data"))
    )
    parser.add_argument("--startup", type=float, default=180.0)
    parser.add_argument("--peak-replicas", type=int, default=20)
    parser.add_argument(
        "--forecaster",
        choices=["live", "stand-in"],
        default="live",
        help="live: greenmatrix.live.forecast (the stand-in while it warms up); stand-in: RecentPeak alone",
    )
    parser.add_argument(
        "--anomalies", action="store_true", help="keep rows live.anomalies flags out, acting on none alone"
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args()
    results = {}
    for source in SOURCES:
        began = time.perf_counter()
        trace = load(args.data, source)
        results[source.name] = bench(trace, args.startup, args.peak_replicas, args.forecaster, args.anomalies)
        took = time.perf_counter() - began
        print(f"{source.name}: {len(trace.demand)} rows in {took:.1f}s", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2) if args.output == "json" else render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
