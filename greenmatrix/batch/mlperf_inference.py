"""`greenmatrix predict --dataset mlperf-inference`: predict the result of every MLPerf Inference row.

Input columns are those of `mlperf/inference_closed.csv` (`Model`, `Scenario`, `Units`,
`accelerator_model_name`, `accelerators_per_node`, `number_of_nodes`, `framework`, `version`,
`has_power`, `SystemName` ...); the measured `Result` may be absent. The output repeats every row
in order with all its columns and adds `predicted_result` with its 80% interval
(`predicted_result_p10`, `predicted_result_p90`), in the row's `Units` for the whole system, and a
`reason`: empty when predicted, otherwise why not. Offline/Server rows get a throughput (samples/s,
queries/s, or tokens/s for llama2-70b Offline) from the throughput model; SingleStream/MultiStream
rows a latency in ms per query from the (weaker, see models/mlperf_latency.md) latency model. Power
rows, CPU-only systems and accelerators without catalog specs get a reason instead.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from greenmatrix.errors import GreenMatrixError


def read_csv(in_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV (a UTF-8 byte-order mark is tolerated)."""
    with Path(in_path).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [{k: (v if v is not None else "") for k, v in r.items() if k is not None} for r in reader]
    return fields, rows


def write_predictions(
    out_path: Path,
    fields: Sequence[str],
    rows: Sequence[dict[str, str]],
    columns: Sequence[str],
    cells: Sequence[Sequence[str] | None],
    reasons: Sequence[str],
) -> int:
    """Write rows with the prediction `columns` (then `reason`) appended; return how many have cells."""
    out_fields = list(fields) + [c for c in (*columns, "reason") if c not in fields]
    count = 0
    with Path(out_path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=out_fields, extrasaction="ignore")
        writer.writeheader()
        for row, cell, reason in zip(rows, cells, reasons, strict=True):
            out = dict(row)
            values = cell if cell is not None else [""] * len(columns)
            out.update(dict(zip(columns, values, strict=True)))
            out["reason"] = "" if cell is not None else reason
            count += cell is not None
            writer.writerow(out)
    return count


def load_or_explain(loader: Callable[[], Any], what: str) -> Any:
    try:
        return loader()
    except FileNotFoundError as err:
        raise GreenMatrixError("models", f"the {what} model is missing: {err}") from err


COLUMNS = ("predicted_result", "predicted_result_p10", "predicted_result_p90")


def predict_file(in_path: Path, out_path: Path) -> int:
    """Predict every row of `in_path` into `out_path`; return how many rows got a prediction."""
    from greenmatrix.learned import mlperf_inference

    fields, rows = read_csv(in_path)
    predictor = load_or_explain(mlperf_inference.predictor, "MLPerf inference")
    preds = predictor.predict_rows(rows)
    cells: list[list[str] | None] = []
    for p in preds:
        r = p.result
        cells.append(None if r is None else [f"{v:.6g}" for v in (r.p50, r.p10, r.p90)])
    return write_predictions(out_path, fields, rows, COLUMNS, cells, [p.reason for p in preds])
