"""Reading a demand series: bad input is one line naming the row and the column; gaps are data."""

from __future__ import annotations

import numpy as np
import pytest

from greenmatrix.errors import GreenMatrixError
from greenmatrix.live.observations import Series, regular_grid, series_from_rows


def rows(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"timestamp": stamp, "value": value} for stamp, value in pairs]


GOOD = [("0", "1.5"), ("60", "2"), ("120", "2.5"), ("180", "3")]


@pytest.mark.parametrize(
    ("bad", "where", "words"),
    [
        (("60", "x"), "row 3, column value", "not a number"),
        (("60", "nan"), "row 3, column value", "not a finite number"),
        (("60", "-1"), "row 3, column value", "negative"),
        (("yesterday", "1"), "row 3, column timestamp", "not a time"),
        (("0", "1"), "row 3, column timestamp", "repeats"),
        (("-60", "1"), "row 3, column timestamp", "earlier than"),
    ],
)
def test_bad_cells_name_row_and_column(bad: tuple[str, str], where: str, words: str) -> None:
    data = rows(GOOD[0], bad, *GOOD[2:])
    with pytest.raises(GreenMatrixError) as caught:
        series_from_rows(data)
    message = str(caught.value)
    assert message.startswith(where) and words in message
    assert "\n" not in message


def test_too_few_rows_says_how_many_are_needed() -> None:
    with pytest.raises(GreenMatrixError, match="at least 3 are needed"):
        series_from_rows(rows(*GOOD[:2]))


def test_missing_column_is_named() -> None:
    with pytest.raises(GreenMatrixError, match=r"^value: column missing"):
        series_from_rows([{"timestamp": str(t)} for t in range(5)])


def test_iso_and_epoch_timestamps_agree() -> None:
    iso = series_from_rows(
        rows(("2024-05-01T00:00:00Z", "1"), ("2024-05-01 00:05:00", "2"), ("2024-05-01T00:10:00+00:00", "3"))
    )
    epoch = series_from_rows(rows(("1714521600", "1"), ("1714521900", "2"), ("1714522200", "3")))
    np.testing.assert_array_equal(iso.timestamps, epoch.timestamps)
    assert iso.step == 300


def test_gaps_are_data_on_the_grid() -> None:
    series = series_from_rows(rows(("0", "1"), ("60", "2"), ("300", "3"), ("360", "4")))
    grid = regular_grid(series)
    assert series.step == 60
    np.testing.assert_array_equal(grid.slots, [0, 1, 5, 6])
    assert np.isnan(grid.values[2:5]).all() and grid.values[5] == 3


def test_step_comes_from_the_first_rows_only() -> None:
    times = np.concatenate((np.arange(0, 33 * 60, 60.0), 33 * 60 + np.arange(0, 100 * 300, 300.0)))
    series = Series(times, np.ones(len(times)))
    assert series.step == 60
    assert Series(times[:40], np.ones(40)).step == series.step
