"""Engine results as status fields: what a WorkloadProfile's or an OptimizationPolicy's status says.

The evaluations are decided in `control` (with the engine); this module only lays them out as the
CRDs' status, with conditions merged so their transition times stay honest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from greenmatrix import LISTED_WORKLOADS, Inventory, Plan
from greenmatrix_operator.status.conditions import ConditionState, merge_conditions, with_kstatus


@dataclass(frozen=True)
class WorkloadEvaluation:
    """The derived part of a WorkloadProfile's status (conditions without times)."""

    conditions: tuple[ConditionState, ...]
    inventory: Inventory | None = None
    plan: Plan | None = None
    applied_policy: str | None = None
    """The name of the OptimizationPolicy that applies, if any."""
    live_fields: Mapping[str, Any] = field(default_factory=dict)
    """The live loop's status fields (observed, forecast, scaling, hardware, anomalies)."""
    live_basis: str | None = None
    """What the live evaluation corrected, added to the recommendation's basis."""
    actuation_conditions: tuple[ConditionState, ...] = ()
    """Auto-apply's conditions (AutoApply, Conflict, RolledBack)."""
    actuation_fields: Mapping[str, Any] = field(default_factory=dict)
    """Auto-apply's status fields (lastAction, actions)."""

    def with_live(
        self, conditions: Sequence[ConditionState], fields: Mapping[str, Any], basis: str | None
    ) -> WorkloadEvaluation:
        """This evaluation with a live evaluation's conditions and fields."""
        return replace(
            self, conditions=(*self.conditions, *conditions), live_fields=dict(fields), live_basis=basis
        )

    def with_actuation(
        self, conditions: Sequence[ConditionState], fields: Mapping[str, Any]
    ) -> WorkloadEvaluation:
        """This evaluation with auto-apply's conditions and fields (replacing any before)."""
        return replace(self, actuation_conditions=tuple(conditions), actuation_fields=dict(fields))

    @property
    def all_conditions(self) -> tuple[ConditionState, ...]:
        return (*self.conditions, *self.actuation_conditions)

    @property
    def recommended_gpu(self) -> str | None:
        """The recommended GPU type (or cpu/<vendor>), None without a recommendation."""
        if self.plan is None or self.plan.recommendation is None:
            return None
        return self.plan.recommendation.gpu

    def status_fields(self) -> dict[str, Any]:
        """The plan's status fields that have a value (absent ones are removed by the next write)."""
        if self.plan is None:
            return {}
        return {k: v for k, v in self.plan.status().items() if v is not None}

    def derived_fields(self) -> dict[str, Any]:
        """The status besides conditions: the inventory, the plan's fields and the applied policy."""
        fields: dict[str, Any] = {}
        if self.inventory is not None:
            fields["inventory"] = self.inventory.to_wire()
        fields.update(self.status_fields())
        if self.applied_policy is not None:
            fields["appliedPolicy"] = self.applied_policy
        fields.update(self.live_fields)
        fields.update(self.actuation_fields)
        recommendation = fields.get("recommendation")
        if self.live_basis and recommendation is not None:
            said = recommendation.get("basis")
            basis = f"{said}; {self.live_basis}" if said else self.live_basis
            fields["recommendation"] = {**recommendation, "basis": basis}
        return fields


@dataclass(frozen=True)
class PolicyEvaluation:
    """The derived part of an OptimizationPolicy's status."""

    conditions: tuple[ConditionState, ...]
    selected: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()

    def derived_fields(self) -> dict[str, Any]:
        """The status besides conditions: how many profiles the policy selects and wins, and the first
        of their names (a namespace's thousands would make every write as large as the namespace)."""
        return {
            "selectedWorkloads": list(self.selected[:LISTED_WORKLOADS]),
            "selectedCount": len(self.selected),
            "appliedWorkloads": list(self.applied[:LISTED_WORKLOADS]),
            "appliedCount": len(self.applied),
        }


def status_of(
    evaluation: WorkloadEvaluation | PolicyEvaluation,
    generation: int,
    previous_conditions: Sequence[Mapping[str, Any]] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status to hold: the conditions, merged so their transition times stay honest, and the
    evaluation's own fields (those without a value are absent: the next write removes them)."""
    return {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous_conditions, _conditions(evaluation), generation, now),
        **evaluation.derived_fields(),
    }


def _conditions(evaluation: WorkloadEvaluation | PolicyEvaluation) -> tuple[ConditionState, ...]:
    if isinstance(evaluation, PolicyEvaluation):
        return with_kstatus(evaluation.conditions)
    last = evaluation.actuation_fields.get("lastAction") or {}
    in_flight = None
    if last.get("phase") == "Intended":
        in_flight = f"scaling {last.get('fromReplicas')} -> {last.get('toReplicas')} ({last.get('id')})"
    return with_kstatus(evaluation.all_conditions, in_flight)
