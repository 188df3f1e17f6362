"""`greenmatrix predict --dataset mlperf-training`: predict minutes to train for every MLPerf Training row.

Input columns are those of `mlperf/training.csv` (`Model_ID`, `version`, `accelerator_model_name`,
`accelerators_count`, `framework` ...); the measured `Result` and the per-benchmark copies (`bert`,
`resnet`, ...) may be absent. The output repeats every row in order with all its columns and adds
`predicted_minutes` with its 80% interval (`predicted_minutes_p10`, `predicted_minutes_p90`) and a
`reason` (empty when predicted).
"""

from __future__ import annotations

from pathlib import Path

from greenmatrix.batch.table import load_or_explain, read_table, write_predictions

COLUMNS = ("predicted_minutes", "predicted_minutes_p10", "predicted_minutes_p90")


def predict_file(in_path: Path, out_path: Path) -> int:
    """Predict every row of `in_path` into `out_path`; return how many rows got a prediction."""
    from greenmatrix.learned import training_time as training

    table = read_table(in_path, "mlperf-training", COLUMNS)
    rows = table.rows
    predictor = load_or_explain(training.predictor, "training time")
    preds = predictor.predict_rows(rows)
    cells: list[list[str] | None] = []
    for p in preds:
        m = p.minutes
        cells.append(None if m is None else [f"{v:.6g}" for v in (m.p50, m.p10, m.p90)])
    return write_predictions(out_path, table, COLUMNS, cells, [p.reason for p in preds])
