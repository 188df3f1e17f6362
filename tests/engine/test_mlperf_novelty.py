"""Novelty-scaled intervals and the physics they read (L2 cache, GPT-J precision)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlperf_rows import mlperf_row

from greenmatrix.catalog import hardware
from greenmatrix.learned import mlperf_inference as model
from greenmatrix.learned import novelty
from greenmatrix.physics import benchmarks as bench
from greenmatrix.physics import device


def test_gptj_runs_fp16_without_fp8_and_fp8_with_it() -> None:
    # int8 weights do not meet GPT-J's accuracy target, so an A100 moves 2-byte weights.
    assert bench.precision_for("gptj-99", hardware.gpu("A100-SXM4-80GB")) == "fp16"
    assert bench.precision_for("gptj-99", hardware.gpu("H100-SXM-80GB")) == "fp8"


def test_l2_cache_from_datasheet_and_family_fallback() -> None:
    assert device.l2_cache_mib(hardware.gpu("L4")) == 48
    assert device.l2_cache_mib(hardware.gpu("A100-SXM4-80GB")) == 40

    class Unknown:
        key = "Hopper-Next"
        family = "hopper"

    assert device.l2_cache_mib(Unknown()) == device.l2_cache_mib(hardware.gpu("H100-SXM-80GB"))


def _vectors(keys: list[str]) -> dict[str, list[float]]:
    return {k: novelty.gpu_vector(hardware.gpu(k)) for k in keys}


def test_novelty_is_zero_for_a_training_gpu_and_grows_with_distance() -> None:
    vec = _vectors(["A100-SXM4-80GB", "A100-PCIe-80GB", "H100-SXM-80GB", "L40"])
    iv = novelty.NoveltyIntervals(
        vec, list(np.asarray(list(vec.values())).std(axis=0)), -0.2, 0.2, floor_lo=-0.3, floor_hi=0.3
    )
    assert iv.novelty(vec["L40"]) == 0.0
    near = iv.novelty(novelty.gpu_vector(hardware.gpu("A100-SXM4-40GB")))
    far = iv.novelty(novelty.gpu_vector(hardware.gpu("T4")))
    assert 0.0 < near < far
    t4 = novelty.gpu_vector(hardware.gpu("T4"))
    lo, hi = iv.offsets(t4, later=False)
    assert lo == pytest.approx(-0.2 * far) and hi == pytest.approx(0.2 * far)
    # A training GPU gets the floor scale; a later round never narrower than the round floor.
    assert iv.offsets(vec["L40"], later=False) == pytest.approx((-0.2 * iv.min_scale, 0.2 * iv.min_scale))
    assert iv.offsets(vec["L40"]) == pytest.approx((-0.3, 0.3))
    back = novelty.NoveltyIntervals.from_dict(iv.to_dict())
    assert back.offsets(t4) == pytest.approx(iv.offsets(t4), rel=1e-6)


def test_calibration_covers_a_new_gpu_whose_errors_grow_with_novelty() -> None:
    # Synthetic residuals whose spread is proportional to each type's novelty: after normalising,
    # every type has the same spread, so a held-out type's 80% interval covers ~80% of its rows.
    keys = ["A10", "A30", "A40", "A100-SXM4-80GB", "H100-SXM-80GB", "L4", "L40", "T4", "A2"]
    vec = _vectors(keys)
    rng = np.random.default_rng(0)
    covered = []
    for held in keys:
        train = [k for k in keys if k != held]
        scales = {}
        for k in keys:
            others = {j: vec[j] for j in (train if k == held else [j for j in train if j != k])}
            ref = novelty.NoveltyIntervals(others, list(np.asarray(list(vec.values())).std(axis=0)), 0, 0)
            scales[k] = ref.scale(vec[k])
        res = np.concatenate([rng.normal(0, 0.1 * scales[k], 400) for k in train])
        groups = np.repeat(train, 400)
        iv = novelty.calibrate(res, groups, {k: vec[k] for k in train})
        lo, hi = iv.offsets(vec[held], later=False)
        test = rng.normal(0, 0.1 * iv.scale(vec[held]), 400)
        covered.append(np.mean((test >= lo) & (test <= hi)))
    assert 0.7 <= float(np.mean(covered)) <= 0.92


def test_shipped_model_widens_intervals_for_a_gpu_unlike_its_training_gpus() -> None:
    base = mlperf_row(Model="bert-99", accelerators_per_node="8", framework="TensorRT 9.3.0")
    seen, unseen = model.predict_rows(
        [
            dict(base, accelerator_model_name="NVIDIA A100-SXM-80GB"),
            dict(base, accelerator_model_name="NVIDIA B200-SXM-180GB"),
        ]
    )
    assert seen.result is not None and unseen.result is not None, (seen.reason, unseen.reason)

    def width(p: model.RowPrediction) -> float:
        assert p.result is not None
        return math.log(p.result.p90 / p.result.p10)

    assert width(unseen) > width(seen) > 0
