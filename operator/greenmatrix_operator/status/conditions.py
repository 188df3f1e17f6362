"""Conditions: their types and reasons, which reason each outcome gets, and honest transition times.

Two conventions hold at once. `Ready` is the summary kstatus, Argo CD and `kubectl wait` read; its
reason says why (RecommendationProvided, NoFeasibleHardware, ...). `RecommendationProvided` is the
Vertical Pod Autoscaler's condition type, with its meaning: True when the status carries a
recommendation. It stays meaningful when later issues make Ready depend on more than the
recommendation (live metrics, actuation). `InvalidSpec` says whether the spec passed every check.

A condition's lastTransitionTime moves only when its status flips (reason or message changes keep
the time, as Kubernetes' own meta.SetStatusCondition does), so an unchanged world yields a
byte-equal status and the writer writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from greenmatrix import GreenMatrixError, Inventory, Plan
from greenmatrix_operator.records import PolicyView

# Condition types.
READY = "Ready"
INVALID_SPEC = "InvalidSpec"
RECOMMENDATION_PROVIDED = "RecommendationProvided"
# From the live loop: whether the target's metrics could be read, and whether the guardrails held the
# replica estimate back (as the HPA's ScalingLimited).
METRICS_AVAILABLE = "MetricsAvailable"
SCALING_LIMITED = "ScalingLimited"
# Under an Auto policy: whether actions are applied (and else which part of the gate is closed), another
# autoscaler of the same target, and the last action rolled back.
AUTO_APPLY = "AutoApply"
CONFLICT = "Conflict"
ROLLED_BACK = "RolledBack"
# kstatus' abnormal-true pair (Flux, kpt, cli-utils): present only while True.
STALLED = "Stalled"
RECONCILING = "Reconciling"
# Types this operator decides: one it no longer derives (a targetRef removed) is dropped, not kept.
OWN_TYPES = frozenset(
    {
        READY,
        INVALID_SPEC,
        RECOMMENDATION_PROVIDED,
        METRICS_AVAILABLE,
        SCALING_LIMITED,
        AUTO_APPLY,
        CONFLICT,
        ROLLED_BACK,
        STALLED,
        RECONCILING,
    }
)

# Reasons the operator writes (CamelCase, as metav1.Condition requires); errors from the engine
# bring their own (`GreenMatrixError.reason`: UnknownModel, UnknownHardware, InvalidSpec, ...).
NO_MATCHING_HARDWARE = "NoMatchingHardware"
NO_FEASIBLE_HARDWARE = "NoFeasibleHardware"
SPEC_VALID = "SpecValid"
# Valid, but with numbers unlikely to be meant (parameters far from what the sizes imply): planned
# as written, and said where `kubectl describe` and the Events show it.
SPEC_DOUBTFUL = "SpecDoubtful"
POLICY_ACCEPTED = "PolicyAccepted"
ACTION_IN_FLIGHT = "ActionInFlight"


@dataclass(frozen=True)
class ConditionState:
    """A condition as the operator decides it, before times are attached."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


# --- which reason each outcome gets -------------------------------------------------------------


def spec_rejected(errors: Sequence[GreenMatrixError]) -> tuple[ConditionState, ...]:
    """A spec that failed a check: not Ready, InvalidSpec, both for the first error's reason."""
    reason = errors[0].reason
    message = "; ".join(str(e) for e in errors)
    return (
        ConditionState(READY, "False", reason, message),
        ConditionState(INVALID_SPEC, "True", reason, message),
    )


def workload_rejected(errors: Sequence[GreenMatrixError]) -> tuple[ConditionState, ...]:
    """A WorkloadProfile whose spec failed a check: nothing to plan for."""
    reason = errors[0].reason
    return (
        *spec_rejected(errors),
        ConditionState(RECOMMENDATION_PROVIDED, "False", reason, "the spec cannot be planned for"),
    )


def spec_checked(doubts: Sequence[str]) -> ConditionState:
    """InvalidSpec=False for a spec that passed: SpecDoubtful saying why when numbers look unmeant."""
    if doubts:
        return ConditionState(INVALID_SPEC, "False", SPEC_DOUBTFUL, "; ".join(doubts))
    return ConditionState(INVALID_SPEC, "False", SPEC_VALID, "the spec passed every check")


def planning_refused(
    err: GreenMatrixError, policy: PolicyView | None, valid: ConditionState
) -> tuple[ConditionState, ...]:
    """A valid spec the applied policy cannot be planned with (say its allowedGpus names a GPU the
    catalog lacks): the workload says so and which policy it is."""
    message = f"OptimizationPolicy {policy.name}: {err}" if policy else str(err)
    return (
        ConditionState(READY, "False", err.reason, message),
        valid,
        ConditionState(RECOMMENDATION_PROVIDED, "False", err.reason, message),
    )


def planned(
    result: Plan, inventory: Inventory, policy: PolicyView | None, valid: ConditionState
) -> tuple[ConditionState, ...]:
    """A plan's outcome: Ready with its explanation, or why nothing is recommended."""
    if result.recommendation is not None:
        r = result.recommendation
        summary = f"{r.gpu} x{r.gpus_per_replica}, {r.replicas} replica{'s' * (r.replicas != 1)}"
        return (
            ConditionState(READY, "True", RECOMMENDATION_PROVIDED, r.explanation),
            valid,
            ConditionState(RECOMMENDATION_PROVIDED, "True", RECOMMENDATION_PROVIDED, summary),
        )
    if inventory.matched_nodes == 0:
        reason, message = NO_MATCHING_HARDWARE, _no_match_message(inventory, policy)
        hint = result.error.catalog_note if result.error else ""
        message += f"; {hint}" if hint else ""
    else:
        reason = NO_FEASIBLE_HARDWARE
        message = result.error.message if result.error else "no feasible option in the cluster"
    return (
        ConditionState(READY, "False", reason, message),
        valid,
        ConditionState(RECOMMENDATION_PROVIDED, "False", reason, message),
    )


def _no_match_message(inventory: Inventory, policy: PolicyView | None) -> str:
    constraints = policy.spec.constraints if policy else None
    scope = "spec.hardware"
    if (
        policy
        and constraints is not None
        and (constraints.allowed_gpus is not None or constraints.regions is not None)
    ):
        scope += f" and the constraints of OptimizationPolicy {policy.name}"
    return (
        f"none of the {inventory.total_nodes} nodes is Ready, schedulable and allowed by {scope}"
        " (allowedGpus, excludedGpus, regions, allowCpu)"
    )


def policy_accepted(selected: int, overridden: int) -> tuple[ConditionState, ...]:
    """A valid policy: Ready, saying how many profiles it selects and how many follow another."""
    message = f"selects {selected} WorkloadProfile{'s' * (selected != 1)}"
    if overridden:
        message += f"; {overridden} of them follow a policy with higher priority"
    return (
        ConditionState(READY, "True", POLICY_ACCEPTED, message),
        spec_checked(()),
    )


def with_kstatus(
    states: Sequence[ConditionState], in_flight: str | None = None
) -> tuple[ConditionState, ...]:
    """The states with kstatus' pair added where it holds, so that `kpt live status`, Flux and
    cli-utils report Failed or InProgress instead of Current for an object that never got Ready.

    Stalled while Ready is False: every such reason (a rejected spec, no matching or feasible
    hardware) holds until someone edits a spec or the cluster. Reconciling while an action's patch
    is in flight (`in_flight` says which)."""
    out = list(states)
    ready = next((s for s in states if s.type == READY), None)
    if ready is not None and ready.status == "False":
        out.append(ConditionState(STALLED, "True", ready.reason, ready.message))
    if in_flight:
        out.append(ConditionState(RECONCILING, "True", ACTION_IN_FLIGHT, in_flight))
    return tuple(out)


# --- conditions on the wire ---------------------------------------------------------------------


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    desired: Sequence[ConditionState],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The conditions list to write: desired states, keeping transition times where status holds.

    Conditions of types this operator does not decide (another controller's) are kept as they are;
    its own types that are no longer desired are dropped.
    """
    by_type = {c.get("type"): c for c in previous or ()}
    ours = {d.type for d in desired} | OWN_TYPES
    out: list[dict[str, Any]] = []
    for state in desired:
        before = by_type.get(state.type)
        since = before.get("lastTransitionTime") if before and before.get("status") == state.status else None
        out.append(
            {
                "type": state.type,
                "status": state.status,
                "observedGeneration": generation,
                "lastTransitionTime": since or now,
                "reason": state.reason,
                "message": state.message,
            }
        )
    out += [dict(c) for c in previous or () if c.get("type") not in ours]
    return out


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of a type in a status dict, if any."""
    return next((c for c in status.get("conditions") or () if c.get("type") == type_), None)
