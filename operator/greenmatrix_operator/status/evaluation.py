"""Engine results as status fields: what a WorkloadProfile's or an OptimizationPolicy's status says.

The evaluations are decided in `control` (with the engine); this module only lays them out as the
CRDs' status, with conditions merged so their transition times stay honest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenmatrix import Inventory, Plan
from greenmatrix_operator.status.conditions import ConditionState, merge_conditions


@dataclass(frozen=True)
class WorkloadEvaluation:
    """The derived part of a WorkloadProfile's status (conditions without times)."""

    conditions: tuple[ConditionState, ...]
    inventory: Inventory | None = None
    plan: Plan | None = None
    applied_policy: str | None = None
    """The name of the OptimizationPolicy that applies, if any."""

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


@dataclass(frozen=True)
class PolicyEvaluation:
    """The derived part of an OptimizationPolicy's status."""

    conditions: tuple[ConditionState, ...]
    selected: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()


def workload_status(
    evaluation: WorkloadEvaluation,
    generation: int,
    previous_conditions: Sequence[Mapping[str, Any]] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status to hold: fields without a value are absent (the next write removes them)."""
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous_conditions, evaluation.conditions, generation, now),
    }
    if evaluation.inventory is not None:
        status["inventory"] = evaluation.inventory.to_wire()
    status.update(evaluation.status_fields())
    if evaluation.applied_policy is not None:
        status["appliedPolicy"] = evaluation.applied_policy
    return status


def policy_status(
    evaluation: PolicyEvaluation,
    generation: int,
    previous_conditions: Sequence[Mapping[str, Any]] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status of an OptimizationPolicy: its conditions and the profiles it selects and wins."""
    return {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous_conditions, evaluation.conditions, generation, now),
        "selectedWorkloads": list(evaluation.selected),
        "selectedCount": len(evaluation.selected),
        "appliedWorkloads": list(evaluation.applied),
    }
