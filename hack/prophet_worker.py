#!/usr/bin/env python3
"""Prophet's side of `hack/bench_forecast.py`, run inside an interpreter that has Prophet (never
GreenMatrix's): a JSON request on stdin (times, values, horizon, refit seconds), a walk-forward of refits
each predicting until the next, p10/p50/p90 per row as JSON on stdout. Needs only numpy, pandas, prophet.
"""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np


def main() -> None:
    """Inside Prophet's interpreter: a walk-forward of refits, each predicting until the next."""
    import logging

    import pandas as pd
    from prophet import Prophet as Model

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    request = json.load(sys.stdin)
    times = np.asarray(request["times"], dtype=float)
    values = np.asarray([np.nan if v is None else v for v in request["values"]], dtype=float)
    horizon, refit = request["horizon"], request["refit"]
    out: dict[str, list[float | None]] = {key: [None] * len(times) for key in ("p10", "p50", "p90")}
    moments = times - horizon
    fits = np.arange(times[0] + refit, moments[-1] + refit, refit)
    for start, end in itertools.pairwise(fits):
        seen = (times <= start) & np.isfinite(values)
        rows = np.flatnonzero((moments >= start) & (moments < end))
        if seen.sum() < 10 or len(rows) == 0:
            continue
        history = pd.DataFrame({"ds": pd.to_datetime(times[seen], unit="s"), "y": values[seen]})
        model = Model(interval_width=0.8, uncertainty_samples=200)
        model.fit(history)
        predicted = model.predict(pd.DataFrame({"ds": pd.to_datetime(times[rows], unit="s")}))
        for key, column in (("p10", "yhat_lower"), ("p50", "yhat"), ("p90", "yhat_upper")):
            for row, value in zip(rows, predicted[column].to_numpy(), strict=True):
                out[key][int(row)] = float(value)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
