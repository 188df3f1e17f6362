"""Multi-criteria ranking: TOPSIS with the policy's weights, and the Pareto front.

TOPSIS (Hwang and Yoon) scores each option by how close it is to an ideal option made of the best
value seen on every criterion and how far from the worst one:

    normalised  r_ij = x_ij / ||x_j||                (vector normalisation per criterion)
    weighted    v_ij = w_j r_ij                      (weights normalised to sum to 1)
    ideal       v+_j = max_i v_ij (benefit) or min_i v_ij (cost), anti-ideal the opposite
    closeness   c_i  = d-_i / (d+_i + d-_i)           (Euclidean distances; 1 is the ideal)

Vector normalisation makes the score independent of units (a criterion in $/h or in $/s gives
the same order), a zero weight removes a criterion, and an option that is at least as good on
every criterion as another never scores below it. Scores are compared at 9 decimals; ties are
broken by how many options dominate each one on all criteria (so that of two options equal on
what the policy weighs, one better on something else comes first), then by the unweighted
closeness, then by input order, so the result never depends on hashing or timing.

The ideal, the anti-ideal and the norms can also take reference options that are not ranked: the
planner passes those an objective, a constraint or the cluster's room rules out, so that how strict
an objective is (or how many nodes there are) decides which options qualify but not how the
qualifying ones compare (plain TOPSIS reverses ranks
when an alternative is removed).

Missing values (NaN, e.g. an option without a list price) are replaced by the worst value seen on
that criterion: an unknown never helps an option. A criterion with no known value is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Scores are compared after rounding, so that float noise below this never reorders equal options.
_SCORE_DECIMALS = 9


@dataclass(frozen=True)
class Criterion:
    """One column of the decision matrix."""

    name: str
    weight: float
    benefit: bool  # True when more is better (throughput), False when less is (latency, cost)


@dataclass(frozen=True)
class Ranking:
    """The outcome of ranking n options: scores by input position and the order, best first."""

    scores: tuple[float, ...]
    order: tuple[int, ...]
    pareto: tuple[bool, ...]


def _filled(matrix: np.ndarray, criteria: Sequence[Criterion]) -> tuple[np.ndarray, np.ndarray]:
    """The matrix with NaN replaced by each column's worst value, and a mask of usable columns."""
    filled = matrix.copy()
    usable = np.zeros(matrix.shape[1], dtype=bool)
    for j, crit in enumerate(criteria):
        column = filled[:, j]
        known = ~np.isnan(column)
        if not known.any():
            # Zero, not NaN: a NaN would poison every option's distance even at weight zero.
            column[:] = 0.0
            continue
        usable[j] = True
        worst = column[known].min() if crit.benefit else column[known].max()
        column[~known] = worst
    return filled, usable


def _closeness(matrix: np.ndarray, criteria: Sequence[Criterion], weights: np.ndarray) -> np.ndarray:
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0)
    total = weights.sum()
    if total <= 0:
        return np.zeros(n)
    w = weights / total
    norms = np.sqrt((matrix**2).sum(axis=0))
    norms[norms == 0] = 1.0  # a column of zeros carries no information
    v = matrix / norms * w
    benefit = np.array([c.benefit for c in criteria], dtype=bool)
    ideal = np.where(benefit, v.max(axis=0), v.min(axis=0))
    anti = np.where(benefit, v.min(axis=0), v.max(axis=0))
    d_plus = np.sqrt(((v - ideal) ** 2).sum(axis=1))
    d_minus = np.sqrt(((v - anti) ** 2).sum(axis=1))
    denom = d_plus + d_minus
    # Every option equal on every weighted criterion: all are as good as the ideal.
    return np.where(denom > 0, d_minus / np.where(denom > 0, denom, 1.0), 1.0)


def _matrix(
    values: Sequence[Sequence[float]] | np.ndarray, criteria: Sequence[Criterion], name: str
) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    if matrix.size == 0:
        matrix = matrix.reshape(0, len(criteria))
    if matrix.ndim != 2 or matrix.shape[1] != len(criteria):
        raise ValueError(f"{name}: expected {len(criteria)} columns, got shape {matrix.shape}")
    if np.any(matrix[~np.isnan(matrix)] < 0):
        raise ValueError(f"{name}: criteria must be non-negative (use benefit=False for costs)")
    return matrix


def topsis(
    values: Sequence[Sequence[float]] | np.ndarray,
    criteria: Sequence[Criterion],
    reference: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> Ranking:
    """Rank options (rows) on criteria (columns). Values must be >= 0; NaN means unknown.

    ``reference`` rows (other options that are not ranked, e.g. those an objective rules out) join
    the normalisation, the ideal and the anti-ideal, so that ruling them out does not reorder the
    options ranked: without it, tightening an objective the winner already meets can change the
    winner (TOPSIS rank reversal).

    Raises ValueError on a negative value or a shape that does not match the criteria.
    """
    if not criteria:
        raise ValueError("criteria: at least one criterion is needed")
    matrix = _matrix(values, criteria, "values")
    if any(c.weight < 0 for c in criteria):
        raise ValueError("weight: criterion weights must be >= 0")
    n = matrix.shape[0]
    extra = np.zeros((0, len(criteria))) if reference is None else _matrix(reference, criteria, "reference")
    # NaN fill, norms and ideals see the reference rows too; only the first n rows are ranked.
    both, usable = _filled(np.vstack([matrix, extra]), criteria)
    filled = both[:n]
    weights = np.array([c.weight if usable[j] else 0.0 for j, c in enumerate(criteria)], dtype=float)
    scores = _closeness(both, criteria, weights)[:n]
    unweighted = _closeness(both, criteria, usable.astype(float))[:n]
    # Among equal scores, an option dominated by fewer others comes first, on the weighted criteria
    # and then on all: if A dominates B, every dominator of A also dominates B, so A has fewer and
    # is never placed after B (even when a weight is too small to move the rounded score).
    weighted = [j for j in range(len(criteria)) if weights[j] > 0]
    weighted_criteria = [criteria[j] for j in weighted]
    beaten_weighted = _dominance(filled[:, weighted], weighted_criteria).sum(axis=0)
    beaten_all = _dominance(filled, criteria).sum(axis=0)
    keys = sorted(
        range(n),
        key=lambda i: (
            -round(float(scores[i]), _SCORE_DECIMALS),
            int(beaten_weighted[i]),
            int(beaten_all[i]),
            -round(float(unweighted[i]), _SCORE_DECIMALS),
            i,
        ),
    )
    front = pareto_front(filled[:, weighted], weighted_criteria)
    return Ranking(
        scores=tuple(round(float(s), _SCORE_DECIMALS) for s in scores),
        order=tuple(keys),
        pareto=front,
    )


def _dominance(matrix: np.ndarray, criteria: Sequence[Criterion]) -> np.ndarray:
    """d[i, k] is True when option i dominates option k (NaN-free matrix)."""
    if matrix.shape[0] == 0 or not criteria:
        return np.zeros((matrix.shape[0], matrix.shape[0]), dtype=bool)
    sign = np.array([1.0 if c.benefit else -1.0 for c in criteria])
    better = matrix * sign  # larger is better on every column
    ge = (better[:, None, :] >= better[None, :, :]).all(axis=2)
    gt = (better[:, None, :] > better[None, :, :]).any(axis=2)
    return ge & gt


def dominates(a: Sequence[float], b: Sequence[float], criteria: Sequence[Criterion]) -> bool:
    """Whether option a is at least as good as b on every criterion and strictly better on one."""
    better = False
    for x, y, crit in zip(a, b, criteria, strict=True):
        gain = (x - y) if crit.benefit else (y - x)
        if gain < 0:
            return False
        if gain > 0:
            better = True
    return better


def pareto_front(
    values: Sequence[Sequence[float]] | np.ndarray, criteria: Sequence[Criterion]
) -> tuple[bool, ...]:
    """For each option, whether no other option dominates it (on the given criteria, NaN-free)."""
    matrix = np.asarray(values, dtype=float)
    n = matrix.shape[0] if matrix.ndim == 2 else len(values)
    if not criteria:
        return tuple(True for _ in range(n))
    return tuple(bool(x) for x in ~_dominance(matrix.reshape(n, len(criteria)), criteria).any(axis=0))
