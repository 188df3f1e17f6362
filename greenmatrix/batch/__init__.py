"""Batch prediction over CSV files (`greenmatrix predict --dataset ...`): one `predict_file` for every
dataset in the registry (`datasets.DATASETS`).

The output repeats every input row in order with all its columns and adds the dataset's prediction
columns, `_p10`/`_p90` bounding the 80% interval, and a `reason`: empty when the row was
predicted, a sentence saying why not otherwise.
"""

from __future__ import annotations

from pathlib import Path

from greenmatrix.batch import table
from greenmatrix.batch.datasets import DATASETS


def predict_file(dataset: str, in_path: Path, out_path: Path) -> int:
    """Predict every row of `in_path` into `out_path` as `dataset`'s rows; return how many were predicted."""
    spec = DATASETS[dataset]
    rows = table.read_table(in_path, spec)
    cells, reasons = spec.predict_rows(rows.rows)
    return table.write_predictions(out_path, rows, spec.outputs, cells, reasons)
