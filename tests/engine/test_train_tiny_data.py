"""`greenmatrix train` and `bench accuracy` on a --data file with a few usable rows: too few to hold
out whole groups and score on them. One line naming --data and what is needed, exit 2, no traceback."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from greenmatrix.cli import main
from greenmatrix.errors import GreenMatrixError
from greenmatrix.learned import novelty
from greenmatrix.learned.fitting import correction, mlperf_inference, serving
from greenmatrix.learned.fitting import training_time as training

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason="needs the reference data in ../shared/data")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def first_rows(tmp_path: Path, relative: Path, count: int, **keep: str) -> Path:
    """A --data folder holding the header and the first `count` rows of a reference file (with the
    cells in `keep`)."""
    with open(SHARED / relative, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    columns = [rows[0].index(name) for name in keep]
    picked = [r for r in rows[1:] if [r[i] for i in columns] == list(keep.values())][:count]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([rows[0], *picked])
    root = tmp_path / "data"
    (root / relative).parent.mkdir(parents=True)
    (root / relative).write_text(text.getvalue(), encoding="utf-8")
    return root


def assert_one_line_error(result: Result, *words: str) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert errors[0].startswith("error: --data: ")
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@needs_data
@pytest.mark.parametrize("count", [1, 4])
def test_training_data_of_a_few_rows_says_how_many_are_needed(tmp_path: Path, count: int) -> None:
    root = first_rows(tmp_path, training.DATA_FILE, count)
    out = tmp_path / "models"
    words = [f"has too few usable rows ({count}", "at least 10 rows on at least 2 GPU types"]
    result = run("train", "--data", str(root), "--out", str(out), "--dataset", "mlperf-training")
    assert_one_line_error(result, str(root / training.DATA_FILE), *words)
    assert not out.exists()
    assert_one_line_error(run("bench", "accuracy", "--data", str(root), "--dataset", "mlperf-training"))


@needs_data
def test_training_data_of_one_round_is_scored_on_gpu_types_alone(tmp_path: Path) -> None:
    root = first_rows(tmp_path, training.DATA_FILE, 60, version=training.HOLDOUT_ROUND)
    results = training.holdout_results(root)
    assert [r["holdout"] for r in results][-1] == "gpu=each (pooled)"


@needs_data
def test_serving_data_of_a_few_rows_is_a_data_error(tmp_path: Path) -> None:
    root = first_rows(tmp_path, serving.DATA_FILE, 4)
    result = run("bench", "accuracy", "--data", str(root), "--dataset", "llm-serving")
    assert_one_line_error(result, "too few usable rows", "at least two")


@needs_data
def test_a_failed_serving_train_writes_no_model_into_an_existing_out(tmp_path: Path) -> None:
    root = first_rows(tmp_path, serving.DATA_FILE, 30)  # enough to fit, one GPU type: no hold-out
    out = tmp_path / "models"
    out.mkdir()  # the user's own folder: kept, but nothing half-trained may land in it
    result = run("train", "--data", str(root), "--out", str(out), "--dataset", "llm-serving")
    assert_one_line_error(result, "too few usable rows")
    assert out.is_dir() and list(out.iterdir()) == []


@needs_data
def test_inference_data_of_a_few_rows_is_a_data_error(tmp_path: Path) -> None:
    root = first_rows(tmp_path, mlperf_inference.DATA_FILE, 8, Scenario="Offline")
    out = tmp_path / "models"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "Mean of empty slice" came first
        result = run("train", "--data", str(root), "--out", str(out), "--dataset", "mlperf-inference")
    assert_one_line_error(result, "too few usable rows", "at least two")
    assert not out.exists()


def test_a_fit_on_no_rows_names_data_instead_of_fitting_nothing() -> None:
    with pytest.raises(GreenMatrixError) as caught:
        correction.fit(np.zeros((0, 2)), np.zeros(0), np.zeros(0), ["a", "b"])
    assert caught.value.field == "--data"


def test_novelty_with_no_gpu_type_to_compare_names_data() -> None:
    empty = novelty.NoveltyIntervals({}, [1.0], 0.0, 0.0)
    with pytest.raises(GreenMatrixError) as caught:
        empty.offsets([1.0])
    assert caught.value.field == "--data"
