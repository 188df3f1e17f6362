"""Shared learned core: a small XGBoost correction on top of physics, with conformal intervals.

Every learned model in GreenMatrix predicts ``log(measured / roofline)`` from physics features, so
the physics carries what generalises (FLOPS, bandwidth, bytes moved) and the trees only learn the
systematic efficiency gap. Intervals come from out-of-group residuals (CV+ style): the model is
refitted with whole groups (a GPU type, a model) left out, and the spread of the errors on the
left-out groups calibrates p10/p90. That answers the question a user actually asks, "how wrong
can this be on hardware the model never saw", rather than the optimistic in-sample spread.

Determinism: fixed seed, fixed thread count, stable group order; training twice writes the same
bytes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from greenmatrix.errors import GreenMatrixError, InvalidSpecError

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
SIDECAR_SUFFIX = ".meta.json"
MODEL_SUFFIX = ".ubj"
POINT_SUFFIX = ".point.ubj"
# The point booster's weights are refreshed from its own residuals this many times (see _train_point).
POINT_REWEIGHTS = 3
FORMAT_VERSION = 1


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


# Larger than any system a CSV row describes (an NVL72 rack is 72 GPUs, MLPerf's largest
# submissions a few thousand); beyond it a count is a typo, not a configuration.
MAX_COUNT = 100_000


def positive_cell(text: Any) -> float | None:
    """A measured cell's value when it is a finite positive number, else None (blank, text, 0, nan)."""
    try:
        value = float(text or "nan")
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def count_cell(
    row: Mapping[str, Any],
    column: str,
    default: int | None = None,
    *,
    minimum: int = 1,
    maximum: int = MAX_COUNT,
) -> int | None:
    """A count column of a CSV row: blank -> ``default``; otherwise a whole number in [minimum, maximum].

    Anything else ("abc", "1.5", "nan", "-8", "1e30") raises InvalidSpecError naming the column,
    so a typo gets the row a reason instead of silently becoming the default.
    """
    text = str(row.get(column) if row.get(column) is not None else "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and minimum <= value <= maximum):
        raise InvalidSpecError(column, f"{text!r} is not a whole number from {minimum} to {maximum:,}")
    return int(value)


def mlperf_round(version: Any, latest: float, example: str, *, strict: bool = False) -> float:
    """An MLPerf round ('v3.1' or '3.1') as a number; ``latest`` when empty.

    Unreadable text is the latest round too, unless ``strict``: then an InvalidSpecError naming
    the `version` column (a batch row's typo must not silently become another round).
    """
    text = str(version or "").strip().lstrip("vV")
    try:
        value = float(text) if text else latest
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value > 0:
        return value
    if strict:
        raise InvalidSpecError("version", f"{version!r} is not an MLPerf round such as {example} (or empty)")
    return latest


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


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
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
    return _weighted_quantile(r, w, q_lo), _weighted_quantile(r, w, q_hi)


@dataclass
class CorrectionModel:
    """XGBoost regression of a log-ratio target on physics features, with conformal offsets.

    ``predict`` returns ``(p10, p50, p90)`` of the target (the log-ratio); callers multiply
    ``exp(.)`` of each with their roofline estimate.
    """

    booster: xgb.Booster
    feature_names: list[str]
    offset_lo: float
    offset_hi: float
    info: dict[str, Any] = field(default_factory=dict)
    # Fitted to the relative error itself (`_train_point`); None: the point is the median.
    point_booster: xgb.Booster | None = None
    # Offsets for rows like the training rows (their GPU and model measured), calibrated on rows
    # split at random; None: every row gets the out-of-group offsets.
    known_lo: float | None = None
    known_hi: float | None = None

    @classmethod
    def fit(
        cls,
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
        """Fit on all rows; calibrate the interval on grouped out-of-fold residuals (CV+).

        ``groups`` names the unit a new prediction is "new" in (e.g. GPU type); the calibration
        refits with whole groups left out. With ``extra_groupings`` (e.g. model architecture) the
        calibration is repeated per grouping and the widest offset on each side is kept, so the
        interval holds whichever way a prediction is new; with ``pool_groupings`` the residuals of
        all groupings are pooled instead (each grouping weighing the same), for an interval that
        is right on average over the kinds of novelty rather than wide enough for the worst one.
        ``monotone`` maps feature name to +1/-1. With ``point`` a second booster is fitted to the
        relative error itself (`predict_point`); without it the point is the median. With
        ``calibrate_known`` a second pair of offsets is calibrated on rows split at random
        (`profiled_folds`, rows weighted as in training), for predictions whose groups were all in
        training (``predict(..., known=...)``); it is never wider than the out-of-group pair.
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
        booster = _train(X, y, sample_weight, feature_names, full_params, rounds)
        lo = hi = 0.0
        n_groups = len(set(groups.tolist()))
        pooled: list[tuple[np.ndarray, np.ndarray]] = []
        if calibrate:
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
                    b = _train(X[train], y[train], sw, feature_names, full_params, rounds)
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
        info = {
            "n_train": len(y),
            "n_groups": int(n_groups),
            "rounds": int(rounds),
            "seed": int(seed),
            "params": {k: v for k, v in sorted(full_params.items()) if k != "nthread"},
        }
        point_booster = (
            _train_point(X, y, sample_weight, feature_names, full_params, rounds) if point else None
        )
        model = cls(booster, list(feature_names), float(lo), float(hi), info, point_booster)
        if calibrate_known:
            k_lo, k_hi = _known_offsets(X, y, sample_weight, feature_names, full_params, rounds)
            # A configuration like the measured ones is never less certain than a new GPU or model.
            if lo < hi:
                k_lo, k_hi = max(k_lo, lo), min(k_hi, hi)
            model.known_lo, model.known_hi = k_lo, k_hi
        return model

    def predict(
        self, X: np.ndarray, known: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(p10, p50, p90)``; rows flagged in ``known`` get the offsets calibrated on measured
        groups (when the model has them), the rest the out-of-group offsets."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X must be 2-D with {len(self.feature_names)} columns, got shape {X.shape}")
        if X.shape[0] == 0:
            empty = np.zeros(0)
            return empty, empty, empty
        p50 = np.asarray(self.booster.inplace_predict(X), dtype=float)
        lo = np.full(len(p50), self.offset_lo)
        hi = np.full(len(p50), self.offset_hi)
        if known is not None and self.known_lo is not None and self.known_hi is not None:
            k = np.asarray(known, dtype=bool)
            if k.shape != p50.shape:
                raise ValueError(f"known must have one entry per row ({len(p50)}), got shape {k.shape}")
            lo = np.where(k, self.known_lo, lo)
            hi = np.where(k, self.known_hi, hi)
        return p50 + lo, p50, p50 + hi

    def predict_point(self, X: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
        """The least-relative-error point (log ratio); see `predict_with_point`."""
        return self.predict_with_point(X, known)[3]

    def predict_with_point(
        self, X: np.ndarray, known: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(p10, p50, p90, point)``: the point is kept inside the 80% interval (when the model
        has one) and is the median when no point booster was fitted."""
        lo, mid, hi = self.predict(X, known)
        if self.point_booster is None or len(mid) == 0:
            return lo, mid, hi, mid
        point = np.asarray(self.point_booster.inplace_predict(np.asarray(X, dtype=np.float32)), dtype=float)
        # Rows without an interval (an uncalibrated model) keep the booster's point as it is.
        point = np.where(lo < hi, np.clip(point, lo, hi), point)
        return lo, mid, hi, point

    def save(self, directory: Path, name: str) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model_path = directory / f"{name}{MODEL_SUFFIX}"
        meta_path = directory / f"{name}{SIDECAR_SUFFIX}"
        raw = self.booster.save_raw(raw_format="ubj")
        model_path.write_bytes(bytes(raw))
        meta = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "target": "log(measured / roofline)",
            "feature_names": self.feature_names,
            "offset_p10": _round(self.offset_lo),
            "offset_p90": _round(self.offset_hi),
            "xgboost_version": xgb.__version__,
            "info": self.info,
        }
        written = [model_path, meta_path]
        if self.known_lo is not None and self.known_hi is not None:
            meta["offset_known_p10"] = _round(self.known_lo)
            meta["offset_known_p90"] = _round(self.known_hi)
        if self.point_booster is not None:
            point_path = directory / f"{name}{POINT_SUFFIX}"
            point_path.write_bytes(bytes(self.point_booster.save_raw(raw_format="ubj")))
            meta["point_model"] = point_path.name
            written.insert(1, point_path)
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return written

    @classmethod
    def load(cls, directory: Path, name: str) -> CorrectionModel:
        directory = Path(directory)
        model_path = directory / f"{name}{MODEL_SUFFIX}"
        meta_path = directory / f"{name}{SIDECAR_SUFFIX}"
        if not model_path.exists() or not meta_path.exists():
            raise FileNotFoundError(
                f"model {name!r} not found in {directory} (expected {model_path.name} and {meta_path.name}); "
                "run `greenmatrix train --data DIR` to create it"
            )
        meta = json.loads(meta_path.read_text())
        booster = xgb.Booster()
        booster.load_model(bytearray(model_path.read_bytes()))
        # Prediction batches are small; one thread avoids pool start-up cost per call.
        booster.set_param({"nthread": 1})
        point_booster = None
        if meta.get("point_model"):
            point_booster = xgb.Booster()
            point_booster.load_model(bytearray((directory / meta["point_model"]).read_bytes()))
            point_booster.set_param({"nthread": 1})
        return cls(
            booster,
            list(meta["feature_names"]),
            float(meta["offset_p10"]),
            float(meta["offset_p90"]),
            dict(meta.get("info", {})),
            point_booster,
            _optional_float(meta.get("offset_known_p10")),
            _optional_float(meta.get("offset_known_p90")),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _known_offsets(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    feature_names: list[str],
    params: Mapping[str, Any],
    rounds: int,
) -> tuple[float, float]:
    """p10/p90 of out-of-fold residuals with rows split at random: the spread a prediction has when
    its GPU and model were measured and only the configuration is new."""
    oof = np.empty_like(y)
    for test in profiled_folds(X, seed=int(params.get("seed", 0))):
        train = np.setdiff1d(np.arange(len(y)), test)
        b = _train(X[train], y[train], None if w is None else w[train], feature_names, params, rounds)
        oof[test] = b.inplace_predict(X[test])
    weights = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    lo = _weighted_quantile(y - oof, weights, 0.1)
    hi = _weighted_quantile(y - oof, weights, 0.9)
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


def _train(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    feature_names: list[str],
    params: Mapping[str, Any],
    rounds: int,
) -> xgb.Booster:
    if len(y) == 0:
        # Only a hold-out empties a fit (the loaders refuse a file with no usable row): xgboost would
        # fit nothing with a warning and the held-out score would be meaningless.
        raise too_few_rows(
            "setting a group aside to score the model on it (a GPU type, a model or a round) left"
            " none to fit on; give usable rows from at least two of each"
        )
    return xgb.train(dict(params), _matrix(X, y, w, feature_names), num_boost_round=rounds)


# --- reference data and --out -----------------------------------------------------------------


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a reference CSV (column -> text; a short row's missing cells read as blank).

    The file comes from the user's `--data` folder, so one that cannot be read is a
    GreenMatrixError naming the file, not a traceback.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh, restval=""))
    except UnicodeDecodeError:
        raise data_error(path, f"is not UTF-8 text (byte {_first_non_utf8(path)})") from None
    except csv.Error as err:
        raise data_error(path, f"is not a readable CSV ({err})") from None
    except IsADirectoryError:
        raise data_error(path, "is a directory, not a CSV file") from None
    except FileNotFoundError:
        raise data_error(path, "does not exist") from None
    except OSError as err:
        raise data_error(path, f"cannot be read ({err.strerror or err})") from None


def data_error(path: Path, problem: str) -> GreenMatrixError:
    """The error for a `--data` file: ``problem`` says what is wrong with it."""
    return GreenMatrixError("--data", f"{path}: {problem}")


def too_few_rows(problem: str) -> GreenMatrixError:
    """The error for `--data` whose usable rows are too few for `train` to fit and score a model."""
    return GreenMatrixError("--data", f"too few usable rows: {problem}")


def _first_non_utf8(path: Path) -> int:
    # The text reader decodes in chunks, so its error offset is within a chunk, not the file.
    try:
        Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start
    return 0


def no_usable_rows(
    path: Path,
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    first_reason: str,
    what: str = "rows",
) -> GreenMatrixError:
    """The error for a CSV none of whose ``rows`` a model can use, saying why.

    ``columns`` are what every usable row needs ("A|B": either); ``first_reason`` is why the first
    row was not usable, given when the columns are all there.
    """
    header = _header(path)
    wanted = ", ".join(c.replace("|", " or ") for c in columns)
    if not header:
        return data_error(path, f"is empty: needs a header row with columns {wanted}")
    none = f"has no usable {what}"
    missing = [c.replace("|", " or ") for c in columns if not set(c.split("|")) & set(header)]
    if len(missing) == len(columns):
        shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
        return data_error(path, f"{none}: needs columns {wanted}, but its columns are {shown}")
    if missing:
        return data_error(path, f"{none}: needs columns {wanted} (missing: {', '.join(missing)})")
    if not rows:
        return data_error(path, f"{none}: it has a header but no data rows")
    return data_error(path, f"{none} ({len(rows)} read; the first: {first_reason})")


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


@contextmanager
def out_directory(path: Path) -> Iterator[Path]:
    """`path` (a `--out` directory) created for the block; GreenMatrixError naming `--out` when it
    cannot be created or written.

    If the block fails, the directories it created are removed again while still empty: an empty
    `--out` would look like the result of a run.
    """
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty(created)
        raise _cannot_create(path, err) from None
    try:
        yield path
    except OSError as err:
        _remove_empty(created)
        # A write that fails mid-file (a full disk) carries no file name; one naming another path
        # is not about --out and shows as what it is.
        where = Path(err.filename) if isinstance(err.filename, str) else None
        if where is None or where == path:
            what = "write into it"
        elif where.is_relative_to(path):
            what = f"write {where.relative_to(path)}"
        else:
            raise
        raise GreenMatrixError("--out", f"{path}: cannot {what} ({err.strerror or err})") from None
    except BaseException:
        _remove_empty(created)
        raise


def _cannot_create(path: Path, err: OSError) -> GreenMatrixError:
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    reason = f"{blocker} is a file, not a directory" if blocker else err.strerror or str(err)
    return GreenMatrixError("--out", f"{path}: cannot create the directory ({reason})")


def _remove_empty(directories: Sequence[Path]) -> None:
    # Deepest first, so a parent made for `path` goes too once `path` is gone.
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def models_dir() -> Path:
    """Where trained models live: $GREENMATRIX_MODELS, a checkout's models/, or the installed package."""
    env = os.environ.get("GREENMATRIX_MODELS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").exists() and (repo / "models").is_dir():
        return repo / "models"
    return Path(str(resources.files("greenmatrix.trained")))


def write_model_card(directory: Path, name: str, card: Mapping[str, Any]) -> Path:
    """Render a model card as markdown at ``directory/<name>.md``.

    ``card`` keys: ``title`` (str), then any sections in order; a section value may be a string
    (paragraph), a list of strings (bullets), a list of dicts (a table, columns from the first
    row) or a dict (``key: value`` bullets).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"# {card.get('title', name)}", ""]
    for heading, body in card.items():
        if heading == "title":
            continue
        lines += [f"## {heading}", ""]
        lines += _render(body)
        lines.append("")
    path = directory / f"{name}.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)


def _render(body: Any) -> list[str]:
    if isinstance(body, str):
        return [body]
    if isinstance(body, Mapping):
        return [f"- **{k}**: {_fmt(v)}" for k, v in body.items()]
    if isinstance(body, Sequence) and body and all(isinstance(r, Mapping) for r in body):
        cols = list(body[0].keys())
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in body]
        return out
    if isinstance(body, Sequence):
        return [f"- {_fmt(x)}" for x in body]
    return [_fmt(body)]


def _train_point(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
    feature_names: list[str],
    params: Mapping[str, Any],
    rounds: int,
) -> xgb.Booster:
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
    p = {**params, "objective": "reg:absoluteerror"}
    stages = [n for n in np.diff(np.linspace(0, rounds, POINT_REWEIGHTS + 1).round().astype(int)) if n > 0]
    booster: xgb.Booster | None = None
    weights = base
    for n in stages:
        if booster is not None:
            weights = base * np.exp(-np.clip(y - booster.inplace_predict(X), -3.0, 3.0))
            weights = weights / weights.mean()
        booster = xgb.train(p, _matrix(X, y, weights, feature_names), int(n), xgb_model=booster)
    if booster is None:
        raise ValueError("rounds must be positive")
    return booster


def _matrix(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, feature_names: list[str]) -> xgb.DMatrix:
    return xgb.DMatrix(X, label=y, weight=w, feature_names=feature_names, nthread=TRAIN_THREADS)
