"""`greenmatrix predict` on files a spreadsheet or a script really writes: what is repeated, what is refused.

OUT must repeat IN cell for cell, so a file that cannot be repeated faithfully is refused whole
(exit 2, naming what is wrong) rather than predicted under the wrong columns; a file that can is
repeated byte for byte up to the added columns.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from greenmatrix.cli import main
from greenmatrix.learned.core import models_dir

pytestmark = pytest.mark.skipif(
    not (models_dir() / "serving_ttft.ubj").exists(), reason="serving models not trained (greenmatrix train)"
)

HEADER = "id,backend,model_path,system,precision,mode,isl,osl,batch_size,tp_size"
ROW = "r{i},vllm,meta-llama/Llama-3.1-70B,h100_sxm,fp8,agg,1024,256,{batch},4"
ADDED = 7  # six prediction columns and `reason`


def _predict(tmp_path: Path, text: str | bytes, dataset: str = "llm-serving", out: str = "out.csv"):
    src = tmp_path / "in.csv"
    if isinstance(text, str):
        text = text.encode("utf-8")
    src.write_bytes(text)
    target = tmp_path / out
    result = CliRunner().invoke(
        main, ["predict", "--dataset", dataset, "--data", str(src), "--out", str(target)]
    )
    return result, target


def _body(n: int = 3) -> list[str]:
    return [ROW.format(i=i, batch=8 * (i + 1)) for i in range(n)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_out_repeats_in_byte_for_byte_with_its_line_ending_and_bom(
    tmp_path: Path, newline: str, bom: bool
) -> None:
    text = ("\ufeff" if bom else "") + newline.join([HEADER, *_body()]) + newline
    result, out = _predict(tmp_path, text)
    assert result.exit_code == 0, result.output
    written = out.read_bytes().decode("utf-8")
    assert written.startswith("\ufeff") == bom
    lines = written.lstrip("\ufeff").split(newline)
    assert lines[-1] == ""  # every line ends with IN's line ending, none with another
    assert all("\r" not in line for line in lines) or newline == "\r\n"
    for given, got in zip(text.lstrip("\ufeff").split(newline), lines, strict=True):
        if given:
            assert got.startswith(given + ","), (given, got)
            assert got.count(",") == given.count(",") + ADDED


def test_a_fully_quoted_file_comes_back_fully_quoted(tmp_path: Path) -> None:
    # Spreadsheet exports quote every cell; OUT keeps that style, so IN is still a prefix of each line.
    lines = ['"' + '","'.join(line.split(",")) + '"' for line in [HEADER, *_body()]]
    result, out = _predict(tmp_path, "\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    written = out.read_text().splitlines()
    for given, got in zip(lines, written, strict=True):
        assert got.startswith(given + ',"'), (given, got)
    # A plain file stays plain: quoting follows the input, not a fixed choice.
    result, out = _predict(tmp_path, "\n".join([HEADER, *_body()]) + "\n", out="plain.csv")
    assert '"' not in out.read_text()


def test_a_header_differing_in_case_or_spaces_is_read_as_the_dataset_column(tmp_path: Path) -> None:
    plain, out_plain = _predict(tmp_path, "\n".join([HEADER, *_body()]) + "\n", out="plain.csv")
    odd_header = " ID , Backend,MODEL_PATH ,System,precision,Mode,ISL,osl,Batch_Size,tp_size"
    odd, out_odd = _predict(tmp_path, "\n".join([odd_header, *_body()]) + "\n", out="odd.csv")
    assert plain.exit_code == odd.exit_code == 0, odd.output
    with out_plain.open(newline="") as a, out_odd.open(newline="") as b:
        rows_plain, rows_odd = list(csv.reader(a)), list(csv.reader(b))
    assert rows_odd[0][:10] == next(csv.reader([odd_header]))  # the header itself is kept as given
    assert [r[10:] for r in rows_odd[1:]] == [r[10:] for r in rows_plain[1:]]
    assert all(r[10] for r in rows_odd[1:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEADER + ",isl\n" + ROW.format(i=0, batch=8) + ",2048\n", "the column 'isl' twice"),
        (HEADER + ",reason\n" + ROW.format(i=0, batch=8) + ",mine\n", "has the output column(s) reason"),
        (HEADER + "\n" + ROW.format(i=0, batch=8) + ",x,y\n", "line 2 has 12 cells, the header has 10"),
        ("", "needs a header row"),
    ],
)
def test_a_file_that_cannot_be_repeated_faithfully_is_refused_naming_why(
    tmp_path: Path, text: str, expected: str
) -> None:
    result, out = _predict(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte(tmp_path: Path) -> None:
    text = (HEADER + "\n" + ROW.format(i=0, batch=8).replace("r0", "caf\u00e9") + "\n").encode("latin-1")
    result, _ = _predict(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert "is not UTF-8 text (byte" in result.output


def test_a_file_for_another_dataset_names_the_missing_columns_and_the_dataset_it_looks_like(
    tmp_path: Path,
) -> None:
    result, _ = _predict(tmp_path, "\n".join([HEADER, *_body()]) + "\n", dataset="mlperf-inference")
    assert result.exit_code == 2, result.output
    assert "lacks the mlperf-inference column(s) Model, Scenario" in result.output
    assert "--dataset llm-serving" in result.output


def test_the_output_directory_is_created(tmp_path: Path) -> None:
    result, out = _predict(tmp_path, "\n".join([HEADER, *_body()]) + "\n", out="a/b/out.csv")
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4


def test_missing_serving_models_are_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --models sets GREENMATRIX_MODELS for the process; setting it here first makes teardown undo it.
    monkeypatch.setenv("GREENMATRIX_MODELS", str(models_dir()))
    src = tmp_path / "in.csv"
    src.write_text("\n".join([HEADER, *_body()]) + "\n")
    (tmp_path / "empty").mkdir()
    args = ["--models", str(tmp_path / "empty"), "predict", "--dataset", "llm-serving"]
    result = CliRunner().invoke(main, [*args, "--data", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2, result.output
    assert "models: the serving model is missing" in result.output
