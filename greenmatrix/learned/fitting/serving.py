"""`greenmatrix train` and `bench accuracy` for the LLM serving TTFT/TPOT corrections.

Trained on the measured serving benchmarks (`llm_serving/measured_ttft_tpot.csv`); scored on each
GPU system and each architecture held out in turn, and on rows split at random (the profiled case).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from greenmatrix.catalog.llms import ModelArch
from greenmatrix.errors import GreenMatrixError
from greenmatrix.learned import serving
from greenmatrix.learned.core import CorrectionModel
from greenmatrix.learned.fitting import correction, serving_card
from greenmatrix.learned.fitting.cards import rounded, write_model_card
from greenmatrix.learned.fitting.holdout import (
    RANDOM_HOLDOUT,
    BenchRow,
    coverage,
    leave_group_out,
    mape,
    profiled_folds,
)
from greenmatrix.learned.fitting.rows import no_usable_rows, read_csv_rows
from greenmatrix.physics.llm import ServingRoofline
from greenmatrix.scenarios import ServingScenario

DATASET = "llm-serving"
DATA_FILE = Path("llm_serving") / "measured_ttft_tpot.csv"
# What a row needs to be usable at all, named when a --data file has none of them.
DATA_COLUMNS = ("silicon_ttft_ms", "silicon_tpot_ms", "model_path", "system", "backend", "isl", "osl")
BENCH_FILE = "serving.bench.json"
SEED = 0


@dataclass(frozen=True)
class Dataset:
    scenarios: list[ServingScenario]
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    system: np.ndarray  # GPU system id per row (for grouping only, never a feature)
    model_name: np.ndarray  # architecture name per row (grouping only)
    skipped: dict[str, int]


# A row failing with one of these is left out of the data and counted in Dataset.skipped by type:
# a catalog miss or an unusable layout (GreenMatrixError) included, as the MLPerf loaders skip them.
_UNUSABLE = (ValueError, KeyError, GreenMatrixError)


def _measured(row: Mapping[str, str]) -> tuple[ServingScenario, float, float, ModelArch]:
    """A data row's scenario, measured TTFT and TPOT (ms) and architecture; raises one of _UNUSABLE."""
    from greenmatrix.catalog import hardware, llms

    t1, t2 = _milliseconds(row, "silicon_ttft_ms"), _milliseconds(row, "silicon_tpot_ms")
    model = llms.model_arch(row["model_path"])
    gpu = hardware.gpu(row["system"])
    return serving.scenario_from_row(row, model, gpu), t1, t2, model


def _milliseconds(row: Mapping[str, str], column: str) -> float:
    text = row[column]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise ValueError(f"{column} {text!r} is not a positive number of milliseconds")
    return value


def _unusable_reason(row: Mapping[str, str]) -> str:
    try:
        _measured(row)
    except _UNUSABLE as exc:
        return f"no column {exc}" if isinstance(exc, KeyError) else str(exc)
    return ""


def load_dataset(data_dir: Path) -> Dataset:
    """The measured rows the corrections learn from, in file order.

    A file with no usable row is a GreenMatrixError naming `--data`.
    """
    path = Path(data_dir) / DATA_FILE
    rows = read_csv_rows(path)
    scenarios: list[ServingScenario] = []
    ttft: list[float] = []
    tpot: list[float] = []
    systems: list[str] = []
    names: list[str] = []
    skipped: dict[str, int] = {}
    for row in rows:
        try:
            s, t1, t2, model = _measured(row)
        except _UNUSABLE as exc:
            key = type(exc).__name__
            skipped[key] = skipped.get(key, 0) + 1
            continue
        scenarios.append(s)
        ttft.append(t1)
        tpot.append(t2)
        systems.append(row["system"])
        names.append(serving.architecture_group(model))
    if not scenarios:
        raise no_usable_rows(path, rows, DATA_COLUMNS, _unusable_reason(rows[0]) if rows else "")
    return Dataset(
        scenarios,
        np.array(ttft),
        np.array(tpot),
        np.array(systems),
        np.array(names),
        dict(sorted(skipped.items())),
    )


# ---------------------------------------------------------------------------------------------
# Training and held-out benchmark.

# Small trees, strong shrinkage, absolute error in log space (a median, robust to the outliers
# serving benchmarks have): the physics carries the signal, the trees only bend it. Depths were
# chosen on leave-one-GPU-out error; TTFT, noisier, generalises best with depth-2 trees.
TARGET_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "ttft": {
        "objective": "reg:absoluteerror",
        "max_depth": 2,
        "eta": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 10.0,
        "lambda": 5.0,
    },
    "tpot": {
        "objective": "reg:absoluteerror",
        "max_depth": 3,
        "eta": 0.02,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 10.0,
        "lambda": 5.0,
    },
}
ROUNDS = 300


def _targets(
    ds: Dataset, roofs: Sequence[ServingRoofline]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per target: (measured, roofline, baseline the correction multiplies) arrays."""
    base_ttft, base_tpot = serving.baselines(ds.scenarios, roofs)
    return {
        "ttft": (ds.ttft_ms, np.array([r.ttft_ms for r in roofs]), base_ttft),
        "tpot": (ds.tpot_ms, np.array([r.tpot_ms for r in roofs]), base_tpot),
    }


def _weights(ds: Dataset) -> np.ndarray:
    # DeepSeek on B200 alone is a sixth of the rows: weight each (GPU, architecture) cell by
    # 1/sqrt(size) so common cells do not drown the rest, without ignoring how much data they hold.
    cells = np.char.add(np.char.add(ds.system.astype(str), "|"), ds.model_name.astype(str))
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    w = 1.0 / np.sqrt(counts[inverse])
    return w / w.mean()


def _fit(
    target: str, X: np.ndarray, y: np.ndarray, systems: np.ndarray, architectures: np.ndarray, w: np.ndarray
) -> CorrectionModel:
    # A prediction may be new in its GPU or in its architecture: calibrate on residuals of both
    # groupings, pooled. Keeping the wider of the two made the 80% interval cover 90-92% of
    # held-out GPUs.
    return correction.fit(
        X,
        y,
        systems,
        list(serving.FEATURES),
        seed=SEED,
        params=TARGET_PARAMS[target],
        rounds=ROUNDS,
        sample_weight=w,
        extra_groupings=(architectures,),
        pool_groupings=True,
        point=True,
        # A GPU and architecture measured together (the shipped data's cells) get the narrower
        # interval of rows split at random.
        calibrate_known=True,
    )


def _profiled_predictions(
    target: str, X: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold ``(point, p10, p90)`` (log-ratio), rows split at random (`holdout.profiled_folds`):
    every GPU and model is in training, so the interval is the one for measured configurations,
    calibrated inside each fold's training rows as the shipped model calibrates it on all rows."""
    out = np.zeros((3, len(y)))
    for test in profiled_folds(X, seed=SEED):
        train = np.setdiff1d(np.arange(len(y)), test)
        model = correction.fit(
            X[train],
            y[train],
            np.zeros(len(train), dtype=int),
            list(serving.FEATURES),
            seed=SEED,
            params=TARGET_PARAMS[target],
            rounds=ROUNDS,
            sample_weight=w[train],
            calibrate=False,
            point=True,
            calibrate_known=True,
        )
        lo, _mid, hi, point = model.predict_with_point(X[test], known=np.ones(len(test), dtype=bool))
        out[:, test] = point, lo, hi
    return out[0], out[1], out[2]


def neighbour_consistency(ds: Dataset) -> dict[str, tuple[int, float]]:
    """How well the data predicts itself: per target, (rows, MAPE) of each row read off its own
    configuration's curve, interpolated in log-log between the nearest lower and higher
    concurrency measured (same GPU, model, engine, layout, lengths; exact repeats excluded).

    No model that sees only what the CSV records can expect to beat this by much on held-out
    hardware: it is the data's own scatter along the one axis every configuration was swept on.
    """
    skip = {"model", "gpu", "concurrency"}
    names = [f.name for f in fields(ServingScenario) if f.name not in skip]
    curves: dict[tuple[Any, ...], list[int]] = {}
    for i, sc in enumerate(ds.scenarios):
        key = (ds.system[i], ds.model_name[i], *(getattr(sc, n) for n in names))
        curves.setdefault(key, []).append(i)
    out: dict[str, tuple[int, float]] = {}
    for target, measured in (("ttft", ds.ttft_ms), ("tpot", ds.tpot_ms)):
        pred, actual = [], []
        for rows in curves.values():
            conc = np.log([ds.scenarios[i].concurrency for i in rows])
            value = np.log(measured[rows])
            for j in range(len(rows)):
                lower, higher = conc < conc[j], conc > conc[j]
                if not (lower.any() and higher.any()):
                    continue
                c_lo, c_hi = conc[lower].max(), conc[higher].min()
                v_lo, v_hi = np.median(value[conc == c_lo]), np.median(value[conc == c_hi])
                pred.append(v_lo + (v_hi - v_lo) * (conc[j] - c_lo) / (c_hi - c_lo))
                actual.append(value[j])
        if actual:
            out[target] = (len(actual), mape(np.exp(pred), np.exp(actual)))
    return out


def benchmark(data_dir: Path, *, kinds: Sequence[str] = ("gpu", "model", "random")) -> list[BenchRow]:
    """Held-out accuracy: each GPU system, then each model architecture, left out in turn; then
    rows split at random (holdout ``random rows``: every GPU and model measured, the profiled
    case, scored with the interval the shipped model gives such configurations).

    Each held-out group also gets a row restricted to rows whose serving layout is fully known
    (holdout suffixed ``,layout=known``): disaggregated benchmarks without worker counts leave the
    decode batch per worker a guess, and a user's scenario always states its layout.
    """
    ds = load_dataset(Path(data_dir))
    X, roofs = serving.features(ds.scenarios)
    w = _weights(ds)
    layout_known = X[:, serving.FEATURES.index("decode_workers_known")] > 0.5
    rows: list[BenchRow] = []
    targets = _targets(ds, roofs)
    # Profiled (rows split at random) predictions: the MAPE profiled column of every row.
    profiled = {
        target: _profiled_predictions(target, X, np.log(measured / base), w)
        for target, (measured, _roof, base) in targets.items()
    }

    def scored(
        label: str, target: str, rows_: np.ndarray, point: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> BenchRow:
        """A bench row for ``rows_`` of the data, given their log-ratio point and interval."""
        measured, roof, base = (a[rows_] for a in targets[target])
        return BenchRow(
            dataset=DATASET,
            holdout=label,
            n=len(rows_),
            target=target,
            mape_model=mape(base * np.exp(point), measured),
            mape_roofline=mape(roof, measured),
            coverage80=coverage(base * np.exp(lo), base * np.exp(hi), measured),
            mape_profiled=mape(base * np.exp(profiled[target][0][rows_]), measured),
        )

    for kind, groups in (("gpu", ds.system), ("model", ds.model_name)):
        if kind not in kinds:
            continue
        for target, (measured, _roof, base) in targets.items():
            y = np.log(measured / base)
            for held, train, test in leave_group_out(groups):
                model = _fit(target, X[train], y[train], ds.system[train], ds.model_name[train], w[train])
                # The held-out group's cells were never measured: the out-of-group interval.
                lo, _mid, hi, point = model.predict_with_point(X[test])
                subsets = [(f"{kind}={held}", np.ones(len(test), dtype=bool))]
                if not layout_known[test].all() and layout_known[test].any():
                    subsets.append((f"{kind}={held},layout=known", layout_known[test]))
                for label, sel in subsets:
                    rows.append(scored(label, target, test[sel], point[sel], lo[sel], hi[sel]))
    if "random" in kinds:
        everything = np.arange(len(ds.scenarios))
        for target in targets:
            point, lo, hi = profiled[target]
            rows.append(scored(RANDOM_HOLDOUT, target, everything, point, lo, hi))
    return rows


def train(data_dir: Path, out_dir: Path, *, evaluate: bool = True) -> dict:
    """Fit the TTFT and TPOT corrections on all rows, write models + card; return a summary.

    ``evaluate=False`` skips the held-out benchmark (minutes of refits) and writes no card.
    """
    ds = load_dataset(Path(data_dir))
    X, roofs = serving.features(ds.scenarios)
    w = _weights(ds)
    out_dir = Path(out_dir)
    written: list[Path] = []
    offsets: dict[str, tuple[float, float, float, float]] = {}
    fitted: dict[str, CorrectionModel] = {}
    measured_gpus = sorted({s.gpu.key for s in ds.scenarios})
    measured_cells = sorted({serving.measured_cell(s) for s in ds.scenarios})
    for target, (measured, _roof, base) in _targets(ds, roofs).items():
        y = np.log(measured / base)
        model = _fit(target, X, y, ds.system, ds.model_name, w)
        # Which GPU types the correction has seen, so a prediction can say when it extrapolates.
        model.info["measured_gpus"] = measured_gpus
        # Which GPU x architecture pairs it has seen: those get the interval of measured configurations.
        model.info["measured_cells"] = measured_cells
        offsets[target] = (model.offset_lo, model.offset_hi, model.known_lo or 0.0, model.known_hi or 0.0)
        fitted[target] = model
    rows: list[BenchRow] = []
    if evaluate:
        # Before anything is written: data too thin for the hold-out must not leave half a model set.
        rows = benchmark(data_dir)
    for target, model in fitted.items():
        written += correction.save(model, out_dir, serving.MODEL_NAMES[target])
    if evaluate:
        card = serving_card.card(ds, rows, offsets, neighbour_consistency(ds), TARGET_PARAMS, ROUNDS)
        written.append(write_model_card(out_dir, "serving", card))
        # Machine-readable copy of the card's held-out table, for tests and `greenmatrix bench`.
        bench_path = out_dir / BENCH_FILE
        bench_path.write_text(
            json.dumps([rounded(r.__dict__) for r in rows], indent=1, sort_keys=True) + "\n"
        )
        written.append(bench_path)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in written)).hexdigest()[:16]
    return {
        "dataset": DATASET,
        "rows": len(ds.scenarios),
        "files": [str(p) for p in written],
        "sha256_16": digest,
        "benchmark": [r.__dict__ for r in rows],
    }
