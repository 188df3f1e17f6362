"""Serving options: the scenario each hardware option runs, its prediction, the replicas the load
needs, what they cost and emit, and the objectives or constraints they break.
"""

from __future__ import annotations

from typing import Any

from greenmatrix.api.workloadprofile import OptionPrediction, WorkloadProfileSpec
from greenmatrix.catalog.llms import ModelArch
from greenmatrix.economics import replica_economics
from greenmatrix.errors import GreenMatrixError
from greenmatrix.interval import Interval
from greenmatrix.learned.serving import ServingPrediction
from greenmatrix.physics import llm as llm_physics
from greenmatrix.planning.capacity import replica_capacity, replicas_for, request_latency
from greenmatrix.planning.context import Evaluated, PlanContext, unpredictable, unrated_precision
from greenmatrix.planning.explain import fmt_ms, headline_metric, num, sig_figs, wire
from greenmatrix.planning.footprint import constraint_failures, region_for
from greenmatrix.planning.options import HardwareOption, cpu_node_memory_gib
from greenmatrix.predict.predictors import Predictors, backend_for, weights_gib
from greenmatrix.predict.roofline import CPUDevice
from greenmatrix.scenarios import ServingScenario

# (field, why, severity): severity is how far from feasible (a ratio), for ordering the infeasible.
_Failure = tuple[str, str, float]


def serving_scenario(spec: WorkloadProfileSpec, arch: ModelArch, device: Any, tp: int) -> ServingScenario:
    """The serving scenario a spec asks of the predictors on one device at tensor-parallel degree `tp`."""
    inference = spec.inference
    assert inference is not None
    m = spec.model
    return ServingScenario(
        model=arch,
        gpu=device,
        precision=m.precision,
        backend=backend_for(m.framework),
        input_tokens=inference.input_tokens,
        output_tokens=inference.output_tokens,
        concurrency=inference.concurrency,
        tp=tp,
        kv_precision=m.kv_cache_precision,
    )


def _scenario(ctx: PlanContext, o: HardwareOption) -> ServingScenario | None:
    if o.cpu is not None:
        return serving_scenario(ctx.spec, ctx.arch, CPUDevice(o.cpu, cpu_node_memory_gib(o.cpu)), 1)
    if o.gpu is not None and not o.note:
        return serving_scenario(ctx.spec, ctx.arch, o.gpu, o.gpus_per_replica)
    return None


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


def evaluate_serving(ctx: PlanContext, options: list[HardwareOption]) -> list[Evaluated]:
    """Every option judged for serving the spec, in the order given; one prediction batch."""
    gaps = [unrated_precision(o, ctx.spec.model.precision) for o in options]
    pairs = [(o, gap, None if gap else _scenario(ctx, o)) for o, gap in zip(options, gaps, strict=True)]
    scenarios = [s for _, _, s in pairs if s is not None]
    predictions = iter(_predict_serving(ctx.predictors, scenarios))
    out = []
    for o, gap, s in pairs:
        if s is None:
            out.append(gap or unpredictable(o, o.note or "no specs to predict from"))
            continue
        p = next(predictions)
        if isinstance(p, str):
            out.append(unpredictable(o, p))
            continue
        out.append(_serving_option(ctx, o, p))
    return out


def _memory_failure(ctx: PlanContext, o: HardwareOption, p: ServingPrediction) -> tuple[str, str, float]:
    """(field, why, severity) for an option whose memory the workload does not fit."""
    inference = ctx.spec.inference
    assert inference is not None
    gpus = max(o.gpus_per_replica, 1)
    w_gib = weights_gib(ctx.arch, ctx.spec.model.precision)
    overhead_gib = llm_physics.RUNTIME_OVERHEAD_BYTES / llm_physics.GIB
    usable_gib = p.memory_capacity_gib * llm_physics.USABLE_MEMORY_FRACTION
    severity = p.memory_needed_gib / max(usable_gib, 1e-9)
    if w_gib / gpus + overhead_gib > usable_gib:
        return (
            "spec.model.precision",
            f"weights alone need {w_gib / gpus:.1f} GiB per GPU at {ctx.spec.model.precision};"
            f" a {o.name} ({p.memory_capacity_gib:.0f} GiB) has {usable_gib - overhead_gib:.1f} GiB"
            " for them after the runtime's share",
            severity,
        )
    return (
        "spec.inference.concurrency",
        f"needs {p.memory_needed_gib:.1f} GiB per GPU for weights, runtime and the KV cache"
        f" of {inference.concurrency} requests; {usable_gib:.1f} of its"
        f" {p.memory_capacity_gib:.0f} GiB are usable (room for {p.max_concurrency})",
        severity,
    )


def _replicas(
    ctx: PlanContext, o: HardwareOption, capacity: Interval, thr: Interval
) -> tuple[int, list[_Failure]]:
    """Replicas for the expected load and throughput objective, and the limits that count breaks."""
    inference = ctx.spec.inference
    assert inference is not None
    slo = inference.slo
    util = ctx.scaling.target_utilization
    needed = 1
    if inference.requests_per_second:
        needed = replicas_for(inference.requests_per_second, capacity.p50, util)
    if slo and slo.min_throughput_tokens_per_second:
        needed = max(needed, replicas_for(slo.min_throughput_tokens_per_second, thr.p50, util))
    replicas = max(needed, ctx.scaling.min_replicas, 1)
    failures: list[_Failure] = []
    if replicas > ctx.scaling.max_replicas:
        why = f"needs {replicas} replicas for the load; {_replica_limit(ctx)}"
        failures.append(("spec.inference.requestsPerSecond", why, replicas / ctx.scaling.max_replicas))
    cap = o.max_replicas
    if cap is not None and replicas > cap:
        why = f"needs {replicas} replicas; the cluster's {o.nodes} node(s) hold {cap}"
        failures.append(("cluster", why, replicas / max(cap, 1)))
    return replicas, failures


def _objective_failures(
    ctx: PlanContext, p: ServingPrediction, tpot: Interval | None, latency: Interval, replicas: int
) -> tuple[list[_Failure], bool | None]:
    """The SLOs the p50 prediction breaks, and whether all of them also hold at p90 (the margin)."""
    inference = ctx.spec.inference
    assert inference is not None
    slo = inference.slo
    if slo is None:
        return [], None
    checks: list[tuple[str, str, float | None, Interval]] = [
        ("spec.inference.slo.ttftMs", "TTFT", slo.ttft_ms, p.ttft_ms)
    ]
    if tpot is not None:
        checks.append(("spec.inference.slo.tpotMs", "TPOT", slo.tpot_ms, tpot))
    checks.append(("spec.inference.slo.p95LatencyMs", "latency", slo.p95_latency_ms, latency))
    failures: list[_Failure] = []
    margin: bool | None = None
    for fieldname, what, limit, value in checks:
        if limit is None:
            continue
        margin = (margin is not False) and value.p90 <= limit
        if value.p50 > limit:
            failures.append((fieldname, f"{what} {num(value.p50)} ms > {limit:g} ms", value.p50 / limit))
    if slo.min_throughput_tokens_per_second:
        floor = slo.min_throughput_tokens_per_second
        margin = (margin is not False) and replicas * p.throughput_tokens_s.p10 >= floor
    return failures, margin


def _serving_option(ctx: PlanContext, o: HardwareOption, p: ServingPrediction) -> Evaluated:
    inference = ctx.spec.inference
    assert inference is not None
    failures: list[_Failure] = [_memory_failure(ctx, o, p)] if not p.fits else []
    latency = request_latency(p.ttft_ms, p.tpot_ms, inference.output_tokens)
    thr = p.throughput_tokens_s
    replicas, load_failures = _replicas(ctx, o, replica_capacity(inference.concurrency, latency), thr)
    failures += load_failures
    # One output token has no time between tokens: the scenario's TPOT is a step that never runs.
    tpot = p.tpot_ms if inference.output_tokens > 1 else None
    slo_failures, margin = _objective_failures(ctx, p, tpot, latency, replicas)
    failures += slo_failures
    region, region_failure = region_for(ctx, o)
    if region_failure:
        failures.append(("spec.hardware.regions", region_failure, 2.0))
    if inference.requests_per_second:
        served_tps = inference.requests_per_second * inference.output_tokens / replicas
    else:
        served_tps = thr.p50 * ctx.scaling.target_utilization
    load = min(served_tps / max(thr.p50, 1e-9), 1.0)
    m = replica_economics(o.device, max(o.gpus_per_replica, 1), load, region)
    usd_h = None if m.usd_per_hour is None else m.usd_per_hour * replicas
    # Only nothing served (a throughput of zero) needs a floor: a tiny rate, such as a light load
    # spread over a million replicas, must still price every token it serves.
    usd_m, jpt, g_m = m.per_million_tokens(served_tps if served_tps > 0 else 1e-9)
    watts = m.watts * replicas
    failures += [
        (f, why, 0.0) for f, why in constraint_failures(ctx, o.label, usd_h, watts, m.g_per_hour * replicas)
    ]
    severity = max((s for _, _, s in failures), default=0.0)
    if failures and severity == 0.0:
        severity = 1.5
    shown = {"TPOT": tpot, "TTFT": p.ttft_ms, "latency": latency}
    metric = headline_metric(inference)
    prediction = OptionPrediction(
        gpu=o.name,
        gpus_per_replica=o.gpus_per_replica,
        replicas=replicas,
        in_cluster=o.in_cluster,
        feasible=not failures,
        ttft_ms=wire(p.ttft_ms),
        tpot_ms=None if tpot is None else wire(tpot),
        request_latency_ms=wire(latency),
        throughput_tokens_per_second=wire(thr),
        usd_per_hour=None if usd_h is None else sig_figs(usd_h),
        usd_per_million_tokens=None if usd_m is None else sig_figs(usd_m),
        watts=sig_figs(watts),
        joules_per_token=sig_figs(jpt),
        grams_co2_per_million_tokens=sig_figs(g_m),
        grams_co2_per_hour=sig_figs(m.g_per_hour * replicas),
        slo_margin=margin,
        reason="; ".join(why for _, why, _ in failures) or "; ".join(m.notes),
    )
    nan = float("nan")
    return Evaluated(
        option=o,
        prediction=prediction,
        failures=tuple((f, why) for f, why, _ in failures),
        values=(latency.p50, thr.p50, nan if usd_m is None else usd_m, jpt, g_m),
        severity=severity,
        headline=f"{metric} {fmt_ms(shown[metric])}",
        weights_gib=weights_gib(ctx.arch, ctx.spec.model.precision),
        notes=tuple(m.notes),
        basis=p.explanation,
    )


def _replica_limit(ctx: PlanContext) -> str:
    """Where the replica limit comes from, so the user knows what to change."""
    limit = ctx.scaling.max_replicas
    if ctx.policy is None:
        return f"the default limit is {limit} (an OptimizationPolicy's spec.scaling.maxReplicas raises it)"
    return f"the policy's spec.scaling.maxReplicas allows at most {limit}"
