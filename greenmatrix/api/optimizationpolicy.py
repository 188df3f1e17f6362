"""OptimizationPolicy: how a platform team wants the WorkloadProfiles in a namespace optimised.

Policies live in GitOps repositories. One policy selects WorkloadProfiles by label (like a
NetworkPolicy's podSelector); when several select the same profile, the highest `priority`
wins and ties go to the alphabetically first name, so the outcome never depends on timing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from greenmatrix.api.meta import Condition, Duration, LabelSelector, Schema, cel, cel_rules
from greenmatrix.api.workloadprofile import GPUName, RegionName


class Objectives(Schema):
    """Relative weights of what matters when ranking hardware options (normalised to sum to 1)."""

    latency: Annotated[float, Field(ge=0, le=100)] = 1
    """Weight of predicted latency (TTFT/TPOT, or training time)."""
    throughput: Annotated[float, Field(ge=0, le=100)] = 0
    """Weight of predicted throughput per replica."""
    cost: Annotated[float, Field(ge=0, le=100)] = 1
    """Weight of cost (dollars per million tokens, or per run)."""
    energy: Annotated[float, Field(ge=0, le=100)] = 0
    """Weight of energy (joules per token, or per run)."""
    carbon: Annotated[float, Field(ge=0, le=100)] = 0
    """Weight of emissions (gCO2eq per million tokens, or per run)."""

    model_config = cel_rules(
        cel(
            "self.latency + self.throughput + self.cost + self.energy + self.carbon > 0.0",
            "at least one objective weight must be positive",
        )
    )

    @model_validator(mode="after")
    def _some_weight(self) -> Objectives:
        if self.latency + self.throughput + self.cost + self.energy + self.carbon <= 0:
            raise ValueError("at least one objective weight must be positive")
        return self


class Constraints(Schema):
    """Hard limits: an option that breaks one is never recommended."""

    max_cost_per_hour: Annotated[float | None, Field(gt=0, le=1e6)] = None
    """Most US dollars per hour for the whole workload (all replicas)."""
    max_power_watts: Annotated[float | None, Field(gt=0, le=1e8)] = None
    """Most predicted power draw for the whole workload, in watts."""
    max_carbon_grams_per_hour: Annotated[float | None, Field(gt=0, le=1e9)] = None
    """Most predicted emissions for the whole workload, in gCO2eq per hour."""
    allowed_gpus: list[GPUName] | None = Field(default=None, max_length=64)
    """GPU types that may be recommended; intersected with each WorkloadProfile's own list."""
    regions: list[RegionName] | None = Field(default=None, max_length=64)
    """Regions whose nodes may be used."""


class Scaling(Schema):
    """Bounds and guardrails for replica changes (used by Auto mode; shown in Recommend mode)."""

    min_replicas: Annotated[int, Field(ge=0, le=10000)] = 1
    """Fewest serving replicas ever recommended or applied (training jobs size their pods by run time)."""
    max_replicas: Annotated[int, Field(ge=1, le=10000)] = 10
    """Most serving replicas ever recommended or applied (training jobs size their pods by run time)."""
    max_scale_up_step: Annotated[int, Field(ge=1, le=10000)] = 4
    """Most replicas added in one action."""
    max_scale_down_step: Annotated[int, Field(ge=1, le=10000)] = 1
    """Most replicas removed in one action."""
    cooldown: Duration = "5m"
    """Least time between two applied actions on one workload."""
    scale_down_stabilization: Duration = "5m"
    """Window over which the highest recommendation is kept before scaling down (as in HPA)."""
    target_utilization: Annotated[float, Field(gt=0, le=1)] = 0.7
    """Fraction of a replica's predicted capacity to plan for, leaving headroom for bursts."""

    model_config = cel_rules(
        cel(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            ".minReplicas",
        )
    )

    @model_validator(mode="after")
    def _replica_bounds(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class OptimizationPolicySpec(Schema):
    """Desired behaviour of GreenMatrix for the WorkloadProfiles a policy selects."""

    selector: LabelSelector = Field(default_factory=LabelSelector, json_schema_extra={"default": {}})
    """Label selector over WorkloadProfiles in this namespace; empty selects all of them."""
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    """When several policies select one WorkloadProfile, the highest priority applies (ties: first name)."""
    # Full defaults, not {}: the API server checks a default against the CEL rules as written.
    objectives: Objectives = Field(
        default_factory=Objectives, json_schema_extra={"default": Objectives().to_wire()}
    )
    """Weights of latency, throughput, cost, energy and carbon in the ranking."""
    constraints: Constraints | None = None
    """Hard limits on the recommended option."""
    mode: Literal["Recommend", "Auto"] = "Recommend"
    """Recommend writes status only; Auto also scales targetRef when the cluster admin enabled auto-apply."""
    scaling: Scaling = Field(default_factory=Scaling, json_schema_extra={"default": Scaling().to_wire()})
    """Replica bounds and guardrails."""
    evaluation_interval: Duration = "5m"
    """How often selected WorkloadProfiles are re-evaluated against live metrics."""
    paused: bool = False
    """Stop acting on selected WorkloadProfiles (recommendations keep being written), as KEDA's pause."""


LISTED_WORKLOADS = 100
"""Profile names a policy's status lists at most: one object holds them, and a namespace may hold
thousands of profiles (a list of all of them grew each policy write with the namespace, and etcd
refuses objects over 1.5 MB)."""


class OptimizationPolicyStatus(Schema):
    """Observed state of an OptimizationPolicy, written by the operator only."""

    observed_generation: Annotated[int | None, Field(ge=0)] = None
    """The metadata.generation the status describes."""
    conditions: list[Condition] | None = None
    """Ready and InvalidSpec; Stalled (for kstatus) while Ready is False."""
    selected_workloads: Annotated[list[str] | None, Field(max_length=LISTED_WORKLOADS)] = None
    """The first 100 names, sorted, of the WorkloadProfiles this policy selects (selectedCount counts all)."""
    selected_count: int = 0
    """How many WorkloadProfiles this policy selects."""
    applied_workloads: Annotated[list[str] | None, Field(max_length=LISTED_WORKLOADS)] = None
    """The first 100 names, sorted, of those for which this policy applies (appliedCount counts all)."""
    applied_count: int = 0
    """How many of the selected WorkloadProfiles this policy applies to."""
