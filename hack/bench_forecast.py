#!/usr/bin/env python3
"""`greenmatrix bench forecast` with Prophet from its own virtualenv and a cache of its forecasts.

    .venv/bin/python hack/bench_forecast.py [--data DIR] [--horizon 3600] [--prophet] [--only NAME ...]
        [--role tune|report] [-o json]

Prophet is a baseline only, never a dependency of GreenMatrix: here it runs in /work/prophet-venv (or
$PROPHET_PYTHON), one single-threaded process, refitted every 24 h of data on everything seen so far
(hack/prophet_worker.py). Its forecasts are cached under $PROPHET_CACHE
(default /work/prophet-cache); `--prophet` computes the missing ones (a few minutes for a 16-day
1-minute series), without it the column shows what the cache holds. The benchmark itself, its series
and their tune/report split are `greenmatrix.cli.bench_forecast`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from greenmatrix.cli import bench_forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = Path(os.environ.get("GREENMATRIX_DATA", "/work/shared/data"))
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--horizon", type=float, default=3600.0, help="seconds ahead")
    parser.add_argument("--prophet", action="store_true", help="compute the Prophet forecasts not cached")
    parser.add_argument("--only", nargs="*", help="series names to run")
    parser.add_argument("--role", choices=("tune", "report"))
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args()
    python = os.environ.get("PROPHET_PYTHON", "/work/prophet-venv/bin/python")
    cache = Path(os.environ.get("PROPHET_CACHE", "/work/prophet-cache"))
    worker = Path(__file__).with_name("prophet_worker.py")
    found = Path(python).exists()
    prophet = bench_forecast.Prophet(python, worker, cache, compute=args.prophet) if found else None
    if prophet is None:
        print(f"prophet: {python} not found; the Prophet column stays empty", file=sys.stderr)
    results = []
    for entry in bench_forecast.SERIES:
        if (args.only and entry.name not in args.only) or (args.role and entry.role != args.role):
            continue
        results.append(bench_forecast.score(entry, args.data, args.horizon, prophet))
        print(f"... {entry.name} done", file=sys.stderr, flush=True)
    if args.output == "json":
        print(json.dumps({"rows": results, "summary": bench_forecast.summary(results)}, indent=1))
    else:
        Console(width=200).print(bench_forecast.table(results, args.horizon, prophet))


if __name__ == "__main__":
    main()
