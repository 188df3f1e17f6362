"""The one leave-group-out harness the three trainers score their models with.

A model is scored on whole groups it never saw (a GPU type, an architecture, a later round), never
on random rows: that is the question a user asks of hardware the model was not trained on. Beside
each held-out figure stand two yardsticks: the plain roofline on the same rows, and the same model
with rows split at random (`profiled_folds`), what profiling the hardware would buy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenmatrix.learned.conformal import conformal_offsets

# The label of the profiled case scored as a hold-out of its own: rows split at random, every GPU
# and model measured.
RANDOM_HOLDOUT = "random rows"


@dataclass
class BenchRow:
    """One line of `greenmatrix bench accuracy`: one held-out group, one target.

    ``mape_*`` are percentages (8.0 means 8%); ``coverage80`` is the fraction of held-out
    measurements inside the predicted p10..p90 interval (0.8 is perfect calibration).
    """

    dataset: str
    holdout: str
    n: int
    target: str
    mape_model: float
    mape_roofline: float
    coverage80: float
    # The same model with rows split at random (identical configurations kept together), so the
    # held-out group's GPU and model were seen in training: what profiling the hardware would buy.
    mape_profiled: float | None = None
    # A later round only: each row read off its GPU type's latest earlier result on the same
    # benchmark and scenario (what knowing the hardware exactly, but not the new software, gives).
    mape_last_round: float | None = None


def bench_rows(dataset: str, target: str, results: Sequence[Mapping[str, Any]]) -> list[BenchRow]:
    """Hold-out results (as `Scoring.result` makes them, profiled) as `greenmatrix bench accuracy` rows."""
    return [
        BenchRow(
            dataset,
            r["holdout"],
            r["n"],
            target,
            r["mape_model"],
            r["mape_roofline"],
            r["coverage80"],
            r["mape_profiled"],
            r.get("mape_last_round"),
        )
        for r in results
    ]


def mape(pred: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    p = np.asarray(pred, dtype=float)
    a = np.asarray(actual, dtype=float)
    if p.shape != a.shape or a.size == 0:
        raise ValueError(f"pred and actual must be non-empty and the same shape, got {p.shape} and {a.shape}")
    return float(np.mean(np.abs(p - a) / np.abs(a)) * 100.0)


def coverage(
    lo: Sequence[float] | np.ndarray, hi: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray
) -> float:
    """Fraction of ``actual`` inside ``[lo, hi]``."""
    a = np.asarray(actual, dtype=float)
    if a.size == 0:
        raise ValueError("coverage needs at least one value")
    inside = (a >= np.asarray(lo, dtype=float)) & (a <= np.asarray(hi, dtype=float))
    return float(np.mean(inside))


def leave_group_out(groups: Sequence[Any] | np.ndarray) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(held_out_group, train_idx, test_idx)`` for each distinct group, in sorted order."""
    g = np.asarray([str(x) for x in groups])
    for name in sorted(set(g.tolist())):
        test = np.flatnonzero(g == name)
        train = np.flatnonzero(g != name)
        yield name, train, test


def grouped_folds(groups: Sequence[Any] | np.ndarray, max_folds: int) -> list[np.ndarray]:
    """Deterministic grouped k-fold: whole groups per fold, balanced by row count.

    Returns the test indices of each fold. With fewer groups than ``max_folds`` each group is its
    own fold (leave-one-group-out).
    """
    g = np.asarray([str(x) for x in groups])
    names, counts = np.unique(g, return_counts=True)
    k = min(max_folds, len(names))
    # Largest groups first into the emptiest fold: balanced folds, independent of input order.
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    loads = [0] * k
    members: list[list[str]] = [[] for _ in range(k)]
    for i in order:
        f = min(range(k), key=lambda j: (loads[j], j))
        loads[f] += int(counts[i])
        members[f].append(str(names[i]))
    return [np.flatnonzero(np.isin(g, m)) for m in members]


def profiled_folds(X: np.ndarray, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Random k-fold over rows, identical feature rows kept in one fold (test indices per fold).

    The reference split for "profiled hardware": every GPU type and model is in training, only the
    row is new. Rows with identical features (the same configuration measured twice) share a fold,
    so a repeat measurement never scores as a prediction.
    """
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    _, config = np.unique(X, axis=0, return_inverse=True)
    config = np.asarray(config).reshape(-1)
    fold_of_config = np.random.default_rng(seed).integers(0, k, config.max() + 1 if config.size else 0)
    fold = fold_of_config[config]
    return [np.flatnonzero(fold == f) for f in range(k) if np.any(fold == f)]


def profiled_predictions(
    X: np.ndarray, predict: Callable[[np.ndarray, np.ndarray], np.ndarray], seed: int = 0
) -> np.ndarray:
    """Out-of-fold predictions over `profiled_folds`: ``predict(train_idx, test_idx)`` per fold."""
    out = np.zeros(len(X))
    for test in profiled_folds(X, seed=seed):
        out[test] = predict(np.setdiff1d(np.arange(len(X)), test), test)
    return out


def out_of_group(
    groups: np.ndarray, rows: np.ndarray, predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """p50 of each row in `rows` from ``predict(train, test)`` fitted on `rows` without the row's group."""
    oof = np.zeros(len(rows))
    for name in sorted(set(groups[rows].tolist())):
        test = groups[rows] == name
        oof[test] = predict(rows[~test], rows[test])
    return oof


@dataclass(frozen=True)
class Scoring:
    """The measured rows hold-outs are scored on: each row's roofline and measurement, and its group.

    Predictions are log-ratios to the roofline, as the correction models give them.
    """

    roofline: np.ndarray
    measured: np.ndarray
    groups: np.ndarray

    def result(
        self, label: str, rows: np.ndarray, lo: np.ndarray, mid: np.ndarray, hi: np.ndarray, **extra: Any
    ) -> dict[str, Any]:
        """One hold-out's figures for `rows` given their p10/p50/p90; `rows` stays for `profiled`."""
        roof, actual = self.roofline[rows], self.measured[rows]
        return {
            "holdout": label,
            "n": len(actual),
            "mape_model": mape(roof * np.exp(mid), actual),
            "mape_roofline": mape(roof, actual),
            "coverage80": coverage(roof * np.exp(lo), roof * np.exp(hi), actual),
            **extra,
            "rows": rows,
        }

    def each_group(
        self,
        oof: np.ndarray,
        offsets: Callable[[str, np.ndarray], tuple[float, float]],
        min_rows: int,
        prefix: str = "gpu",
    ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
        """Every group held out in turn, from out-of-group predictions `oof` of all rows.

        ``offsets(group, others)`` gives the held-out group's interval from the other groups' rows
        only. Returns a result per group of at least `min_rows` rows, then all groups pooled, and
        the p10 and p90 of every row.
        """
        lo, hi = np.zeros_like(oof), np.zeros_like(oof)
        names = sorted(set(self.groups.tolist()))
        for name in names:
            test = self.groups == name
            off_lo, off_hi = offsets(name, np.flatnonzero(~test))
            lo[test], hi[test] = oof[test] + off_lo, oof[test] + off_hi
        out = []
        for name in names:
            test = np.flatnonzero(self.groups == name)
            if len(test) >= min_rows:
                out.append(self.result(f"{prefix}={name}", test, lo[test], oof[test], hi[test]))
        everything = np.arange(len(oof))
        out.append(self.result(f"{prefix}=each (pooled)", everything, lo, oof, hi))
        return out, lo, hi

    def conformal(self, y: np.ndarray, oof: np.ndarray) -> Callable[[str, np.ndarray], tuple[float, float]]:
        """`each_group`'s offsets: conformal on the other groups' out-of-group residuals of target `y`."""

        def offsets(_name: str, others: np.ndarray) -> tuple[float, float]:
            return conformal_offsets(y[others] - oof[others], self.groups[others])

        return offsets

    def profiled(self, results: list[dict[str, Any]], profiled: np.ndarray) -> list[dict[str, Any]]:
        """`results` with each one's `rows` replaced by ``mape_profiled``: its rows predicted by a model
        that saw their group (`profiled` log-ratios, from `profiled_predictions`)."""
        for r in results:
            rows = r.pop("rows")
            r["mape_profiled"] = mape(self.roofline[rows] * np.exp(profiled[rows]), self.measured[rows])
        return results
