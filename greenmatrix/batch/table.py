"""The CSV side of batch prediction, shared by every dataset: read rows, write them back with predictions.

The output repeats every input row in order with all its columns, then the prediction columns and
a `reason` that is empty when the row was predicted and says why not otherwise.
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
