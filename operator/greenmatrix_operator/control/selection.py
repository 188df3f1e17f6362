"""An OptimizationPolicy's evaluation: is its spec valid, which WorkloadProfiles in its namespace it
selects, and on which of them it wins (the engine's `applied_policy` decides; ties go to the first
name). From in-memory inputs only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from greenmatrix import (
    GreenMatrixError,
    OptimizationPolicySpec,
    applied_policy,
    schema_errors,
    validate_policy,
)
from greenmatrix_operator.records import PolicyView
from greenmatrix_operator.status import conditions
from greenmatrix_operator.status.evaluation import PolicyEvaluation


def evaluate_policy(
    name: str,
    spec: Mapping[str, Any],
    workloads: Iterable[tuple[str, Mapping[str, str]]],
    policies: Sequence[PolicyView],
    node_products: Collection[str] = (),
) -> PolicyEvaluation:
    """Which WorkloadProfiles (name, labels) in the namespace the policy selects, and where it applies.

    `node_products` are the GPU products nodes carry that the catalog does not know: allowedGpus may
    name them.
    """
    try:
        parsed = OptimizationPolicySpec.model_validate(spec)
    except ValidationError as err:
        errors: list[GreenMatrixError] = schema_errors(err)
    else:
        errors = validate_policy(parsed, node_products)
    if errors:
        return PolicyEvaluation(conditions.spec_rejected(errors))
    selected, applied = [], []
    for wp_name, labels in workloads:
        if not parsed.selector.matches(dict(labels)):
            continue
        selected.append(wp_name)
        winner = applied_policy(policies, labels)
        if winner is not None and winner.name == name:
            applied.append(wp_name)
    selected.sort()
    applied.sort()
    return PolicyEvaluation(
        conditions.policy_accepted(len(selected), len(selected) - len(applied)),
        selected=tuple(selected),
        applied=tuple(applied),
    )
