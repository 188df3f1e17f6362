"""Guarded auto-apply: whether a replica decision may be applied, what is recorded before it is, and
how an action left half-done by a crash is settled.

Three small rules, each a function of plain values (the operator gathers them and does the I/O):

- `gate`: the admin's switch, the policy's mode, every pause, the metrics and any other autoscaler of
  the same target must all allow it; else the first closed part says why.
- `permitted`: what the persisted record of past actions still forbids, on top of the guardrails the
  decision already went through (whose memory a restart loses): the cooldown since the last applied
  action (backed off after a rollback or an ineffective scale-out), no scale-in before the workload
  has been watched for a whole stabilisation window, no scale-out while one was judged not to help,
  and, last, a check that the replicas are within the bounds and the step limits.
- `settle`: an intent recorded before the patch is, after a restart, Applied (the target has the
  replicas), to Retry (the target's spec is untouched since the intent), or Superseded (someone else
  changed the spec: theirs wins, nothing is repeated).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from greenmatrix.api.meta import duration_seconds
from greenmatrix.api.optimizationpolicy import Scaling
from greenmatrix.interval import Interval

# Why the gate is closed: the status's AutoApply condition reason.
RECOMMEND_ONLY = "RecommendOnly"
NOT_ENABLED = "AutoApplyNotEnabled"
PAUSED = "Paused"
CONFLICT = "Conflict"
METRICS_UNAVAILABLE = "MetricsUnavailable"
NO_DECISION = "NoDecision"
# The gate open.
APPLYING = "Applying"
DRY_RUN = "DryRun"

HPA_PRESENT = "HPAPresent"
SCALED_OBJECT_PRESENT = "ScaledObjectPresent"

Phase = Literal["Intended", "Applied", "DryRun", "Superseded", "Failed"]
Kind = Literal["Scale", "Rollback"]


@dataclass(frozen=True)
class Autoscaler:
    """Another controller of the same target's replicas: an HPA or a KEDA ScaledObject."""

    kind: Literal["HorizontalPodAutoscaler", "ScaledObject"]
    name: str

    @property
    def reason(self) -> str:
        return HPA_PRESENT if self.kind == "HorizontalPodAutoscaler" else SCALED_OBJECT_PRESENT


@dataclass(frozen=True)
class GateInputs:
    """Everything the gate reads, as the operator found it."""

    enabled: bool
    """The admin's switch (`greenmatrix operator --auto-apply`, set with the scale rights)."""
    dry_run: bool = False
    """Record what would be done, patch nothing."""
    mode: str | None = None
    """The applied policy's mode (None: no policy applies)."""
    policy_paused: bool = False
    profile_paused: bool = False
    """The WorkloadProfile's `greenmatrix.io/paused: "true"` annotation."""
    target_paused: bool = False
    """The target's `greenmatrix.io/paused: "true"` annotation."""
    metrics_available: bool = False
    autoscalers: tuple[Autoscaler, ...] = ()
    decided: bool = False
    """Whether the live loop made a replica decision this time."""


@dataclass(frozen=True)
class Gate:
    """Open or not, the reason (CamelCase) and the words; `conflict` names another autoscaler."""

    open: bool
    reason: str
    message: str
    conflict: Autoscaler | None = None

    @property
    def dry_run(self) -> bool:
        return self.open and self.reason == DRY_RUN


def gate(given: GateInputs) -> Gate:
    """The first closed part of the gate, in the order a reader checks them, else open."""
    if given.mode != "Auto":
        why = "no OptimizationPolicy applies" if given.mode is None else "the policy's mode is Recommend"
        return Gate(False, RECOMMEND_ONLY, f"{why}: recommendations only")
    if not given.enabled:
        return Gate(
            False,
            NOT_ENABLED,
            "the policy says Auto, but the cluster admin has not enabled auto-apply"
            " (the chart's autoApply.enabled or the auto-apply overlay, and --auto-apply)",
        )
    paused = [
        who
        for who, flag in (
            ("the policy (spec.paused)", given.policy_paused),
            ('the WorkloadProfile (annotation greenmatrix.io/paused: "true")', given.profile_paused),
            ('the target (annotation greenmatrix.io/paused: "true")', given.target_paused),
        )
        if flag
    ]
    if paused:
        return Gate(False, PAUSED, f"paused by {' and '.join(paused)}; recommendations continue")
    if given.autoscalers:
        other = given.autoscalers[0]
        named = ", ".join(f"{a.kind} {a.name}" for a in given.autoscalers)
        return Gate(
            False,
            CONFLICT,
            f"{named} already scales the target: one controller per field, so GreenMatrix applies nothing"
            " (publish its desired replicas to that autoscaler instead, see examples/autoscalers)",
            conflict=other,
        )
    if not given.metrics_available:
        return Gate(False, METRICS_UNAVAILABLE, "no action while the metrics cannot be read")
    if not given.decided:
        return Gate(False, NO_DECISION, "no replica decision yet")
    if given.dry_run:
        return Gate(True, DRY_RUN, "dry run: actions are recorded, nothing is patched")
    return Gate(True, APPLYING, "the policy's guardrails bound every action")


@dataclass(frozen=True)
class Verdict:
    """A verification's outcome as recorded on the action."""

    result: str
    """Holding, Regressed, Ineffective or Inconclusive."""
    reason: str
    at: float


@dataclass(frozen=True)
class ActionRecord:
    """One replica change: recorded as Intended before the patch, then Applied (or DryRun, Superseded,
    Failed), later verified."""

    id: str
    at: float
    from_replicas: int
    to_replicas: int
    reason: str
    phase: Phase
    target_generation: int
    """The target's metadata.generation when the intent was recorded."""
    kind: Kind = "Scale"
    predicted_utilization: Interval | None = None
    cooldown_s: float = 0.0
    """The cooldown after this action (the policy's, backed off after a failed verification)."""
    verification: Verdict | None = None
    stop_scale_out_until: float | None = None
    """Set by an Ineffective verdict: no scale-out before then."""

    @property
    def applied(self) -> bool:
        return self.phase == "Applied"

    @property
    def direction(self) -> str:
        return "ScaleOut" if self.to_replicas > self.from_replicas else "ScaleIn"

    def verified(self, verdict: Verdict) -> ActionRecord:
        return replace(self, verification=verdict)


Settlement = Literal["Applied", "Retry", "Superseded"]


def settle(intent: ActionRecord, replicas: int, generation: int) -> Settlement:
    """What became of an intent recorded before a patch, from the target as it is now."""
    if replicas == intent.to_replicas:
        return "Applied"  # the patch went through before the crash (or someone asked for the same)
    if generation == intent.target_generation:
        return "Retry"  # nothing changed the target's spec since the intent: the patch never happened
    return "Superseded"


@dataclass(frozen=True)
class Permission:
    """The replicas that may be applied now (the current ones when nothing may), and why not more."""

    replicas: int
    blocked_by: str | None = None
    """CamelCase reason when the decision was held back: Cooldown, StabilizationWarmup,
    ScaleOutIneffective, OutsideGuardrails."""
    message: str = ""


def cooldown_of(scaling: Scaling, last: ActionRecord | None) -> float:
    """The cooldown in force after `last`: the policy's, or the last action's backed-off one when longer."""
    policy = duration_seconds(scaling.cooldown)
    return max(policy, last.cooldown_s) if last is not None else policy


def next_cooldown(scaling: Scaling, last: ActionRecord | None) -> float:
    """The cooldown a new action carries: the policy's, but a rollback's backed-off one carries over to
    the action after it, so a scale-in that keeps regressing is retried less and less often."""
    if last is not None and last.kind == "Rollback":
        return cooldown_of(scaling, last)
    return duration_seconds(scaling.cooldown)


def within_guardrails(scaling: Scaling, current: int, replicas: int) -> bool:
    """Within [minReplicas, maxReplicas] and at most one step from `current` (a current count outside
    the bounds may be brought back inside in one move, as the HPA does)."""
    if not scaling.min_replicas <= replicas <= scaling.max_replicas:
        return False
    if scaling.min_replicas <= current <= scaling.max_replicas:
        return -scaling.max_scale_down_step <= replicas - current <= scaling.max_scale_up_step
    return True


def permitted(
    desired: int,
    current: int,
    scaling: Scaling,
    last: ActionRecord | None,
    now: float,
    watched_since: float,
) -> Permission:
    """What of `desired` (already through the guardrails) may be applied given the recorded actions;
    `last` is the newest one that was not superseded (a refused one counts: retrying at once would be
    refused again)."""
    if desired == current:
        return Permission(current)
    if last is not None and last.phase != "Superseded":
        cooldown = cooldown_of(scaling, last)
        if now - last.at < cooldown:
            left = cooldown - (now - last.at)
            return Permission(
                current,
                "Cooldown",
                f"last action {now - last.at:.0f}s ago, cooldown {cooldown:.0f}s ({left:.0f}s left)",
            )
    until = last.stop_scale_out_until if last is not None else None
    if desired > current and until is not None and now < until:
        said = last.verification.reason if last is not None and last.verification else "judged Ineffective"
        return Permission(
            current,
            "ScaleOutIneffective",
            f"the last scale-out did not help ({said}); no scale-out for {until - now:.0f}s more",
        )
    window = duration_seconds(scaling.scale_down_stabilization)
    if desired < current and now - watched_since < window:
        return Permission(
            current,
            "StabilizationWarmup",
            f"watched for {now - watched_since:.0f}s of the {window:.0f}s stabilisation window:"
            " no scale-in before a whole window of recommendations",
        )
    if not within_guardrails(scaling, current, desired):
        return Permission(
            current,
            "OutsideGuardrails",
            f"{current} -> {desired} would leave [{scaling.min_replicas}, {scaling.max_replicas}] or the"
            f" step limits (+{scaling.max_scale_up_step}/-{scaling.max_scale_down_step})",
        )
    return Permission(desired)


def rollback_to(scaling: Scaling, current: int, previous: int) -> int:
    """The previous count, as near as the bounds and the step limit up allow."""
    replicas = min(previous, current + scaling.max_scale_up_step, scaling.max_replicas)
    return max(replicas, scaling.min_replicas)
