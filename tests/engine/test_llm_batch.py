"""`predict_file` for llm-serving: the batch-prediction contract (columns, order, reasons, no crash)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from greenmatrix.batch import predict_file
from greenmatrix.batch.datasets import DATASETS
from greenmatrix.learned.core import models_dir

PREDICTION_COLUMNS = DATASETS["llm-serving"].outputs

pytestmark = pytest.mark.skipif(
    not (models_dir() / "serving_ttft.ubj").exists(), reason="serving models not trained (greenmatrix train)"
)

FIELDS = [
    "id",
    "backend",
    "model_path",
    "system",
    "precision",
    "mode",
    "isl",
    "osl",
    "gemm_quant_mode",
    "moe_quant_mode",
    "batch_size",
    "tp_size",
    "pp_size",
    "attention_dp_size",
    "moe_tp_size",
    "moe_ep_size",
]


def _row(**over: str) -> dict[str, str]:
    base = {
        "id": "r",
        "backend": "vllm",
        "model_path": "meta-llama/Llama-3.1-70B",
        "system": "h100_sxm",
        "precision": "fp8",
        "mode": "agg",
        "isl": "1024",
        "osl": "256",
        "gemm_quant_mode": "fp8",
        "moe_quant_mode": "fp8",
        "batch_size": "16",
        "tp_size": "4",
        "pp_size": "1",
        "attention_dp_size": "1",
        "moe_tp_size": "4",
        "moe_ep_size": "1",
    }
    base.update(over)
    return base


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def test_every_row_is_repeated_in_order_with_predictions_or_a_reason(tmp_path: Path) -> None:
    rows = [
        _row(id="ok"),
        _row(id="bad-gpu", system="tpu_v9"),
        _row(id="bad-model", model_path="acme/NotAModel-3B"),
        _row(id="bad-backend", backend="ollama"),
        _row(
            id="ok-moe",
            model_path="deepseek-ai/DeepSeek-R1",
            system="b200_sxm",
            tp_size="8",
            moe_tp_size="1",
            moe_ep_size="8",
        ),
    ]
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, rows)
    assert predict_file("llm-serving", src, out) == 2
    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        got = list(reader)
        assert reader.fieldnames == [*FIELDS, *PREDICTION_COLUMNS, "reason"]
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    for r, original in zip(got, rows, strict=True):
        assert all(r[k] == v for k, v in original.items())  # inputs untouched
    by_id = {r["id"]: r for r in got}
    for ok in ("ok", "ok-moe"):
        r = by_id[ok]
        assert r["reason"] == ""
        assert (
            0
            < float(r["predicted_tpot_ms_p10"])
            <= float(r["predicted_tpot_ms"])
            <= float(r["predicted_tpot_ms_p90"])
        )
        assert (
            0
            < float(r["predicted_ttft_ms_p10"])
            <= float(r["predicted_ttft_ms"])
            <= float(r["predicted_ttft_ms_p90"])
        )
    assert "tpu_v9" in by_id["bad-gpu"]["reason"] and "no specs" in by_id["bad-gpu"]["reason"]
    assert "NotAModel" in by_id["bad-model"]["reason"]
    assert "backend" in by_id["bad-backend"]["reason"]
    for bad in ("bad-gpu", "bad-model", "bad-backend"):
        assert by_id[bad]["predicted_ttft_ms"] == "" and by_id[bad]["predicted_tpot_ms"] == ""


def test_rows_missing_required_numbers_get_a_reason(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [_row(id="no-isl", isl=""), _row(id="no-batch", batch_size="")])
    assert predict_file("llm-serving", src, out) == 0
    with out.open(newline="") as fh:
        got = list(csv.DictReader(fh))
    assert "isl" in got[0]["reason"]
    assert "batch" in got[1]["reason"]


def test_the_written_number_is_the_least_relative_error_point_not_the_median(tmp_path: Path) -> None:
    from greenmatrix.catalog import hardware, llms
    from greenmatrix.learned.serving import ServingPredictor, scenario_from_row

    row = _row(id="p")
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [row])
    predict_file("llm-serving", src, out)
    with out.open(newline="") as fh:
        (got,) = list(csv.DictReader(fh))
    scenario = scenario_from_row(row, llms.model_arch(row["model_path"]), hardware.gpu(row["system"]))
    (pred,) = ServingPredictor.load().predict([scenario], point=True)
    assert float(got["predicted_ttft_ms"]) == pytest.approx(pred.ttft_ms.estimate, rel=1e-3)
    assert float(got["predicted_tpot_ms"]) == pytest.approx(pred.tpot_ms.estimate, rel=1e-3)
    # TTFT errors are wide and skewed, so its point sits below the median the planner uses.
    assert pred.ttft_ms.point is not None and pred.ttft_ms.point < pred.ttft_ms.p50
    (plain,) = ServingPredictor.load().predict([scenario])
    assert plain.ttft_ms.point is None and plain.ttft_ms.p50 == pytest.approx(pred.ttft_ms.p50)


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"tp_size": "abc"}, "tp_size: 'abc' is not a whole number"),
        ({"tp_size": "1.5"}, "tp_size: '1.5' is not a whole number"),
        ({"tp_size": "0"}, "tp_size: '0' is not a whole number from 1"),
        ({"pp_size": "-8"}, "pp_size: '-8' is not a whole number"),
        ({"moe_ep_size": "nan"}, "moe_ep_size: 'nan' is not a whole number"),
        ({"batch_size": "1e30"}, "batch_size: '1e30' is not a whole number"),
        ({"isl": "1.5"}, "isl: '1.5' is not a whole number"),
        ({"mode": "turbo"}, "mode: 'turbo' is not a serving mode (allowed: agg, disagg)"),
        ({"isl": "200000"}, "exceed meta-llama/Llama-3.1-70B's context window of 131,072"),
        ({"tp_size": "128"}, "tp_size: 128 exceeds meta-llama/Llama-3.1-70B's 64 attention heads"),
    ],
)
def test_a_value_that_is_no_configuration_gets_a_reason_naming_its_column(
    tmp_path: Path, over: dict[str, str], expected: str
) -> None:
    # Silently reading a typo as the default (tp 1, one node) would predict another configuration.
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [_row(id="ok"), _row(id="bad", **over)])
    assert predict_file("llm-serving", src, out) == 1
    with out.open(newline="") as fh:
        ok, bad = list(csv.DictReader(fh))
    assert ok["predicted_tpot_ms"] and not ok["reason"]
    assert bad["predicted_tpot_ms"] == ""
    assert expected in bad["reason"], bad["reason"]


def test_concurrency_is_an_explicit_column_then_the_runs_record_then_batch_size(tmp_path: Path) -> None:
    fields = [*FIELDS, "silicon_data_source", "concurrency"]
    rows = [
        _row(id="batch", batch_size="64"),
        _row(id="record", batch_size="64", silicon_data_source="x=1; silicon_concurrency=8; y=2"),
        _row(id="column", batch_size="64", silicon_data_source="silicon_concurrency=8", concurrency="64"),
        _row(id="low", batch_size="8"),
        _row(id="garbled", silicon_data_source="silicon_concurrency=-5"),
    ]
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with src.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    predict_file("llm-serving", src, out)
    with out.open(newline="") as fh:
        got = {r["id"]: r for r in csv.DictReader(fh)}
    tpot = {k: got[k]["predicted_tpot_ms"] for k in ("batch", "record", "column", "low")}
    # The measured run's own record outranks batch_size; an explicit concurrency outranks both.
    assert tpot["record"] == tpot["low"] != tpot["batch"]
    assert tpot["column"] == tpot["batch"]
    assert "silicon_concurrency (in silicon_data_source): '-5'" in got["garbled"]["reason"]
