"""The training-time model: determinism, carded held-out accuracy, and the user-job predictor."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from retraining import holdout_or_skip, trains_twice_alike

from greenmatrix.catalog import hardware, llms
from greenmatrix.learned import training_time as model
from greenmatrix.learned.core import models_dir
from greenmatrix.learned.fitting import training_time as trainer
from greenmatrix.scenarios import TrainingJob

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
SOURCE = DATA / "mlperf" / "training.csv"
needs_data = pytest.mark.skipif(not SOURCE.exists(), reason=f"reference data not found at {SOURCE}")
H100 = hardware.gpu("H100-SXM-80GB")


@needs_data
def test_train_is_deterministic(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "mlperf").mkdir(parents=True)
    (data / "mlperf" / "training.csv").write_bytes(SOURCE.read_bytes())
    names = trains_twice_alike(trainer, data, tmp_path)
    assert {"training_time.ubj", "training_time.meta.json", "training_time.md"} <= set(names)


@pytest.fixture(scope="module")
def recomputed() -> list[dict]:
    return holdout_or_skip(trainer, SOURCE, DATA)


def test_shipped_model_reaches_its_carded_held_out_accuracy(recomputed: list[dict]) -> None:
    meta = json.loads((models_dir() / "training_time.meta.json").read_text())
    carded = {r["holdout"]: r for r in meta["info"]["holdout"]}
    assert {r["holdout"] for r in recomputed} == set(carded)
    for r in recomputed:
        card = carded[r["holdout"]]
        assert r["n"] == card["n"]
        assert r["mape_model"] <= card["mape_model"] + 0.5, r["holdout"]
        assert abs(r["coverage80"] - card["coverage80"]) <= 0.02, r["holdout"]


def test_later_round_within_target_and_beats_roofline(recomputed: list[dict]) -> None:
    by = {r["holdout"]: r for r in recomputed}
    later = by["round=v2.1"]
    assert later["mape_model"] <= 20.0
    assert later["mape_model"] < later["mape_roofline"]
    assert 0.7 <= later["coverage80"] <= 0.9
    assert by["gpu=each (pooled)"]["mape_model"] < by["gpu=each (pooled)"]["mape_roofline"]


def test_learned_correction_beats_roofline_on_every_held_out_group(recomputed: list[dict]) -> None:
    for r in recomputed:
        assert r["mape_model"] < r["mape_roofline"], r["holdout"]


@needs_data
def test_bench_accuracy_prints_the_profiled_reference_beside_each_hold_out() -> None:
    from click.testing import CliRunner

    from greenmatrix.cli import main

    result = CliRunner().invoke(
        main, ["bench", "accuracy", "--data", str(DATA), "--dataset", "mlperf-training"]
    )
    assert result.exit_code == 0, result.output
    assert "MAPE profiled" in result.output
    carded = {
        r["holdout"]: r
        for r in json.loads((models_dir() / "training_time.meta.json").read_text())["info"]["holdout"]
    }
    pooled = carded["gpu=each (pooled)"]
    line = next(ln for ln in result.output.splitlines() if "gpu=each (pooled)" in ln)
    cells = [c.strip() for c in line.split("│") if c.strip()]
    # dataset, target, held out, n, MAPE model, MAPE roofline, MAPE profiled, coverage
    assert cells[6] == f"{pooled['mape_profiled']:.1f}%"
    assert cells[4] == f"{pooled['mape_model']:.1f}%"


def test_user_job_prediction_is_consistent() -> None:
    predictor = model.TrainingPredictor.load()
    arch = llms.model_arch("Qwen/Qwen3-8B")
    jobs = [
        TrainingJob(gpu=H100, gpus=64, params=7e9, tokens=2e11, global_batch=512),
        TrainingJob(gpu=H100, gpus=128, params=7e9, tokens=2e11, global_batch=512),
        TrainingJob(gpu=H100, gpus=64, model=arch, tokens=2e11),
    ]
    preds = predictor.predict(jobs)
    for job, p in zip(jobs, preds, strict=True):
        assert 0 < p.minutes.p10 <= p.minutes.p50 <= p.minutes.p90
        assert p.gpu_hours.p50 == pytest.approx(p.minutes.p50 * job.gpus / 60)
        assert "6 x params x tokens" in p.explanation
    small, big, _ = preds
    # 2x GPUs: the roofline nearly halves (minus the all-reduce); the prediction is faster too.
    assert 0.5 <= big.roofline_minutes / small.roofline_minutes < 0.7
    assert big.minutes.p50 < small.minutes.p50
    # Compute alone: 6 x 7e9 x 2e11 = 8.4e21 FLOPs at 40% of 64 x 989 TFLOPS = 3.3e5 s = ~5,530 minutes;
    # elementwise traffic and the (not overlapped) all-reduce of 14 GB per step add to it.
    compute_minutes = 6 * 7e9 * 2e11 / (0.4 * 64 * 989e12) / 60
    assert compute_minutes < small.roofline_minutes < 1.6 * compute_minutes


def test_non_transformer_job_and_bad_jobs() -> None:
    predictor = model.TrainingPredictor.load()
    cnn = TrainingJob(
        gpu=H100,
        gpus=8,
        forward_flops_per_sample=8.2e9,
        samples=1.28e6,
        epochs=40,
        family="cnn-classification",
    )
    (p,) = predictor.predict([cnn])
    assert p.minutes.p50 > 0 and "3 x forward x samples" in p.explanation
    with pytest.raises(ValueError, match=r"jobs\[0\]\.gpus"):
        predictor.predict([TrainingJob(gpu=H100, gpus=0, params=1e9, tokens=1e9)])
    with pytest.raises(ValueError, match=r"jobs\[0\]\.params"):
        predictor.predict([TrainingJob(gpu=H100, gpus=8, tokens=1e9)])
    with pytest.raises(ValueError, match=r"jobs\[0\]\.family"):
        predictor.predict([TrainingJob(gpu=H100, gpus=8, params=1e9, tokens=1e9, family="gnn")])
    assert predictor.predict([]) == []


@needs_data
def test_row_predictor_matches_measured_minutes_in_sample() -> None:
    with SOURCE.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["accelerator_model_name"] == "NVIDIA A100-SXM4-80GB"][:40]
    preds = model.predict_rows(rows)
    ratios = [p.minutes.p50 / float(r["Result"]) for p, r in zip(preds, rows, strict=True) if p.minutes]
    assert len(ratios) >= 30
    # Rows seen in training: the median prediction is within 15% of the measured time.
    ratios.sort()
    assert 0.85 < ratios[len(ratios) // 2] < 1.15
