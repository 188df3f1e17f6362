"""`greenmatrix bench forecast`: the demand forecaster walk-forward on the shared series, against
last-value, seasonal-naive and (when installed) Prophet.

Each forecast is made from the rows at or before its moment only. The series were split before any
tuning: `tune` series chose the forecaster's constants, `report` series judge it. MAE is over the rows
every column forecasts (the seasonal-naive needs a day of history, so the first day is out for all);
coverage is the share of those rows inside the 80% interval. smooth*/naive is what a level forecaster
could reach (`yardsticks`), VR how much the series moves like a random walk.

Run as a script (`python bench_forecast.py --prophet-worker`) this file is Prophet's worker: it needs
only numpy, pandas and prophet, so it runs in whichever interpreter has Prophet installed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DAY = 86_400.0
PROPHET_REFIT = 24 * 3600.0
NOT_INSTALLED = "not run (hack/bench_forecast.py)"


@dataclass(frozen=True)
class BenchSeries:
    name: str
    path: str  # under the data folder
    role: str  # "tune": chose the forecaster's constants; "report": judges it
    zero_is_gap: bool  # ServeGen writes an exact 0 where collection stopped


SERIES = (
    BenchSeries("crane/input0", "timeseries/crane/input0.csv", "tune", False),
    BenchSeries("crane/input1", "timeseries/crane/input1.csv", "tune", False),
    BenchSeries("crane/input2", "timeseries/crane/input2.csv", "tune", False),
    BenchSeries("crane/input3", "timeseries/crane/input3.csv", "tune", False),
    BenchSeries("nab/ec2_cpu_24ae8d", "timeseries/nab/ec2_cpu_utilization_24ae8d.csv", "tune", False),
    BenchSeries("nab/twitter_AAPL", "timeseries/nab/Twitter_volume_AAPL.csv", "tune", False),
    BenchSeries("servegen/m-large", "traces/servegen_m-large_requests_per_s.csv", "report", True),
    BenchSeries("servegen/mm-image", "traces/servegen_mm-image_requests_per_s.csv", "report", True),
    BenchSeries("crane/input4", "timeseries/crane/input4.csv", "report", False),
    BenchSeries("crane/input5", "timeseries/crane/input5.csv", "report", False),
    BenchSeries("crane/input6", "timeseries/crane/input6.csv", "report", False),
    BenchSeries("crane/input7", "timeseries/crane/input7.csv", "report", False),
    BenchSeries("nab/nyc_taxi", "timeseries/nab/nyc_taxi.csv", "report", False),
    BenchSeries("nab/ec2_cpu_53ea38", "timeseries/nab/ec2_cpu_utilization_53ea38.csv", "report", False),
    BenchSeries("nab/ec2_cpu_fe7f93", "timeseries/nab/ec2_cpu_utilization_fe7f93.csv", "report", False),
    BenchSeries("nab/elb_request_count", "timeseries/nab/elb_request_count_8c0756.csv", "report", False),
    BenchSeries("nab/rds_cpu_cc0c53", "timeseries/nab/rds_cpu_utilization_cc0c53.csv", "report", False),
    BenchSeries("nab/ec2_network_in_257a54", "timeseries/nab/ec2_network_in_257a54.csv", "report", False),
    BenchSeries("nab/twitter_FB", "timeseries/nab/Twitter_volume_FB.csv", "report", False),
)


@dataclass(frozen=True)
class Prophet:
    """Where Prophet runs: an interpreter that imports it, running `worker` (hack/prophet_worker.py: it
    needs only numpy, pandas and prophet), one process with one thread at a time. Prophet is a baseline,
    never a dependency: `greenmatrix bench forecast` leaves it out, hack/bench_forecast.py brings it.

    `cache`: a folder keeping each series' forecasts (Prophet takes minutes on a month of minutes);
    `compute`: False reads the cache only."""

    python: str
    worker: Path
    cache: Path | None = None
    compute: bool = True


def load(path: Path, zero_is_gap: bool) -> Any:
    from greenmatrix.live.observations import Series, series_from_rows

    with path.open(newline="") as handle:
        series = series_from_rows(list(csv.DictReader(handle)))
    if zero_is_gap:
        series = Series(series.timestamps, np.where(series.values == 0, np.nan, series.values))
    return series


def naive_forecasts(times: np.ndarray, values: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Last value observed at or before t - horizon, and the value at exactly t - 1 day."""
    seen = np.isfinite(values)
    latest = np.where(seen, np.arange(len(values)), -1)
    np.maximum.accumulate(latest, out=latest)
    moment = np.searchsorted(times, times - horizon, side="right") - 1
    source = np.where(moment >= 0, latest[np.maximum(moment, 0)], -1)
    last = np.where(source >= 0, values[np.maximum(source, 0)], np.nan)
    before = np.minimum(np.searchsorted(times, times - DAY), len(times) - 1)
    seasonal = np.where(np.abs(times[before] - (times - DAY)) < 1e-6, values[before], np.nan)
    return last, seasonal


def yardsticks(series: Any, horizon: float) -> tuple[float, float]:
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


def prophet_forecasts(
    name: str, times: np.ndarray, values: np.ndarray, horizon: float, prophet: Prophet
) -> dict | None:
    """Prophet's walk-forward p10/p50/p90 per row (None where it made none), from the cache or computed."""
    digest = hashlib.sha1(times.tobytes() + np.nan_to_num(values, nan=-1).tobytes()).hexdigest()[:12]
    key = f"{name.replace('/', '_')}-{horizon:.0f}-{prophet_refit(times):.0f}-{digest}.json"
    cached = None if prophet.cache is None else prophet.cache / key
    if cached is not None and cached.exists():
        return json.loads(cached.read_text())
    if not prophet.compute:
        return None
    request = {"times": times.tolist(), "values": [None if np.isnan(v) else float(v) for v in values]}
    request["horizon"], request["refit"] = horizon, prophet_refit(times)
    # One thread: Stan and BLAS would otherwise take every core of a machine others share.
    threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [prophet.python, str(prophet.worker)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, **threads},
        check=False,
    )
    if done.returncode != 0:
        print(f"prophet failed on {name}: {done.stderr[-500:]}", file=sys.stderr)
        return None
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(done.stdout)
    return json.loads(done.stdout)


def _array(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _mae(guess: np.ndarray, values: np.ndarray, usable: np.ndarray) -> float | None:
    return float(np.mean(np.abs(guess[usable] - values[usable]))) if np.isfinite(guess).any() else None


def _coverage(values: np.ndarray, low: np.ndarray, high: np.ndarray, usable: np.ndarray) -> float | None:
    if not usable.any():
        return None
    return float(((values[usable] >= low[usable]) & (values[usable] <= high[usable])).mean())


def score(entry: BenchSeries, data: Path, horizon: float, prophet: Prophet | None) -> dict:
    """One series' row: each column's MAE on the rows all forecast, coverage, and the yardsticks."""
    from greenmatrix.live.forecast import forecast_series

    series = load(data / entry.path, entry.zero_is_gap)
    times, values = series.timestamps, series.values
    started = time.perf_counter()
    ours = forecast_series(series, horizon)
    seconds = time.perf_counter() - started
    last, seasonal = naive_forecasts(times, values, horizon)
    theirs = None if prophet is None else prophet_forecasts(entry.name, times, values, horizon, prophet)
    columns = {"greenmatrix": ours.p50, "last": last, "seasonal": seasonal}
    if theirs is not None and any(value is not None for value in theirs["p50"]):
        columns["prophet"] = _array(theirs["p50"])
    usable = np.isfinite(values)
    for column in columns.values():
        # A seasonal-naive that never exists (a one-day series) does not remove every row.
        if np.isfinite(column).any():
            usable &= np.isfinite(column)
    result: dict[str, Any] = {"series": entry.name, "role": entry.role, "rows": int(usable.sum())}
    result.update({key: _mae(column, values, usable) for key, column in columns.items()})
    result["coverage"] = _coverage(values, ours.p10, ours.p90, usable)
    result["prophet"] = result.get("prophet")
    result["prophet_coverage"] = None
    if "prophet" in columns and theirs is not None:
        result["prophet_coverage"] = _coverage(values, _array(theirs["p10"]), _array(theirs["p90"]), usable)
    result["smoother_hindsight"], result["variance_ratio"] = yardsticks(series, horizon)
    naive = min(result[key] for key in ("last", "seasonal") if result[key] is not None)
    result["vs_naive"] = result["greenmatrix"] / naive
    result["smoother_vs_naive"] = result["smoother_hindsight"] / naive
    result["vs_prophet"] = result["greenmatrix"] / result["prophet"] if result["prophet"] else None
    result["points_per_s"] = len(series) / seconds
    return result


def summary(results: list[dict]) -> list[dict]:
    """Per role: the geometric mean of GreenMatrix over the better naive (and over Prophet), how many
    series it beats the better naive by 20% on, and the range of its coverage."""
    lines = []
    for role in ("tune", "report"):
        chosen = [row for row in results if row["role"] == role]
        if not chosen:
            continue
        prophet = [row["vs_prophet"] for row in chosen if row["vs_prophet"]]
        cover = [row["coverage"] for row in chosen if row["coverage"] is not None]
        lines.append(
            {
                "role": role,
                "series": len(chosen),
                "vs_naive_geomean": float(np.exp(np.mean([np.log(row["vs_naive"]) for row in chosen]))),
                "within_0.8": sum(row["vs_naive"] <= 0.8 for row in chosen),
                "vs_prophet_geomean": float(np.exp(np.mean(np.log(prophet)))) if prophet else None,
                "below_prophet": sum(r < 1 for r in prophet) if prophet else None,
                "coverage_range": [min(cover), max(cover)] if cover else None,
            }
        )
    return lines


def table(results: list[dict], horizon: float, prophet: Prophet | None) -> Any:
    """The rich table of `score` rows, with the per-role summary in its caption."""
    from rich.table import Table

    def cell(value: float | None, pattern: str = "{:.4g}", missing: str = "-") -> str:
        return missing if value is None else pattern.format(value)

    with_prophet = prophet is not None
    out = Table(
        title=f"Forecast {horizon / 3600:g} h ahead, walk-forward: MAE per series", caption_justify="left"
    )
    columns = ["series", "role", "rows", "GreenMatrix", "last value", "seasonal", "Prophet", "GM/naive"]
    columns += ["GM/Prophet"] * with_prophet + ["cov80"] + ["Prophet cov80"] * with_prophet
    for column in (*columns, "smooth*/naive", "VR", "pts/s"):
        out.add_column(column, justify="left" if column in ("series", "role") else "right")
    for row in results:
        cells = [row["series"], row["role"], str(row["rows"])]
        cells += [cell(row[key]) for key in ("greenmatrix", "last", "seasonal")]
        cells += [cell(row["prophet"], missing="-" if with_prophet else NOT_INSTALLED)]
        cells += [cell(row["vs_naive"], "{:.3f}")]
        cells += [cell(row["vs_prophet"], "{:.3f}")] * with_prophet + [cell(row["coverage"], "{:.0%}")]
        cells += [cell(row["prophet_coverage"], "{:.0%}")] * with_prophet
        cells += [f"{row['smoother_vs_naive']:.3f}", f"{row['variance_ratio']:.2f}"]
        out.add_row(*cells, f"{row['points_per_s']:,.0f}")
    lines = [
        "MAE over the rows every column forecasts (the first day is out: seasonal-naive needs it). "
        "role: tune = the forecaster's constants were chosen on it, report = never seen while tuning. "
        "GM/naive: GreenMatrix's MAE over the better of last value and seasonal-naive (below 1 wins). "
        "cov80: share of rows inside the 80% interval. smooth*/naive: the best trailing mean or median "
        "chosen in hindsight, over the better naive. VR: variance ratio, 1 = a random walk. "
        "pts/s: GreenMatrix's walk-forward speed."
    ]
    for line in summary(results):
        text = (
            f"{line['role']}: geometric mean GM/naive {line['vs_naive_geomean']:.3f} over "
            f"{line['series']} series, within 0.8 on {line['within_0.8']}"
        )
        if line["vs_prophet_geomean"] is not None:
            text += f"; GM/Prophet {line['vs_prophet_geomean']:.3f}, below Prophet on {line['below_prophet']}"
        if line["coverage_range"]:
            text += f"; coverage {line['coverage_range'][0]:.0%}-{line['coverage_range'][1]:.0%}"
        lines.append(text)
    out.caption = "\n".join(lines)
    return out
