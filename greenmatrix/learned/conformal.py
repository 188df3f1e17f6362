"""Split-conformal offsets from grouped residuals: how wide an 80% interval must be.

Plain numpy, no model: the offsets are quantiles of out-of-group residuals, each group weighing the
same. The trainers calibrate the shipped intervals with it and the novelty intervals scale it; a
live loop can calibrate on its own observed residuals with it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` under ``weights``: the first value whose cumulative share is q."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = weights[order]
    cum = np.cumsum(w) / np.sum(w)
    idx = int(np.searchsorted(cum, q, side="left"))
    return float(v[min(idx, len(v) - 1)])


def conformal_offsets(
    residuals: np.ndarray,
    groups: np.ndarray,
    lo: float = 0.1,
    hi: float = 0.9,
    group_weights: Mapping[str, float] | None = None,
) -> tuple[float, float]:
    """Lower/upper offsets from signed out-of-group residuals (actual - predicted).

    Each group gets equal total weight (or ``group_weights[name]``), so one big group cannot
    dictate the width for the rest; the levels are widened by the usual finite-sample (n+1)/n
    correction over groups, so a small number of groups errs on the wide side.
    """
    r = np.asarray(residuals, dtype=float)
    g = np.asarray([str(x) for x in groups])
    if r.size == 0:
        return 0.0, 0.0
    names, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    per_group = np.array([1.0 if group_weights is None else group_weights[n] for n in names])
    w = per_group[inverse] / counts[inverse]
    n_groups = len(names)
    # Finite-sample widening, counted in groups because groups (not rows) are the exchangeable unit.
    widen = 1.0 / (n_groups + 1)
    q_lo = max(0.0, lo - widen * lo)
    q_hi = min(1.0, hi + widen * (1.0 - hi))
    return weighted_quantile(r, w, q_lo), weighted_quantile(r, w, q_hi)
