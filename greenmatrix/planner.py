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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from greenmatrix import economics
from greenmatrix.api.optimizationpolicy import Constraints, Objectives, OptimizationPolicySpec, Scaling
from greenmatrix.api.workloadprofile import (
    Advice,
    Inventory,
    OptionPrediction,
    Recommendation,
    WorkloadProfileSpec,
)
from greenmatrix.api.workloadprofile import Interval as WireInterval
from greenmatrix.catalog import hardware, llms
from greenmatrix.catalog.llms import ModelArch
from greenmatrix.errors import GreenMatrixError, NoFeasibleHardwareError
from greenmatrix.learned.core import Interval
from greenmatrix.learned.serving import ServingPrediction, ServingScenario
from greenmatrix.options import (
    CATALOG_MAX_NODES,
    HardwareOption,
    Restrictions,
    catalog_options,
    check_gpu_names,
    cluster_options,
    cpu_node_memory_gib,
)
from greenmatrix.physics import llm as llm_physics
from greenmatrix.predictors import (
    TRAINING_STATE_BYTES_PER_PARAM,
    CPUDevice,
    Predictors,
    TrainingEstimate,
    TrainingJob,
    backend_for,
    ceil_div,
    request_latency,
    weights_gib,
)
from greenmatrix.ranking import Criterion, topsis

# CPU options are considered only for models up to this size: beyond it a CPU socket cannot serve
# a useful token rate (a 3B model at bf16 reads 6 GB per token, ~20 tokens/s per socket at best).
CPU_MAX_PARAMS = 3e9
# Training keeps the GPUs busy: power is taken at full utilisation.
TRAINING_UTILIZATION = 1.0
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
CPU_VENDOR_LABEL = "feature.node.kubernetes.io/cpu-model.vendor_id"
CPU_AMX_LABEL = "feature.node.kubernetes.io/cpu-cpuid.AMXBF16"
# Host resources a serving pod asks for beside its GPUs: tokenisation, the HTTP server, and
# room to stage the weights in host memory while loading them.
CPU_CORES_PER_GPU = 4
HOST_MEMORY_MARGIN_GIB = 8.0
TRAINING_CPU_CORES_PER_GPU = 8
TRAINING_HOST_GIB_PER_GPU = 4.0
MAX_ALTERNATIVES = 10
MAX_BETTER_OUTSIDE = 5
CRITERIA = ("latency", "throughput", "cost", "energy", "carbon")


@dataclass(frozen=True)
class Evaluated:
    """One option after prediction, sizing and pricing; `failures` lists (field, why) pairs."""

    option: HardwareOption
    prediction: OptionPrediction
    failures: tuple[tuple[str, str], ...]
    values: tuple[float, ...]  # latency, throughput, cost, energy, carbon (NaN when unknown)
    severity: float  # how far from feasible (worst ratio of predicted to allowed), for ordering
    headline: str  # e.g. "TPOT 31 ms [27-36]"
    weights_gib: float
    notes: tuple[str, ...] = ()

    @property
    def feasible(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Plan:
    """The engine's answer for one workload: what to run on, the alternatives, and advice."""

    task: str
    options: tuple[OptionPrediction, ...]
    """Every option considered: feasible ones best first, then infeasible ones closest first."""
    recommendation: Recommendation | None
    alternatives: tuple[OptionPrediction, ...]
    better_outside_cluster: tuple[OptionPrediction, ...]
    advice: tuple[Advice, ...]
    error: NoFeasibleHardwareError | None
    """Set when no option in the cluster (or, without a cluster, in the catalog) is feasible."""
    weights: dict[str, float]
    notes: tuple[str, ...] = ()
    evaluated: tuple[Evaluated, ...] = field(default=(), repr=False, compare=False)

    @property
    def feasible(self) -> bool:
        return self.recommendation is not None

    def raise_if_infeasible(self) -> None:
        if self.error is not None:
            raise self.error

    def status(self) -> dict[str, Any]:
        """The WorkloadProfile status fields the plan sets, on the wire (camelCase).

        A field the plan leaves empty is None, so that a JSON merge patch of this dict clears what
        an earlier plan wrote. `appliedPolicy` and conditions are the operator's to set.
        """
        out: dict[str, Any] = {
            "recommendation": self.recommendation.to_wire() if self.recommendation else None,
            "alternatives": [o.to_wire() for o in self.alternatives[:MAX_ALTERNATIVES]] or None,
            "betterOutsideCluster": [o.to_wire() for o in self.better_outside_cluster[:MAX_BETTER_OUTSIDE]]
            or None,
            "advice": [a.to_wire() for a in self.advice[:10]] or None,
        }
        return out

    def to_wire(self) -> dict[str, Any]:
        """The whole plan as plain data (camelCase), as `greenmatrix simulate -o json` prints it."""
        out = {"task": self.task, **self.status(), "options": [o.to_wire() for o in self.options]}
        out["weights"] = dict(self.weights)
        if self.error is not None:
            out["error"] = {
                "reason": self.error.reason,
                "field": self.error.field,
                "message": self.error.message,
                "allowed": list(self.error.allowed),
            }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


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
        intermediate_size=a.intermediate_size or 4 * a.hidden_size,
        vocab=a.vocab_size or 32000,
        params_active=a.active_parameters,
        experts=a.experts,
        experts_per_token=a.active_experts,
    )


def weights_of(policy: OptimizationPolicySpec | None) -> dict[str, float]:
    o = policy.objectives if policy is not None else Objectives()
    raw = {
        "latency": o.latency,
        "throughput": o.throughput,
        "cost": o.cost,
        "energy": o.energy,
        "carbon": o.carbon,
    }
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def _scaling(policy: OptimizationPolicySpec | None) -> Scaling:
    return policy.scaling if policy is not None else Scaling()


def _constraints(policy: OptimizationPolicySpec | None) -> Constraints:
    return (policy.constraints if policy is not None else None) or Constraints()


# --- formatting -----------------------------------------------------------------------------------


def _wire(i: Interval | None) -> WireInterval | None:
    if i is None:
        return None
    return WireInterval(p10=_r(i.p10), p50=_r(i.p50), p90=_r(i.p90))


def _r(x: float, digits: int = 4) -> float:
    """Round to `digits` significant figures: status stays small and diffs stay quiet."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def num(x: float) -> str:
    """Three significant figures, without exponents for the magnitudes people read."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def fmt_ms(i: Interval) -> str:
    return f"{num(i.p50)} ms [{num(i.p10)}-{num(i.p90)}]"


def fmt_hours(i: Interval) -> str:
    return f"{num(i.p50)} h [{num(i.p10)}-{num(i.p90)}]"


def money(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"${x:.3g}" if x < 100 else f"${x:,.0f}"


# --- the plan -----------------------------------------------------------------------------------


@dataclass
class _Context:
    spec: WorkloadProfileSpec
    arch: ModelArch
    policy: OptimizationPolicySpec | None
    scaling: Scaling
    constraints: Constraints
    restrictions: Restrictions
    region: str | None
    predictors: Predictors


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
    from greenmatrix.advice import advise as make_advice

    result = _plan(spec, inventory, policy, region=region, predictors=predictors, gpus=gpus)
    if not advise or not result.evaluated:
        return result

    def replan(variant: WorkloadProfileSpec) -> Plan:
        return _plan(variant, inventory, policy, region=region, predictors=predictors, gpus=gpus)

    advice = make_advice(spec, result, replan)
    return Plan(
        task=result.task,
        options=result.options,
        recommendation=result.recommendation,
        alternatives=result.alternatives,
        better_outside_cluster=result.better_outside_cluster,
        advice=tuple(advice),
        error=result.error,
        weights=result.weights,
        notes=result.notes,
        evaluated=result.evaluated,
    )


def _plan(
    spec: WorkloadProfileSpec,
    inventory: Inventory | None,
    policy: OptimizationPolicySpec | None,
    *,
    region: str | None,
    predictors: Predictors | None,
    gpus: Sequence[str] | None,
) -> Plan:
    from greenmatrix.validation import validate_policy, validate_workload

    products = [g.product for g in (inventory.gpus or [])] if inventory else []
    problems = validate_workload(spec, products) + (validate_policy(policy, products) if policy else [])
    if problems:
        raise problems[0]
    only = check_gpu_names(gpus, "--gpus") if gpus else None
    ctx = _Context(
        spec=spec,
        arch=resolve_model(spec),
        policy=policy,
        scaling=_scaling(policy),
        constraints=_constraints(policy),
        restrictions=Restrictions.of(spec.hardware, policy),
        region=region or _first_region(spec, policy, inventory),
        predictors=predictors or Predictors.load(),
    )
    options = _options(ctx, inventory, only)
    evaluated = (
        _evaluate_training(ctx, options) if spec.task == "training" else _evaluate_serving(ctx, options)
    )
    return _decide(ctx, inventory, evaluated)


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
    ctx: _Context, inventory: Inventory | None, only: Sequence[hardware.GPUSpec] | None
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
        o for o in catalog_options(restrictions, hw, only=only, region=ctx.region) if o.name not in present
    ]
    options = in_cluster + outside
    return _training_layouts(options) if training else options


def _training_layouts(options: list[HardwareOption]) -> list[HardwareOption]:
    """Training jobs also span whole nodes: full-node pods x 2, 4, 8, 16 nodes where they exist."""
    out: list[HardwareOption] = []
    for o in options:
        if o.is_cpu:
            continue
        out.append(o)
        if o.gpu is None or o.note or o.gpus_per_replica != o.gpus_per_node:
            continue
        cap = o.nodes if o.nodes is not None else CATALOG_MAX_NODES
        pods = 2
        while pods <= cap:
            out.append(replace(o, pods=pods))
            pods *= 2
    return out


# --- serving ----------------------------------------------------------------------------------------


def _scenario(ctx: _Context, o: HardwareOption) -> ServingScenario | None:
    inference = ctx.spec.inference
    assert inference is not None
    m = ctx.spec.model
    if o.cpu is not None:
        device: Any = CPUDevice(o.cpu, cpu_node_memory_gib(o.cpu))
        tp = 1
    elif o.gpu is not None and not o.note:
        device, tp = o.gpu, o.gpus_per_replica
    else:
        return None
    return ServingScenario(
        model=ctx.arch,
        gpu=device,
        precision=m.precision,
        backend=backend_for(m.framework),
        input_tokens=inference.input_tokens,
        output_tokens=inference.output_tokens,
        concurrency=inference.concurrency,
        tp=tp,
        kv_precision=m.kv_cache_precision,
    )


def _predict_serving(
    predictors: Predictors, scenarios: list[ServingScenario]
) -> list[ServingPrediction | str]:
    """Predictions in order; a scenario the physics cannot handle gets the error text instead."""
    try:
        return list(predictors.serving(scenarios))
    except (ValueError, ZeroDivisionError, GreenMatrixError):
        out: list[ServingPrediction | str] = []
        for s in scenarios:
            try:
                out.append(predictors.serving([s])[0])
            except (ValueError, ZeroDivisionError, GreenMatrixError) as err:
                out.append(str(err))
        return out


def _unpredictable(o: HardwareOption, why: str) -> Evaluated:
    nan = float("nan")
    return Evaluated(
        option=o,
        prediction=OptionPrediction(
            gpu=o.name,
            gpus_per_replica=o.gpus_per_replica,
            replicas=o.pods,
            in_cluster=o.in_cluster,
            feasible=False,
            reason=why,
        ),
        failures=(("hardware", why),),
        values=(nan,) * len(CRITERIA),
        severity=math.inf,
        headline="not predicted",
        weights_gib=0.0,
    )


def _region_for(ctx: _Context, o: HardwareOption) -> tuple[str | None, str | None]:
    """(region used for carbon, failure text) for an option."""
    if not o.in_cluster or not o.regions:
        return ctx.region, None
    usable = ctx.restrictions.usable_regions(o.regions) if ctx.restrictions.region_restricted else o.regions
    if not usable:
        allowed = ", ".join(sorted({r for lst in ctx.restrictions.regions for r in lst}))
        return None, f"its nodes are in {', '.join(o.regions)}; allowed regions: {allowed}"
    return (ctx.region if ctx.region in usable else usable[0]), None


@dataclass
class _Money:
    usd_per_hour: float | None
    watts: float
    g_per_hour: float
    g_per_kwh: float
    notes: list[str]


@functools.cache
def _price(gpu_key: str) -> economics.Price | None:
    # The price list is fixed for the process; looking it up per option dominated small plans.
    return economics.price_per_gpu_hour(gpu_key)


def _economics(ctx: _Context, o: HardwareOption, gpus: int, utilization: float, region: str | None) -> _Money:
    """Price, facility power and emissions of ONE replica (or one training job) at a utilisation."""
    u = min(max(utilization, 0.0), 1.0)
    intensity = economics.carbon_intensity(region or "")
    notes = []
    if o.gpu is not None:
        power = economics.replica_power_for(o.gpu, gpus, u)
        price = _price(o.gpu.key)
        usd = None if price is None else economics.cost_per_hour(price.usd_per_gpu_hour, gpus)
        if price is None:
            notes.append(f"no list price for {o.name}: cost unknown, ranked as the most expensive")
        watts = power.facility_watts
    else:
        assert o.cpu is not None
        # The socket is the whole host here; the same idle-to-load line as a GPU, then PUE.
        watts = economics.gpu_watts(o.cpu.tdp_watts, u) * economics.PUE_DEFAULT
        usd = None
        notes.append("no list price for CPU nodes: cost unknown, ranked as the most expensive")
    return _Money(usd, watts, watts / 1000.0 * intensity.g_per_kwh, intensity.g_per_kwh, notes)


def _constraint_failures(
    ctx: _Context, name: str, usd_h: float | None, watts: float, g_h: float
) -> list[tuple[str, str]]:
    c = ctx.constraints
    out = []
    if c.max_cost_per_hour is not None:
        if usd_h is None:
            out.append(
                (
                    "policy.constraints.maxCostPerHour",
                    f"{name} has no list price to check ${c.max_cost_per_hour:g}/h",
                )
            )
        elif usd_h > c.max_cost_per_hour:
            out.append(
                ("policy.constraints.maxCostPerHour", f"{money(usd_h)}/h > ${c.max_cost_per_hour:g}/h")
            )
    if c.max_power_watts is not None and watts > c.max_power_watts:
        out.append(("policy.constraints.maxPowerWatts", f"{watts:,.0f} W > {c.max_power_watts:,.0f} W"))
    if c.max_carbon_grams_per_hour is not None and g_h > c.max_carbon_grams_per_hour:
        out.append(
            (
                "policy.constraints.maxCarbonGramsPerHour",
                f"{g_h:,.0f} gCO2/h > {c.max_carbon_grams_per_hour:,.0f} g/h",
            )
        )
    return out


def _evaluate_serving(ctx: _Context, options: list[HardwareOption]) -> list[Evaluated]:
    pairs = [(o, _scenario(ctx, o)) for o in options]
    scenarios = [s for _, s in pairs if s is not None]
    predictions = iter(_predict_serving(ctx.predictors, scenarios))
    out = []
    for o, s in pairs:
        if s is None:
            out.append(_unpredictable(o, o.note or "no specs to predict from"))
            continue
        p = next(predictions)
        if isinstance(p, str):
            out.append(_unpredictable(o, p))
            continue
        out.append(_serving_option(ctx, o, p))
    return out


def _serving_option(ctx: _Context, o: HardwareOption, p: ServingPrediction) -> Evaluated:
    inference = ctx.spec.inference
    assert inference is not None
    slo = inference.slo
    failures: list[tuple[str, str]] = []
    severity = 0.0
    gpus = max(o.gpus_per_replica, 1)
    w_gib = weights_gib(ctx.arch, ctx.spec.model.precision)
    if not p.fits:
        overhead_gib = llm_physics.RUNTIME_OVERHEAD_BYTES / llm_physics.GIB
        usable_gib = p.memory_capacity_gib * llm_physics.USABLE_MEMORY_FRACTION
        weights_only = w_gib / gpus + overhead_gib > usable_gib
        if weights_only:
            failures.append(
                (
                    "spec.model.precision",
                    f"weights alone need {w_gib / gpus:.1f} GiB per GPU at {ctx.spec.model.precision};"
                    f" a {o.name} ({p.memory_capacity_gib:.0f} GiB) has {usable_gib - overhead_gib:.1f} GiB"
                    " for them after the runtime's share",
                )
            )
        else:
            failures.append(
                (
                    "spec.inference.concurrency",
                    f"needs {p.memory_needed_gib:.0f} GiB per GPU for weights + KV cache of"
                    f" {inference.concurrency} requests, has {p.memory_capacity_gib:.0f} GiB"
                    f" (holds {p.max_concurrency})",
                )
            )
        severity = max(severity, p.memory_needed_gib / max(usable_gib, 1e-9))
    latency = request_latency(p.ttft_ms, p.tpot_ms, inference.output_tokens)
    thr = p.throughput_tokens_s
    rate = inference.concurrency / max(latency.p50 / 1e3, 1e-9)  # requests/s one replica completes
    util = ctx.scaling.target_utilization
    needed = 1
    if inference.requests_per_second:
        needed = ceil_div(inference.requests_per_second, rate * util)
    if slo and slo.min_throughput_tokens_per_second:
        needed = max(needed, ceil_div(slo.min_throughput_tokens_per_second, thr.p50 * util))
    replicas = max(needed, ctx.scaling.min_replicas, 1)
    if replicas > ctx.scaling.max_replicas:
        failures.append(
            (
                "spec.inference.requestsPerSecond",
                f"needs {replicas} replicas for the load;"
                f" the policy allows at most {ctx.scaling.max_replicas}",
            )
        )
        severity = max(severity, replicas / ctx.scaling.max_replicas)
    cap = o.max_replicas
    if cap is not None and replicas > cap:
        failures.append(("cluster", f"needs {replicas} replicas; the cluster's {o.nodes} node(s) hold {cap}"))
        severity = max(severity, replicas / max(cap, 1))
    checks: list[tuple[str, str, float | None, float, float]] = []
    if slo is not None:
        checks = [
            ("spec.inference.slo.ttftMs", "TTFT", slo.ttft_ms, p.ttft_ms.p50, p.ttft_ms.p90),
            ("spec.inference.slo.tpotMs", "TPOT", slo.tpot_ms, p.tpot_ms.p50, p.tpot_ms.p90),
            ("spec.inference.slo.p95LatencyMs", "latency", slo.p95_latency_ms, latency.p50, latency.p90),
        ]
    margin: bool | None = None
    for fieldname, what, limit, p50, p90 in checks:
        if limit is None:
            continue
        margin = (margin is not False) and p90 <= limit
        if p50 > limit:
            failures.append((fieldname, f"{what} {num(p50)} ms > {limit:g} ms"))
            severity = max(severity, p50 / limit)
    if slo is not None and slo.min_throughput_tokens_per_second:
        margin = (margin is not False) and replicas * thr.p10 >= slo.min_throughput_tokens_per_second
    region, region_failure = _region_for(ctx, o)
    if region_failure:
        failures.append(("spec.hardware.regions", region_failure))
        severity = max(severity, 2.0)
    if inference.requests_per_second:
        served_tps = inference.requests_per_second * inference.output_tokens / replicas
    else:
        served_tps = thr.p50 * util
    load = min(served_tps / max(thr.p50, 1e-9), 1.0)
    m = _economics(ctx, o, gpus, load, region)
    usd_h = None if m.usd_per_hour is None else m.usd_per_hour * replicas
    served_tps = max(served_tps, 1e-9)
    usd_m = None if m.usd_per_hour is None else m.usd_per_hour / (served_tps * 3600.0) * 1e6
    jpt = m.watts / served_tps
    g_m = jpt * 1e6 / 3.6e6 * m.g_per_kwh
    watts = m.watts * replicas
    failures += _constraint_failures(ctx, o.label, usd_h, watts, m.g_per_hour * replicas)
    if failures and severity == 0.0:
        severity = 1.5
    headline = f"TPOT {fmt_ms(p.tpot_ms)}"
    if slo is not None and slo.tpot_ms is None:
        if slo.ttft_ms is not None:
            headline = f"TTFT {fmt_ms(p.ttft_ms)}"
        elif slo.p95_latency_ms is not None:
            headline = f"latency {fmt_ms(latency)}"
    prediction = OptionPrediction(
        gpu=o.name,
        gpus_per_replica=o.gpus_per_replica,
        replicas=replicas,
        in_cluster=o.in_cluster,
        feasible=not failures,
        ttft_ms=_wire(p.ttft_ms),
        tpot_ms=_wire(p.tpot_ms),
        request_latency_ms=_wire(latency),
        throughput_tokens_per_second=_wire(thr),
        usd_per_hour=None if usd_h is None else _r(usd_h),
        usd_per_million_tokens=None if usd_m is None else _r(usd_m),
        watts=_r(watts),
        joules_per_token=_r(jpt),
        grams_co2_per_million_tokens=_r(g_m),
        slo_margin=margin,
        reason="; ".join(text for _, text in failures) or "; ".join(m.notes),
    )
    nan = float("nan")
    return Evaluated(
        option=o,
        prediction=prediction,
        failures=tuple(failures),
        values=(latency.p50, thr.p50, nan if usd_m is None else usd_m, jpt, g_m),
        severity=severity,
        headline=headline,
        weights_gib=w_gib,
        notes=tuple(m.notes),
    )


# --- training ---------------------------------------------------------------------------------------


def _training_tokens(ctx: _Context) -> tuple[float, int]:
    t = ctx.spec.training
    assert t is not None
    seq = t.sequence_length or 2048
    per_epoch = t.tokens if t.tokens is not None else (t.samples or 0.0) * seq
    return per_epoch * t.epochs, seq


def _evaluate_training(ctx: _Context, options: list[HardwareOption]) -> list[Evaluated]:
    tokens, seq = _training_tokens(ctx)
    t = ctx.spec.training
    assert t is not None
    jobs: list[tuple[HardwareOption, TrainingJob | None]] = []
    for o in options:
        if o.gpu is None or o.note:
            jobs.append((o, None))
            continue
        job = TrainingJob(
            model=ctx.arch,
            gpu=o.gpu,
            gpus=o.gpus_per_replica * o.pods,
            precision=ctx.spec.model.precision,
            tokens=tokens,
            sequence_length=seq,
            global_batch=t.global_batch_size,
            framework=ctx.spec.model.framework,
        )
        jobs.append((o, job))
    real = [j for _, j in jobs if j is not None]
    try:
        estimates: list[TrainingEstimate | str] = list(ctx.predictors.training(real))
    except (ValueError, ZeroDivisionError, GreenMatrixError):
        estimates = []
        for j in real:
            try:
                estimates.append(ctx.predictors.training([j])[0])
            except (ValueError, ZeroDivisionError, GreenMatrixError) as err:
                estimates.append(str(err))
    it = iter(estimates)
    out = []
    for o, job in jobs:
        if job is None:
            out.append(_unpredictable(o, o.note or "no specs to predict from"))
            continue
        est = next(it)
        if isinstance(est, str):
            out.append(_unpredictable(o, est))
            continue
        out.append(_training_option(ctx, o, job, est))
    return out


def _training_option(ctx: _Context, o: HardwareOption, job: TrainingJob, est: TrainingEstimate) -> Evaluated:
    t = ctx.spec.training
    assert t is not None and o.gpu is not None
    failures: list[tuple[str, str]] = []
    severity = 0.0
    if not est.fits:
        failures.append(
            (
                "spec.model.name",
                f"needs {est.memory_needed_gib:.0f} GiB per GPU for sharded weights, gradients and optimizer"
                f" states on {job.gpus} GPUs, has {o.gpu.memory_gib:.0f} GiB",
            )
        )
        severity = max(severity, est.memory_needed_gib / (o.gpu.memory_gib * 0.9))
    if t.global_batch_size is not None and job.gpus > t.global_batch_size:
        failures.append(
            (
                "spec.training.globalBatchSize",
                f"{job.gpus} data-parallel GPUs exceed the batch of {t.global_batch_size}",
            )
        )
        severity = max(severity, job.gpus / t.global_batch_size)
    margin: bool | None = None
    if t.deadline_hours is not None:
        margin = est.hours.p90 <= t.deadline_hours
        if est.hours.p50 > t.deadline_hours:
            failures.append(
                ("spec.training.deadlineHours", f"run {fmt_hours(est.hours)} > {t.deadline_hours:g} h")
            )
            severity = max(severity, est.hours.p50 / t.deadline_hours)
    region, region_failure = _region_for(ctx, o)
    if region_failure:
        failures.append(("spec.hardware.regions", region_failure))
    m = _economics(ctx, o, job.gpus, TRAINING_UTILIZATION, region)
    hours = est.hours.p50
    usd_run = None if m.usd_per_hour is None else m.usd_per_hour * hours
    kwh = m.watts * hours / 1000.0
    g_run = kwh * m.g_per_kwh
    failures += _constraint_failures(ctx, o.label, m.usd_per_hour, m.watts, m.g_per_hour)
    if failures and severity == 0.0:
        severity = 1.5
    tokens = job.tokens
    rate = Interval(
        tokens / (est.hours.p90 * 3600), tokens / (est.hours.p50 * 3600), tokens / (est.hours.p10 * 3600)
    )
    prediction = OptionPrediction(
        gpu=o.name,
        gpus_per_replica=o.gpus_per_replica,
        replicas=o.pods,
        in_cluster=o.in_cluster,
        feasible=not failures,
        training_hours=_wire(est.hours),
        throughput_tokens_per_second=_wire(rate),
        usd_per_hour=None if m.usd_per_hour is None else _r(m.usd_per_hour),
        usd_per_run=None if usd_run is None else _r(usd_run),
        watts=_r(m.watts),
        grams_co2_per_run=_r(g_run),
        slo_margin=margin,
        reason="; ".join(text for _, text in failures) or "; ".join(m.notes),
    )
    nan = float("nan")
    return Evaluated(
        option=o,
        prediction=prediction,
        failures=tuple(failures),
        values=(hours, rate.p50, nan if usd_run is None else usd_run, kwh, g_run),
        severity=severity,
        headline=f"run {fmt_hours(est.hours)}",
        weights_gib=weights_gib(ctx.arch, ctx.spec.model.precision),
        notes=tuple(m.notes),
    )


# --- the decision ------------------------------------------------------------------------------------


def _criteria(weights: dict[str, float]) -> list[Criterion]:
    return [Criterion(name, weights[name], benefit=(name == "throughput")) for name in CRITERIA]


def _decide(ctx: _Context, inventory: Inventory | None, evaluated: list[Evaluated]) -> Plan:
    weights = weights_of(ctx.policy)
    feasible = [e for e in evaluated if e.feasible]
    ranked: list[Evaluated] = []
    if feasible:
        ranking = topsis([e.values for e in feasible], _criteria(weights))
        scored = [
            replace(
                e,
                prediction=e.prediction.model_copy(
                    update={"score": _r(ranking.scores[i]), "pareto": ranking.pareto[i]}
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
    error = None if best is not None else _no_feasible(ctx, inventory, ranked, infeasible)
    return Plan(
        task=ctx.spec.task,
        options=tuple(e.prediction for e in ranked + infeasible),
        recommendation=recommendation,
        alternatives=alternatives,
        better_outside_cluster=better,
        advice=(),
        error=error,
        weights=weights,
        notes=(*ctx.predictors.notes, *_region_notes(ctx)),
        evaluated=tuple(ranked + infeasible),
    )


def _region_notes(ctx: _Context) -> tuple[str, ...]:
    intensity = economics.carbon_intensity(ctx.region or "")
    if not intensity.is_default:
        return ()
    where = f"region {ctx.region!r} has no grid intensity" if ctx.region else "no region given"
    return (
        f"{where}: carbon of catalog options at the world-average grid ({intensity.g_per_kwh:.0f} g/kWh)",
    )


def _resources(ctx: _Context, e: Evaluated) -> dict[str, dict[str, str]]:
    o = e.option
    if o.cpu is not None:
        cores = o.cpu.cores
        memory = math.ceil(e.weights_gib * 1.5 + HOST_MEMORY_MARGIN_GIB)
        requests = {"cpu": str(cores), "memory": f"{memory}Gi"}
        return {"requests": requests, "limits": {"memory": f"{memory}Gi"}}
    n = o.gpus_per_replica
    if ctx.spec.task == "training":
        # A worker pod stages its share of the sharded states when checkpointing, and feeds its GPUs
        # from data-loader processes.
        states_gib = TRAINING_STATE_BYTES_PER_PARAM * ctx.arch.params_total / 2**30 / max(o.pods, 1)
        memory = math.ceil(states_gib + HOST_MEMORY_MARGIN_GIB + TRAINING_HOST_GIB_PER_GPU * n)
        cores = TRAINING_CPU_CORES_PER_GPU * n
    else:
        memory = math.ceil(e.weights_gib + HOST_MEMORY_MARGIN_GIB)
        cores = CPU_CORES_PER_GPU * n
    requests = {"nvidia.com/gpu": str(n), "cpu": str(cores), "memory": f"{memory}Gi"}
    return {"requests": requests, "limits": {"nvidia.com/gpu": str(n), "memory": f"{memory}Gi"}}


def _node_selector(e: Evaluated) -> dict[str, str] | None:
    o = e.option
    if not o.in_cluster:
        return None
    if o.cpu is not None:
        selector = {CPU_VENDOR_LABEL: o.cpu.vendor.capitalize() if o.cpu.vendor != "amd" else "AMD"}
        if o.cpu.amx:
            selector[CPU_AMX_LABEL] = "true"
        return selector
    return {GPU_PRODUCT_LABEL: o.product} if o.product else None


_BETTER_WORDS = {
    "latency": ("faster", 0),
    "throughput": ("more throughput", 1),
    "cost": ("cheaper", 2),
    "energy": ("less energy", 3),
    "carbon": ("less carbon", 4),
}


def _meets_text(ctx: _Context, e: Evaluated) -> str:
    p = e.prediction
    parts = []
    if ctx.spec.task == "training":
        t = ctx.spec.training
        assert t is not None and p.training_hours is not None
        pred = f"pred {num(p.training_hours.p50)} h [{num(p.training_hours.p10)}-{num(p.training_hours.p90)}]"
        if t.deadline_hours is not None:
            return f"meets the {t.deadline_hours:g} h deadline ({pred})"
        return f"trains in {pred[5:]}"
    slo = ctx.spec.inference.slo if ctx.spec.inference else None

    def ms(i: WireInterval | None) -> str:
        assert i is not None
        return f"{num(i.p50)} ms [{num(i.p10)}-{num(i.p90)}]"

    if slo is not None:
        if slo.ttft_ms is not None:
            parts.append(f"TTFT {slo.ttft_ms:g} ms (pred {ms(p.ttft_ms)})")
        if slo.tpot_ms is not None:
            parts.append(f"TPOT {slo.tpot_ms:g} ms (pred {ms(p.tpot_ms)})")
        if slo.p95_latency_ms is not None:
            parts.append(f"latency {slo.p95_latency_ms:g} ms (pred {ms(p.request_latency_ms)})")
        if slo.min_throughput_tokens_per_second is not None:
            parts.append(f"{slo.min_throughput_tokens_per_second:g} tokens/s")
    if not parts:
        return f"predicts TPOT {ms(p.tpot_ms)}"
    return "meets " + " and ".join(parts)


def explanation(
    ctx: _Context, best: Evaluated, others: Sequence[Evaluated], weights: dict[str, float]
) -> str:
    """One line on why `best` won, e.g. "L4 x1 meets TPOT 40 ms (pred 31 ms [27-36]) at $0.21/1M
    tokens, 3.1x cheaper than the next feasible option (A100-SXM4-80GB x1)"."""
    p = best.prediction
    who = best.option.label + (
        f" ({p.replicas} replicas)" if p.replicas > 1 and ctx.spec.task == "inference" else ""
    )
    price = (
        f"{money(p.usd_per_million_tokens)}/1M tokens"
        if ctx.spec.task == "inference"
        else f"{money(p.usd_per_run)} per run"
    )
    if price.startswith("n/a"):
        price = "unknown price"
    line = f"{who} {_meets_text(ctx, best)} at {price}"
    if not others:
        return line + ", the only feasible option"
    runner = others[0]
    # Compare on the criterion the policy weighs most among those where the winner is better.
    for name in sorted(weights, key=lambda k: (-weights[k], CRITERIA.index(k))):
        if weights[name] <= 0:
            break
        word, j = _BETTER_WORDS[name]
        a, b = best.values[j], runner.values[j]
        if any(math.isnan(x) or x <= 0 for x in (a, b)):
            continue
        ratio = a / b if name == "throughput" else b / a
        if ratio > 1.05:
            return line + f", {ratio:.2g}x {word} than the next feasible option ({runner.option.label})"
    return line + f", best balance of the policy's objectives ahead of {runner.option.label}"


def _headline_latency(ctx: _Context, e: Evaluated) -> str:
    p = e.prediction
    if ctx.spec.task == "training":
        assert p.training_hours is not None
        return f"run {num(p.training_hours.p50)}h"
    slo = ctx.spec.inference.slo if ctx.spec.inference else None
    if slo is not None and slo.tpot_ms is None and slo.ttft_ms is not None and p.ttft_ms is not None:
        return f"TTFT {num(p.ttft_ms.p50)}ms"
    assert p.tpot_ms is not None
    return f"TPOT {num(p.tpot_ms.p50)}ms"


def _recommendation(
    ctx: _Context, best: Evaluated, others: Sequence[Evaluated], weights: dict[str, float]
) -> Recommendation:
    p = best.prediction
    return Recommendation(
        gpu=p.gpu,
        gpus_per_replica=p.gpus_per_replica,
        replicas=p.replicas,
        latency=_headline_latency(ctx, best),
        usd_per_million_tokens=p.usd_per_million_tokens,
        node_selector=_node_selector(best),
        resources=_resources(ctx, best),
        predicted=p,
        explanation=explanation(ctx, best, others, weights),
    )


def _no_feasible(
    ctx: _Context, inventory: Inventory | None, ranked: list[Evaluated], infeasible: list[Evaluated]
) -> NoFeasibleHardwareError:
    """Why nothing in the cluster works, and the best the catalog offers instead."""
    cluster_mode = inventory is not None
    failing = [e for e in infeasible if e.option.in_cluster] if cluster_mode else infeasible
    outside = [e for e in ranked if not e.option.in_cluster]
    # One reason per hardware kind: its closest layout's.
    per_kind: dict[str, Evaluated] = {}
    for e in failing:
        per_kind.setdefault(e.option.name, e)
    reasons = [f"{e.option.label}: {e.prediction.reason}" for e in per_kind.values()]
    fields = [{f for f, _ in e.failures} for e in failing]
    common = set.intersection(*fields) if fields else set()
    field_name = sorted(common)[0] if common else (failing[0].failures[0][0] if failing else "spec.hardware")
    if not ranked and not infeasible:
        head = "no hardware option passes the workload's and the policy's GPU restrictions"
        field_name = "spec.hardware.allowedGpus"
    elif cluster_mode and not failing:
        head = "no hardware in the cluster matches the workload's restrictions"
        field_name = "spec.hardware"
    elif cluster_mode:
        head = "no option in the cluster is feasible: " + "; ".join(reasons[:6])
    else:
        head = "no hardware option is feasible: " + "; ".join(reasons[:6])
    if outside:
        top = outside[0]
        tail = f"; best catalog option: {top.option.label} ({top.headline}, {_cost_text(ctx, top)})"
        allowed = [e.option.label for e in outside[:3]]
    elif infeasible:
        closest = min(
            (e for e in infeasible if not math.isinf(e.severity)), key=lambda e: e.severity, default=None
        )
        if closest is not None:
            tail = (
                f"; no catalog option is feasible either, the closest is {closest.option.label}"
                f" ({closest.prediction.reason})"
            )
            allowed = [closest.option.label]
        else:
            tail, allowed = "", []
    else:
        tail, allowed = "", []
    return NoFeasibleHardwareError(field_name, head + tail, allowed)


def _cost_text(ctx: _Context, e: Evaluated) -> str:
    p = e.prediction
    if ctx.spec.task == "training":
        return f"{money(p.usd_per_run)} per run"
    return f"{money(p.usd_per_million_tokens)}/1M tokens"
