"""What the status of one object should say, from in-memory inputs only (no I/O, no clock).

A WorkloadProfile is evaluated in steps that read like the review sentence: parse the spec,
check what the schema cannot, summarise the matching hardware under the applied policy's
constraints, then (issue 4) recommend from that inventory. An OptimizationPolicy's status is
which WorkloadProfiles it selects and on which of them it wins.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from greenmatrix.api.optimizationpolicy import Constraints, OptimizationPolicySpec
from greenmatrix.api.workloadprofile import HardwareSpec, Inventory, WorkloadProfileSpec
from greenmatrix.errors import GreenMatrixError
from greenmatrix.inventory import NodeHardware, describe, summarize
from greenmatrix.validation import schema_errors, validate_policy, validate_workload
from greenmatrix_operator.status import INVALID_SPEC, READY, ConditionState

# Reasons the operator writes (CamelCase, as metav1.Condition requires).
HARDWARE_MATCHED = "HardwareMatched"
NO_MATCHING_HARDWARE = "NoMatchingHardware"
SPEC_VALID = "SpecValid"
POLICY_ACCEPTED = "PolicyAccepted"


@dataclass(frozen=True)
class PolicyView:
    """A parsed OptimizationPolicy as the evaluation of other objects needs it."""

    name: str
    spec: OptimizationPolicySpec

    def selects(self, labels: Mapping[str, str]) -> bool:
        return self.spec.selector.matches(dict(labels))


def parse_policies(raw: Iterable[tuple[str, Mapping[str, Any]]]) -> list[PolicyView]:
    """Policies that parse; one that does not is reported on its own status and applies to nothing."""
    views = []
    for name, spec in raw:
        try:
            views.append(PolicyView(name, OptimizationPolicySpec.model_validate(spec)))
        except ValidationError:
            continue
    return views


def applied_policy(policies: Sequence[PolicyView], labels: Mapping[str, str]) -> PolicyView | None:
    """The policy that applies: highest priority among those selecting the labels, ties to the first name."""
    selecting = [p for p in policies if p.selects(labels)]
    return min(selecting, key=lambda p: (-p.spec.priority, p.name), default=None)


def unknown_products(nodes: Iterable[NodeHardware]) -> set[str]:
    """GPU product labels the catalog does not know: specs may still name them."""
    return {n.gpu.product for n in nodes if n.gpu is not None and not n.gpu.known}


@dataclass(frozen=True)
class WorkloadEvaluation:
    """The derived part of a WorkloadProfile's status (conditions without times)."""

    conditions: tuple[ConditionState, ...]
    inventory: Inventory | None = None

    @property
    def ready(self) -> ConditionState:
        return next(c for c in self.conditions if c.type == READY)


def _invalid(errors: Sequence[GreenMatrixError]) -> WorkloadEvaluation:
    reason = errors[0].reason
    message = "; ".join(str(e) for e in errors)
    return WorkloadEvaluation(
        conditions=(
            ConditionState(READY, "False", reason, message),
            ConditionState(INVALID_SPEC, "True", reason, message),
        )
    )


Summarizer = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], Inventory]


def evaluate_workload(
    spec: Mapping[str, Any],
    nodes: Sequence[NodeHardware],
    policy: PolicyView | None = None,
    summarizer: Summarizer = summarize,
) -> WorkloadEvaluation:
    """Parse, validate, then summarise the hardware the workload may use.

    `summarizer` lets the caller memoise `inventory.summarize` (many profiles share restrictions).
    """
    try:
        parsed = WorkloadProfileSpec.model_validate(spec)
    except ValidationError as err:
        return _invalid(schema_errors(err))
    errors = validate_workload(parsed, unknown_products(nodes))
    if errors:
        return _invalid(errors)
    constraints = policy.spec.constraints if policy else None
    inventory = summarizer(nodes, parsed.hardware, constraints)
    # Issue 4 slots in here: rank options on `inventory` with `policy.spec.objectives`, add a
    # RecommendationProvided condition and the recommendation to the evaluation.
    valid = ConditionState(INVALID_SPEC, "False", SPEC_VALID, "the spec passed every check")
    if inventory.matched_nodes == 0:
        scope = "spec.hardware"
        if constraints is not None and (
            constraints.allowed_gpus is not None or constraints.regions is not None
        ):
            scope += f" and the constraints of OptimizationPolicy {policy.name}" if policy else ""
        message = (
            f"none of the {inventory.total_nodes} nodes is Ready, schedulable and allowed by {scope}"
            " (allowedGpus, excludedGpus, regions, allowCpu)"
        )
        ready = ConditionState(READY, "False", NO_MATCHING_HARDWARE, message)
    else:
        ready = ConditionState(READY, "True", HARDWARE_MATCHED, describe(inventory))
    return WorkloadEvaluation(conditions=(ready, valid), inventory=inventory)


@dataclass(frozen=True)
class PolicyEvaluation:
    """The derived part of an OptimizationPolicy's status."""

    conditions: tuple[ConditionState, ...]
    selected: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()


def evaluate_policy(
    name: str,
    spec: Mapping[str, Any],
    workloads: Iterable[tuple[str, Mapping[str, str]]],
    policies: Sequence[PolicyView],
    node_products: Collection[str] = (),
) -> PolicyEvaluation:
    """Which WorkloadProfiles (name, labels) in the namespace the policy selects, and where it applies."""
    try:
        parsed = OptimizationPolicySpec.model_validate(spec)
    except ValidationError as err:
        errors: list[GreenMatrixError] = schema_errors(err)
    else:
        errors = validate_policy(parsed, node_products)
    if errors:
        message = "; ".join(str(e) for e in errors)
        reason = errors[0].reason
        return PolicyEvaluation(
            conditions=(
                ConditionState(READY, "False", reason, message),
                ConditionState(INVALID_SPEC, "True", reason, message),
            )
        )
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
    overridden = len(selected) - len(applied)
    message = f"selects {len(selected)} WorkloadProfile{'s' * (len(selected) != 1)}"
    if overridden:
        message += f"; {overridden} of them follow a policy with higher priority"
    return PolicyEvaluation(
        conditions=(
            ConditionState(READY, "True", POLICY_ACCEPTED, message),
            ConditionState(INVALID_SPEC, "False", SPEC_VALID, "the spec passed every check"),
        ),
        selected=tuple(selected),
        applied=tuple(applied),
    )
