"""Hardware and precision for a running deployment: recommendations only, never applied.

The caller re-plans the workload at the load it is seen serving; this module reads that plan beside
the deployment's GPU type and layout. An Upgrade moves off a current option that misses the
objectives at that load; a Downgrade moves to one that meets them and pays, cheaper or greener as
the policy weighs it, by a margin over the whole predicted interval. A standing recommendation is
kept until its advantage falls below a smaller margin (hysteresis), so an advantage that wavers
around the threshold does not make the recommendation flap. Quantising is a separate
recommendation: when decode is memory-bound (narrower weights are fewer bytes per step) and the
plan's advice, which re-planned the workload at the narrower precision, says it pays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import Advice, OptionPrediction, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import Interval as WireInterval
from greenmatrix.catalog import hardware as catalog
from greenmatrix.interval import Interval
from greenmatrix.learned.serving import roofline
from greenmatrix.planning.capacity import replica_capacity, replicas_for, request_latency
from greenmatrix.planning.explain import fmt_ms, num
from greenmatrix.planning.planner import resolve_model
from greenmatrix.planning.result import Plan
from greenmatrix.planning.serving import serving_scenario
from greenmatrix.policy import scaling_of, weights_of

HardwareAction = Literal["Upgrade", "Downgrade", "Maintain"]
PrecisionAction = Literal["Quantize", "Maintain"]

# The policy's objectives a move can save on. At one load gCO2 per million tokens moves as gCO2 per
# hour does, so the option's per-token carbon stands for its hourly carbon.
_SAVED = ("cost", "energy", "carbon")
_NO_SAVING = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Layout:
    """Where a deployment runs: its GPU type (any name the catalog normalises), GPUs per replica and
    replicas."""

    gpu: str
    gpus_per_replica: int
    replicas: int


@dataclass(frozen=True)
class Load:
    """The load the deployment is seen serving, as the plan was made for it."""

    requests_per_second: float
    output_tokens: int
    concurrency: int


@dataclass(frozen=True)
class HardwareRule:
    """How sure a move must be before it is recommended."""

    switch_margin: float = 0.15
    """Weighted saving (fraction of the current figure, at p50) needed to start recommending a move."""
    keep_margin: float = 0.05
    """Saving below which a standing recommendation is dropped; between the two it is kept."""
    require_p90: bool = True
    """The target must meet the objectives at its pessimistic (p90) prediction too."""


@dataclass(frozen=True)
class Effect:
    """What the target option is predicted to do at the observed load (80% intervals)."""

    replicas: Interval
    usd_per_hour: Interval | None
    watts: Interval | None
    grams_co2_per_million_tokens: Interval | None
    tpot_ms: Interval | None
    ttft_ms: Interval | None


@dataclass(frozen=True)
class HardwareDecision:
    """Stay on the current GPU type, or move to another one (a recommendation)."""

    action: HardwareAction
    gpu: str
    gpus_per_replica: int
    replicas: int
    reason: str
    saving: float | None = None
    """Weighted saving of the target over the current option at p50 (negative: it costs more)."""
    effect: Effect | None = None
    """The predicted effect of the recommended option (for Maintain, the current one) at the load."""


@dataclass(frozen=True)
class PrecisionDecision:
    """Serve at a narrower precision, or keep the current one (a recommendation)."""

    action: PrecisionAction
    reason: str
    advice: Advice | None = None


@dataclass(frozen=True)
class _Judged:
    """One option at the observed load, and its weighted saving over the current one."""

    option: OptionPrediction
    effect: Effect
    savings: tuple[float, float, float] | None  # at p10, p50, p90 of both; None: nothing to compare

    @property
    def saving(self) -> float | None:
        return None if self.savings is None else self.savings[1]

    @property
    def whole_interval_better(self) -> bool:
        return self.savings is not None and min(self.savings) > 0


def _interval(w: WireInterval | None) -> Interval | None:
    return None if w is None else Interval(w.p10, w.p50, w.p90)


def _label(gpu: str, gpus_per_replica: int) -> str:
    return gpu if gpus_per_replica == 0 else f"{gpu} x{gpus_per_replica}"


def _same_gpu(a: str, b: str) -> bool:
    return (catalog.normalize_gpu_name(a) or a) == (catalog.normalize_gpu_name(b) or b)


def _effect(o: OptionPrediction, load: Load, policy: OptimizationPolicySpec | None) -> Effect:
    """Replicas the load needs across the option's latency interval, and what they cost and draw.

    The median count is the plan's own; the slow end of the latency interval needs more replicas,
    the fast end fewer. Each extra replica is taken to cost, draw and emit what a planned one does
    (at one load, idle replicas raise the carbon per token as they raise the carbon per hour)."""
    ttft, tpot = _interval(o.ttft_ms), _interval(o.tpot_ms)
    n = o.replicas
    replicas = Interval(n, n, n)
    if ttft is not None:
        latency = request_latency(ttft, tpot or Interval(0.0, 0.0, 0.0), load.output_tokens)
        capacity = replica_capacity(load.concurrency, latency)
        scaling = scaling_of(policy)

        def needed(rate: float) -> int:
            return max(replicas_for(load.requests_per_second, rate, scaling.target_utilization), 1)

        floor = max(scaling.min_replicas, 1)
        replicas = Interval(min(max(needed(capacity.p90), floor), n), n, max(needed(capacity.p10), floor, n))

    per_replica = replicas.scaled(1.0 / max(n, 1))

    def total(figure: float | None) -> Interval | None:
        return None if figure is None else per_replica.scaled(figure)

    carbon = total(o.grams_co2_per_million_tokens)
    return Effect(replicas, total(o.usd_per_hour), total(o.watts), carbon, tpot, ttft)


def _totals(e: Effect) -> dict[str, Interval]:
    """The figures a move can save, keyed by the policy objective that weighs each."""
    figures = {"cost": e.usd_per_hour, "energy": e.watts, "carbon": e.grams_co2_per_million_tokens}
    return {k: v for k, v in figures.items() if v is not None}


def _savings(
    target: dict[str, Interval], current: dict[str, Interval], weights: dict[str, float]
) -> tuple[float, float, float] | None:
    """Weighted relative saving of target over current at each of p10, p50, p90 (paired quantiles)."""
    terms = [(w, target[k], current[k]) for k, w in weights.items() if k in target and k in current]
    terms = [(w, a, b) for w, a, b in terms if b.p10 > 0]
    total = sum(w for w, _, _ in terms)
    if not terms or total <= 0:
        return None

    def at(q: Callable[[Interval], float]) -> float:
        return sum(w * (q(b) - q(a)) / q(b) for w, a, b in terms) / total

    return at(lambda i: i.p10), at(lambda i: i.p50), at(lambda i: i.p90)


def _saving_weights(policy: OptimizationPolicySpec | None) -> dict[str, float]:
    """The policy's weights on what a move can save; cost alone when it weighs none of them."""
    w = weights_of(policy)
    picked = {k: w[k] for k in _SAVED if w[k] > 0}
    return picked or {"cost": 1.0}


def _effect_text(e: Effect) -> str:
    """E.g. "replicas 2 [2-3], $6.44 [6.44-9.66]/h, TPOT 15.7 ms [12.6-25.2], 962 W [962-1,443]"."""

    def iv(x: Interval, unit: str = "") -> str:
        return f"{num(x.p50)}{unit} [{num(x.p10)}-{num(x.p90)}]"

    parts = [f"replicas {iv(e.replicas)}"]
    if e.usd_per_hour is not None:
        parts.append(f"${iv(e.usd_per_hour)}/h")
    if e.tpot_ms is not None:
        parts.append(f"TPOT {fmt_ms(e.tpot_ms)}")
    if e.watts is not None:
        parts.append(iv(e.watts, " W"))
    return ", ".join(parts)


def _decide(action: HardwareAction, j: _Judged, why: str, current: OptionPrediction) -> HardwareDecision:
    o = j.option
    if j.saving is None:
        saving = ""
    elif j.saving < 0:
        saving = f" (costs {-j.saving:.0%} more, weighted)"
    else:
        saving = f" (saves {j.saving:.0%}, weighted)"
    return HardwareDecision(
        action=action,
        gpu=o.gpu,
        gpus_per_replica=o.gpus_per_replica,
        replicas=o.replicas,
        reason=(
            f"{why}: {_label(o.gpu, o.gpus_per_replica)} instead of"
            f" {_label(current.gpu, current.gpus_per_replica)}{saving}; predicted {_effect_text(j.effect)}"
        ),
        saving=j.saving,
        effect=j.effect,
    )


def _meets(o: OptionPrediction, rule: HardwareRule) -> bool:
    return o.feasible and not (rule.require_p90 and o.slo_margin is False)


def _maintain(current: _Judged | Layout, why: str) -> HardwareDecision:
    if isinstance(current, Layout):
        return HardwareDecision("Maintain", current.gpu, current.gpus_per_replica, current.replicas, why)
    o = current.option
    return HardwareDecision(
        "Maintain", o.gpu, o.gpus_per_replica, o.replicas, why, saving=0.0, effect=current.effect
    )


def _is_target(previous: HardwareDecision | None, actions: tuple[str, ...], o: OptionPrediction) -> bool:
    """Whether `o` is what the previous decision recommended moving to with one of `actions`."""
    return (
        previous is not None
        and previous.action in actions
        and previous.gpus_per_replica == o.gpus_per_replica
        and _same_gpu(previous.gpu, o.gpu)
    )


def hardware_decision(
    plan: Plan,
    current: Layout,
    load: Load,
    policy: OptimizationPolicySpec | None = None,
    *,
    previous: HardwareDecision | None = None,
    slo_missed: bool = False,
    rule: HardwareRule = HardwareRule(),
) -> HardwareDecision:
    """Upgrade, Downgrade or Maintain the deployment's GPU type, from a plan made at the observed load.

    `previous` is the last decision, for the hysteresis; `slo_missed` says the deployment is seen
    missing its objectives even where the plan predicts it meets them (an Upgrade is then due)."""
    here = next(
        (
            o
            for o in plan.options
            if o.gpus_per_replica == current.gpus_per_replica and _same_gpu(o.gpu, current.gpu)
        ),
        None,
    )
    if here is None:
        where = _label(current.gpu, current.gpus_per_replica)
        return _maintain(current, f"{where} is not among the plan's options")
    weights = _saving_weights(policy)
    now = _Judged(here, _effect(here, load, policy), _NO_SAVING)

    def judged(o: OptionPrediction) -> _Judged:
        e = _effect(o, load, policy)
        return _Judged(o, e, _savings(_totals(e), _totals(now.effect), weights))

    # A move is only to hardware the cluster has, unless the deployment itself runs outside it.
    candidates = [
        judged(o)
        for o in plan.options
        if o is not here and _meets(o, rule) and (o.in_cluster or not here.in_cluster)
    ]
    # Once an Upgrade stands, a current option back within its objectives only at p50 still counts
    # as missing them: an SLO hovering at the line would otherwise flip the recommendation each time.
    upgrading = previous is not None and previous.action == "Upgrade" and here.slo_margin is False
    if not here.feasible or slo_missed or upgrading:
        return _upgrade(now, candidates, previous, slo_missed)
    return _downgrade(now, candidates, previous, rule)


def _upgrade(
    now: _Judged, candidates: list[_Judged], previous: HardwareDecision | None, seen: bool
) -> HardwareDecision:
    """The current option misses the objectives: the policy's best option that meets them (the
    plan's order), or the one already recommended (to upgrade or downgrade) while it still does."""
    here = now.option
    if seen:
        why = "the deployment is seen missing its objectives"
    elif here.feasible:
        why = "at the observed load the current option meets the objectives only at its median prediction"
    else:
        why = f"at the observed load: {here.reason}"
    if not candidates:
        return _maintain(now, f"{why}; no other GPU type meets the objectives at this load either")
    kept = next((j for j in candidates if _is_target(previous, ("Upgrade", "Downgrade"), j.option)), None)
    return _decide("Upgrade", kept or candidates[0], why, here)


def _downgrade(
    now: _Judged, candidates: list[_Judged], previous: HardwareDecision | None, rule: HardwareRule
) -> HardwareDecision:
    """The current option meets the objectives: move only for a saving over the whole interval of at
    least the switch margin, and keep a standing recommendation while it saves the keep margin."""
    comparable = sorted(
        (j for j in candidates if j.saving is not None), key=lambda j: j.saving or 0.0, reverse=True
    )
    best = next(
        (j for j in comparable if j.whole_interval_better and (j.saving or 0.0) >= rule.switch_margin), None
    )
    kept = next((j for j in comparable if _is_target(previous, ("Downgrade",), j.option)), None)
    # A newer target must beat the standing one by the switch margin too, or the two would flap.
    if (
        kept is not None
        and (kept.saving or 0.0) >= rule.keep_margin
        and (best is None or (best.saving or 0.0) < (kept.saving or 0.0) + rule.switch_margin)
    ):
        why = f"still meets the objectives and saves at least the {rule.keep_margin:.0%} keep margin"
        return _decide("Downgrade", kept, why, now.option)
    if best is not None:
        why = f"meets the objectives and saves at least {rule.switch_margin:.0%}"
        return _decide("Downgrade", best, why, now.option)
    if not comparable:
        return _maintain(
            now, "meets the objectives; no other GPU type that does can be compared on price or power"
        )
    top = comparable[0]
    saving = top.saving or 0.0
    if saving < 0:
        shortfall = f"would cost {-saving:.0%} more (weighted)"
    elif saving < rule.switch_margin:
        shortfall = f"saves {saving:.0%}, below the {rule.switch_margin:.0%} margin"
    else:
        shortfall = f"saves {saving:.0%} at p50 but not over the whole predicted interval"
    other = _label(top.option.gpu, top.option.gpus_per_replica)
    return _maintain(now, f"meets the objectives; the best other option, {other}, {shortfall}")


def decode_bound(spec: WorkloadProfileSpec, gpu: str, gpus_per_replica: int) -> str | None:
    """What bounds a decode step of the spec's serving on this GPU layout ("memory" or "compute"), by
    the physics; None when it cannot say (training, CPU, a GPU the catalog does not know)."""
    inference = spec.inference
    device = catalog.try_gpu(gpu)
    if inference is None or device is None or gpus_per_replica < 1:
        return None
    return roofline(serving_scenario(spec, resolve_model(spec), device, gpus_per_replica)).decode.bound


def precision_decision(plan: Plan, decode: str | None) -> PrecisionDecision:
    """Quantize when decode is memory-bound (`decode`, as `decode_bound` gives it) and the plan's
    advice, re-planned at the narrower precision, says it pays; the mildest such format first."""
    advice = [a for a in plan.advice if a.action == "Quantize"]
    if decode != "memory":
        bound = "unknown" if decode is None else f"{decode}-bound"
        return PrecisionDecision("Maintain", f"decode is {bound}: narrower weights would not shorten it")
    if not advice:
        return PrecisionDecision("Maintain", "decode is memory-bound, but no narrower precision pays here")
    first = advice[0]
    others = "; ".join(a.detail for a in advice[1:])
    return PrecisionDecision(
        "Quantize",
        f"decode is memory-bound and the plan predicts {first.predicted_gain}: {first.detail}"
        + (f" (also advised: {others})" if others else ""),
        first,
    )
