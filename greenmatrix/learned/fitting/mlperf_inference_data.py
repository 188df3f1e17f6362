"""The MLPerf Inference rows the throughput and latency models learn from, and how one is fitted.

Rows come from `mlperf/inference_closed.csv` under `--data`; their physics and features are the
predictor's own (`greenmatrix.learned.mlperf_inference.prepare`), so training and prediction read a
row the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greenmatrix.learned.cells import positive_cell
from greenmatrix.learned.core import CorrectionModel
from greenmatrix.learned.fitting import correction
from greenmatrix.learned.fitting.rows import MeasuredRows, outliers_kept, usable_rows
from greenmatrix.learned.mlperf_inference import (
    _COLUMNS,
    FEATURES,
    FEATURES_BY_KIND,
    LATENCY_MODEL_NAME,
    MODEL_NAME,
    Prepared,
    prepare,
    reference_mask,
    round_number,
)
from greenmatrix.physics import benchmarks as bench

DATASET = "mlperf-inference"
MODEL_NAMES = {"throughput": MODEL_NAME, "latency": LATENCY_MODEL_NAME}
DATA_FILE = Path("mlperf") / "inference_closed.csv"
# What a row needs to be usable at all, named when a --data file has none of them.
DATA_COLUMNS = ("Result", "Model", "Scenario", "accelerator_model_name", "accelerators_per_node")
HOLDOUT_ROUND = "v4.0"
# A held-out GPU needs this many rows to be reported on its own.
MIN_GROUP_ROWS = 15
# The accuracy target for held-out GPU types and a later round (MAPE, percent).
TARGET_MAPE = 15.0
SEED = 0
# Rows whose efficiency is this many times below their benchmark's median are data errors (e.g. an
# H3C A100 DLRM Server result of 2,455 q/s where its siblings report ~245,000): dropped, and counted.
OUTLIER_FACTOR = 30.0

# Four subsampled trees averaged per boosting round (bagged boosting): the held-out error no longer
# hinges on which rows and columns one tree drew (seeds 0-7: GPU hold-out spread 0.46 -> 0.19 points).
KIND_PARAMS = {"throughput": {"eta": 0.1, "num_parallel_tree": 4}, "latency": {"eta": 0.1, "max_depth": 3}}
KIND_ROUNDS = {"throughput": 300, "latency": 100}
# Novelty-scaled intervals (greenmatrix.learned.novelty) for throughput. Latency keeps the core's
# constant offsets: its held-out coverage was no better with novelty scaling (the later round fell
# from 0.88 to 0.57 without the round floor, and its round floor made every interval uninformative).
NOVELTY = {"throughput": True, "latency": False}


@dataclass
class Dataset(MeasuredRows):
    """MLPerf Inference rows of one kind (throughput or latency), X in that kind's feature columns."""

    kind: str = "throughput"
    cell: np.ndarray | None = None  # Prepared.cell per row


def _usable(row: Mapping[str, Any], kind: str) -> tuple[float, Prepared] | str:
    """A `kind` row's measured result and physics, or why the `kind` model cannot learn from it."""
    value = positive_cell(row.get("Result"))
    if value is None:
        return f"Result {row.get('Result')!r} is not a positive number"
    prep, reason = prepare(row)
    if prep is not None and prep.kind != kind:
        return f"scenario {row.get('Scenario')!r} is a {prep.kind} result"
    return reason if prep is None else (value, prep)


def load_dataset(data_dir: Path, kind: str = "throughput") -> Dataset:
    """Rows of `kind` ("throughput"/"latency") with a measured result on a catalogued GPU, in file order.

    A file with no usable `kind` row is a GreenMatrixError naming `--data`.
    """
    path = Path(data_dir) / DATA_FILE
    used = usable_rows(path, lambda r: _usable(r, kind), DATA_COLUMNS, f"{kind} rows")
    preps = [p for _, _, p in used]
    measured = np.asarray([value for _, value, _ in used], dtype=float)
    roofline = np.asarray([p.roofline for p in preps], dtype=float)
    y = np.log(measured / roofline)
    bm_arr = np.asarray([bench.work(r["Model"]).key for r, _, _ in used])
    X = np.asarray([p.features for p in preps], dtype=np.float32).reshape(len(y), len(FEATURES))
    # Too slow is the error mode: low throughput, or high latency.
    keep = outliers_kept(y if kind == "latency" else -y, bm_arr, OUTLIER_FACTOR)
    return Dataset(
        X=X[keep][:, _COLUMNS[kind]],
        y=y[keep],
        measured=measured[keep],
        roofline=roofline[keep],
        gpu=np.asarray([p.gpu_key for p in preps])[keep],
        round=np.asarray([str(r.get("version", "")).strip() for r, _, _ in used])[keep],
        benchmark=bm_arr[keep],
        dropped=int((~keep).sum()),
        kind=kind,
        cell=np.asarray([p.cell for p in preps])[keep],
    )


def group_weights(groups: np.ndarray) -> np.ndarray:
    """1/sqrt(rows of the row's GPU type), mean 1: H100/A100 rows would otherwise dictate every split."""
    if groups.size == 0:
        return np.ones(0)  # an emptied fit is refused by the trainer with a --data error, not a warning
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    w = 1.0 / np.sqrt(counts[inverse].astype(float))
    return w / w.mean()


def reference_penalty(ds: Dataset, idx: np.ndarray) -> float:
    """Log-ratio a reference (non-TensorRT) implementation loses, from the rows `idx` (<= 0).

    The median, over reference rows, of the row's target minus the median target of TensorRT-class
    rows on the same GPU type, benchmark variant and scenario; 0 when no reference row has such a
    sibling. Only two GPU types carry reference rows, so trees alone (one leaf from a handful of
    rows) could not carry the penalty to the other one: it is an explicit offset the trees refine.
    """
    ref = reference_mask(ds.X[idx], ds.kind)
    if not ref.any() or ds.cell is None:
        return 0.0
    y = ds.y[idx]
    key = np.char.add(np.char.add(ds.gpu[idx].astype(str), "|"), ds.cell[idx].astype(str))
    gaps = []
    for i in np.flatnonzero(ref):
        siblings = ~ref & (key == key[i])
        if siblings.any():
            gaps.append(y[i] - float(np.median(y[siblings])))
    return min(0.0, float(np.median(gaps))) if gaps else 0.0


def fit_model(ds: Dataset, idx: np.ndarray, *, calibrate: bool = True) -> CorrectionModel:
    """The `ds.kind` model fitted on rows `idx`, around their reference-implementation penalty."""
    penalty = round(reference_penalty(ds, idx), 6)
    model = correction.fit(
        ds.X[idx],
        ds.y[idx] - penalty * reference_mask(ds.X[idx], ds.kind),
        ds.gpu[idx],
        FEATURES_BY_KIND[ds.kind],
        seed=SEED,
        params=KIND_PARAMS[ds.kind],
        rounds=KIND_ROUNDS[ds.kind],
        calibrate=calibrate,
        sample_weight=group_weights(ds.gpu[idx]),
    )
    model.info["reference_penalty"] = penalty
    return model


def first_rounds(ds: Dataset) -> dict[str, float]:
    """The round each benchmark first appears in."""
    first: dict[str, float] = {}
    for name, version in zip(ds.benchmark.tolist(), ds.round.tolist(), strict=True):
        first[name] = min(first.get(name, math.inf), round_number(version))
    return first


def last_round_predictions(ds: Dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row in `rows` read off its own GPU type's latest earlier result: (rows that have one, y).

    The persistence yardstick for a later round: the median efficiency (log result / roofline, so
    the accelerator count cancels) of the same GPU type on the same benchmark variant and scenario
    in the most recent earlier round that ran it. It knows the hardware and the benchmark exactly
    and misses only what changed since, the software.
    """
    if ds.cell is None:
        return np.zeros(0, dtype=int), np.zeros(0)
    key = np.char.add(np.char.add(ds.gpu.astype(str), "|"), ds.cell.astype(str))
    rounds = np.asarray([round_number(r) for r in ds.round.tolist()])
    picked: list[int] = []
    values: list[float] = []
    for i in rows.tolist():
        past = (key == key[i]) & (rounds < rounds[i])
        if past.any():
            picked.append(i)
            values.append(float(np.median(ds.y[past & (rounds == rounds[past].max())])))
    return np.asarray(picked, dtype=int), np.asarray(values, dtype=float)
