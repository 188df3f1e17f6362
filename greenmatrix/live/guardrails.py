"""The policy's scaling guardrails, applied after the estimate as small steps, one knob each.

Each step takes the replicas the steps before it allow and may limit them, saying so; the chain reads
as the policy does: keep the highest recommendation of the stabilisation window before scaling in,
move at most the step limits, not within the cooldown of the last action, stay within the bounds,
nothing while paused. The memory the steps need (the last action's time, the recent
recommendations) is a value passed in and handed back, never kept here.

With the current replicas within the bounds and the policy not paused, the result never leaves the
bounds, never moves more than a step limit, never acts twice within a cooldown and never goes below
the lowest of the current replicas and the highest recommendation of the stabilisation window: each
step after the first only moves its input towards the current replicas or into the bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from greenmatrix.api.meta import duration_seconds
from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.interval import Interval
from greenmatrix.live.decide import Quantiles, ReplicaDecision, action_between, predicted_utilization


@dataclass(frozen=True)
class GuardrailState:
    """What the guardrails remember between evaluations of one workload."""

    last_action_at: float | None = None
    """When the replicas last changed (epoch seconds), None before the first action."""
    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, desired replicas) of the recent estimates, oldest first."""


@dataclass(frozen=True)
class Limit:
    """One step's verdict: `limited` when it changed the replicas it was given, and why."""

    step: str
    limited: bool
    reason: str


@dataclass(frozen=True)
class Proposal:
    """The replicas the steps so far allow, at `now`, with each step's verdict."""

    now: float
    current: int
    desired: int
    replicas: int
    limits: tuple[Limit, ...] = field(default=())

    def judged(self, step: str, replicas: int, reason: str) -> Proposal:
        """This proposal after `step`: limited when it moved the replicas."""
        limited = replicas != self.replicas
        return replace(self, replicas=replicas, limits=(*self.limits, Limit(step, limited, reason)))

    def clamped(self, step: str, low: int, high: int, reasons: tuple[str, str, str]) -> Proposal:
        """This proposal kept within [low, high]; `reasons` say it was raised, lowered, or inside."""
        raised, lowered, inside = reasons
        replicas = min(max(self.replicas, low), high)
        reason = raised if replicas > self.replicas else lowered if replicas < self.replicas else inside
        return self.judged(step, replicas, reason)


class Guardrail(Protocol):
    def __call__(self, proposal: Proposal, state: GuardrailState) -> Proposal: ...


@dataclass(frozen=True)
class Stabilization:
    """Scale in only to the highest recommendation of the last `seconds` (as the HPA's window)."""

    seconds: float

    def __call__(self, proposal: Proposal, state: GuardrailState) -> Proposal:
        recent = [n for at, n in state.recommendations if at > proposal.now - self.seconds]
        highest = max([*recent, proposal.desired])
        if proposal.replicas >= proposal.current or highest <= proposal.replicas:
            return proposal.judged("Stabilization", proposal.replicas, "no scale-in held back")
        replicas = min(highest, proposal.current)
        reason = f"highest recommendation of the last {self.seconds:g}s is {highest}"
        return proposal.judged("Stabilization", replicas, reason)


@dataclass(frozen=True)
class StepLimits:
    """At most `up` replicas added and `down` removed in one action."""

    up: int
    down: int

    def __call__(self, proposal: Proposal, state: GuardrailState) -> Proposal:
        removed, added = f"at most {self.down} removed per action", f"at most {self.up} added per action"
        low, high = proposal.current - self.down, proposal.current + self.up
        return proposal.clamped("StepLimits", low, high, (removed, added, "within the step limits"))


@dataclass(frozen=True)
class Cooldown:
    """No action within `seconds` of the last one."""

    seconds: float

    def __call__(self, proposal: Proposal, state: GuardrailState) -> Proposal:
        last = state.last_action_at
        if last is None or proposal.now - last >= self.seconds:
            return proposal.judged("Cooldown", proposal.replicas, "no recent action")
        wait = self.seconds - (proposal.now - last)
        reason = f"last action {proposal.now - last:g}s ago, cooldown {self.seconds:g}s ({wait:g}s left)"
        return proposal.judged("Cooldown", proposal.current, reason)


@dataclass(frozen=True)
class Bounds:
    """Between `minimum` and `maximum` replicas, whatever the steps before allowed."""

    minimum: int
    maximum: int

    def __call__(self, proposal: Proposal, state: GuardrailState) -> Proposal:
        said = (f"minReplicas is {self.minimum}", f"maxReplicas is {self.maximum}", "within the bounds")
        return proposal.clamped("Bounds", self.minimum, self.maximum, said)


@dataclass(frozen=True)
class Pause:
    """While paused, the replicas stay as they are (recommendations keep being made)."""

    paused: bool

    def __call__(self, proposal: Proposal, state: GuardrailState) -> Proposal:
        if not self.paused:
            return proposal.judged("Pause", proposal.replicas, "not paused")
        return proposal.judged("Pause", proposal.current, "the policy is paused")


@dataclass(frozen=True)
class Guarded:
    """The replicas after the guardrails, each step's verdict, and the state to pass next time."""

    replicas: int
    limits: tuple[Limit, ...]
    state: GuardrailState

    @property
    def limited(self) -> bool:
        return any(limit.limited for limit in self.limits)

    @property
    def limiting(self) -> tuple[Limit, ...]:
        """The steps that changed the replicas: what a `ScalingLimited` condition reports."""
        return tuple(limit for limit in self.limits if limit.limited)


@dataclass(frozen=True)
class Guardrails:
    """Steps applied in order; `memory` seconds of recommendations are kept for them."""

    steps: Sequence[Guardrail]
    memory: float

    def apply(self, desired: int, current: int, state: GuardrailState, now: float) -> Guarded:
        """Cap the estimate `desired` given the `current` replicas, and remember it."""
        proposal = Proposal(now=now, current=current, desired=desired, replicas=desired)
        for step in self.steps:
            proposal = step(proposal, state)
        kept = tuple((at, n) for at, n in (*state.recommendations, (now, desired)) if at > now - self.memory)
        acted = now if proposal.replicas != current else state.last_action_at
        return Guarded(proposal.replicas, proposal.limits, GuardrailState(acted, kept))


def guardrails_of(scaling: Scaling, *, paused: bool = False) -> Guardrails:
    """The policy's guardrails in the order they apply (`paused` is `OptimizationPolicySpec.paused`)."""
    window = duration_seconds(scaling.scale_down_stabilization)
    steps: tuple[Guardrail, ...] = (
        Stabilization(window),
        StepLimits(scaling.max_scale_up_step, scaling.max_scale_down_step),
        Cooldown(duration_seconds(scaling.cooldown)),
        Bounds(scaling.min_replicas, scaling.max_replicas),
        Pause(paused),
    )
    return Guardrails(steps, memory=window)


def guarded_decision(
    decision: ReplicaDecision,
    guarded: Guarded,
    demand: Quantiles,
    capacity: Interval,
) -> ReplicaDecision:
    """The decision as the guardrails left it: replicas, action, the limits in the reason, and the
    utilisation those replicas give."""
    if not guarded.limited:
        return decision
    said = "; ".join(f"{limit.step}: {limit.reason}" for limit in guarded.limiting)
    return ReplicaDecision(
        current=decision.current,
        desired=guarded.replicas,
        action=action_between(decision.current, guarded.replicas),
        reason=f"{decision.reason}; limited to {guarded.replicas} ({said})",
        utilization=predicted_utilization(demand, capacity, guarded.replicas),
    )
