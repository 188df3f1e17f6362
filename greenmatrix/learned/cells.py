"""Cells of a reference-data row read as numbers, as the predictors and the trainers both read them.

A batch prediction and `greenmatrix train` read the same CSV columns: a count that is a typo must
get the row a reason in both, never silently become a default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from greenmatrix.errors import GreenMatrixError, InvalidSpecError

Prepared = TypeVar("Prepared")

# Larger than any system a CSV row describes (an NVL72 rack is 72 GPUs, MLPerf's largest
# submissions a few thousand); beyond it a count is a typo, not a configuration.
MAX_COUNT = 100_000


def positive_cell(text: Any) -> float | None:
    """A measured cell's value when it is a finite positive number, else None (blank, text, 0, nan)."""
    try:
        value = float(text or "nan")
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def count_cell(
    row: Mapping[str, Any],
    column: str,
    default: int | None = None,
    *,
    minimum: int = 1,
    maximum: int = MAX_COUNT,
) -> int | None:
    """A count column of a CSV row: blank -> ``default``; otherwise a whole number in [minimum, maximum].

    Anything else ("abc", "1.5", "nan", "-8", "1e30") raises InvalidSpecError naming the column,
    so a typo gets the row a reason instead of silently becoming the default.
    """
    text = str(row.get(column) if row.get(column) is not None else "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and minimum <= value <= maximum):
        raise InvalidSpecError(column, f"{text!r} is not a whole number from {minimum} to {maximum:,}")
    return int(value)


def mlperf_round(version: Any, latest: float, example: str, *, strict: bool = False) -> float:
    """An MLPerf round ('v3.1' or '3.1') as a number; ``latest`` when empty.

    Unreadable text is the latest round too, unless ``strict``: then an InvalidSpecError naming
    the `version` column (a batch row's typo must not silently become another round).
    """
    text = str(version or "").strip().lstrip("vV")
    try:
        value = float(text) if text else latest
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value > 0:
        return value
    if strict:
        raise InvalidSpecError("version", f"{version!r} is not an MLPerf round such as {example} (or empty)")
    return latest


def prepare_rows(
    rows: Iterable[Mapping[str, Any]], prepare: Callable[[Mapping[str, Any]], tuple[Prepared | None, str]]
) -> list[tuple[Prepared | None, str]]:
    """``prepare`` applied to every row; a row it cannot read gets (None, why) and the batch goes on."""
    prepared: list[tuple[Prepared | None, str]] = []
    for r in rows:
        try:
            prepared.append(prepare(r))
        except Exception as err:  # one malformed row must not sink the batch
            prepared.append((None, f"row could not be read: {err}"))
    return prepared


def too_few_rows(problem: str) -> GreenMatrixError:
    """The error for `--data` whose usable rows are too few for `train` to fit and score a model."""
    return GreenMatrixError("--data", f"too few usable rows: {problem}")
