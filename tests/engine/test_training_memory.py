"""A training job that does not fit names the field to change: the model (by name or by its
parameters) when the sharded states dominate, the sequence length when activations do; and a
sequence longer than the model's context window is refused before any planning."""

from __future__ import annotations

import re
from typing import Any

import pytest

from greenmatrix.api.workloadprofile import WorkloadProfileSpec
from greenmatrix.errors import NoFeasibleHardwareError
from greenmatrix.planning.planner import plan
from greenmatrix.predict.predictors import Predictors
from greenmatrix.validation import validate_workload

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
HUGE = {"parameters": 2e12, "layers": 120, "hiddenSize": 16384, "attentionHeads": 128}


@pytest.fixture(scope="module")
def predictors() -> Predictors:
    return Predictors.roofline()


def training(model: dict[str, Any], **run: Any) -> WorkloadProfileSpec:
    return WorkloadProfileSpec.model_validate(
        {"task": "training", "model": model, "training": {"tokens": 1e9, **run}}
    )


def no_fit(spec: WorkloadProfileSpec, predictors: Predictors, gpus: list[str]) -> NoFeasibleHardwareError:
    result = plan(spec, None, predictors=predictors, gpus=gpus, advise=False)
    with pytest.raises(NoFeasibleHardwareError) as caught:
        result.raise_if_infeasible()
    return caught.value


def gib(reason: str, part: str) -> float:
    match = re.search(rf"(\d+) for {part}", reason)
    assert match, reason
    return float(match.group(1))


def test_a_model_given_by_numbers_names_its_parameters(predictors: Predictors) -> None:
    error = no_fit(training({"architecture": HUGE}), predictors, ["H100"])
    assert error.field == "spec.model.architecture.parameters"


def test_a_catalog_model_too_large_names_the_model(predictors: Predictors) -> None:
    spec = training({"name": "meta-llama/Llama-3.1-405B-Instruct"}, sequenceLength=2048)
    assert no_fit(spec, predictors, ["L4"]).field == "spec.model.name"


def test_activations_of_a_long_sequence_name_the_sequence_length(predictors: Predictors) -> None:
    spec = training({"name": LLAMA_8B}, sequenceLength=131072)
    error = no_fit(spec, predictors, ["L40S"])
    assert error.field == "spec.training.sequenceLength"
    # The states shrink with the layout, the activations do not: the reason says which is which.
    assert gib(error.message, "activations at sequenceLength 131072") > gib(
        error.message, "weights, gradients and optimizer states"
    )


def test_the_memory_reason_adds_up(predictors: Predictors) -> None:
    result = plan(training({"architecture": HUGE}), None, predictors=predictors, gpus=["H100"], advise=False)
    for option in result.options:
        total = float(re.search(r"needs (\d+) GiB per GPU", option.reason).group(1))
        states = gib(option.reason, "weights, gradients and optimizer states")
        activations = gib(option.reason, "activations")
        assert total == pytest.approx(states + activations + 3.5, abs=1.5), option.reason


def test_a_sequence_past_the_context_window_is_refused() -> None:
    [error] = validate_workload(training({"name": LLAMA_8B}, sequenceLength=1_000_000))
    assert error.field == "spec.training.sequenceLength"
    assert "131072" in error.message
    assert validate_workload(training({"name": LLAMA_8B}, sequenceLength=131072)) == []
