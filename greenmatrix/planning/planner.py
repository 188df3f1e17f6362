"""The decision: which hardware a workload should run on, how many replicas, and why.

    feasible options, ranked by TOPSIS with the policy's weights, capped by its constraints.

`plan(spec, inventory, policy)` enumerates hardware options (the cluster's, and the catalog's for
comparison), asks the predictors about all of them in one batch, sizes replicas for the expected
load, prices them (cost, energy, carbon), drops what breaks a memory limit, an objective or a
constraint, ranks the rest and explains the winner. Pure: no I/O, no clock.

Decisions worth knowing:
- **Objectives are checked on the p50 prediction** (the median of the engine's uncertainty).
  `OptionPrediction.sloMargin` says whether they also hold at the pessimistic p90, i.e. "meets with
  margin"; the recommendation prefers nothing on that basis, the table shows it.
- **Replicas** = ceil(requestsPerSecond / (per-replica request rate x targetUtilization)), and
  enough for minThroughputTokensPerSecond the same way, clamped to the policy's min/maxReplicas
  (the defaults of `Scaling` without a policy). Needing more than maxReplicas, or more than the
  cluster's nodes hold, makes the option infeasible. The per-replica request rate is
  concurrency / end-to-end latency of a request (TTFT + (outputTokens - 1) x TPOT) at p50.
- **Cost** is the cheapest on-demand price per GPU-hour in the catalog x GPUs x replicas. An option
  without a price has unknown cost: it stays rankable, but ranks as the most expensive known
  option on cost (an unknown never helps) and its reason says so; it fails a maxCostPerHour
  constraint, which it cannot be shown to meet. $/1M tokens uses the tokens actually served
  (requestsPerSecond x outputTokens when given, else the planned utilisation of capacity).
- **Energy and carbon** come from `greenmatrix.economics` (power linear in utilisation between
  idle and loaded TDP fractions, host share, PUE) and the grid intensity of the nodes' region
  (for catalog options: the `region` argument, else the first allowed region, else the cluster's;
  the world-average grid when unknown).
- **Training** runs data-parallel with sharded states on `gpusPerReplica` GPUs per worker pod x
  `replicas` pods (whole nodes when more than one pod); feasible when the p50 time meets
  deadlineHours and the states fit.
- **One joint ranking** of the feasible cluster and catalog options: the recommendation is the
  best in-cluster option, `betterOutsideCluster` lists catalog options ranked above it. With no
  inventory (the CLI without a cluster) every catalog option counts as available.

This module decides; its parts live beside it: `serving_plan` and `training_plan` evaluate options,
`footprint` prices them (cost, power, carbon, constraints), `placement` says where the pods go and
`explain` words the result. The names others import are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from greenmatrix import economics
from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import (
    Inventory,
    OptionPrediction,
    Recommendation,
    WorkloadProfileSpec,
)
from greenmatrix.catalog import hardware, llms
from greenmatrix.catalog.llms import ModelArch
from greenmatrix.errors import GreenMatrixError
from greenmatrix.planning.advice import advise as make_advice
from greenmatrix.planning.context import CRITERIA, Evaluated, PlanContext
from greenmatrix.planning.explain import (
    explanation,
    headline_latency,
    sig_figs,
)
from greenmatrix.planning.infeasible import no_feasible_error
from greenmatrix.planning.options import (
    HardwareOption,
    Restrictions,
    catalog_options,
    check_gpu_names,
    cluster_options,
    no_gpu_error,
)
from greenmatrix.planning.placement import (
    node_selector_for,
    pod_resources,
)
from greenmatrix.planning.ranking import Criterion, topsis
from greenmatrix.planning.result import MAX_ALTERNATIVES, MAX_BETTER_OUTSIDE, Plan
from greenmatrix.planning.serving import evaluate_serving
from greenmatrix.planning.training import (
    evaluate_training,
    training_layouts,
    training_notes,
)
from greenmatrix.policy import constraints_of, scaling_of, weights_of
from greenmatrix.predict.predictors import Predictors
from greenmatrix.validation import validate_policy, validate_workload, workload_warnings

# CPU options are considered only for models up to this size: beyond it a CPU socket cannot serve
# a useful token rate (a 3B model at bf16 reads 6 GB per token, ~20 tokens/s per socket at best).
CPU_MAX_PARAMS = 3e9


# --- inputs ---------------------------------------------------------------------------------------


def resolve_model(spec: WorkloadProfileSpec) -> ModelArch:
    """The architecture of the spec's model, from the catalog or from its numbers."""
    m = spec.model
    if m.name is not None:
        try:
            return llms.model_arch(m.name)
        except GreenMatrixError as err:
            raise type(err)(
                "spec.model.name",
                f"{m.name!r} is not in the model catalog (`greenmatrix models` lists it);"
                " or give spec.model.architecture instead",
                err.allowed,
            ) from None
    a = m.architecture
    assert a is not None  # the spec validator guarantees one of the two
    return llms.from_numbers(
        "architecture",
        params_total=a.parameters,
        layers=a.layers,
        hidden_size=a.hidden_size,
        heads=a.attention_heads,
        kv_heads=a.kv_heads,
        head_dim=a.head_dim,
        intermediate_size=a.intermediate_size or 4 * a.hidden_size,
        vocab=a.vocab_size or 32000,
        params_active=a.active_parameters,
        experts=a.experts,
        experts_per_token=a.active_experts,
    )


# --- the plan -----------------------------------------------------------------------------------


def plan(
    spec: WorkloadProfileSpec,
    inventory: Inventory | None,
    policy: OptimizationPolicySpec | None = None,
    *,
    region: str | None = None,
    predictors: Predictors | None = None,
    gpus: Sequence[str] | None = None,
    advise: bool = True,
) -> Plan:
    """Recommend hardware and replicas for a workload.

    `inventory` is the cluster's matching hardware (None: no cluster, every catalog option counts
    as available). `region` prices and weighs carbon for catalog options. `gpus` restricts the
    catalog options to these GPU names. Bad input raises a GreenMatrixError naming the field; no
    feasible option is not an exception but `Plan.error` (NoFeasibleHardware).
    """

    result = _plan(spec, inventory, policy, region=region, predictors=predictors, gpus=gpus)
    if not advise:
        return result
    return with_advice(spec, result, inventory, policy, region=region, predictors=predictors, gpus=gpus)


def with_advice(
    spec: WorkloadProfileSpec,
    result: Plan,
    inventory: Inventory | None,
    policy: OptimizationPolicySpec | None = None,
    *,
    region: str | None = None,
    predictors: Predictors | None = None,
    gpus: Sequence[str] | None = None,
) -> Plan:
    """`result`, a plan of `spec` made with `advise=False` on these same inputs (its evaluated options
    kept), with its advice: what `plan` gives, in two steps (the advice is about half a plan's cost)."""
    if not result.evaluated:
        return result

    def variant(changed: WorkloadProfileSpec) -> Plan:
        # Advice is about this cluster: with one, a variant is planned on its own options only (the
        # catalog's cannot be recommended there), which is most of a plan's cost saved per variant.
        return _plan(
            changed,
            inventory,
            policy,
            region=region,
            predictors=predictors,
            gpus=gpus,
            cluster_only=inventory is not None,
        )

    return replace(result, advice=tuple(make_advice(spec, result, variant)))


def _plan(
    spec: WorkloadProfileSpec,
    inventory: Inventory | None,
    policy: OptimizationPolicySpec | None,
    *,
    region: str | None,
    predictors: Predictors | None,
    gpus: Sequence[str] | None,
    cluster_only: bool = False,
) -> Plan:
    products = [g.product for g in (inventory.gpus or [])] if inventory else []
    problems = validate_workload(spec, products) + (validate_policy(policy, products) if policy else [])
    if problems:
        raise problems[0]
    only = check_gpu_names(gpus, "--gpus") if gpus else None
    ctx = PlanContext(
        spec=spec,
        arch=resolve_model(spec),
        policy=policy,
        scaling=scaling_of(policy),
        constraints=constraints_of(policy),
        restrictions=Restrictions.of(spec.hardware, policy),
        region=region or _first_region(spec, policy, inventory),
        predictors=predictors or Predictors.load(),
    )
    options = _options(ctx, inventory, only, cluster_only=cluster_only)
    evaluated = evaluate_training(ctx, options) if spec.task == "training" else evaluate_serving(ctx, options)
    result = _decide(ctx, inventory, evaluated)
    if not options:
        # Only the restrictions themselves show which one left nothing to compare.
        result = replace(result, error=no_gpu_error(spec.hardware, policy, only, inventory) or result.error)
    return result


def _first_region(
    spec: WorkloadProfileSpec, policy: OptimizationPolicySpec | None, inventory: Inventory | None
) -> str | None:
    """The region catalog options are weighed in: the first allowed one, else the cluster's own."""
    cluster = [g.regions for g in (inventory.gpus or [])] if inventory else []
    for regions in (
        spec.hardware and spec.hardware.regions,
        policy and policy.constraints and policy.constraints.regions,
        *cluster,
    ):
        if regions:
            return regions[0]
    return None


def _options(
    ctx: PlanContext,
    inventory: Inventory | None,
    only: Sequence[hardware.GPUSpec] | None,
    *,
    cluster_only: bool = False,
) -> list[HardwareOption]:
    hw = ctx.spec.hardware
    training = ctx.spec.task == "training"
    small = ctx.arch.params_total <= CPU_MAX_PARAMS and not training
    restrictions = ctx.restrictions
    if not small:
        restrictions = Restrictions(restrictions.allowed, restrictions.excluded, restrictions.regions, False)
    in_cluster = cluster_options(inventory, restrictions, hw) if inventory is not None else []
    present = {o.name for o in in_cluster}
    outside = [
        o
        for o in (() if cluster_only else catalog_options(restrictions, hw, only=only, region=ctx.region))
        if o.name not in present
    ]
    options = in_cluster + outside
    return training_layouts(options) if training else options


# --- the decision ------------------------------------------------------------------------------------


def _criteria(weights: dict[str, float]) -> list[Criterion]:
    return [Criterion(name, weights[name], benefit=(name == "throughput")) for name in CRITERIA]


def _decide(ctx: PlanContext, inventory: Inventory | None, evaluated: list[Evaluated]) -> Plan:
    weights = weights_of(ctx.policy)
    feasible = [e for e in evaluated if e.feasible]
    ranked: list[Evaluated] = []
    if feasible:
        ruled_out = [e.values for e in evaluated if e.runnable and not e.feasible]
        ranking = topsis([e.values for e in feasible], _criteria(weights), reference=ruled_out)
        scored = [
            replace(
                e,
                prediction=e.prediction.model_copy(
                    update={"score": sig_figs(ranking.scores[i]), "pareto": ranking.pareto[i]}
                ),
            )
            for i, e in enumerate(feasible)
        ]
        ranked = [scored[i] for i in ranking.order]
    infeasible = sorted((e for e in evaluated if not e.feasible), key=lambda e: (e.severity, e.option.label))
    cluster_mode = inventory is not None
    candidates = [e for e in ranked if e.option.in_cluster] if cluster_mode else ranked
    best = candidates[0] if candidates else None
    recommendation = _recommendation(ctx, best, candidates[1:], weights) if best else None
    alternatives = tuple(e.prediction for e in candidates[1 : 1 + MAX_ALTERNATIVES])
    better: tuple[OptionPrediction, ...] = ()
    if cluster_mode and best is not None:
        above = ranked[: ranked.index(best)]
        better = tuple(e.prediction for e in above if not e.option.in_cluster)[:MAX_BETTER_OUTSIDE]
    error = None if best is not None else no_feasible_error(ctx, inventory, ranked, infeasible)
    return Plan(
        task=ctx.spec.task,
        options=tuple(e.prediction for e in ranked + infeasible),
        recommendation=recommendation,
        alternatives=alternatives,
        better_outside_cluster=better,
        advice=(),
        error=error,
        weights=weights,
        notes=(
            *ctx.predictors.notes,
            *_region_notes(ctx),
            *workload_warnings(ctx.spec),
            *(training_notes(ctx, best) if ctx.spec.task == "training" else ()),
        ),
        evaluated=tuple(ranked + infeasible),
    )


def _region_notes(ctx: PlanContext) -> tuple[str, ...]:
    intensity = economics.carbon_intensity(ctx.region or "")
    if not intensity.is_default:
        return ()
    hint = economics.unknown_region_hint(ctx.region or "")
    where = f"region {ctx.region!r} has no grid intensity{hint}" if ctx.region else "no region given"
    return (
        f"{where}: carbon of catalog options at the world-average grid ({intensity.g_per_kwh:.0f} g/kWh)",
    )


def _recommendation(
    ctx: PlanContext, best: Evaluated, others: Sequence[Evaluated], weights: dict[str, float]
) -> Recommendation:
    p = best.prediction
    return Recommendation(
        gpu=p.gpu,
        gpus_per_replica=p.gpus_per_replica,
        replicas=p.replicas,
        latency=headline_latency(ctx, best),
        usd_per_million_tokens=p.usd_per_million_tokens,
        node_selector=node_selector_for(best),
        resources=pod_resources(ctx, best),
        predicted=p,
        explanation=explanation(ctx, best, others, weights),
        basis=best.basis or None,
    )
