"""Training-time physics: FLOPs, data-parallel scaling and the communication term."""

from __future__ import annotations

import dataclasses

import pytest

from greenmatrix.catalog import hardware
from greenmatrix.physics import training as phys

H100 = hardware.gpu("H100-SXM-80GB")
A100 = hardware.gpu("A100-SXM4-80GB")


def test_transformer_work_is_six_params_tokens() -> None:
    work = phys.transformer_work(7e9, 1e12)
    assert work.total_flops == pytest.approx(6 * 7e9 * 1e12)


def test_single_gpu_has_no_communication() -> None:
    t = phys.training_time(phys.MLPERF_TRAINING["resnet"], H100, 1)
    assert t.comm_s == 0.0
    assert t.seconds == pytest.approx(max(t.compute_s, t.memory_s) + t.elementwise_s)


def test_doubling_gpus_roughly_halves_time_minus_communication() -> None:
    work = phys.MLPERF_TRAINING["bert"]
    t8 = phys.training_time(work, H100, 8)
    t16 = phys.training_time(work, H100, 16)
    # Compute halves exactly; the all-reduce crosses nodes at 16 GPUs, so the total halves less well.
    assert t16.compute_s == pytest.approx(t8.compute_s / 2)
    assert 0.5 < t16.seconds / t8.seconds < 0.75
    assert t16.comm_s > 0


def test_allreduce_is_slower_across_nodes() -> None:
    grad = 1e9
    inside = phys.allreduce_seconds(grad, H100, 8)
    across = phys.allreduce_seconds(grad, H100, 16)
    assert across > inside * (H100.intra_node_bandwidth_gbs / H100.inter_node_bandwidth_gbs) / 2


def test_more_tensor_flops_train_faster_but_elementwise_work_does_not_shrink() -> None:
    work = phys.MLPERF_TRAINING["resnet"]
    base = phys.training_time(work, A100, 8)
    faster = dataclasses.replace(A100, tflops={k: 2 * v for k, v in A100.tflops.items()})
    quicker = phys.training_time(work, faster, 8)
    assert quicker.compute_s == pytest.approx(base.compute_s / 2)
    assert quicker.elementwise_s == pytest.approx(base.elementwise_s)
    assert base.seconds / 2 < quicker.seconds < base.seconds


def test_ssd_changed_meaning_at_v2_0() -> None:
    assert phys.mlperf_training_work("ssd", "1.1").name == "ssd-resnet34"
    assert phys.mlperf_training_work("ssd", "2.0").name == "retinanet"
    assert phys.mlperf_training_work("ssd").name == "retinanet"
    assert phys.mlperf_training_work("gpt3") is None


def test_step_floor_bounds_huge_jobs() -> None:
    # At 4096 GPUs a convergence-capped batch leaves each GPU a few images: time stops shrinking.
    work = phys.MLPERF_TRAINING["resnet"]
    t = phys.training_time(work, A100, 4096)
    assert t.compute_s >= t.steps * work.min_step_s
    assert t.per_gpu_batch < work.per_gpu_batch


def test_bad_gpu_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="gpu_count"):
        phys.training_time(phys.MLPERF_TRAINING["resnet"], H100, 0)
