"""The GreenMatrix API (group greenmatrix.io, version v1alpha1) as pydantic models.

These models are the single source of truth: `greenmatrix crds` generates the
CustomResourceDefinitions from them, the operator parses objects with them, and the CLI reads
manifests with them.
"""

from greenmatrix.api.meta import API_VERSION, GROUP, VERSION, Condition, LabelSelector, TargetRef
from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec, OptimizationPolicyStatus
from greenmatrix.api.workloadprofile import WorkloadProfileSpec, WorkloadProfileStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "LabelSelector",
    "OptimizationPolicySpec",
    "OptimizationPolicyStatus",
    "TargetRef",
    "WorkloadProfileSpec",
    "WorkloadProfileStatus",
]
