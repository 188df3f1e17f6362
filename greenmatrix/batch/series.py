"""Series files: a CSV of `timestamp`,`value` rows in, the same rows out with what the live engine says
of each row (its forecast, its anomaly score), every answer computed from the rows at or before it.

The rows are read and written back as `greenmatrix predict` does (every cell repeated, a byte-order
mark and the line ending kept); bad rows are errors naming the row and the column.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from greenmatrix.batch.datasets import Dataset
from greenmatrix.batch.table import Table, read_table, write_predictions
from greenmatrix.live.observations import Series, series_from_rows

if TYPE_CHECKING:
    from greenmatrix.live.replay import Replay

FORECAST_COLUMNS = ("forecast_p10", "forecast_p50", "forecast_p90")
REPLAY_COLUMNS = ("replicas", "hpa_replicas", "static_replicas")
ANOMALY_COLUMNS = ("anomaly_score", "anomaly", "anomaly_kind")

_SERIES = Dataset(
    name="series",
    required=("timestamp", "value"),
    known=("timestamp", "value"),
    outputs=(),
    learner="",
    predict_rows=lambda rows: ([None] * len(rows), [""] * len(rows)),
)


def read_series(in_path: Path, outputs: tuple[str, ...], flag: str = "--series") -> tuple[Table, Series]:
    """IN as a table (to repeat it) and as a Series; GreenMatrixError naming the row and column."""
    table = read_table(in_path, replace(_SERIES, outputs=outputs), flag=flag)
    return table, series_from_rows(table.rows, lines=table.lines)


def _number(x: float) -> str:
    return f"{x:.6g}"


def forecast_file(in_path: Path, out_path: Path, horizon_s: float) -> int:
    """Each row's forecast made `horizon_s` before its timestamp from the rows at or before that moment;
    returns how many rows have one (the first ones are warming up, with a reason)."""
    from greenmatrix.live.forecast import forecast_series

    table, series = read_series(in_path, FORECAST_COLUMNS)
    result = forecast_series(series, horizon_s)
    cells = [
        None if math.isnan(p50) else [_number(p10), _number(p50), _number(p90)]
        for p10, p50, p90 in zip(result.p10, result.p50, result.p90, strict=True)
    ]
    return write_predictions(out_path, table, FORECAST_COLUMNS, cells, result.reasons)


def anomalies_file(in_path: Path, out_path: Path, *, counter: bool = False) -> int:
    """Each row's anomaly score (0-1), flag and kind, decided from the rows up to and including it;
    returns how many rows are flagged."""
    from greenmatrix.live.anomalies import AnomalySettings, detect_anomalies

    table, series = read_series(in_path, ANOMALY_COLUMNS)
    found = detect_anomalies(series.timestamps, series.values, AnomalySettings(counter=counter))
    cells = [
        [f"{score:.4f}", "true" if flagged else "false", str(kind)]
        for score, flagged, kind in zip(found.score, found.anomaly, found.kind, strict=True)
    ]
    write_predictions(out_path, table, ANOMALY_COLUMNS, cells, [""] * len(cells))
    return int(found.anomaly.sum())


def replay_file(
    in_path: Path,
    out_path: Path,
    *,
    capacity: float,
    startup_s: float,
    policy_path: Path | None = None,
    hpa_target: float = 0.7,
    gpus_per_replica: int = 1,
) -> Replay:
    """Each row of a demand trace with what GreenMatrix (under the policy's guardrails), the HPA and a
    static allocation ask for over its interval, each decided from the rows before it."""
    from greenmatrix.api import OptimizationPolicySpec
    from greenmatrix.cli.manifests import load_manifest
    from greenmatrix.live.replay import Trace, replay
    from greenmatrix.policy import scaling_of

    policy = None
    if policy_path is not None:
        policy = load_manifest(policy_path, "OptimizationPolicy", OptimizationPolicySpec, "--policy").spec
    table, series = read_series(in_path, REPLAY_COLUMNS, flag="--trace")
    result = replay(
        Trace(series.timestamps, series.values),
        capacity,
        startup_s,
        scaling_of(policy),
        paused=bool(policy and policy.paused),
        hpa_target=hpa_target,
        gpus_per_replica=gpus_per_replica,
        static_hindsight=False,
    )
    cells = [
        [str(int(a)), str(int(b)), str(int(c))]
        for a, b, c in zip(
            result.greenmatrix.replicas, result.hpa.replicas, result.static.replicas, strict=True
        )
    ]
    write_predictions(out_path, table, REPLAY_COLUMNS, cells, [""] * len(cells))
    return result
