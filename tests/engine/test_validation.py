"""Spec checks the CRD schema cannot do: catalog names, GPU names, contradictory restrictions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import WorkloadProfileSpec
from greenmatrix.catalog import llms
from greenmatrix.errors import InvalidSpecError, UnknownHardwareError, UnknownModelError
from greenmatrix.validation import schema_errors, validate_policy, validate_workload

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def spec(**overrides: Any) -> WorkloadProfileSpec:
    raw: dict[str, Any] = {"task": "inference", "model": {"name": MODEL}, "inference": {}}
    raw.update(overrides)
    return WorkloadProfileSpec.model_validate(raw)


def fields(errors: list[Any]) -> list[str]:
    return [e.field for e in errors]


def test_a_sensible_spec_has_no_errors() -> None:
    assert validate_workload(spec(hardware={"allowedGpus": ["NVIDIA-L4", "H100-SXM-80GB"]})) == []


def test_architecture_numbers_need_no_catalog() -> None:
    arch = {"parameters": 1.1e9, "layers": 22, "hiddenSize": 2048, "attentionHeads": 32}
    assert validate_workload(spec(model={"architecture": arch})) == []


def test_unknown_model_names_the_field_and_close_names() -> None:
    errors = validate_workload(spec(model={"name": "meta-llama/Llama-3.1-8B-Instrukt"}))
    assert len(errors) == 1
    err = errors[0]
    assert isinstance(err, UnknownModelError) and err.reason == "UnknownModel"
    assert err.field == "spec.model.name"
    assert MODEL in err.allowed
    assert "spec.model.architecture" in err.message


def test_unknown_gpu_name_names_its_index_and_suggests() -> None:
    errors = validate_workload(spec(hardware={"allowedGpus": ["H100-SXM-80GB", "H1OO"]}))
    assert fields(errors) == ["spec.hardware.allowedGpus[1]"]
    assert isinstance(errors[0], UnknownHardwareError) and errors[0].reason == "UnknownHardware"
    assert errors[0].allowed  # suggestions or the catalog's keys


def test_gpu_name_unknown_to_catalog_is_fine_when_a_node_has_that_product() -> None:
    restricted = spec(hardware={"excludedGpus": ["NVIDIA-Foo-9000"]})
    assert fields(validate_workload(restricted)) == ["spec.hardware.excludedGpus[0]"]
    assert validate_workload(restricted, node_products={"NVIDIA-Foo-9000"}) == []


def test_gpu_both_allowed_and_excluded_under_different_names() -> None:
    errors = validate_workload(
        spec(hardware={"allowedGpus": ["H100-SXM-80GB", "L4"], "excludedGpus": ["NVIDIA-H100-80GB-HBM3"]})
    )
    assert fields(errors) == ["spec.hardware.excludedGpus[0]"]
    assert isinstance(errors[0], InvalidSpecError)
    assert "also allowed" in errors[0].message


def test_nothing_left_when_no_gpu_and_no_cpu_allowed() -> None:
    errors = validate_workload(spec(hardware={"allowedGpus": [], "allowCpu": False}))
    assert fields(errors) == ["spec.hardware.allowedGpus"]
    assert validate_workload(spec(hardware={"allowedGpus": [], "allowCpu": True})) == []


def test_request_longer_than_the_context_window() -> None:
    window = llms.model_arch(MODEL).max_context
    assert window > 0
    errors = validate_workload(spec(inference={"inputTokens": window, "outputTokens": 1}))
    assert fields(errors) == ["spec.inference.inputTokens"]
    assert str(window) in errors[0].message
    assert validate_workload(spec(inference={"inputTokens": window - 1, "outputTokens": 1})) == []


def test_training_samples_of_a_language_model_need_a_sequence_length() -> None:
    errors = validate_workload(spec(task="training", inference=None, training={"samples": 1e6}))
    assert fields(errors) == ["spec.training.sequenceLength"]
    ok = spec(task="training", inference=None, training={"samples": 1e6, "sequenceLength": 4096})
    assert validate_workload(ok) == []


def test_kv_cache_precision_is_for_inference_only() -> None:
    errors = validate_workload(
        spec(
            task="training",
            inference=None,
            training={"tokens": 1e9},
            model={"name": MODEL, "kvCachePrecision": "fp8"},
        )
    )
    assert fields(errors) == ["spec.model.kvCachePrecision"]


def test_every_problem_is_reported_at_once() -> None:
    errors = validate_workload(spec(model={"name": "no-such-model"}, hardware={"allowedGpus": ["H1OO"]}))
    assert sorted(fields(errors)) == ["spec.hardware.allowedGpus[0]", "spec.model.name"]


def test_policy_constraint_gpu_names_are_checked() -> None:
    policy = OptimizationPolicySpec.model_validate({"constraints": {"allowedGpus": ["a100", "H1OO"]}})
    errors = validate_policy(policy)
    assert fields(errors) == ["spec.constraints.allowedGpus[1]"]
    assert validate_policy(OptimizationPolicySpec.model_validate({})) == []


def test_schema_errors_use_wire_field_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        WorkloadProfileSpec.model_validate(
            {"task": "inference", "model": {"name": MODEL}, "inference": {"inputTokens": -1}}
        )
    errors = schema_errors(caught.value)
    assert fields(errors) == ["spec.inference.inputTokens"]
    assert errors[0].reason == "InvalidSpec"


def test_a_request_rate_of_zero_is_refused_naming_the_field() -> None:
    # Zero traffic prices no token: the rate is omitted when unknown, never 0.
    with pytest.raises(ValidationError) as caught:
        WorkloadProfileSpec.model_validate(
            {"task": "inference", "model": {"name": MODEL}, "inference": {"requestsPerSecond": 0}}
        )
    errors = schema_errors(caught.value)
    assert fields(errors) == ["spec.inference.requestsPerSecond"]
    assert "greater than 0" in errors[0].message


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"task": float("inf")}, "spec.task", "Input should be 'inference' or 'training'"),
        ({"model": {"name": MODEL, "precision": float("nan")}}, "spec.model.precision", "'fp32', 'tf32'"),
        ({"hardware": float("-inf")}, "spec.hardware", "valid dictionary"),
        ({"inference": {"concurrency": float("inf")}}, "spec.inference.concurrency", "finite number"),
        ({"inference": {"requestsPerSecond": float("nan")}}, "spec.inference.requestsPerSecond", "finite"),
    ],
)
def test_a_value_that_is_not_finite_gets_what_the_field_takes(
    overrides: dict[str, Any], field: str, says: str
) -> None:
    # YAML's `.inf` and `.nan` are floats: "must be a finite number" only helps where a number belongs.
    raw: dict[str, Any] = {"task": "inference", "model": {"name": MODEL}, "inference": {}, **overrides}
    with pytest.raises(ValidationError) as caught:
        WorkloadProfileSpec.model_validate(raw, strict=True)
    (error,) = schema_errors(caught.value)
    assert error.field == field
    assert says in error.message, error.message


@pytest.mark.parametrize(("low", "high", "ok"), [(3, 3, False), (5, 7, False), (3, 5, True), (16, 64, False)])
def test_gpu_bounds_that_admit_no_replica_layout_name_the_field_and_the_layouts(
    low: int, high: int, ok: bool
) -> None:
    errors = validate_workload(spec(hardware={"minGpusPerReplica": low, "maxGpusPerReplica": high}))
    if ok:
        assert errors == []
        return
    (error,) = errors
    assert error.field == "spec.hardware.minGpusPerReplica"
    assert error.allowed == ("1", "2", "4", "8")
