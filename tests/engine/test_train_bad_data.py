"""`greenmatrix train` and `greenmatrix bench accuracy` on unusable --data files and --out paths.

Each must end in one line naming the field and the file, exit code 2, no traceback, and no empty
--out directory left behind as if a run had finished.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from greenmatrix.cli import main
from greenmatrix.errors import GreenMatrixError
from greenmatrix.learned.fitting import cards, mlperf_inference, serving
from greenmatrix.learned.fitting import training_time as training

TRAINING_HEADER = "version,division,Benchmark,Result,accelerator_model_name,accelerators_count"
SERVING_HEADER = ",".join((*serving.DATA_COLUMNS, "mode", "batch_size"))


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def data_dir(tmp_path: Path, relative: Path, content: bytes | None) -> Path:
    """A --data folder whose `relative` file holds `content` (None: a directory in its place)."""
    root = tmp_path / "data"
    target = root / relative
    target.parent.mkdir(parents=True)
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    return root


def assert_clean_error(result: Result, field: str, *words: str) -> None:
    # CliRunner keeps an unexpected exception in result.exception instead of printing it.
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith(f"error: {field}: ")
    for word in words:
        assert word in errors[0], errors[0]


TRAINING_CASES = {
    "wrong columns": (b"garbage,data\n1,2\n", ["needs columns Result", "its columns are garbage, data"]),
    "empty": (b"", ["is empty", "needs a header row"]),
    "header only": (TRAINING_HEADER.encode() + b"\n", ["no data rows"]),
    "binary": (b"ok,\xff\xfe\x00binary\n", ["is not UTF-8 text (byte 3)"]),
    "no usable row": (
        TRAINING_HEADER.encode() + b"\nv2.1,closed,bert,12.5,Nonexistent Accelerator 9000,8\n",
        ["no usable rows (1 read; the first:", "Nonexistent Accelerator 9000"],
    ),
}


@pytest.mark.parametrize("case", sorted(TRAINING_CASES))
def test_train_names_the_bad_training_file(tmp_path: Path, case: str) -> None:
    content, words = TRAINING_CASES[case]
    root = data_dir(tmp_path, training.DATA_FILE, content)
    out = tmp_path / "models"
    result = run("train", "--data", str(root), "--out", str(out), "--dataset", "mlperf-training")
    assert_clean_error(result, "--data", str(root / training.DATA_FILE), *words)
    assert not out.exists()


@pytest.mark.parametrize("case", ["wrong columns", "header only"])
def test_bench_accuracy_names_the_bad_training_file(tmp_path: Path, case: str) -> None:
    content, words = TRAINING_CASES[case]
    root = data_dir(tmp_path, training.DATA_FILE, content)
    assert_clean_error(run("bench", "accuracy", "--data", str(root)), "--data", *words)


def test_a_directory_in_place_of_the_file_is_called_a_directory(tmp_path: Path) -> None:
    root = data_dir(tmp_path, training.DATA_FILE, None)
    out = tmp_path / "models"
    for args in (["train", "--out", str(out)], ["bench", "accuracy"]):
        result = run(*args, "--data", str(root), "--dataset", "mlperf-training")
        assert_clean_error(result, "--data", "is a directory, not a CSV file")
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "bench"])
def test_serving_file_with_only_a_header(tmp_path: Path, command: str) -> None:
    root = data_dir(tmp_path, serving.DATA_FILE, SERVING_HEADER.encode() + b"\n")
    out = tmp_path / "models"
    args = ["train", "--out", str(out)] if command == "train" else ["bench", "accuracy"]
    result = run(*args, "--data", str(root))
    assert_clean_error(result, "--data", str(root / serving.DATA_FILE), "no data rows")
    assert not out.exists()


def test_inference_file_without_rows_of_a_kind_names_the_kind(tmp_path: Path) -> None:
    header = ",".join(mlperf_inference.DATA_COLUMNS)
    root = data_dir(tmp_path, mlperf_inference.DATA_FILE, header.encode() + b"\n")
    out = tmp_path / "models"
    for args in (["train", "--out", str(out)], ["bench", "accuracy"]):
        result = run(*args, "--data", str(root))
        assert_clean_error(
            result, "--data", "has no usable throughput rows: it has a header but no data rows"
        )
    assert not out.exists()


def test_serving_rows_without_measurements_say_which_column(tmp_path: Path) -> None:
    # A short row: its missing cells read as blank, not as a crash.
    root = data_dir(tmp_path, serving.DATA_FILE, SERVING_HEADER.encode() + b"\n12.5\n")
    result = run("bench", "accuracy", "--data", str(root))
    words = ["no usable rows (1 read; the first:", "silicon_tpot_ms '' is not a positive number"]
    assert_clean_error(result, "--data", *words)


def test_out_under_a_file(tmp_path: Path) -> None:
    root = data_dir(tmp_path, training.DATA_FILE, b"")
    afile = tmp_path / "afile"
    afile.write_text("")
    result = run("train", "--data", str(root), "--out", str(afile / "sub"), "--dataset", "mlperf-training")
    assert_clean_error(result, "--out", f"{afile} is a file, not a directory")


def test_failed_run_removes_the_parents_it_created_but_keeps_existing_ones(tmp_path: Path) -> None:
    root = data_dir(tmp_path, training.DATA_FILE, b"")
    existing = tmp_path / "existing"
    existing.mkdir()
    for out in (tmp_path / "a" / "b" / "c", existing):
        result = run("train", "--data", str(root), "--out", str(out), "--dataset", "mlperf-training")
        assert_clean_error(result, "--data", "is empty")
    assert not (tmp_path / "a").exists()
    assert existing.is_dir()


def test_out_directory_names_out_when_writing_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(GreenMatrixError) as caught, cards.out_directory(out):
        raise OSError(28, "No space left on device", str(out / "model.ubj"))
    assert caught.value.field == "--out"
    assert str(caught.value) == f"--out: {out}: cannot write model.ubj (No space left on device)"
    assert not out.exists()


def test_out_directory_leaves_other_os_errors_alone(tmp_path: Path) -> None:
    # An OSError about another path is not about --out: relabelling it would mislead.
    elsewhere = str(tmp_path / "catalog.json")
    with pytest.raises(FileNotFoundError), cards.out_directory(tmp_path / "out"):
        raise FileNotFoundError(2, "No such file or directory", elsewhere)
    assert not (tmp_path / "out").exists()
