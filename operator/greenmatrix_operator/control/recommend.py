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
    workload_warnings,
)
from greenmatrix_operator.records import PolicyView
from greenmatrix_operator.status import conditions
from greenmatrix_operator.status.evaluation import WorkloadEvaluation

Summarizer = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], Inventory]
RegionOf = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], str | None]
Planner = Callable[[WorkloadProfileSpec, Inventory, OptimizationPolicySpec | None, str | None], Plan]


def planner_for(predictors: Predictors) -> Planner:
    """A Planner over predictors loaded once (the operator loads them at startup)."""

    def run(
        spec: WorkloadProfileSpec,
        inventory: Inventory,
        policy: OptimizationPolicySpec | None,
        region: str | None,
    ) -> Plan:
        return plan(spec, inventory, policy, region=region, predictors=predictors)

    return run


def evaluate_workload(
    spec: Mapping[str, Any],
    nodes: Sequence[NodeHardware],
    policy: PolicyView | None = None,
    summarizer: Summarizer = summarize,
    *,
    planner: Planner | None = None,
    region_of: RegionOf = cluster_region,
) -> WorkloadEvaluation:
    """Parse, validate, summarise the hardware the workload may use, then plan on it.

    `summarizer` and `region_of` let the caller memoise per node set (many profiles share
    restrictions); `planner` defaults to `greenmatrix.planning` with the process's predictors.
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
        result = run(parsed, inventory, policy.spec if policy else None, region)
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
