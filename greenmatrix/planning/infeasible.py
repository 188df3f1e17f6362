"""Why nothing is feasible: the field to change, in the user's words, and the best the catalog offers."""

from __future__ import annotations

import math

from greenmatrix.api.workloadprofile import Inventory
from greenmatrix.errors import NoFeasibleHardwareError
from greenmatrix.planning.context import Evaluated, PlanContext
from greenmatrix.planning.explain import cost_text


def no_feasible_error(
    ctx: PlanContext, inventory: Inventory | None, ranked: list[Evaluated], infeasible: list[Evaluated]
) -> NoFeasibleHardwareError:
    """Why nothing in the cluster works, and the best the catalog offers instead."""
    cluster_mode = inventory is not None
    failing = [e for e in infeasible if e.option.in_cluster] if cluster_mode else infeasible
    outside = [e for e in ranked if not e.option.in_cluster]
    # One reason per hardware kind: its closest layout's.
    per_kind: dict[str, Evaluated] = {}
    for e in failing:
        per_kind.setdefault(e.option.name, e)
    reasons = [f"{e.option.label}: {e.prediction.reason}" for e in per_kind.values()]
    # The field every failing option fails on, earliest in the order the checks run (memory
    # before load before SLOs): what no option can satisfy is what the user has to change.
    fields = [{f for f, _ in e.failures} for e in failing]
    common = set.intersection(*fields) if fields else set()
    order = [f for f, _ in failing[0].failures] if failing else []
    field_name = next((f for f in order if f in common), order[0] if order else "spec.hardware")
    if not ranked and not infeasible:
        head = "no hardware option passes the workload's and the policy's GPU restrictions"
        field_name = "spec.hardware.allowedGpus"
    elif cluster_mode and not failing:
        head = "no hardware in the cluster matches the workload's restrictions"
        field_name = "spec.hardware"
    elif cluster_mode:
        head = "no option in the cluster is feasible: " + "; ".join(reasons[:6])
    else:
        head = "no hardware option is feasible: " + "; ".join(reasons[:6])
    best, note, allowed = None, "", []
    if outside:
        top = outside[0]
        best = top.option.label
        note = f"best catalog option: {best} ({top.headline}, {cost_text(ctx, top)})"
        allowed = [e.option.label for e in outside[:3]]
    elif infeasible:
        closest = min(
            (e for e in infeasible if not math.isinf(e.severity)), key=lambda e: e.severity, default=None
        )
        if closest is not None:
            # Without a cluster every option is a catalog option: "either" would compare with nothing.
            # Nothing is allowed as is: the closest option is named, not offered.
            either = "no catalog option is feasible either, " if cluster_mode else ""
            note = f"{either}the closest is {closest.option.label} ({closest.prediction.reason})"
    tail = f"; {note}" if note else ""
    return NoFeasibleHardwareError(
        field_name, head + tail, allowed, best_catalog_option=best, catalog_note=note
    )
