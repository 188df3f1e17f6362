#!/usr/bin/env python3
"""Benchmark of the demand forecaster 1 h ahead on real series, against last-value, seasonal-naive
and Prophet, walk-forward (each forecast made from the rows at or before its moment only).

    .venv/bin/python hack/bench_forecast.py [--data DIR] [--horizon 3600] [--prophet] [-o json]

Series are split before any tuning: TUNE series chose the forecaster's constants, REPORT series
judge it. Prophet is a baseline only: it runs in its own virtualenv (/work/prophet-venv, or
$PROPHET_PYTHON), refitted every 24 h of data (`prophet_refit`) on everything seen so far, its
forecast of a row being the one from the latest fit at or before the row's forecast moment. Its
results are cached under $PROPHET_CACHE (default /work/prophet-cache); `--prophet` computes the
missing ones (one process: a few minutes for a 16-day 1-minute series), without it the column shows
what the cache holds.

smooth*/naive is the yardstick of what a level forecaster could reach (`yardsticks`), VR how much
the series moves like a random walk (1: its hour-ahead changes cannot be foreseen).

MAE is over the rows every column forecasts (the seasonal-naive needs a day of history, so the first
day is out for all), coverage is the share of those rows inside the 80% interval.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DAY = 86_400.0
PROPHET_REFIT = 24 * 3600.0
# (name, path under the data folder, role, an exact 0 is a collection gap)
SERIES = [
    ("crane/input0", "timeseries/crane/input0.csv", "tune", False),
    ("crane/input1", "timeseries/crane/input1.csv", "tune", False),
    ("crane/input2", "timeseries/crane/input2.csv", "tune", False),
    ("crane/input3", "timeseries/crane/input3.csv", "tune", False),
    ("nab/ec2_cpu_24ae8d", "timeseries/nab/ec2_cpu_utilization_24ae8d.csv", "tune", False),
    ("nab/twitter_AAPL", "timeseries/nab/Twitter_volume_AAPL.csv", "tune", False),
    ("servegen/m-large", "traces/servegen_m-large_requests_per_s.csv", "report", True),
    ("servegen/mm-image", "traces/servegen_mm-image_requests_per_s.csv", "report", True),
    ("crane/input4", "timeseries/crane/input4.csv", "report", False),
    ("crane/input5", "timeseries/crane/input5.csv", "report", False),
    ("crane/input6", "timeseries/crane/input6.csv", "report", False),
    ("crane/input7", "timeseries/crane/input7.csv", "report", False),
    ("nab/nyc_taxi", "timeseries/nab/nyc_taxi.csv", "report", False),
    ("nab/ec2_cpu_53ea38", "timeseries/nab/ec2_cpu_utilization_53ea38.csv", "report", False),
    ("nab/ec2_cpu_fe7f93", "timeseries/nab/ec2_cpu_utilization_fe7f93.csv", "report", False),
    ("nab/elb_request_count", "timeseries/nab/elb_request_count_8c0756.csv", "report", False),
    ("nab/rds_cpu_cc0c53", "timeseries/nab/rds_cpu_utilization_cc0c53.csv", "report", False),
    ("nab/ec2_network_in_257a54", "timeseries/nab/ec2_network_in_257a54.csv", "report", False),
    ("nab/twitter_FB", "timeseries/nab/Twitter_volume_FB.csv", "report", False),
]


def load(path: Path, zero_is_gap: bool):
    from greenmatrix.live.observations import Series, series_from_rows

    with path.open(newline="") as handle:
        series = series_from_rows(list(csv.DictReader(handle)))
    if zero_is_gap:
        values = np.where(series.values == 0, np.nan, series.values)
        series = Series(series.timestamps, values)
    return series


def naive_forecasts(times: np.ndarray, values: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Last value observed at or before t - horizon, and the value at exactly t - 1 day."""
    seen = np.isfinite(values)
    latest = np.where(seen, np.arange(len(values)), -1)
    np.maximum.accumulate(latest, out=latest)
    moment = np.searchsorted(times, times - horizon, side="right") - 1
    source = np.where(moment >= 0, latest[np.maximum(moment, 0)], -1)
    last = np.where(source >= 0, values[np.maximum(source, 0)], np.nan)
    before = np.searchsorted(times, times - DAY)
    before = np.minimum(before, len(times) - 1)
    seasonal = np.where(np.abs(times[before] - (times - DAY)) < 1e-6, values[before], np.nan)
    return last, seasonal


def yardsticks(series, horizon: float) -> tuple[float, float]:
    """What a level forecaster could reach, and how much like a random walk the series is.

    The first is the MAE of the best trailing mean or median (window 1 slot to 8 leads), the window
    chosen in hindsight on the series itself: no causal level smoother does better. The second is
    the variance ratio Var(lead change) / (lead x Var(one-step change)): 1 for a random walk, whose
    changes no forecaster can foresee, near 1/lead for noise around a steady level.
    """
    from greenmatrix.live.candidates import recent_median
    from greenmatrix.live.observations import regular_grid

    grid = regular_grid(series)
    values, lead = grid.values, max(1, round(horizon / grid.step))
    origins = np.arange(len(values) - lead)
    targets = values[origins + lead]
    sums = np.concatenate(([0.0], np.nancumsum(values)))
    counts = np.concatenate(([0], np.cumsum(np.isfinite(values))))
    best = np.inf
    windows = {1, 2, 4, max(1, lead // 4), max(1, lead // 2), lead, 2 * lead, 4 * lead, 8 * lead}
    for window in sorted(windows):
        start = np.maximum(0, origins + 1 - window)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (sums[origins + 1] - sums[start]) / (counts[origins + 1] - counts[start])
        for guess in (mean, recent_median(values, origins, window)):
            usable = np.isfinite(guess) & np.isfinite(targets)
            if usable.any():
                best = min(best, float(np.mean(np.abs(guess[usable] - targets[usable]))))
    one = np.diff(values)
    far = values[lead:] - values[:-lead]
    ratio = float(np.nanvar(far) / (lead * np.nanvar(one))) if np.nanvar(one) > 0 else float("nan")
    return best, ratio


def prophet_refit(times: np.ndarray) -> float:
    """Daily refits; four on a series too short for that (one day of ServeGen), 30 on one of months."""
    span = times[-1] - times[0]
    return max(min(PROPHET_REFIT, span / 4), span / 30)


def prophet_cache_path(name: str, times: np.ndarray, values: np.ndarray, horizon: float) -> Path:
    digest = hashlib.sha1(times.tobytes() + np.nan_to_num(values, nan=-1).tobytes()).hexdigest()[:12]
    root = Path(os.environ.get("PROPHET_CACHE", "/work/prophet-cache"))
    return root / f"{name.replace('/', '_')}-{horizon:.0f}-{prophet_refit(times):.0f}-{digest}.json"


def prophet_forecasts(name, times, values, horizon, compute: bool) -> dict | None:
    path = prophet_cache_path(name, times, values, horizon)
    if path.exists():
        return json.loads(path.read_text())
    if not compute:
        return None
    python = os.environ.get("PROPHET_PYTHON", "/work/prophet-venv/bin/python")
    if not Path(python).exists():
        print(f"prophet: {python} not found; the Prophet column stays empty", file=sys.stderr)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    request = {"times": times.tolist(), "values": [None if np.isnan(v) else float(v) for v in values]}
    request["horizon"], request["refit"] = horizon, prophet_refit(times)
    started = time.perf_counter()
    done = subprocess.run(
        [python, __file__, "--prophet-worker"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        check=False,
    )
    if done.returncode != 0:
        print(f"prophet failed on {name}: {done.stderr[-500:]}", file=sys.stderr)
        return None
    result = json.loads(done.stdout)
    result["seconds"] = time.perf_counter() - started
    path.write_text(json.dumps(result))
    return result


def prophet_worker() -> None:
    """Runs inside the Prophet virtualenv: a walk-forward of refits, each predicting until the next."""
    import logging

    import pandas as pd
    from prophet import Prophet

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    request = json.load(sys.stdin)
    times = np.asarray(request["times"], dtype=float)
    values = np.asarray([np.nan if v is None else v for v in request["values"]], dtype=float)
    horizon, refit = request["horizon"], request["refit"]
    out = {key: [None] * len(times) for key in ("p10", "p50", "p90")}
    moments = times - horizon
    first = times[0] + refit
    fits = np.arange(first, moments[-1] + refit, refit)
    for start, end in itertools.pairwise(fits):
        seen = (times <= start) & np.isfinite(values)
        rows = np.flatnonzero((moments >= start) & (moments < end))
        if seen.sum() < 10 or len(rows) == 0:
            continue
        history = pd.DataFrame({"ds": pd.to_datetime(times[seen], unit="s"), "y": values[seen]})
        model = Prophet(interval_width=0.8, uncertainty_samples=200)
        model.fit(history)
        future = pd.DataFrame({"ds": pd.to_datetime(times[rows], unit="s")})
        predicted = model.predict(future)
        for key, column in (("p10", "yhat_lower"), ("p50", "yhat"), ("p90", "yhat_upper")):
            for row, value in zip(rows, predicted[column].to_numpy(), strict=True):
                out[key][int(row)] = float(value)
    json.dump(out, sys.stdout)


def score(name, role, series, horizon, compute_prophet: bool) -> dict:
    from greenmatrix.live.forecast import forecast_series

    times, values = series.timestamps, series.values
    started = time.perf_counter()
    ours = forecast_series(series, horizon)
    seconds = time.perf_counter() - started
    last, seasonal = naive_forecasts(times, values, horizon)
    prophet = prophet_forecasts(name, times, values, horizon, compute_prophet)
    columns = {"ours": ours.p50, "last": last, "seasonal": seasonal}
    if prophet is not None and any(value is not None for value in prophet["p50"]):
        columns["prophet"] = np.array([np.nan if v is None else v for v in prophet["p50"]], dtype=float)
    else:
        prophet = None
    usable = np.isfinite(values)
    for column in columns.values():
        # A seasonal-naive that never exists (a one-day series) does not remove every row.
        if np.isfinite(column).any():
            usable &= np.isfinite(column)
    result = {"series": name, "role": role, "rows": int(usable.sum()), "points_per_s": len(series) / seconds}
    for key, column in columns.items():
        result[key] = (
            float(np.mean(np.abs(column[usable] - values[usable]))) if np.isfinite(column).any() else None
        )
    inside = (values[usable] >= ours.p10[usable]) & (values[usable] <= ours.p90[usable])
    result["coverage"] = float(inside.mean()) if usable.any() else None
    if prophet is not None:
        low = np.array([np.nan if v is None else v for v in prophet["p10"]], dtype=float)[usable]
        high = np.array([np.nan if v is None else v for v in prophet["p90"]], dtype=float)[usable]
        result["prophet_coverage"] = float(((values[usable] >= low) & (values[usable] <= high)).mean())
    result["smoother_hindsight"], result["variance_ratio"] = yardsticks(series, horizon)
    naive = [result[key] for key in ("last", "seasonal") if result[key] is not None]
    result["vs_naive"] = result["ours"] / min(naive)
    result["smoother_vs_naive"] = result["smoother_hindsight"] / min(naive)
    result["vs_prophet"] = result["ours"] / result["prophet"] if result.get("prophet") else None
    return result


def print_table(results: list[dict]) -> None:
    def cell(value, pattern="{:.4g}"):
        return "-" if value is None else pattern.format(value)

    head = f"{'series':26} {'role':6} {'rows':>6} {'ours':>9} {'last':>9} {'seasonal':>9} {'prophet':>9}"
    head += f" {'ours/naive':>10} {'ours/proph':>10} {'cov80':>6} {'proph80':>7} {'pts/s':>7}"
    head += f" {'smooth*/naive':>13} {'VR':>5}"
    print(head)
    for row in results:
        print(
            f"{row['series']:26} {row['role']:6} {row['rows']:>6} {cell(row['ours']):>9}"
            f" {cell(row['last']):>9}"
            f" {cell(row['seasonal']):>9} {cell(row.get('prophet')):>9} {cell(row['vs_naive'], '{:.3f}'):>10}"
            f" {cell(row['vs_prophet'], '{:.3f}'):>10} {cell(row['coverage'], '{:.3f}'):>6}"
            f" {cell(row.get('prophet_coverage'), '{:.3f}'):>7} {row['points_per_s']:>7.0f}"
            f" {row['smoother_vs_naive']:>13.3f} {row['variance_ratio']:>5.2f}"
        )
    for role in ("tune", "report"):
        chosen = [row for row in results if row["role"] == role]
        if not chosen:
            continue
        ratio = np.exp(np.mean([np.log(row["vs_naive"]) for row in chosen]))
        prophet = [row["vs_prophet"] for row in chosen if row["vs_prophet"]]
        cover = [row["coverage"] for row in chosen if row["coverage"] is not None]
        line = f"{role}: geometric mean ours/best-naive {ratio:.3f} over {len(chosen)} series"
        line += f"; within 0.8: {sum(row['vs_naive'] <= 0.8 for row in chosen)}"
        if prophet:
            line += f"; ours/Prophet {np.exp(np.mean(np.log(prophet))):.3f}, below Prophet on"
            line += f" {sum(r < 1 for r in prophet)}/{len(prophet)}"
        line += f"; coverage {min(cover):.3f}-{max(cover):.3f}"
        print(line)


def main() -> None:
    if "--prophet-worker" in sys.argv:
        prophet_worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("GREENMATRIX_DATA", "/work/shared/data"))
    parser.add_argument("--horizon", type=float, default=3600.0, help="seconds ahead")
    parser.add_argument(
        "--prophet", action="store_true", help="compute Prophet forecasts missing from the cache"
    )
    parser.add_argument("--only", nargs="*", help="series names to run")
    parser.add_argument("--role", choices=("tune", "report"))
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args()
    results = []
    for name, path, role, zero_is_gap in SERIES:
        if (args.only and name not in args.only) or (args.role and role != args.role):
            continue
        series = load(Path(args.data) / path, zero_is_gap)
        results.append(score(name, role, series, args.horizon, args.prophet))
        print(f"... {name} done", file=sys.stderr, flush=True)
    if args.output == "json":
        print(json.dumps(results, indent=1))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
