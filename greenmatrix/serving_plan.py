"""Serving options: the scenario each hardware option runs, its prediction, the replicas the load
needs, what they cost and emit, and the objectives or constraints they break.
"""

from __future__ import annotations

from typing import Any

from greenmatrix.api.workloadprofile import OptionPrediction
from greenmatrix.errors import GreenMatrixError
from greenmatrix.evaluated import Evaluated, PlanContext, unpredictable, unrated_precision
from greenmatrix.explain import fmt_ms, headline_metric, num, sig_figs, wire
from greenmatrix.footprint import constraint_failures, region_for, replica_economics
from greenmatrix.learned.serving import ServingPrediction
from greenmatrix.options import HardwareOption, cpu_node_memory_gib
from greenmatrix.physics import llm as llm_physics
from greenmatrix.predictors import (
    CPUDevice,
    Predictors,
    backend_for,
    ceil_div,
    request_latency,
    weights_gib,
)
from greenmatrix.scenarios import ServingScenario


def _scenario(ctx: PlanContext, o: HardwareOption) -> ServingScenario | None:
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


def _serving_option(ctx: PlanContext, o: HardwareOption, p: ServingPrediction) -> Evaluated:
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
                    f"needs {p.memory_needed_gib:.1f} GiB per GPU for weights, runtime and the KV cache"
                    f" of {inference.concurrency} requests; {usable_gib:.1f} of its"
                    f" {p.memory_capacity_gib:.0f} GiB are usable (room for {p.max_concurrency})",
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
                f"needs {replicas} replicas for the load; {_replica_limit(ctx)}",
            )
        )
        severity = max(severity, replicas / ctx.scaling.max_replicas)
    cap = o.max_replicas
    if cap is not None and replicas > cap:
        failures.append(("cluster", f"needs {replicas} replicas; the cluster's {o.nodes} node(s) hold {cap}"))
        severity = max(severity, replicas / max(cap, 1))
    # One output token has no time between tokens: the scenario's TPOT is a step that never runs.
    tpot = p.tpot_ms if inference.output_tokens > 1 else None
    checks: list[tuple[str, str, float | None, float, float]] = []
    if slo is not None:
        checks.append(("spec.inference.slo.ttftMs", "TTFT", slo.ttft_ms, p.ttft_ms.p50, p.ttft_ms.p90))
        if tpot is not None:
            checks.append(("spec.inference.slo.tpotMs", "TPOT", slo.tpot_ms, tpot.p50, tpot.p90))
        checks.append(
            ("spec.inference.slo.p95LatencyMs", "latency", slo.p95_latency_ms, latency.p50, latency.p90)
        )
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
    region, region_failure = region_for(ctx, o)
    if region_failure:
        failures.append(("spec.hardware.regions", region_failure))
        severity = max(severity, 2.0)
    if inference.requests_per_second:
        served_tps = inference.requests_per_second * inference.output_tokens / replicas
    else:
        served_tps = thr.p50 * util
    load = min(served_tps / max(thr.p50, 1e-9), 1.0)
    m = replica_economics(ctx, o, gpus, load, region)
    usd_h = None if m.usd_per_hour is None else m.usd_per_hour * replicas
    # Only nothing served (a throughput of zero) needs a floor: a tiny rate, such as a light load
    # spread over a million replicas, must still price every token it serves.
    served_tps = served_tps if served_tps > 0 else 1e-9
    usd_m = None if m.usd_per_hour is None else m.usd_per_hour / (served_tps * 3600.0) * 1e6
    jpt = m.watts / served_tps
    g_m = jpt * 1e6 / 3.6e6 * m.g_per_kwh
    watts = m.watts * replicas
    failures += constraint_failures(ctx, o.label, usd_h, watts, m.g_per_hour * replicas)
    if failures and severity == 0.0:
        severity = 1.5
    shown = {"TPOT": tpot, "TTFT": p.ttft_ms, "latency": latency}
    metric = headline_metric(inference)
    headline = f"{metric} {fmt_ms(shown[metric])}"
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
        basis=p.explanation,
    )


def _replica_limit(ctx: PlanContext) -> str:
    """Where the replica limit comes from, so the user knows what to change."""
    limit = ctx.scaling.max_replicas
    if ctx.policy is None:
        return f"the default limit is {limit} (an OptimizationPolicy's spec.scaling.maxReplicas raises it)"
    return f"the policy's spec.scaling.maxReplicas allows at most {limit}"
