"""The rules of an OptimizationPolicy, decided here once for the engine, the operator and the CLI:
which policy applies to a workload, the weights of its objectives, its scaling bounds and its
constraints (a workload without a policy gets the defaults)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

from greenmatrix.api.optimizationpolicy import Constraints, Objectives, OptimizationPolicySpec, Scaling


class NamedPolicy(Protocol):
    """A policy with its object name: the operator's parsed objects and the CLI's manifests alike."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> OptimizationPolicySpec: ...


P = TypeVar("P", bound=NamedPolicy)


def applied_policy(policies: Iterable[P], labels: Mapping[str, str]) -> P | None:
    """The policy that applies to an object with these labels: the highest priority among those whose
    selector matches, ties to the first name."""
    selecting = [p for p in policies if p.spec.selector.matches(dict(labels))]
    return min(selecting, key=lambda p: (-p.spec.priority, p.name), default=None)


def weights_of(policy: OptimizationPolicySpec | None) -> dict[str, float]:
    """The objectives' weights, normalised to sum to 1 (the defaults without a policy)."""
    o = policy.objectives if policy is not None else Objectives()
    raw = {
        "latency": o.latency,
        "throughput": o.throughput,
        "cost": o.cost,
        "energy": o.energy,
        "carbon": o.carbon,
    }
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def scaling_of(policy: OptimizationPolicySpec | None) -> Scaling:
    return policy.scaling if policy is not None else Scaling()


def constraints_of(policy: OptimizationPolicySpec | None) -> Constraints:
    return (policy.constraints if policy is not None else None) or Constraints()
