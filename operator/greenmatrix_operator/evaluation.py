"""What the status of one object should say, from in-memory inputs only (no I/O, no clock).

A WorkloadProfile is evaluated in steps that read like the review sentence: parse the spec,
check what the schema cannot, summarise the matching hardware under the applied policy's
constraints, then plan on that inventory (`greenmatrix.plan.planner`) with the policy's objectives.
An OptimizationPolicy's status is which WorkloadProfiles it selects and on which of them it wins.

Conditions follow two conventions at once. `Ready` is the summary kstatus, Argo CD and
`kubectl wait` read; its reason says why (RecommendationProvided, NoFeasibleHardware, ...).
`RecommendationProvided` is the Vertical Pod Autoscaler's condition type, with its meaning: True
when the status carries a recommendation. It stays meaningful when later issues make Ready depend
on more than the recommendation (live metrics, actuation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from greenmatrix.api.optimizationpolicy import Constraints, OptimizationPolicySpec
from greenmatrix.api.workloadprofile import HardwareSpec, Inventory, WorkloadProfileSpec
from greenmatrix.errors import GreenMatrixError
from greenmatrix.inventory import NodeHardware, node_matches, summarize
from greenmatrix.plan.planner import plan
from greenmatrix.plan.result import Plan
from greenmatrix.policy import applied_policy
from greenmatrix.predict.predictors import Predictors
from greenmatrix.validation import schema_errors, validate_policy, validate_workload, workload_warnings
from greenmatrix_operator.status import INVALID_SPEC, READY, ConditionState

# Reasons the operator writes (CamelCase, as metav1.Condition requires).
NO_MATCHING_HARDWARE = "NoMatchingHardware"
NO_FEASIBLE_HARDWARE = "NoFeasibleHardware"
RECOMMENDATION_PROVIDED = "RecommendationProvided"
SPEC_VALID = "SpecValid"
# Valid, but with numbers unlikely to be meant (parameters far from what the sizes imply): planned
# as written, and said where `kubectl describe` and the Events show it.
SPEC_DOUBTFUL = "SpecDoubtful"
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


def unknown_products(nodes: Iterable[NodeHardware]) -> set[str]:
    """GPU product labels the catalog does not know: specs may still name them."""
    return {n.gpu.product for n in nodes if n.gpu is not None and not n.gpu.known}


@dataclass(frozen=True)
class WorkloadEvaluation:
    """The derived part of a WorkloadProfile's status (conditions without times)."""

    conditions: tuple[ConditionState, ...]
    inventory: Inventory | None = None
    plan: Plan | None = None

    @property
    def ready(self) -> ConditionState:
        return next(c for c in self.conditions if c.type == READY)

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


def _invalid(errors: Sequence[GreenMatrixError]) -> WorkloadEvaluation:
    reason = errors[0].reason
    message = "; ".join(str(e) for e in errors)
    return WorkloadEvaluation(
        conditions=(
            ConditionState(READY, "False", reason, message),
            ConditionState(INVALID_SPEC, "True", reason, message),
            ConditionState(RECOMMENDATION_PROVIDED, "False", reason, "the spec cannot be planned for"),
        )
    )


Summarizer = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], Inventory]
RegionOf = Callable[[Sequence[NodeHardware], HardwareSpec | None, Constraints | None], str | None]
Planner = Callable[[WorkloadProfileSpec, Inventory, OptimizationPolicySpec | None, str | None], Plan]


def cluster_region(
    nodes: Sequence[NodeHardware], hardware: HardwareSpec | None, constraints: Constraints | None
) -> str | None:
    """The region most of the workload's usable nodes are in (ties: first name); None when unknown.

    The planner weighs carbon (and prices catalog options) in this region, so a cluster in
    europe-west4 is not judged on us-east-1's grid. Nodes outside the allowed regions never count.
    """
    counts = Counter(n.region for n in nodes if n.region and node_matches(n, hardware, constraints))
    return min(counts, key=lambda r: (-counts[r], r), default=None)


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


def _no_match_message(inventory: Inventory, policy: PolicyView | None) -> str:
    constraints = policy.spec.constraints if policy else None
    scope = "spec.hardware"
    if constraints is not None and (constraints.allowed_gpus is not None or constraints.regions is not None):
        scope += f" and the constraints of OptimizationPolicy {policy.name}" if policy else ""
    return (
        f"none of the {inventory.total_nodes} nodes is Ready, schedulable and allowed by {scope}"
        " (allowedGpus, excludedGpus, regions, allowCpu)"
    )


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
    restrictions); `planner` defaults to `greenmatrix.plan.planner.plan` with the process's predictors.
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
    doubts = workload_warnings(parsed)
    valid = (
        ConditionState(INVALID_SPEC, "False", SPEC_DOUBTFUL, "; ".join(doubts))
        if doubts
        else ConditionState(INVALID_SPEC, "False", SPEC_VALID, "the spec passed every check")
    )
    run = planner or planner_for(Predictors.load())
    try:
        result = run(
            parsed, inventory, policy.spec if policy else None, region_of(nodes, parsed.hardware, constraints)
        )
    except GreenMatrixError as err:
        # The spec is valid but the applied policy cannot be planned with (say its allowedGpus names
        # a GPU the catalog lacks): the workload says so and which policy it is.
        where = f"OptimizationPolicy {policy.name}: " if policy else ""
        message = f"{where}{err}"
        return WorkloadEvaluation(
            conditions=(
                ConditionState(READY, "False", err.reason, message),
                valid,
                ConditionState(RECOMMENDATION_PROVIDED, "False", err.reason, message),
            ),
            inventory=inventory,
        )
    if result.recommendation is not None:
        r = result.recommendation
        summary = f"{r.gpu} x{r.gpus_per_replica}, {r.replicas} replica{'s' * (r.replicas != 1)}"
        ready = ConditionState(READY, "True", RECOMMENDATION_PROVIDED, r.explanation)
        provided = ConditionState(RECOMMENDATION_PROVIDED, "True", RECOMMENDATION_PROVIDED, summary)
    else:
        if inventory.matched_nodes == 0:
            reason, message = NO_MATCHING_HARDWARE, _no_match_message(inventory, policy)
            hint = result.error.catalog_note if result.error else ""
            message += f"; {hint}" if hint else ""
        else:
            reason = NO_FEASIBLE_HARDWARE
            message = result.error.message if result.error else "no feasible option in the cluster"
        ready = ConditionState(READY, "False", reason, message)
        provided = ConditionState(RECOMMENDATION_PROVIDED, "False", reason, message)
    return WorkloadEvaluation(conditions=(ready, valid, provided), inventory=inventory, plan=result)


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
