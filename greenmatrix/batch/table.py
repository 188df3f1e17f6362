"""The CSV side of batch prediction, shared by every dataset: read rows, write them back with predictions.

The output repeats every input row in order, cell for cell (a byte-order mark and the line ending
are kept too), then the prediction columns and a `reason` that is empty when the row was predicted
and says why not otherwise. A file that cannot be repeated faithfully (duplicate column names, a
row longer than the header, a column named like an output) or that lacks the dataset's columns is
refused as a whole, naming what is wrong: a prediction written under the wrong column would be
worse than none.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from greenmatrix.batch.datasets import DATASETS, Dataset
from greenmatrix.errors import GreenMatrixError

# A CSV cell may be long (a notes column), never this long: past it the file is not a table.
_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class Table:
    """An input CSV as read: its header and cells verbatim, and each row keyed by column name."""

    header: list[str]
    cells: list[list[str]]
    rows: list[dict[str, str]]
    newline: str
    bom: bool
    # Every header cell quoted (spreadsheet exports): OUT quotes every cell too.
    quote_all: bool = False
    # The file line each row was read from, for errors that name a row.
    lines: tuple[int, ...] = ()


def read_table(in_path: Path, dataset: Dataset, *, observed: bool = False, flag: str | None = None) -> Table:
    """Read IN for ``dataset``; GreenMatrixError (field `flag`, ``--data`` by default) when it cannot be
    predicted faithfully.

    With ``observed`` the file is the rows a deployment produced (field ``--observed``): they must
    carry the dataset's measured columns too, and may carry output columns (an earlier OUT).
    """
    option = flag or ("--observed" if observed else "--data")
    raw = _text(Path(in_path), option)
    bom = raw.startswith("\ufeff")
    text = raw[1:] if bom else raw
    first_break = text.find("\n")
    newline = "\r\n" if first_break > 0 and text[first_break - 1] == "\r" else "\n"
    csv.field_size_limit(_FIELD_LIMIT)
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise GreenMatrixError(option, f"{in_path} is not a readable CSV: {err}") from err
    if not records:
        raise GreenMatrixError(option, f"{in_path} is empty: it needs a header row")
    header, body = records[0], records[1:]
    names = _column_names(header, dataset, in_path, option)
    cells: list[list[str]] = []
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    for line, record in enumerate(body, start=2):
        if not record:
            continue  # a blank line is not a row
        if len(record) > len(header):
            raise GreenMatrixError(
                option,
                f"{in_path} line {line} has {len(record)} cells, the header has {len(header)} "
                "(an unquoted comma?)",
            )
        padded = record + [""] * (len(header) - len(record))
        cells.append(padded)
        rows.append(dict(zip(names, padded, strict=True)))
        lines.append(line)
    quote_all = text.startswith(_quoted_line(header, newline))
    return Table(header, cells, rows, newline, bom, quote_all, tuple(lines))


def _quoted_line(cells: Sequence[str], newline: str) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=newline).writerow(cells)
    return out.getvalue()


def _text(path: Path, option: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise GreenMatrixError(
            option, f"{path} is not UTF-8 text (byte {err.start}): save it as UTF-8 CSV"
        ) from err


def _column_names(header: list[str], dataset: Dataset, path: Path, option: str) -> list[str]:
    canonical = {name.lower(): name for name in (*dataset.known, *dataset.measured)}
    names = [canonical.get(h.strip().lower(), h.strip()) for h in header]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise GreenMatrixError(
                option, f"{path} has the column {name!r} twice: which one to read is ambiguous"
            )
        seen.add(name)
    observed = option == "--observed"
    clashes = [c for c in (*dataset.outputs, "reason") if c in seen and not observed]
    if clashes:
        raise GreenMatrixError(
            option,
            f"{path} already has the output column(s) {', '.join(clashes)} (an earlier OUT?): "
            "drop or rename them, predict writes its own",
        )
    needed = (*dataset.required, *dataset.measured) if observed else dataset.required
    missing = [r.replace("|", " or ") for r in needed if not seen.intersection(r.split("|"))]
    if missing:
        hint = _looks_like(seen, dataset)
        raise GreenMatrixError(
            option,
            f"{path} lacks the {dataset.name} column(s) {', '.join(missing)}"
            + (f"; it looks like a {hint} file (--dataset {hint})" if hint else ""),
        )
    return names


def _looks_like(columns: set[str], dataset: Dataset) -> str | None:
    for other in DATASETS.values():
        if other is not dataset and all(columns.intersection(r.split("|")) for r in other.required):
            return other.name
    return None


def write_predictions(
    out_path: Path,
    table: Table,
    columns: Sequence[str],
    cells: Sequence[Sequence[str] | None],
    reasons: Sequence[str],
) -> int:
    """Write IN's rows with the prediction `columns` (then `reason`) appended; return how many have cells."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    encoding = "utf-8-sig" if table.bom else "utf-8"
    with out_path.open("w", newline="", encoding=encoding) as fh:
        quoting = csv.QUOTE_ALL if table.quote_all else csv.QUOTE_MINIMAL
        writer = csv.writer(fh, lineterminator=table.newline, quoting=quoting)
        writer.writerow([*table.header, *columns, "reason"])
        for row, cell, reason in zip(table.cells, cells, reasons, strict=True):
            values = list(cell) if cell is not None else [""] * len(columns)
            writer.writerow([*row, *values, "" if cell is not None else reason])
            count += cell is not None
    return count
