"""The learned correction as the predictors use it: a small XGBoost model on top of physics.

Every learned model in GreenMatrix predicts ``log(measured / roofline)`` from physics features, so
the physics carries what generalises (FLOPS, bandwidth, bytes moved) and the trees only learn the
systematic efficiency gap. Intervals come from out-of-group residuals (CV+ style): the model is
refitted with whole groups (a GPU type, a model) left out, and the spread of the errors on the
left-out groups calibrates p10/p90. That answers the question a user actually asks, "how wrong
can this be on hardware the model never saw", rather than the optimistic in-sample spread.

This module loads and applies a fitted model; `greenmatrix.learned.fitting` fits and writes one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import xgboost as xgb

from greenmatrix.interval import Interval

# The files of a model named N: N.ubj (the booster), N.meta.json (features and offsets), and
# N.point.ubj when it has a point booster.
SIDECAR_SUFFIX = ".meta.json"
MODEL_SUFFIX = ".ubj"
POINT_SUFFIX = ".point.ubj"
FORMAT_VERSION = 1

Predictor = TypeVar("Predictor")


@dataclass
class CorrectionModel:
    """XGBoost regression of a log-ratio target on physics features, with conformal offsets.

    ``predict`` returns ``(p10, p50, p90)`` of the target (the log-ratio); callers multiply
    ``exp(.)`` of each with their roofline estimate. Fitting and saving are offline work, in
    `greenmatrix.learned.fitting.correction`.
    """

    booster: xgb.Booster
    feature_names: list[str]
    offset_lo: float
    offset_hi: float
    info: dict[str, Any] = field(default_factory=dict)
    # Fitted to the relative error itself (`fitting.correction`); None: the point is the median.
    point_booster: xgb.Booster | None = None
    # Offsets for rows like the training rows (their GPU and model measured), calibrated on rows
    # split at random; None: every row gets the out-of-group offsets.
    known_lo: float | None = None
    known_hi: float | None = None

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


def ratio_interval(base: float, lo: float, mid: float, hi: float) -> Interval:
    """``base`` times exp of each log-ratio quantile: the correction applied to a roofline figure."""
    return Interval(base * math.exp(lo), base * math.exp(mid), base * math.exp(hi))


def models_dir() -> Path:
    """Where trained models live: $GREENMATRIX_MODELS, a checkout's models/, or the installed package."""
    env = os.environ.get("GREENMATRIX_MODELS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").exists() and (repo / "models").is_dir():
        return repo / "models"
    return Path(str(resources.files("greenmatrix.trained")))


class LoadedOnce(Generic[Predictor]):
    """A predictor read from a models directory (default: `models_dir()`) once per process.

    Calling it returns the loaded predictor; `unload` forgets every loaded one, so that the next call
    reads the files again (after `greenmatrix train` rewrote them in the same process).
    """

    def __init__(self, load: Callable[[Path], Predictor]) -> None:
        self._cached = lru_cache(maxsize=4)(lambda directory: load(Path(directory)))

    def __call__(self, directory: Path | None = None) -> Predictor:
        return self._cached(str(directory or models_dir()))

    def unload(self) -> None:
        self._cached.cache_clear()
