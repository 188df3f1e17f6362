"""Which GPUs `simulate` compares, what it says when the restrictions leave none, and what it
says about inputs it cannot honour (models it cannot read, policy fields that only act in a cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from simulate_cli import CHAT, POLICY, WORKLOAD, refused, run, write

from greenmatrix import economics
from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import GPUInventory, HardwareSpec, Inventory
from greenmatrix.errors import NoFeasibleHardwareError
from greenmatrix.learned.core import models_dir
from greenmatrix.planning.options import Restrictions, catalog_options
from greenmatrix.planning.planner import plan
from greenmatrix.predict.predictors import Predictors

ROOT = Path(__file__).resolve().parents[2]
UNPRICED = ["B200-SXM-180GB", "MI300X"]


@pytest.fixture(scope="module")
def roofline() -> Predictors:
    return Predictors.roofline()


def chat(hardware: dict | None = None, **inference: object) -> WorkloadProfileSpec:
    spec: dict = {
        "task": "inference",
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
        "inference": {"requestsPerSecond": 5, **inference},
    }
    if hardware is not None:
        spec["hardware"] = hardware
    return WorkloadProfileSpec.model_validate(spec)


def policy(constraints: dict) -> OptimizationPolicySpec:
    return OptimizationPolicySpec.model_validate({"constraints": constraints})


def one_node(gpu: str, product: str, *, known: bool) -> Inventory:
    """A cluster of one node with eight GPUs of `product`."""
    node = GPUInventory(gpu=gpu, product=product, known=known, nodes=1, gpus_per_node=8, total_gpus=8)
    return Inventory(gpus=[node], matched_nodes=1, total_nodes=1)


def refusal(
    hardware: dict, constraints: dict, predictors: Predictors, cluster: Inventory | None = None
) -> NoFeasibleHardwareError:
    """Why a chat workload with these hardware restrictions, under these constraints, gets no plan."""
    result = plan(chat(hardware), cluster, policy(constraints), predictors=predictors, advise=False)
    assert result.error is not None
    return result.error


# --- which GPUs are compared ------------------------------------------------------------------------


def test_unpriced_gpus_named_in_allowed_gpus_are_compared_at_unknown_cost(tmp_path: Path) -> None:
    workload = write(tmp_path, WORKLOAD % "{allowedGpus: [B200-SXM-180GB, MI300X]}", "w.yaml")
    result = run("simulate", "-f", workload, "-o", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {o["gpu"] for o in out["options"]} == set(UNPRICED)
    assert (
        out["recommendation"]["gpu"] in UNPRICED
        and out["recommendation"]["predicted"].get("usdPerHour") is None
    )
    assert "B200-SXM-180GB, MI300X have no list price: compared at unknown cost" in result.stderr


@pytest.mark.parametrize("where", ["workload", "policy"])
def test_a_gpu_named_on_its_own_is_an_option_a_family_name_means_its_priced_part(where: str) -> None:
    def names(allowed: list[str]) -> set[str]:
        hw = HardwareSpec(allowedGpus=allowed) if where == "workload" else None
        pol = policy({"allowedGpus": allowed}) if where == "policy" else None
        return {o.name for o in catalog_options(Restrictions.of(hw, pol), hw) if o.gpu is not None}

    assert economics.price_per_gpu_hour("H100-PCIe-80GB") is None
    assert names(UNPRICED) == set(UNPRICED)
    assert names(["H100"]) == {"H100-SXM-80GB"}
    assert names(["H100", "H100-PCIe-80GB"]) == {"H100-SXM-80GB", "H100-PCIe-80GB"}
    assert names(["gh200"]) == {"GH200-96GB", "GH200-144GB"}  # no priced GH200: the family is named


def test_the_gpus_help_says_what_the_default_is() -> None:
    result = run("simulate", "--help")
    text = " ".join(result.output.split())
    assert "default: all" not in text
    assert "default: the GPUs with a list price, plus unpriced ones allowedGpus names" in text
    assert "one the workload's and the policy's regions allow" in text


# --- when the restrictions leave no GPU ---------------------------------------------------------------


def test_gpus_the_policy_rules_out_name_gpus_and_the_policy_without_an_empty_table(tmp_path: Path) -> None:
    only_b200 = write(tmp_path, POLICY % "  constraints: {allowedGpus: [B200-SXM-180GB]}", "p.yaml")
    result = run("simulate", "-f", str(CHAT), "--policy", only_b200, "--gpus", "H100")
    message = refused(result, "--gpus")
    assert "policy.constraints.allowedGpus allows none of the GPUs it names (H100-SXM-80GB," in message
    assert "spec.hardware.allowedGpus" not in message
    assert message.rstrip().endswith("(allowed: B200-SXM-180GB)")
    assert "Hardware options" not in result.stdout and "┏" not in result.stdout


def test_a_policy_admitting_none_of_the_workloads_gpus_is_named(roofline: Predictors) -> None:
    err = refusal({"allowedGpus": ["H100"]}, {"allowedGpus": ["A100"]}, roofline)
    assert err.field == "policy.constraints.allowedGpus"
    assert "admits none of the GPUs spec.hardware.allowedGpus allows" in err.message
    assert set(err.allowed) == {"H100-SXM-80GB", "H100-PCIe-80GB", "H100-NVL-94GB"}


def test_when_only_unpriced_gpus_pass_the_error_says_so_and_how_to_compare_them(roofline: Predictors) -> None:
    # The policy's "H100" means the priced H100-SXM-80GB, which the workload excludes.
    err = refusal({"excludedGpus": ["H100-SXM-80GB"]}, {"allowedGpus": ["H100"]}, roofline)
    assert err.field == "spec.hardware.excludedGpus"
    assert "have no list price (H100-NVL-94GB, H100-PCIe-80GB)" in err.message
    assert "name them with --gpus" in err.message and "unknown cost" in err.message


def test_in_a_cluster_the_restriction_that_emptied_the_set_is_named(roofline: Predictors) -> None:
    cluster = one_node("Foo-X1", "NVIDIA-Foo-X1", known=False)
    err = refusal({"allowedGpus": ["NVIDIA-Foo-X1"]}, {"allowedGpus": ["L4"]}, roofline, cluster)
    assert err.field == "policy.constraints.allowedGpus"
    assert err.allowed == ("NVIDIA-Foo-X1",)


# --- what simulate cannot honour ----------------------------------------------------------------------


def test_an_impossible_slo_in_a_cluster_still_says_no_catalog_option_is_feasible_either(
    roofline: Predictors,
) -> None:
    cluster = one_node("L4", "NVIDIA-L4", known=True)
    result = plan(chat(slo={"tpotMs": 0.001}), cluster, predictors=roofline, advise=False)
    assert result.error is not None and "; no catalog option is feasible either, the closest is" in (
        result.error.message
    )


@pytest.mark.parametrize(
    ("spec", "note"),
    [
        ("  mode: Auto", "mode: Auto has no effect here; simulate only recommends"),
        ("  paused: true", "paused: true has no effect here; simulate only recommends"),
    ],
)
def test_policy_fields_that_only_act_in_a_cluster_are_noted(tmp_path: Path, spec: str, note: str) -> None:
    result = run(
        "simulate", "-f", str(CHAT), "--policy", write(tmp_path, POLICY % spec, "p.yaml"), "-o", "json"
    )
    assert result.exit_code == 0, result.output
    assert note in result.stderr


def test_a_recommend_policy_gets_no_such_note(tmp_path: Path) -> None:
    result = run(
        "simulate", "-f", str(CHAT), "--policy", write(tmp_path, POLICY % "  mode: Recommend", "p.yaml")
    )
    assert result.exit_code == 0, result.output
    assert "has no effect here" not in result.stderr


@pytest.fixture
def restore_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # --models sets GREENMATRIX_MODELS for the process; setting it here first makes teardown undo it.
    monkeypatch.setenv("GREENMATRIX_MODELS", str(models_dir()))


@pytest.mark.usefixtures("restore_models")
def test_named_models_that_are_missing_are_an_error_not_a_roofline(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = refused(run("--models", str(tmp_path / "empty"), "simulate", "-f", str(CHAT)), "--models")
    assert "has no serving model: expected serving_tpot.ubj with serving_tpot.meta.json" in message


@pytest.mark.usefixtures("restore_models")
def test_named_models_that_cannot_be_read_are_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("serving_tpot", "serving_ttft", "training_time"):
        (bad / f"{name}.ubj").write_text("garbage")
        (bad / f"{name}.meta.json").write_text("garbage")
    message = refused(run("--models", str(bad), "simulate", "-f", str(CHAT)), "--models")
    assert "the serving model in" in message and "cannot be read" in message


@pytest.mark.usefixtures("restore_models")
def test_named_models_serve_only_the_task_they_were_trained_for(tmp_path: Path) -> None:
    # A folder with the serving models only: inference runs on them, training is refused.
    serving = tmp_path / "serving"
    serving.mkdir()
    for path in models_dir().glob("serving_*"):
        (serving / path.name).write_bytes(path.read_bytes())
    assert run("--models", str(serving), "simulate", "-f", str(CHAT), "-o", "json").exit_code == 0
    training = ROOT / "examples" / "llama-8b-finetune.yaml"
    message = refused(run("--models", str(serving), "simulate", "-f", str(training)), "--models")
    assert "has no training model: expected training_time.ubj" in message
