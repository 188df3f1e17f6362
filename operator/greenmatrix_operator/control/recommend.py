"""The recommendation step: a WorkloadProfile's spec, the cluster's nodes and the applied policy in,
a `WorkloadEvaluation` out, from in-memory inputs only (no I/O, no clock).

It reads like the review sentence: parse the spec, check what the schema cannot, summarise the
matching hardware under the applied policy's constraints, then plan on that inventory with the
policy's objectives (`greenmatrix.planning`). The conditions each outcome gets are chosen in
`status.conditions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from greenmatrix import (
    Constraints,
    GreenMatrixError,
    HardwareSpec,
    Inventory,
    NodeHardware,
    OptimizationPolicySpec,
    Plan,
    Predictors,
    WorkloadProfileSpec,
    cluster_region,
    plan,
    schema_errors,
    summarize,
    unknown_products,
    validate_workload,
    with_advice,
    workload_warnings,
)
from greenmatrix_operator.records import PolicyView
from greenmatrix_operator.status import conditions
from greenmatrix_operator.status.evaluation import WorkloadEvaluation

Summarizer = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], Inventory]
RegionOf = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], str | None]
Planner = Callable[..., Plan]
"""Plans `(spec, inventory, policy, region, *, advise=True)`: an `EnginePlanner`, or a `PlanMemo` over
one. `advise=False` may leave the advice out (about half a plan's cost)."""


class EnginePlanner:
    """The engine's planning over predictors loaded once (the operator loads them at startup);
    `advise` adds the advice to a plan made without it."""

    def __init__(self, predictors: Predictors) -> None:
        self.predictors = predictors

    def __call__(
        self,
        spec: WorkloadProfileSpec,
        inventory: Inventory,
        policy: OptimizationPolicySpec | None,
        region: str | None,
        *,
        advise: bool = True,
    ) -> Plan:
        return plan(spec, inventory, policy, region=region, predictors=self.predictors, advise=advise)

    def advise(
        self,
        spec: WorkloadProfileSpec,
        result: Plan,
        inventory: Inventory,
        policy: OptimizationPolicySpec | None,
        region: str | None,
    ) -> Plan:
        return with_advice(spec, result, inventory, policy, region=region, predictors=self.predictors)


def planner_for(predictors: Predictors) -> EnginePlanner:
    return EnginePlanner(predictors)


def evaluate_workload(
    spec: Mapping[str, Any],
    nodes: Sequence[NodeHardware],
    policy: PolicyView | None = None,
    summarizer: Summarizer = summarize,
    *,
    planner: Planner | None = None,
    region_of: RegionOf = cluster_region,
    advise: bool = True,
) -> WorkloadEvaluation:
    """Parse, validate, summarise the hardware the workload may use, then plan on it.

    `summarizer` and `region_of` let the caller memoise per node set (many profiles share
    restrictions); `planner` defaults to `greenmatrix.planning` with the process's predictors.
    `advise=False`: the plan without its advice (the status then lacks `advice` until a later pass).
    """
    applied = policy.name if policy else None
    try:
        parsed = WorkloadProfileSpec.model_validate(spec)
    except ValidationError as err:
        return WorkloadEvaluation(conditions.workload_rejected(schema_errors(err)), applied_policy=applied)
    errors = validate_workload(parsed, unknown_products(nodes))
    if errors:
        return WorkloadEvaluation(conditions.workload_rejected(errors), applied_policy=applied)
    constraints = policy.spec.constraints if policy else None
    inventory = summarizer(nodes, parsed.hardware, constraints)
    valid = conditions.spec_checked(workload_warnings(parsed))
    run = planner or planner_for(Predictors.load())
    region = region_of(nodes, parsed.hardware, constraints)
    try:
        result = run(parsed, inventory, policy.spec if policy else None, region, advise=advise)
    except GreenMatrixError as err:
        return WorkloadEvaluation(
            conditions.planning_refused(err, policy, valid), inventory=inventory, applied_policy=applied
        )
    return WorkloadEvaluation(
        conditions.planned(result, inventory, policy, valid),
        inventory=inventory,
        plan=result,
        applied_policy=applied,
    )
