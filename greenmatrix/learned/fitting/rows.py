"""The reference data a trainer reads (`--data`): CSV rows, and errors that name the file.

The file comes from the user's `--data` folder, so every way it can be unusable (not there, not
UTF-8, no usable row) is a GreenMatrixError naming the file and what is wrong, not a traceback.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from greenmatrix.errors import GreenMatrixError

Prepared = TypeVar("Prepared")


@dataclass
class MeasuredRows:
    """The usable rows of an MLPerf results file, one entry per row: features, the target
    log(measured / roofline), the measurement and its roofline, and what the hold-outs group by."""

    X: np.ndarray
    y: np.ndarray
    measured: np.ndarray
    roofline: np.ndarray
    gpu: np.ndarray
    round: np.ndarray
    benchmark: np.ndarray
    dropped: int = 0  # rows left out as data errors (see outliers_kept)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a reference CSV (column -> text; a short row's missing cells read as blank).

    The file comes from the user's `--data` folder, so one that cannot be read is a
    GreenMatrixError naming the file, not a traceback.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh, restval=""))
    except UnicodeDecodeError:
        raise data_error(path, f"is not UTF-8 text (byte {_first_non_utf8(path)})") from None
    except csv.Error as err:
        raise data_error(path, f"is not a readable CSV ({err})") from None
    except IsADirectoryError:
        raise data_error(path, "is a directory, not a CSV file") from None
    except FileNotFoundError:
        raise data_error(path, "does not exist") from None
    except OSError as err:
        raise data_error(path, f"cannot be read ({err.strerror or err})") from None


def data_error(path: Path, problem: str) -> GreenMatrixError:
    """The error for a `--data` file: ``problem`` says what is wrong with it."""
    return GreenMatrixError("--data", f"{path}: {problem}")


def _first_non_utf8(path: Path) -> int:
    # The text reader decodes in chunks, so its error offset is within a chunk, not the file.
    try:
        Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start
    return 0


def no_usable_rows(
    path: Path,
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    first_reason: str,
    what: str = "rows",
) -> GreenMatrixError:
    """The error for a CSV none of whose ``rows`` a model can use, saying why.

    ``columns`` are what every usable row needs ("A|B": either); ``first_reason`` is why the first
    row was not usable, given when the columns are all there.
    """
    header = _header(path)
    wanted = ", ".join(c.replace("|", " or ") for c in columns)
    if not header:
        return data_error(path, f"is empty: needs a header row with columns {wanted}")
    none = f"has no usable {what}"
    missing = [c.replace("|", " or ") for c in columns if not set(c.split("|")) & set(header)]
    if len(missing) == len(columns):
        shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
        return data_error(path, f"{none}: needs columns {wanted}, but its columns are {shown}")
    if missing:
        return data_error(path, f"{none}: needs columns {wanted} (missing: {', '.join(missing)})")
    if not rows:
        return data_error(path, f"{none}: it has a header but no data rows")
    return data_error(path, f"{none} ({len(rows)} read; the first: {first_reason})")


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def outliers_kept(slower: np.ndarray, benchmarks: np.ndarray, factor: float) -> np.ndarray:
    """Which rows to keep: those at most `factor` times slower than their benchmark's median.

    `slower` is the log-ratio oriented so that larger is slower (a latency, or minus a throughput).
    Far slower rows are data errors (a result off by a factor of 100 among siblings that agree).
    """
    keep = np.ones(len(slower), dtype=bool)
    for b in sorted(set(benchmarks.tolist())):
        s = benchmarks == b
        keep[s] = slower[s] <= np.median(slower[s]) + math.log(factor)
    return keep


def usable_rows(
    path: Path,
    read: Callable[[Mapping[str, str]], tuple[float, Prepared] | str],
    columns: Sequence[str],
    what: str = "rows",
) -> list[tuple[Mapping[str, str], float, Prepared]]:
    """``(row, measured value, prepared)`` of every row of the CSV at `path` that `read` can use, in
    file order; `read` gives the row's value and physics, or why it cannot be used.

    A file with no usable row is a GreenMatrixError naming it, with why its first row was not usable.
    """
    rows = read_csv_rows(path)
    used = []
    for row in rows:
        usable = read(row)
        if not isinstance(usable, str):
            used.append((row, *usable))
    if not used:
        raise no_usable_rows(path, rows, columns, str(read(rows[0])) if rows else "", what)
    return used
