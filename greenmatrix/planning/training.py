"""Training options: the layouts a job can span (GPUs per pod x pods), its predicted run time, and
what the run costs and emits against the deadline and the policy's constraints.
"""

from __future__ import annotations

from dataclasses import replace

from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.api.workloadprofile import OptionPrediction
from greenmatrix.economics import replica_economics
from greenmatrix.errors import GreenMatrixError
from greenmatrix.interval import Interval
from greenmatrix.physics.llm import GIB, RUNTIME_OVERHEAD_BYTES, USABLE_MEMORY_FRACTION
from greenmatrix.planning.context import Evaluated, PlanContext, unpredictable, unrated_precision
from greenmatrix.planning.explain import fmt_hours, sig_figs, wire
from greenmatrix.planning.footprint import constraint_failures, region_for
from greenmatrix.planning.options import CATALOG_MAX_NODES, HardwareOption
from greenmatrix.predict.predictors import weights_gib
from greenmatrix.predict.roofline import TRAINING_STATE_BYTES_PER_PARAM, TrainingEstimate
from greenmatrix.scenarios import TrainingJob

# Training keeps the GPUs busy: power is taken at full utilisation.
TRAINING_UTILIZATION = 1.0
# A best option slower than this is more likely a slip in tokens, samples or epochs than a plan.
IMPLAUSIBLE_RUN_HOURS = 365 * 24.0


def training_layouts(options: list[HardwareOption]) -> list[HardwareOption]:
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


def training_notes(ctx: PlanContext, best: Evaluated | None) -> tuple[str, ...]:
    """What a training plan's reader should know beyond its options: bounds it ignores, a run too
    long to be meant."""
    notes: list[str] = []
    scaling = ctx.policy.scaling if ctx.policy is not None else None
    default = Scaling()
    # An API server fills in the defaults, so there bounds that differ from them are the ones set.
    if scaling is not None and (
        {"min_replicas", "max_replicas"} & scaling.model_fields_set
        or (scaling.min_replicas, scaling.max_replicas) != (default.min_replicas, default.max_replicas)
    ):
        notes.append(
            "the policy's scaling.minReplicas/maxReplicas bound serving replicas only; a training job's"
            " replicas are its pods (nodes), chosen with their GPUs by predicted run time and cost"
        )
    hours = best.prediction.training_hours if best is not None else None
    if hours is not None and hours.p50 > IMPLAUSIBLE_RUN_HOURS:
        t = ctx.spec.training
        amount = "spec.training.tokens" if t is None or t.tokens is not None else "spec.training.samples"
        years = hours.p50 / IMPLAUSIBLE_RUN_HOURS
        notes.append(
            f"the best option trains for {years:,.{1 if years < 10 else 0}f} years ({hours.p50:,.0f} h);"
            f" check {amount} and spec.training.epochs"
        )
    return tuple(notes)


def _training_tokens(ctx: PlanContext) -> tuple[float, int]:
    t = ctx.spec.training
    assert t is not None
    seq = t.sequence_length or 2048
    per_epoch = t.tokens if t.tokens is not None else (t.samples or 0.0) * seq
    return per_epoch * t.epochs, seq


def evaluate_training(ctx: PlanContext, options: list[HardwareOption]) -> list[Evaluated]:
    """Every layout judged for the spec's training run, in the order given; one prediction batch."""
    tokens, seq = _training_tokens(ctx)
    t = ctx.spec.training
    assert t is not None
    # Each option with its job, or already judged when nothing can be predicted for it.
    jobs: list[tuple[HardwareOption, TrainingJob | Evaluated]] = []
    for o in options:
        if o.gpu is None or o.note:
            jobs.append((o, unpredictable(o, o.note or "no specs to predict from")))
            continue
        gap = unrated_precision(o, ctx.spec.model.precision)
        if gap is not None:
            jobs.append((o, gap))
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
    real = [j for _, j in jobs if isinstance(j, TrainingJob)]
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
        if isinstance(job, Evaluated):
            out.append(job)
            continue
        est = next(it)
        if isinstance(est, str):
            out.append(unpredictable(o, est))
            continue
        out.append(_training_option(ctx, o, job, est))
    return out


def _memory_failure(
    ctx: PlanContext, job: TrainingJob, est: TrainingEstimate, capacity_gib: float
) -> tuple[str, str]:
    """(field, why) for a layout the job does not fit, blaming whichever part of the memory dominates.

    States shrink with more GPUs, activations do not: when activations dominate, no layout fixes
    it and the sequence length is the field to change.
    """
    states = TRAINING_STATE_BYTES_PER_PARAM * job.model.params_total / job.gpus / GIB
    runtime = RUNTIME_OVERHEAD_BYTES / GIB
    # The predictor's total is the truth; what the states and runtime leave is activations.
    activations = max(0.0, est.memory_needed_gib - states - runtime)
    if activations > states:
        field = "spec.training.sequenceLength"
    elif ctx.spec.model.name is not None:
        field = "spec.model.name"
    else:
        field = "spec.model.architecture.parameters"
    return (
        field,
        f"needs {est.memory_needed_gib:.0f} GiB per GPU ({states:.0f} for weights, gradients and"
        f" optimizer states sharded over {job.gpus} GPUs, {activations:.0f} for activations at"
        f" sequenceLength {job.sequence_length}, {runtime:.1f} runtime);"
        f" {capacity_gib * USABLE_MEMORY_FRACTION:.0f} of its {capacity_gib:.0f} GiB are usable",
    )


def _training_option(
    ctx: PlanContext, o: HardwareOption, job: TrainingJob, est: TrainingEstimate
) -> Evaluated:
    t = ctx.spec.training
    assert t is not None and o.gpu is not None
    failures: list[tuple[str, str]] = []
    severity = 0.0
    if not est.fits:
        failures.append(_memory_failure(ctx, job, est, o.gpu.memory_gib))
        severity = max(severity, est.memory_needed_gib / (o.gpu.memory_gib * USABLE_MEMORY_FRACTION))
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
    region, region_failure = region_for(ctx, o)
    if region_failure:
        failures.append(("spec.hardware.regions", region_failure))
    m = replica_economics(o.device, job.gpus, TRAINING_UTILIZATION, region)
    hours = est.hours.p50
    usd_run = None if m.usd_per_hour is None else m.usd_per_hour * hours
    kwh = m.watts * hours / 1000.0
    g_run = kwh * m.g_per_kwh
    failures += constraint_failures(ctx, o.label, m.usd_per_hour, m.watts, m.g_per_hour)
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
        training_hours=wire(est.hours),
        throughput_tokens_per_second=wire(rate),
        usd_per_hour=None if m.usd_per_hour is None else sig_figs(m.usd_per_hour),
        usd_per_run=None if usd_run is None else sig_figs(usd_run),
        watts=sig_figs(m.watts),
        grams_co2_per_run=sig_figs(g_run),
        grams_co2_per_hour=sig_figs(m.g_per_hour),
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
        basis=est.explanation,
    )
