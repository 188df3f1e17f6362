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
from greenmatrix.batch.serving import Observed
from greenmatrix.errors import GreenMatrixError


def predict_file(dataset: str, in_path: Path, out_path: Path, observed_path: Path | None = None) -> int:
    """Predict every row of `in_path` into `out_path` as `dataset`'s rows; return how many were predicted.

    With `observed_path` (rows a running deployment produced, with the measured columns) the
    predictions are corrected by them and a `correction` column says how.
    """
    spec = DATASETS[dataset]
    if observed_path is None:
        rows = table.read_table(in_path, spec)
        cells, reasons = spec.predict_rows(rows.rows)
        return table.write_predictions(out_path, rows, spec.outputs, cells, reasons)
    if spec.predict_observed is None:
        learning = ", ".join(name for name, d in DATASETS.items() if d.predict_observed is not None)
        raise GreenMatrixError(
            "--observed", f"the {dataset} dataset does not learn from observed rows ({learning} does)"
        )
    seen = table.read_table(observed_path, spec, observed=True)
    rows = table.read_table(in_path, spec)
    cells, reasons = spec.predict_observed(rows.rows, Observed(Path(observed_path), seen.lines, seen.rows))
    return table.write_predictions(out_path, rows, (*spec.outputs, "correction"), cells, reasons)
