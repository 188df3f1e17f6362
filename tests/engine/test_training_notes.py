"""What a training plan says beyond its options (scaling bounds it does not apply, runs too long to be
meant), and doubts about architecture numbers that pass the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import Architecture, OptionPrediction
from greenmatrix.catalog import llms
from greenmatrix.cli import main
from greenmatrix.planning.planner import plan, resolve_model
from greenmatrix.predict.predictors import Predictors
from greenmatrix.validation import implied_parameters, workload_warnings

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def predictors() -> Predictors:
    return Predictors.roofline()


def training(tokens: float = 2e9, **run: Any) -> WorkloadProfileSpec:
    return WorkloadProfileSpec.model_validate(
        {
            "task": "training",
            "model": {"name": LLAMA_8B, "framework": "pytorch"},
            "training": {"tokens": tokens, "sequenceLength": 4096, **run},
        }
    )


def notes(
    spec: WorkloadProfileSpec, predictors: Predictors, policy: OptimizationPolicySpec | None = None
) -> tuple[tuple[str, ...], int]:
    """The plan's notes (as simulate prints them) and the pods of its best option."""
    result = plan(spec, None, policy, region="us-east-1", predictors=predictors, gpus=["L40S"], advise=False)
    said = tuple(n for n in result.notes if n not in predictors.notes)
    return said, result.evaluated[0].prediction.replicas


def test_scaling_bounds_of_a_policy_are_said_not_to_bound_training_pods(predictors: Predictors) -> None:
    policy = OptimizationPolicySpec.model_validate({"scaling": {"maxReplicas": 2}})
    said, pods = notes(training(), predictors, policy)
    # Pods are the job's layout, chosen by run time and cost: a serving bound of 2 does not cap them.
    assert pods > 2
    assert any("scaling.minReplicas/maxReplicas" in n and "training" in n for n in said), said


def test_no_scaling_note_without_bounds_set(predictors: Predictors) -> None:
    assert notes(training(), predictors)[0] == ()
    assert notes(training(), predictors, OptimizationPolicySpec())[0] == ()


def test_the_bounds_an_api_server_defaulted_but_someone_changed_still_get_the_note(
    predictors: Predictors,
) -> None:
    # As the operator reads it: every field present, so only the values tell.
    wire = OptimizationPolicySpec().to_wire()
    wire["scaling"]["minReplicas"] = 4
    said, _ = notes(training(), predictors, OptimizationPolicySpec.model_validate(wire))
    assert len(said) == 1


def test_a_run_of_over_a_year_is_pointed_out(predictors: Predictors) -> None:
    said, _ = notes(training(tokens=1e15), predictors)
    [note] = said
    assert "years" in note and "spec.training.tokens" in note and "spec.training.epochs" in note


def test_the_replicas_field_says_what_training_replicas_are() -> None:
    described = " ".join((OptionPrediction.model_fields["replicas"].description or "").split())
    assert "pods of the training job" in described and "1 (training)" not in described


def architecture(**numbers: Any) -> WorkloadProfileSpec:
    arch = {"parameters": 8.03e9, "layers": 32, "hiddenSize": 4096, "attentionHeads": 32, "kvHeads": 8}
    arch.update(numbers)
    return WorkloadProfileSpec.model_validate(
        {"task": "inference", "model": {"architecture": arch}, "inference": {}}
    )


@pytest.mark.parametrize("parameters", [1e6, 1.0, 1e12])
def test_parameters_far_from_what_the_sizes_imply_are_doubted(parameters: float) -> None:
    [warning] = workload_warnings(architecture(parameters=parameters, layers=80, hiddenSize=8192))
    assert warning.startswith("spec.model.architecture.parameters: ")


def test_the_plan_carries_the_doubt(predictors: Predictors) -> None:
    result = plan(architecture(parameters=1e6, layers=80, hiddenSize=8192), None, predictors=predictors)
    assert any(n.startswith("spec.model.architecture.parameters: ") for n in result.notes)


def test_consistent_numbers_raise_no_doubt() -> None:
    assert workload_warnings(architecture()) == []
    assert workload_warnings(architecture(intermediateSize=14336, vocabSize=128256)) == []


def test_a_mixture_of_experts_is_doubted_only_outside_the_span_its_sizes_allow() -> None:
    # Mixtral 8x7B with the intermediateSize left to the default, and DeepSeek-V3 given its dense one.
    mixtral = architecture(parameters=4.67e10, experts=8, activeExperts=2)
    deepseek = architecture(
        parameters=6.71e11,
        layers=61,
        hiddenSize=7168,
        attentionHeads=128,
        kvHeads=128,
        intermediateSize=18432,
        vocabSize=129280,
        experts=256,
        activeExperts=8,
    )
    assert workload_warnings(mixtral) == workload_warnings(deepseek) == []
    assert workload_warnings(architecture(parameters=1e8, experts=8, activeExperts=2))


def test_every_catalog_model_is_within_the_tolerance_of_its_implied_size() -> None:
    for m in llms.all_models():
        low, high = implied_parameters(
            layers=m.layers,
            hidden=m.hidden_size,
            heads=m.heads,
            kv_heads=m.kv_heads,
            head_dim=m.head_dim,
            intermediate=m.intermediate_size or 4 * m.hidden_size,
            vocab=m.vocab,
            experts=m.experts,
        )
        assert low / 1.25 <= m.params_total <= high * 1.25, m.name


def test_heads_that_do_not_divide_the_hidden_size_are_doubted_not_refused() -> None:
    # Qwen3.5-27B: 24 heads of 256 over a hidden size of 5120.
    qwen = architecture(parameters=2.7e10, layers=64, hiddenSize=5120, attentionHeads=24, kvHeads=4)
    [warning] = workload_warnings(qwen)
    assert warning.startswith("spec.model.architecture.attentionHeads: 24 does not divide hiddenSize")
    assert "give headDim" in warning


def test_a_given_head_width_sizes_the_kv_cache_and_settles_the_doubt() -> None:
    numbers = {"parameters": 2.7e10, "layers": 64, "hiddenSize": 5120, "attentionHeads": 24, "kvHeads": 4}
    assumed = architecture(**numbers)
    given = architecture(**numbers, headDim=256)
    assert workload_warnings(given) == []
    # 256-wide heads against the 213 hiddenSize // attentionHeads would assume.
    ratio = resolve_model(given).kv_elems_per_token_full / resolve_model(assumed).kv_elems_per_token_full
    assert ratio == pytest.approx(256 / 213)


def test_more_heads_than_hidden_elements_are_refused() -> None:
    with pytest.raises(ValidationError, match="attentionHeads must not exceed hiddenSize"):
        Architecture.model_validate({"parameters": 1e9, "layers": 4, "hiddenSize": 64, "attentionHeads": 128})


def test_simulate_refuses_more_heads_than_hidden_elements(tmp_path: Path) -> None:
    # The same manifest as the API server's case in tests/lab/test_crds.py.
    arch = {"parameters": 1.0e9, "layers": 16, "hiddenSize": 64, "attentionHeads": 128}
    manifest = {
        "apiVersion": "greenmatrix.io/v1alpha1",
        "kind": "WorkloadProfile",
        "metadata": {"name": "bad"},
        "spec": {"task": "inference", "model": {"architecture": arch}, "inference": {}},
    }
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(main, ["simulate", "-f", str(path)])
    assert result.exit_code == 2, result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error.startswith("error: spec.model.architecture")
    assert "attentionHeads must not exceed hiddenSize" in error
