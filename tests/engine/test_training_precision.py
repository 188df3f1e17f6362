"""Training precision: gradients are all-reduced at 16 bits (32 for fp32) whatever the weights are,
so a precision a GPU has no tensor cores for buys nothing, and 4-bit training is refused."""

from __future__ import annotations

from typing import Any

import pytest

from greenmatrix.api.workloadprofile import WorkloadProfileSpec
from greenmatrix.catalog import hardware, llms
from greenmatrix.learned import training_time as learned
from greenmatrix.physics import training as phys
from greenmatrix.scenarios import TrainingJob
from greenmatrix.validation import validate_workload

A100 = hardware.gpu("A100-SXM4-80GB")
T4 = hardware.gpu("T4")
L40S = hardware.gpu("L40S")
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def seconds(precision: str, gpu: Any, gpus: int = 64) -> phys.TrainingTime:
    return phys.training_time(phys.transformer_work(8e9, 1e9, precision=precision), gpu, gpus)


@pytest.mark.parametrize("precision", ["fp8", "int8", "int4", "fp4"])
def test_the_gradient_all_reduce_moves_16_bits_at_any_narrower_precision(precision: str) -> None:
    assert seconds(precision, A100).comm_s == pytest.approx(seconds("bf16", A100).comm_s)


def test_fp32_training_all_reduces_fp32_gradients() -> None:
    bf16 = seconds("bf16", A100)
    assert seconds("fp32", A100).comm_s == pytest.approx(2 * bf16.comm_s, rel=0.01)
    assert seconds("tf32", A100).comm_s == pytest.approx(seconds("fp32", A100).comm_s)


@pytest.mark.parametrize(("gpu", "precision", "same_as"), [(A100, "fp8", "bf16"), (T4, "fp8", "bf16")])
def test_a_precision_without_tensor_cores_trains_no_faster(gpu: Any, precision: str, same_as: str) -> None:
    assert seconds(precision, gpu).seconds == pytest.approx(seconds(same_as, gpu).seconds)


def test_the_learned_model_sees_no_gain_from_fp8_on_a_gpu_without_fp8() -> None:
    arch = llms.model_arch(LLAMA_8B)
    jobs = [TrainingJob(gpu=A100, gpus=64, model=arch, tokens=1e9, precision=p) for p in ("bf16", "fp8")]
    bf16, fp8 = learned.TrainingPredictor.load().predict(jobs)
    assert fp8.minutes.p50 == pytest.approx(bf16.minutes.p50)


def spec(precision: str, task: str = "training") -> WorkloadProfileSpec:
    body: dict[str, Any] = {"training": {"tokens": 1e9}} if task == "training" else {"inference": {}}
    return WorkloadProfileSpec.model_validate(
        {"task": task, "model": {"name": LLAMA_8B, "precision": precision}, **body}
    )


@pytest.mark.parametrize("precision", ["int4", "fp4"])
def test_four_bit_training_is_refused_naming_the_field_and_what_trains(precision: str) -> None:
    [error] = validate_workload(spec(precision))
    assert error.field == "spec.model.precision"
    assert precision in error.message
    assert error.allowed == ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")


@pytest.mark.parametrize("precision", ["bf16", "fp8", "fp32"])
def test_trainable_precisions_and_four_bit_serving_are_accepted(precision: str) -> None:
    assert validate_workload(spec(precision)) == []
    assert validate_workload(spec("int4", task="inference")) == []
