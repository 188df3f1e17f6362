"""`greenmatrix predict --dataset mlperf-training`: the batch contract."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from greenmatrix import batch
from greenmatrix.batch.datasets import DATASETS

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
SOURCE = DATA / "mlperf" / "training.csv"
needs_data = pytest.mark.skipif(not SOURCE.exists(), reason=f"reference data not found at {SOURCE}")
MEASURED = (
    "Result",
    "bert",
    "dlrm",
    "dlrm_dcnv2",
    "gpt3",
    "maskrcnn",
    "minigo",
    "resnet",
    "rnnt",
    "ssd",
    "unet3d",
)


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


@needs_data
def test_rows_order_columns_and_reasons(tmp_path: Path) -> None:
    with SOURCE.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)[::20]
    rows.insert(1, dict(rows[0], accelerator_model_name="Foo X1 Accelerator"))
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, fields, rows)
    count = batch.predict_file("mlperf-training", src, out)
    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        out_fields = list(reader.fieldnames or [])
        got = list(reader)
    assert out_fields == [*fields, *DATASETS["mlperf-training"].outputs, "reason"]
    assert [g["uid"] for g in got] == [r["uid"] for r in rows]
    assert "Foo X1 Accelerator" in got[1]["reason"] and not got[1]["predicted_minutes"]
    predicted = [g for g in got if g["predicted_minutes"]]
    assert count == len(predicted) > len(rows) // 2
    for g in predicted:
        lo, mid, hi = (
            float(g[c]) for c in ("predicted_minutes_p10", "predicted_minutes", "predicted_minutes_p90")
        )
        assert 0 < lo <= mid <= hi
    # TPUs, IPUs and CPU rows carry a reason instead of a number.
    for g in got:
        if g["accelerator_model_name"].startswith(("TPU", "Graphcore", "N/A")):
            assert g["reason"] and not g["predicted_minutes"]


@needs_data
def test_measured_columns_may_be_absent(tmp_path: Path) -> None:
    with SOURCE.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f for f in (reader.fieldnames or []) if f not in MEASURED]
        rows = list(reader)[:30]
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, fields, rows)
    assert batch.predict_file("mlperf-training", src, out) > 0
    got = list(csv.DictReader(out.open(newline="")))
    assert len(got) == 30 and "Result" not in got[0]


def _predict_text(tmp_path: Path, text: str) -> tuple[int, list[dict[str, str]]]:
    """Predict a CSV given as text: how many rows were predicted, and the output's rows."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(text)
    count = batch.predict_file("mlperf-training", src, out)
    with out.open(newline="") as fh:
        return count, list(csv.DictReader(fh))


def test_garbage_rows_do_not_crash(tmp_path: Path) -> None:
    count, got = _predict_text(
        tmp_path,
        "Model_ID,version,accelerator_model_name,accelerators_count\n"
        "resnet,2.1,NVIDIA A100-SXM4-80GB,8\n"
        "resnet,2.1,NVIDIA A100-SXM4-80GB,zero\n"
        "unknownnet,2.1,NVIDIA A100-SXM4-80GB,8\n"
        ",,,\n",
    )
    assert count == 1
    assert len(got) == 4 and float(got[0]["predicted_minutes"]) > 0
    assert "accelerators_count" in got[1]["reason"]
    assert "unknownnet" in got[2]["reason"]
    assert got[3]["reason"]


def test_an_unreadable_round_gets_a_reason_not_the_latest_round(tmp_path: Path) -> None:
    count, got = _predict_text(
        tmp_path,
        "Model_ID,version,accelerator_model_name,accelerators_count\n"
        "resnet,2.1,NVIDIA A100-SXM4-80GB,8\n"
        "resnet,abc,NVIDIA A100-SXM4-80GB,8\n"
        "resnet,,NVIDIA A100-SXM4-80GB,8\n"
        "resnet,2.1,NVIDIA A100-SXM4-80GB,1.5\n",
    )
    assert count == 2
    assert "version: 'abc' is not an MLPerf round such as 2.1" in got[1]["reason"]
    # An empty round means the latest, which is what the first row names.
    assert got[2]["predicted_minutes"] == got[0]["predicted_minutes"] != ""
    assert "accelerators_count: '1.5' is not a whole number" in got[3]["reason"]
