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

from pathlib import Path

from greenmatrix.batch.table import load_or_explain, read_table, write_predictions

COLUMNS = ("predicted_result", "predicted_result_p10", "predicted_result_p90")


def predict_file(in_path: Path, out_path: Path) -> int:
    """Predict every row of `in_path` into `out_path`; return how many rows got a prediction."""
    from greenmatrix.learned import mlperf_inference

    table = read_table(in_path, "mlperf-inference", COLUMNS)
    rows = table.rows
    predictor = load_or_explain(mlperf_inference.predictor, "MLPerf inference")
    preds = predictor.predict_rows(rows)
    cells: list[list[str] | None] = []
    for p in preds:
        r = p.result
        cells.append(None if r is None else [f"{v:.6g}" for v in (r.p50, r.p10, r.p90)])
    return write_predictions(out_path, table, COLUMNS, cells, [p.reason for p in preds])
