"""Fitting a correction model: XGBoost on physics features, intervals calibrated on held-out groups.

Determinism: fixed seed, fixed thread count, stable group order; training twice writes the same
bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from greenmatrix.learned.cells import too_few_rows
from greenmatrix.learned.conformal import conformal_offsets, weighted_quantile
from greenmatrix.learned.core import (
    FORMAT_VERSION,
    MODEL_SUFFIX,
    POINT_SUFFIX,
    SIDECAR_SUFFIX,
    CorrectionModel,
)
from greenmatrix.learned.fitting.holdout import grouped_folds, profiled_folds

# Fixed so retraining gives identical files on any machine.
TRAIN_THREADS = 2
DEFAULT_PARAMS: Mapping[str, Any] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5.0,
    "lambda": 1.0,
    "max_bin": 128,
}
DEFAULT_ROUNDS = 300
# CV+ refits: at most this many grouped folds when calibrating intervals.
MAX_CALIBRATION_FOLDS = 6
# The point booster's weights are refreshed from its own residuals this many times (see _train_point).
POINT_REWEIGHTS = 3


def fit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    feature_names: list[str],
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    sample_weight: np.ndarray | None = None,
    monotone: Mapping[str, int] | None = None,
    calibrate: bool = True,
    extra_groupings: Sequence[np.ndarray] = (),
    pool_groupings: bool = False,
    point: bool = False,
    calibrate_known: bool = False,
) -> CorrectionModel:
    """A correction fitted on all rows; calibrate the interval on grouped out-of-fold residuals (CV+).

    ``groups`` names the unit a new prediction is "new" in (e.g. GPU type); the calibration
    refits with whole groups left out. With ``extra_groupings`` (e.g. model architecture) the
    calibration is repeated per grouping and the widest offset on each side is kept, so the
    interval holds whichever way a prediction is new; with ``pool_groupings`` the residuals of
    all groupings are pooled instead (each grouping weighing the same), for an interval that
    is right on average over the kinds of novelty rather than wide enough for the worst one.
    ``monotone`` maps feature name to +1/-1. With ``point`` a second booster is fitted to the
    relative error itself (`CorrectionModel.predict_with_point`); without it the point is the median. With
    ``calibrate_known`` a second pair of offsets is calibrated on rows split at random
    (`profiled_folds`, rows weighted as in training), for predictions whose groups were all in
    training (``CorrectionModel.predict(..., known=...)``); it is never wider than the out-of-group pair.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=float)
    groups = np.asarray([str(g) for g in groups])
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X must be 2-D with {len(feature_names)} columns, got shape {X.shape}")
    if not (len(y) == len(groups) == X.shape[0]):
        raise ValueError("X, y and groups must have the same number of rows")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains non-finite values")
    full_params = _params(params, seed, feature_names, monotone)
    recipe = _Recipe(list(feature_names), full_params, rounds)
    booster = recipe.train(X, y, sample_weight)
    lo, hi = (
        _calibrated_offsets(X, y, groups, sample_weight, recipe, extra_groupings, pool_groupings)
        if calibrate
        else (0.0, 0.0)
    )
    n_groups = len(set(groups.tolist()))
    info = {
        "n_train": len(y),
        "n_groups": int(n_groups),
        "rounds": int(rounds),
        "seed": int(seed),
        "params": {k: v for k, v in sorted(full_params.items()) if k != "nthread"},
    }
    point_booster = recipe.train_point(X, y, sample_weight) if point else None
    model = CorrectionModel(booster, list(feature_names), float(lo), float(hi), info, point_booster)
    if calibrate_known:
        k_lo, k_hi = _known_offsets(X, y, sample_weight, recipe)
        # A configuration like the measured ones is never less certain than a new GPU or model.
        if lo < hi:
            k_lo, k_hi = max(k_lo, lo), min(k_hi, hi)
        model.known_lo, model.known_hi = k_lo, k_hi
    return model


def _calibrated_offsets(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    sample_weight: np.ndarray | None,
    recipe: _Recipe,
    extra_groupings: Sequence[np.ndarray],
    pool_groupings: bool,
) -> tuple[float, float]:
    """p10/p90 offsets from grouped out-of-fold residuals: the widest over the groupings, or pooled."""
    lo = hi = 0.0
    pooled: list[tuple[np.ndarray, np.ndarray]] = []
    for kind, grouping in enumerate((groups, *extra_groupings)):
        g = np.asarray([str(x) for x in grouping])
        if len(g) != len(y):
            raise ValueError("every grouping must have one entry per row")
        if len(set(g.tolist())) < 2:
            continue
        oof = np.empty_like(y)
        for test in grouped_folds(g, MAX_CALIBRATION_FOLDS):
            train = np.setdiff1d(np.arange(len(y)), test)
            sw = None if sample_weight is None else sample_weight[train]
            b = recipe.train(X[train], y[train], sw)
            oof[test] = b.inplace_predict(X[test])
        if pool_groupings:
            pooled.append((y - oof, np.char.add(f"{kind}:", g)))
            continue
        g_lo, g_hi = conformal_offsets(y - oof, g)
        lo, hi = min(lo, g_lo), max(hi, g_hi)
    if pooled:
        residuals = np.concatenate([r for r, _ in pooled])
        names = np.concatenate([g for _, g in pooled])
        # Each grouping weighs 1 in total, shared equally by its groups.
        per_kind = {k: len(set(g.tolist())) for k, (_, g) in enumerate(pooled)}
        weights = {n: 1.0 / per_kind[k] for k, (_, g) in enumerate(pooled) for n in set(g.tolist())}
        lo, hi = conformal_offsets(residuals, names, group_weights=weights)
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return lo, hi


def save(model: CorrectionModel, directory: Path, name: str) -> list[Path]:
    """Write `model` as `name` into `directory`: the booster, its sidecar and the point booster if any."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / f"{name}{MODEL_SUFFIX}"
    meta_path = directory / f"{name}{SIDECAR_SUFFIX}"
    raw = model.booster.save_raw(raw_format="ubj")
    model_path.write_bytes(bytes(raw))
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "target": "log(measured / roofline)",
        "feature_names": model.feature_names,
        "offset_p10": _round(model.offset_lo),
        "offset_p90": _round(model.offset_hi),
        "xgboost_version": xgb.__version__,
        "info": model.info,
    }
    written = [model_path, meta_path]
    if model.known_lo is not None and model.known_hi is not None:
        meta["offset_known_p10"] = _round(model.known_lo)
        meta["offset_known_p90"] = _round(model.known_hi)
    if model.point_booster is not None:
        point_path = directory / f"{name}{POINT_SUFFIX}"
        point_path.write_bytes(bytes(model.point_booster.save_raw(raw_format="ubj")))
        meta["point_model"] = point_path.name
        written.insert(1, point_path)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return written


def _known_offsets(
    X: np.ndarray, y: np.ndarray, w: np.ndarray | None, recipe: _Recipe
) -> tuple[float, float]:
    """p10/p90 of out-of-fold residuals with rows split at random: the spread a prediction has when
    its GPU and model were measured and only the configuration is new."""
    oof = np.empty_like(y)
    for test in profiled_folds(X, seed=int(recipe.params.get("seed", 0))):
        train = np.setdiff1d(np.arange(len(y)), test)
        b = recipe.train(X[train], y[train], None if w is None else w[train])
        oof[test] = b.inplace_predict(X[test])
    weights = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    lo = weighted_quantile(y - oof, weights, 0.1)
    hi = weighted_quantile(y - oof, weights, 0.9)
    return min(lo, 0.0), max(hi, 0.0)


def _round(x: float) -> float:
    # Stable text in sidecars across platforms.
    return float(f"{x:.10g}")


def _params(
    params: Mapping[str, Any] | None, seed: int, feature_names: list[str], monotone: Mapping[str, int] | None
) -> dict[str, Any]:
    p = dict(DEFAULT_PARAMS)
    if params:
        p.update(params)
    p["seed"] = int(seed)
    p["nthread"] = TRAIN_THREADS
    if monotone:
        unknown = sorted(set(monotone) - set(feature_names))
        if unknown:
            raise ValueError(f"monotone constraints name unknown features {unknown}")
        p["monotone_constraints"] = "(" + ",".join(str(int(monotone.get(f, 0))) for f in feature_names) + ")"
    return p


@dataclass(frozen=True)
class _Recipe:
    """How every booster of one fit is trained: its features, xgboost parameters and rounds."""

    feature_names: list[str]
    params: Mapping[str, Any]
    rounds: int

    def train(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> xgb.Booster:
        if len(y) == 0:
            # Only a hold-out empties a fit (the loaders refuse a file with no usable row): xgboost would
            # fit nothing with a warning and the held-out score would be meaningless.
            raise too_few_rows(
                "setting a group aside to score the model on it (a GPU type, a model or a round) left"
                " none to fit on; give usable rows from at least two of each"
            )
        return xgb.train(dict(self.params), _matrix(X, y, w, self.feature_names), num_boost_round=self.rounds)

    def train_point(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> xgb.Booster:
        """A booster for the value with the least expected absolute percentage error.

        A prediction exp(m) of a measurement exp(y) is off by |exp(m - y) - 1| = exp(-y) |exp(m) -
        exp(y)|: absolute error weighted by 1/measured, so each leaf's best value is the median of its
        residuals weighted by exp(-(y - m)) (the optimal point for relative error: Gneiting, "Making and
        evaluating point forecasts", 2011). The absolute-error objective finds weighted medians, so the
        rounds are split into `POINT_REWEIGHTS` stages and the weights are refreshed from the current
        residuals before each (iteratively reweighted; residuals clipped at +/-3 so one wild row
        cannot take a leaf). Where errors are wide and skewed this sits below the median: a relative
        error cannot fall below -100% but can exceed +100%.
        """
        base = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
        p = {**self.params, "objective": "reg:absoluteerror"}
        stages = [
            n for n in np.diff(np.linspace(0, self.rounds, POINT_REWEIGHTS + 1).round().astype(int)) if n > 0
        ]
        booster: xgb.Booster | None = None
        weights = base
        for n in stages:
            if booster is not None:
                weights = base * np.exp(-np.clip(y - booster.inplace_predict(X), -3.0, 3.0))
                weights = weights / weights.mean()
            booster = xgb.train(p, _matrix(X, y, weights, self.feature_names), int(n), xgb_model=booster)
        if booster is None:
            raise ValueError("rounds must be positive")
        return booster


def _matrix(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, feature_names: list[str]) -> xgb.DMatrix:
    return xgb.DMatrix(X, label=y, weight=w, feature_names=feature_names, nthread=TRAIN_THREADS)
