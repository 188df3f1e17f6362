"""The planner's decisions: feasibility, sizing, constraints, weights, and what it says when nothing fits.

Thresholds are derived from the predictors' own outputs for the same workload (e.g. an SLO between
two GPUs' predicted TPOT), so the tests check the decision logic whatever the learned models
predict, and never copy a number the code produced.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import GPUInventory, Inventory
from greenmatrix.errors import NoFeasibleHardwareError, UnknownHardwareError, UnknownModelError
from greenmatrix.planning.planner import plan, with_advice
from greenmatrix.planning.result import Plan
from greenmatrix.predict.predictors import Predictors

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if "kind: WorkloadProfile" in p.read_text())


@pytest.fixture(scope="module")
def predictors() -> Predictors:
    return Predictors.load()


def workload(**spec) -> WorkloadProfileSpec:
    return WorkloadProfileSpec.model_validate(spec)


def chat(
    model: str = "meta-llama/Llama-3.1-8B-Instruct",
    precision: str = "bf16",
    slo: dict | None = None,
    rps: float | None = None,
    concurrency: int = 8,
    hardware: dict | None = None,
) -> WorkloadProfileSpec:
    inference: dict = {"inputTokens": 1024, "outputTokens": 256, "concurrency": concurrency}
    if slo:
        inference["slo"] = slo
    if rps is not None:
        inference["requestsPerSecond"] = rps
    spec: dict = {
        "task": "inference",
        "model": {"name": model, "precision": precision},
        "inference": inference,
    }
    if hardware:
        spec["hardware"] = hardware
    return workload(**spec)


def gpus(*entries: tuple[str, str, int, int], region: str = "us-east-1") -> Inventory:
    """An inventory of (catalog key, node label, nodes, GPUs per node)."""
    return Inventory(
        gpus=[
            GPUInventory(
                gpu=key,
                product=product,
                known=True,
                nodes=n,
                gpus_per_node=per,
                total_gpus=n * per,
                regions=[region],
            )
            for key, product, n, per in entries
        ],
        matched_nodes=sum(e[2] for e in entries),
        total_nodes=sum(e[2] for e in entries),
    )


H100 = ("H100-SXM-80GB", "NVIDIA-H100-80GB-HBM3", 2, 8)
L4 = ("L4", "NVIDIA-L4", 4, 8)


def policy(**spec) -> OptimizationPolicySpec:
    return OptimizationPolicySpec.model_validate(spec)


def option(result: Plan, gpu: str, per_replica: int):
    return next(o for o in result.options if o.gpu == gpu and o.gpus_per_replica == per_replica)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_gets_a_recommendation(path: Path, predictors: Predictors) -> None:
    spec = WorkloadProfileSpec.model_validate(yaml.safe_load(path.read_text())["spec"])
    result = plan(spec, None, predictors=predictors)
    assert result.error is None, result.error
    rec = result.recommendation
    assert rec is not None and rec.predicted.feasible
    assert rec.explanation.startswith(rec.predicted.gpu)
    assert result.options[0] == rec.predicted  # the recommendation is the top-ranked option
    # The basis is the recommended option's own: the predictor's account of its numbers.
    assert rec.basis and rec.basis == result.evaluated[0].basis
    assert len({e.basis for e in result.evaluated if e.feasible}) > 1
    if spec.task == "training":
        hours = rec.predicted.training_hours
        assert hours is not None and spec.training is not None
        assert spec.training.deadline_hours is None or hours.p50 <= spec.training.deadline_hours
    else:
        slo = spec.inference.slo if spec.inference else None
        if slo and slo.tpot_ms:
            assert rec.predicted.tpot_ms is not None and rec.predicted.tpot_ms.p50 <= slo.tpot_ms
        if slo and slo.ttft_ms:
            assert rec.predicted.ttft_ms is not None and rec.predicted.ttft_ms.p50 <= slo.ttft_ms
    assert all(o.feasible for o in result.options[: len(result.alternatives) + 1])


def test_an_slo_the_cluster_cannot_meet_names_the_best_catalog_option(predictors: Predictors) -> None:
    free = plan(chat(hardware={"maxGpusPerReplica": 1}), None, predictors=predictors)
    l4 = option(free, "L4", 1).tpot_ms
    fastest = min(o.tpot_ms.p50 for o in free.options if o.feasible and o.tpot_ms)
    assert l4 is not None and fastest < l4.p50
    slo = (fastest + l4.p50) / 2  # met by some catalog GPU, not by the cluster's L4
    spec = chat(slo={"tpotMs": slo}, hardware={"maxGpusPerReplica": 1})
    result = plan(spec, gpus(L4), predictors=predictors)
    assert result.recommendation is None
    err = result.error
    assert isinstance(err, NoFeasibleHardwareError) and err.reason == "NoFeasibleHardware"
    assert err.field == "spec.inference.slo.tpotMs"
    assert "L4 x1: TPOT" in err.message
    best = next(o for o in result.options if o.feasible)
    assert not best.in_cluster and best.tpot_ms is not None and best.tpot_ms.p50 <= slo
    assert f"best catalog option: {best.gpu} x{best.gpus_per_replica}" in err.message
    assert err.allowed[0] == f"{best.gpu} x{best.gpus_per_replica}"
    with pytest.raises(NoFeasibleHardwareError):
        result.raise_if_infeasible()


def test_an_impossible_slo_without_a_cluster_names_the_closest_option(predictors: Predictors) -> None:
    result = plan(chat(slo={"tpotMs": 0.001}), None, predictors=predictors)
    assert result.recommendation is None and not any(o.feasible for o in result.options)
    assert result.error is not None and result.error.field == "spec.inference.slo.tpotMs"
    # Every option is a catalog option here: "no catalog option is feasible either" compares with nothing.
    assert "; the closest is" in result.error.message and "either" not in result.error.message


def test_a_70b_bf16_model_never_lands_on_one_l4(predictors: Predictors) -> None:
    spec = chat(model="meta-llama/Llama-3.1-70B-Instruct")
    result = plan(spec, gpus(L4), predictors=predictors)
    one = option(result, "L4", 1)
    assert not one.feasible and "weights alone need" in one.reason
    rec = result.recommendation
    assert rec is None or (rec.gpu, rec.gpus_per_replica) != ("L4", 1)
    alone = plan(chat(model="meta-llama/Llama-3.1-70B-Instruct", hardware={"maxGpusPerReplica": 1}), gpus(L4))
    assert alone.recommendation is None
    assert alone.error is not None and alone.error.field == "spec.model.precision"


def test_when_nothing_fits_the_error_blames_the_first_check_every_option_fails_and_offers_nothing(
    predictors: Predictors,
) -> None:
    # 405B at bf16 on one L4 also misses the load and the SLOs, but memory is what rules it out;
    # the field used to be the alphabetically first of the failures (requestsPerSecond).
    spec = chat(
        model="meta-llama/Llama-3.1-405B-Instruct",
        rps=20,
        hardware={"allowedGpus": ["NVIDIA-L4"], "maxGpusPerReplica": 1},
    )
    result = plan(spec, None, predictors=predictors)
    assert result.recommendation is None and result.error is not None
    assert result.error.field == "spec.model.precision"
    assert "needs" in result.error.message and "replicas" in result.error.message
    # The closest option is named in the message, never offered as allowed: it is infeasible.
    assert result.error.allowed == ()


def test_policy_weights_change_the_choice(predictors: Predictors) -> None:
    spec = chat(rps=2, hardware={"maxGpusPerReplica": 1})
    cluster = gpus(H100, L4)
    fast = plan(spec, cluster, policy(objectives={"latency": 1, "cost": 0}), predictors=predictors)
    cheap = plan(spec, cluster, policy(objectives={"latency": 0, "cost": 1}), predictors=predictors)
    assert fast.recommendation is not None and cheap.recommendation is not None
    a, b = fast.recommendation.predicted, cheap.recommendation.predicted
    assert (a.gpu, a.gpus_per_replica) != (b.gpu, b.gpus_per_replica)
    assert a.request_latency_ms is not None and b.request_latency_ms is not None
    assert a.request_latency_ms.p50 < b.request_latency_ms.p50
    assert a.usd_per_million_tokens is not None and b.usd_per_million_tokens is not None
    assert b.usd_per_million_tokens < a.usd_per_million_tokens
    # With one criterion the winner is simply the best on it among feasible in-cluster options.
    feasible = [o for o in cheap.options if o.feasible and o.in_cluster]
    assert b.usd_per_million_tokens == min(o.usd_per_million_tokens for o in feasible)


def test_constraints_exclude_options(predictors: Predictors) -> None:
    spec = chat(hardware={"maxGpusPerReplica": 1})
    cluster = gpus(H100, L4)
    free = plan(spec, cluster, predictors=predictors)
    h100 = option(free, "H100-SXM-80GB", 1)
    l4 = option(free, "L4", 1)
    assert (
        h100.usd_per_hour is not None and l4.usd_per_hour is not None and l4.usd_per_hour < h100.usd_per_hour
    )
    budget = (l4.usd_per_hour + h100.usd_per_hour) / 2
    capped = plan(spec, cluster, policy(constraints={"maxCostPerHour": budget}), predictors=predictors)
    assert not option(capped, "H100-SXM-80GB", 1).feasible
    assert "> $" in option(capped, "H100-SXM-80GB", 1).reason
    assert capped.recommendation is not None and capped.recommendation.gpu == "L4"
    only_h100 = plan(
        spec, cluster, policy(constraints={"allowedGpus": ["H100-SXM-80GB"]}), predictors=predictors
    )
    assert {o.gpu for o in only_h100.options} == {"H100-SXM-80GB"}
    assert h100.watts is not None
    watt_cap = plan(
        spec, cluster, policy(constraints={"maxPowerWatts": h100.watts * 0.99}), predictors=predictors
    )
    assert not option(watt_cap, "H100-SXM-80GB", 1).feasible


def test_replicas_grow_with_the_request_rate(predictors: Predictors) -> None:
    bounds = policy(scaling={"minReplicas": 1, "maxReplicas": 1000})
    replicas = []
    for rps in (0.5, 5, 50):
        result = plan(
            chat(rps=rps, hardware={"maxGpusPerReplica": 1}), gpus(("H100-SXM-80GB", "H100", 200, 8)), bounds
        )
        replicas.append(option(result, "H100-SXM-80GB", 1).replicas)
    assert replicas == sorted(replicas) and replicas[-1] > replicas[0]
    # Ten times the load needs roughly ten times the replicas (ceil rounding aside).
    assert replicas[2] >= 5 * replicas[1]


def test_replicas_beyond_the_policy_bound_are_infeasible(predictors: Predictors) -> None:
    spec = chat(rps=500, hardware={"maxGpusPerReplica": 1})
    result = plan(spec, gpus(H100), policy(scaling={"maxReplicas": 2}), predictors=predictors)
    h100 = option(result, "H100-SXM-80GB", 1)
    assert not h100.feasible and "the policy's spec.scaling.maxReplicas allows at most 2" in h100.reason


def test_the_recommendation_says_how_to_schedule(predictors: Predictors) -> None:
    result = plan(
        chat(model="meta-llama/Llama-3.1-70B-Instruct", precision="fp8"), gpus(H100), predictors=predictors
    )
    rec = result.recommendation
    assert rec is not None and rec.gpu == "H100-SXM-80GB"
    assert rec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert rec.resources is not None
    assert rec.resources["requests"]["nvidia.com/gpu"] == str(rec.gpus_per_replica)
    assert rec.resources["limits"]["nvidia.com/gpu"] == str(rec.gpus_per_replica)
    # A 70B model at fp8 is ~65 GiB of weights: the pod must be able to stage them in host memory.
    assert int(rec.resources["requests"]["memory"].removesuffix("Gi")) >= 65
    status = result.status()
    assert status["recommendation"]["nodeSelector"] == rec.node_selector
    assert "gpusPerReplica" in status["recommendation"]


def test_better_hardware_outside_the_cluster_is_reported(predictors: Predictors) -> None:
    spec = chat(hardware={"maxGpusPerReplica": 1})
    latency_first = policy(objectives={"latency": 1, "cost": 0})
    result = plan(spec, gpus(("A10G", "NVIDIA-A10G", 2, 4)), latency_first, predictors=predictors)
    assert result.recommendation is not None and result.recommendation.gpu == "A10G"
    # Datacenter GPUs with several times the A10G's memory bandwidth rank above it on latency.
    better = result.better_outside_cluster
    assert 1 <= len(better) <= 5
    assert better[0] == result.options[0]  # the best option overall is outside the cluster
    rec_score = result.recommendation.predicted.score
    assert all(not o.in_cluster and o.score >= rec_score for o in result.better_outside_cluster)


def test_cluster_regions_outside_the_allowed_ones_are_infeasible(predictors: Predictors) -> None:
    spec = chat(hardware={"maxGpusPerReplica": 1, "regions": ["us-east-1"]})
    result = plan(spec, gpus(H100, region="eu-west-1"), predictors=predictors)
    assert result.recommendation is None
    assert "allowed regions: us-east-1" in option(result, "H100-SXM-80GB", 1).reason


def test_training_meets_the_deadline_within_the_cluster(predictors: Predictors) -> None:
    spec = workload(
        task="training",
        model={"name": "meta-llama/Llama-3.1-8B-Instruct"},
        training={"tokens": 2e9, "epochs": 1, "sequenceLength": 4096, "deadlineHours": 48},
    )
    cluster = gpus(H100)
    result = plan(spec, cluster, predictors=predictors)
    rec = result.recommendation
    assert rec is not None and rec.predicted.training_hours is not None
    assert rec.predicted.training_hours.p50 <= 48
    assert rec.gpus_per_replica * rec.replicas <= 16  # the cluster's two 8-GPU nodes
    assert rec.latency.startswith("run ")
    # Cost per run is price x GPUs x hours, so more GPUs finishing proportionally faster cost the same.
    assert rec.predicted.usd_per_run == pytest.approx(
        rec.predicted.usd_per_hour * rec.predicted.training_hours.p50, rel=1e-3
    )


def test_quantize_advice_quotes_a_replanned_prediction(predictors: Predictors) -> None:
    spec = chat(rps=4, hardware={"maxGpusPerReplica": 1})
    cluster = gpus(H100, L4)
    result = plan(spec, cluster, predictors=predictors)
    quantize = [a for a in result.advice if a.action == "Quantize" and "fp8" in a.detail]
    assert quantize, [a.to_wire() for a in result.advice]
    fp8 = plan(chat(precision="fp8", rps=4, hardware={"maxGpusPerReplica": 1}), cluster, advise=False)
    assert fp8.recommendation is not None and result.recommendation is not None
    new = fp8.recommendation.predicted.usd_per_million_tokens
    old = result.recommendation.predicted.usd_per_million_tokens
    assert f"({old:.3g} -> {new:.3g})" in quantize[0].predicted_gain


def test_advice_added_to_an_unadvised_plan_is_the_plans_own(predictors: Predictors) -> None:
    spec = chat(rps=4, hardware={"maxGpusPerReplica": 1})
    cluster = gpus(H100, L4)
    whole = plan(spec, cluster, predictors=predictors)
    first = plan(spec, cluster, predictors=predictors, advise=False)
    assert whole.advice and not first.advice
    assert with_advice(spec, first, cluster, predictors=predictors) == whole


@pytest.mark.parametrize("concurrency", [8, 32])
def test_int4_is_advised_only_for_a_gain_over_the_8_bit_advice(
    predictors: Predictors, concurrency: int
) -> None:
    # On L4 at 32 in flight int4 costs the same as fp8 and is 3% faster: more quality risk for nothing.
    cluster = gpus(L4)
    result = plan(chat(rps=4, concurrency=concurrency), cluster, predictors=predictors)
    advised = {a.detail.split()[2] for a in result.advice if a.action == "Quantize"}
    assert "fp8" in advised
    fp8, int4 = (
        plan(chat(precision=p, rps=4, concurrency=concurrency), cluster, advise=False).recommendation
        for p in ("fp8", "int4")
    )
    assert fp8 is not None and int4 is not None
    cheaper = int4.predicted.usd_per_million_tokens <= 0.95 * fp8.predicted.usd_per_million_tokens
    faster = int4.predicted.tpot_ms.p50 <= 0.95 * fp8.predicted.tpot_ms.p50
    assert ("int4" in advised) == (cheaper or faster)
    assert ("int4" in advised) == (concurrency == 8)  # both sides of the rule are exercised


@pytest.mark.parametrize("task", ["inference", "training"])
def test_a_precision_a_gpu_lists_no_rate_for_names_the_precision_and_what_it_runs(
    predictors: Predictors, task: str
) -> None:
    # The catalog lists tf32, not fp32, for Blackwell: the error used to name the field "hardware"
    # with the predictor's own words ("jobs[0].precision: gpu ... has no tensor rate").
    if task == "inference":
        spec = chat(precision="fp32")
    else:
        spec = workload(
            task="training",
            model={"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "fp32"},
            training={"tokens": 1e9},
        )
    result = plan(spec, None, predictors=predictors, gpus=["B200", "GB300"])
    assert result.recommendation is None and result.error is not None
    assert result.error.field == "spec.model.precision"
    assert "no fp32 tensor rate for B200-SXM-180GB (it runs tf32, bf16" in result.error.message
    # Beside GPUs that list fp32, the Blackwell parts are infeasible for the same reason, ranked last.
    mixed = plan(spec, None, predictors=predictors, gpus=["B200", "H100-SXM-80GB"])
    b200 = [o for o in mixed.options if o.gpu == "B200-SXM-180GB"]
    assert b200 and all(not o.feasible and "no fp32 tensor rate" in o.reason for o in b200)
    assert mixed.options[-1].gpu == "B200-SXM-180GB"


def test_bad_names_are_refused_with_the_field(predictors: Predictors) -> None:
    with pytest.raises(UnknownModelError) as err:
        plan(chat(model="no-such/model-7B"), None, predictors=predictors)
    assert err.value.field == "spec.model.name"
    with pytest.raises(UnknownHardwareError) as gpu_err:
        plan(chat(), None, predictors=predictors, gpus=["H999"])
    assert gpu_err.value.field == "--gpus[0]"


def test_predictors_are_loaded_once_per_process() -> None:
    assert Predictors.load() is Predictors.load()


def test_tensor_parallel_advice_quotes_the_plans_own_prediction(predictors: Predictors) -> None:
    spec = chat(rps=1)
    cost_only = policy(objectives={"latency": 0, "cost": 1})
    result = plan(spec, gpus(H100), cost_only, predictors=predictors)
    rec = result.recommendation
    assert rec is not None and rec.predicted.tpot_ms is not None
    same_gpu = [o for o in result.options if o.feasible and o.gpu == rec.gpu and o.tpot_ms is not None]
    fastest = min(same_gpu, key=lambda o: o.tpot_ms.p50)
    advice = [a for a in result.advice if a.action == "ChangeTensorParallel"]
    if fastest.tpot_ms.p50 > 0.95 * rec.predicted.tpot_ms.p50:
        assert not advice  # nothing worth changing
        return
    assert len(advice) == 1
    assert f"with {fastest.gpus_per_replica} GPUs per replica" in advice[0].detail
    assert f"-> {fastest.tpot_ms.p50:.3g} ms" in advice[0].predicted_gain


def test_quantizing_can_make_an_impossible_workload_feasible(predictors: Predictors) -> None:
    hardware = {"maxGpusPerReplica": 4}
    result = plan(
        chat(model="meta-llama/Llama-3.1-70B-Instruct", hardware=hardware), gpus(L4), predictors=predictors
    )
    assert result.recommendation is None  # 35 GB of bf16 weights per GPU never fit a 24 GB L4
    int4 = plan(
        chat(model="meta-llama/Llama-3.1-70B-Instruct", precision="int4", hardware=hardware), gpus(L4)
    )
    # At int4 the weights are ~9 GB per GPU over four L4s: the re-plan finds a feasible option...
    assert int4.recommendation is not None
    # ... and the advice says so, with the option the re-plan chose.
    advice = [a for a in result.advice if a.action == "Quantize" and a.detail.startswith("serve at int4")]
    assert advice and advice[0].predicted_gain.startswith("makes the workload feasible: L4 x")
    assert f"L4 x{int4.recommendation.gpus_per_replica}" in advice[0].predicted_gain


def test_an_inventory_summarised_from_node_labels_plans_end_to_end(predictors: Predictors) -> None:
    from greenmatrix.inventory import NodeHardware, summarize

    nodes = [
        NodeHardware.from_node(
            f"gpu-{i}",
            {
                "nvidia.com/gpu.product": "NVIDIA-L4",
                "nvidia.com/gpu.count": "4",
                "topology.kubernetes.io/region": "us-east-1",
            },
            {"nvidia.com/gpu": "4", "cpu": "48"},
        )
        for i in range(2)
    ]
    spec = chat(rps=2)
    result = plan(spec, summarize(nodes, spec.hardware), predictors=predictors)
    rec = result.recommendation
    assert rec is not None and rec.gpu == "L4" and rec.gpus_per_replica <= 4
    assert rec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert rec.replicas * rec.gpus_per_replica <= 8  # two 4-GPU nodes
