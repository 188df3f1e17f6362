"""The engine's answer for one workload (`Plan`), and how it reads on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from greenmatrix.api.workloadprofile import Advice, OptionPrediction, Recommendation
from greenmatrix.errors import NoFeasibleHardwareError
from greenmatrix.planning.context import Evaluated

MAX_ALTERNATIVES = 10
MAX_BETTER_OUTSIDE = 5


@dataclass(frozen=True)
class Plan:
    """The engine's answer for one workload: what to run on, the alternatives, and advice."""

    task: str
    options: tuple[OptionPrediction, ...]
    """Every option considered: feasible ones best first, then infeasible ones closest first."""
    recommendation: Recommendation | None
    alternatives: tuple[OptionPrediction, ...]
    better_outside_cluster: tuple[OptionPrediction, ...]
    advice: tuple[Advice, ...]
    error: NoFeasibleHardwareError | None
    """Set when no option in the cluster (or, without a cluster, in the catalog) is feasible."""
    weights: dict[str, float]
    notes: tuple[str, ...] = ()
    evaluated: tuple[Evaluated, ...] = field(default=(), repr=False, compare=False)

    @property
    def feasible(self) -> bool:
        return self.recommendation is not None

    def raise_if_infeasible(self) -> None:
        if self.error is not None:
            raise self.error

    def status(self) -> dict[str, Any]:
        """The WorkloadProfile status fields the plan sets, on the wire (camelCase).

        A field the plan leaves empty is None, so that a JSON merge patch of this dict clears what
        an earlier plan wrote. `appliedPolicy` and conditions are the operator's to set.
        """
        out: dict[str, Any] = {
            "recommendation": self.recommendation.to_wire() if self.recommendation else None,
            "alternatives": [o.to_wire() for o in self.alternatives[:MAX_ALTERNATIVES]] or None,
            "betterOutsideCluster": [o.to_wire() for o in self.better_outside_cluster[:MAX_BETTER_OUTSIDE]]
            or None,
            "advice": [a.to_wire() for a in self.advice[:10]] or None,
        }
        return out

    def to_wire(self) -> dict[str, Any]:
        """The whole plan as plain data (camelCase), as `greenmatrix simulate -o json` prints it."""
        out = {"task": self.task, **self.status(), "options": [o.to_wire() for o in self.options]}
        out["weights"] = dict(self.weights)
        if self.error is not None:
            out["error"] = {
                "reason": self.error.reason,
                "field": self.error.field,
                "message": self.error.message,
                "allowed": list(self.error.allowed),
            }
        if self.notes:
            out["notes"] = list(self.notes)
        return out
