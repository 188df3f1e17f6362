"""One hardware option after prediction, sizing and pricing, and the context every evaluation reads.

Serving and training options are both judged as `Evaluated` values on the same criteria, so the
ranking, the explanation and the operator see one shape whatever the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from greenmatrix.api.optimizationpolicy import Constraints, OptimizationPolicySpec, Scaling
from greenmatrix.api.workloadprofile import OptionPrediction, WorkloadProfileSpec
from greenmatrix.catalog.llms import ModelArch
from greenmatrix.catalog.precision import PRECISIONS
from greenmatrix.planning.options import HardwareOption, Restrictions
from greenmatrix.predict.predictors import Predictors

CRITERIA = ("latency", "throughput", "cost", "energy", "carbon")


@dataclass(frozen=True)
class Evaluated:
    """One option after prediction, sizing and pricing; `failures` lists (field, why) pairs."""

    option: HardwareOption
    prediction: OptionPrediction
    failures: tuple[tuple[str, str], ...]
    values: tuple[float, ...]  # latency, throughput, cost, energy, carbon (NaN when unknown)
    severity: float  # how far from feasible (worst ratio of predicted to allowed), for ordering
    headline: str  # e.g. "TPOT 31 ms [27-36]"
    weights_gib: float
    notes: tuple[str, ...] = ()
    basis: str = ""  # the predictor's own explanation of its numbers (what bounds them)

    @property
    def feasible(self) -> bool:
        return not self.failures

    @property
    def runnable(self) -> bool:
        """Whether it could run the workload but for an objective, a policy constraint or the room
        left in the cluster: such an option is part of what the feasible ones are compared against,
        so neither a tighter objective nor a node coming or going reorders the others."""
        return all(f.startswith(_RULING_OUT_FIELDS) for f, _ in self.failures)


# Limits that only rule options out; they never change an option's predicted numbers.
_RULING_OUT_FIELDS = ("spec.inference.slo.", "spec.training.deadlineHours", "policy.constraints.", "cluster")


@dataclass
class PlanContext:
    """What every option's evaluation reads: the spec, its model, the policy and the predictors."""

    spec: WorkloadProfileSpec
    arch: ModelArch
    policy: OptimizationPolicySpec | None
    scaling: Scaling
    constraints: Constraints
    restrictions: Restrictions
    region: str | None
    predictors: Predictors


def unpredictable(o: HardwareOption, why: str, field: str = "hardware") -> Evaluated:
    """An option the predictors could not judge: infeasible, ranked last, `why` as its reason.

    `field` is what the user would change to have it judged, when something in the spec is."""
    nan = float("nan")
    return Evaluated(
        option=o,
        prediction=OptionPrediction(
            gpu=o.name,
            gpus_per_replica=o.gpus_per_replica,
            replicas=o.pods,
            in_cluster=o.in_cluster,
            feasible=False,
            reason=why,
        ),
        failures=((field, why),),
        values=(nan,) * len(CRITERIA),
        severity=math.inf,
        headline="not predicted",
        weights_gib=0.0,
    )


def unrated_precision(o: HardwareOption, precision: str) -> Evaluated | None:
    """The option as unpredictable when the catalog lists no tensor rate its GPU runs `precision` at
    (fp32 on Blackwell parts, which list tf32), else None.

    The predictors would only fail inside with their own words ("jobs[0].precision"); the user can
    change spec.model.precision, so the reason names it and what the GPU does run.
    """
    if o.gpu is None or o.note or o.gpu.flops_key(precision) is not None:
        return None
    runs = ", ".join(p for p in PRECISIONS if o.gpu.flops_key(p) is not None)
    why = f"the catalog lists no {precision} tensor rate for {o.name} (it runs {runs})"
    return unpredictable(o, why, "spec.model.precision")
