"""How well the causal anomaly filter finds NAB's labelled anomalies, and how often it cries wolf.

    .venv/bin/python hack/bench_anomalies.py [--data DIR] [--tune] [-o json]

For every series in ``timeseries/nab`` (``anomaly_windows.json`` holds the labelled windows): the
share of windows with at least one flagged point, and the false episodes per day (runs of flagged
points outside every window, runs closer than 30 minutes merged; days from the series' span).
The files are split by a fixed rule (sorted by name, every other one from the first is for tuning):
``--tune`` searches the detector's thresholds on the tuning half only, and the totals are printed
for the tuning half, for the series it never tuned on, and for all. Not a test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from greenmatrix.live.anomalies import Anomalies, AnomalySettings, detect_anomalies

MERGE_SECONDS = 1800.0
FALSE_PER_DAY_TARGET = 0.5


@dataclass(frozen=True)
class Series:
    name: str
    t: np.ndarray
    v: np.ndarray
    windows: list[tuple[float, float]]


@dataclass(frozen=True)
class Score:
    windows: int
    hit: int
    false_episodes: int
    days: float


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def load(folder: Path) -> list[Series]:
    labels = json.loads((folder / "anomaly_windows.json").read_text())
    out = []
    for key, windows in sorted(labels.items(), key=lambda kv: Path(kv[0]).name):
        rows = np.genfromtxt(folder / Path(key).name, delimiter=",", skip_header=1, dtype=str)
        t = np.array([_epoch(s) for s in rows[:, 0]])
        v = rows[:, 1].astype(float)
        out.append(Series(Path(key).name, t, v, [(_epoch(a), _epoch(b)) for a, b in windows]))
    return out


def evaluate(series: Series, flagged: np.ndarray) -> Score:
    inside = np.zeros(len(series.t), dtype=bool)
    hit = 0
    for start, end in series.windows:
        window = (series.t >= start) & (series.t <= end)
        inside |= window
        hit += bool(np.any(flagged & window))
    outside = np.flatnonzero(flagged & ~inside)
    false_episodes = 0
    if len(outside):
        false_episodes = 1 + int(np.sum(np.diff(series.t[outside]) > MERGE_SECONDS))
    days = (series.t[-1] - series.t[0]) / 86400.0
    return Score(len(series.windows), hit, false_episodes, days)


def missed(series: Series, found: Anomalies) -> list[str]:
    """One line per labelled window with no flagged point: where it lies, its highest score, and
    whether any of its values leaves the range of the week before it (a crude visible signature)."""
    lines = []
    for start, end in series.windows:
        inside = (series.t >= start) & (series.t <= end)
        if found.anomaly[inside].any():
            continue
        week = (series.t >= start - 7 * 86400.0) & (series.t < start)
        values = series.v[inside]
        outside = bool(week.any()) and bool(
            np.any((values > np.nanmax(series.v[week])) | (values < np.nanmin(series.v[week])))
        )
        where = np.flatnonzero(inside)
        lines.append(
            f"{series.name:42s} window at {where[0] / len(series.t):4.0%}-{where[-1] / len(series.t):4.0%}"
            f" of the file, highest score {found.score[inside].max():.2f},"
            f" values beyond the previous week's range: {'yes' if outside else 'no'}"
        )
    return lines


def total(scores: list[Score]) -> Score:
    return Score(
        sum(s.windows for s in scores),
        sum(s.hit for s in scores),
        sum(s.false_episodes for s in scores),
        sum(s.days for s in scores),
    )


def rates(score: Score) -> tuple[float, float]:
    return score.hit / max(score.windows, 1), score.false_episodes / max(score.days, 1e-9)


def run(series: list[Series], settings: AnomalySettings) -> list[Score]:
    return [evaluate(s, detect_anomalies(s.t, s.v, settings).anomaly) for s in series]


def tune(series: list[Series], base: AnomalySettings) -> AnomalySettings:
    """The settings that flag the most windows of the tuning series while keeping false episodes
    under 80% of the target (a margin for the series it has not seen); fewer false episodes break ties."""
    best, best_key = base, (-1.0, 0.0)
    grid = itertools.product(
        (24, 48), (5.0, 6.0, 8.0), (50.0, float("inf")), (0.7, 0.8, 0.9, 1.0), (12.0, 24.0)
    )
    for window, spike_z, spike_z_max, margin, shift_h in grid:
        cand = replace(
            base, window=window, spike_z=spike_z, spike_z_max=spike_z_max, margin=margin, shift_h=shift_h
        )
        hit, false_rate = rates(total(run(series, cand)))
        if false_rate > 0.8 * FALSE_PER_DAY_TARGET:
            continue
        if (hit, -false_rate) > best_key:
            best, best_key = cand, (hit, -false_rate)
    return best


def speed(n: int = 20_000) -> float:
    rng = np.random.default_rng(0)
    t = np.arange(n) * 60.0
    v = 100 + 20 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 3, n)
    start = time.perf_counter()
    detect_anomalies(t, v)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(
        os.environ.get("GREENMATRIX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--tune", action="store_true", help="search the thresholds on the tuning half")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args()
    series = load(args.data / "timeseries" / "nab")
    tuning = {s.name for s in series[::2]}
    settings = AnomalySettings()
    if args.tune:
        settings = tune([s for s in series if s.name in tuning], settings)
    scores = run(series, settings)
    groups = {
        "tuned on": [sc for s, sc in zip(series, scores, strict=True) if s.name in tuning],
        "never tuned on": [sc for s, sc in zip(series, scores, strict=True) if s.name not in tuning],
        "all": scores,
    }
    per_second = speed()
    if args.output == "json":
        print(
            json.dumps(
                {
                    "settings": settings.__dict__,
                    "files": [
                        {"file": s.name, "tuned": s.name in tuning, **sc.__dict__}
                        for s, sc in zip(series, scores, strict=True)
                    ],
                    "totals": {
                        k: dict(zip(("windows_flagged", "false_per_day"), rates(total(v)), strict=True))
                        for k, v in groups.items()
                    },
                    "points_per_second": per_second,
                },
                indent=2,
            )
        )
        return
    print(f"settings: {settings}")
    head = ("file", "set", "windows", "flagged", "false", "days", "false/day")
    print(f"{head[0]:42s} {head[1]:5s} " + " ".join(f"{h:>{len(h)}s}" for h in head[2:]))
    for s, sc in zip(series, scores, strict=True):
        _, per_day = rates(sc)
        role = "tune" if s.name in tuning else "test"
        counts = f"{sc.windows:7d} {sc.hit:7d} {sc.false_episodes:5d} {sc.days:4.0f} {per_day:9.2f}"
        print(f"{s.name:42s} {role:5s} {counts}")
    for label, group in groups.items():
        sc = total(group)
        hit, per_day = rates(sc)
        per_file = np.mean([rates(one)[1] for one in group])
        print(
            f"{label:16s} windows flagged {sc.hit}/{sc.windows} = {hit:.0%}, false episodes"
            f" {sc.false_episodes} over {sc.days:.0f} days = {per_day:.2f}/day"
            f" (mean of the files' rates {per_file:.2f}/day)"
        )
    print("windows with no flagged point:")
    for s in series:
        for line in missed(s, detect_anomalies(s.t, s.v, settings)):
            print(f"  {line}")
    print(f"speed: {per_second:,.0f} points/s (20,000-point series, one call)")


if __name__ == "__main__":
    main()
