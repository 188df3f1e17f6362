"""`greenmatrix train` and `bench accuracy` for the MLPerf Inference throughput and latency models.

Scored on whole GPU types left out one at a time and on the latest round (trained on the earlier
ones), with the novelty-scaled intervals the throughput model ships with; see the model cards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from greenmatrix.learned import mlperf_inference, novelty
from greenmatrix.learned.fitting.cards import save_with_card
from greenmatrix.learned.fitting.holdout import (
    BenchRow,
    Scoring,
    bench_rows,
    mape,
    out_of_group,
    profiled_predictions,
)
from greenmatrix.learned.fitting.mlperf_inference_card import card
from greenmatrix.learned.fitting.mlperf_inference_data import (
    DATA_COLUMNS,
    DATA_FILE,
    DATASET,
    HOLDOUT_ROUND,
    MIN_GROUP_ROWS,
    MODEL_NAMES,
    NOVELTY,
    SEED,
    Dataset,
    first_rounds,
    fit_model,
    last_round_predictions,
    load_dataset,
)
from greenmatrix.learned.mlperf_inference import (
    KINDS,
    MODEL_NAME,
    gpu_vectors,
    predict_log_ratio,
    round_number,
)

# What `greenmatrix train` and `bench accuracy` read of a learner (cli._learned_modules).
__all__ = ["DATASET", "DATA_COLUMNS", "DATA_FILE", "benchmark", "holdout_results", "train"]


def _p50(ds: Dataset) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``predict(train, test)``: p50 of rows `test` from an uncalibrated model of rows `train`."""

    def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return predict_log_ratio(fit_model(ds, train, calibrate=False), ds.X[test], ds.kind)[1]

    return predict


def _out_of_round_predictions(ds: Dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward-chained predictions: each round's rows in `rows` from a model of the EARLIER rounds.

    Returns (rows predicted, their p50): the first round has no past and is left out. Predicting
    the future, not interpolating between rounds, is what a later round's interval must cover.
    """
    rounds = sorted(set(ds.round[rows].tolist()), key=round_number)
    picked, preds = [], []
    for i, name in enumerate(rounds[1:], start=1):
        past = rows[np.isin(ds.round[rows], rounds[:i])]
        test = rows[ds.round[rows] == name]
        picked.append(test)
        preds.append(_p50(ds)(past, test))
    if not picked:
        return np.zeros(0, dtype=int), np.zeros(0)
    return np.concatenate(picked), np.concatenate(preds)


def _interval_offsets(
    ds: Dataset,
    rows: np.ndarray,
    oof_gpu: np.ndarray,
    forward: tuple[np.ndarray, np.ndarray],
    vectors: Mapping[str, list[float]],
) -> novelty.NoveltyIntervals:
    """Novelty intervals from `rows` (out-of-GPU residuals), floored by forward-chained round residuals."""
    used = {k: vectors[k] for k in set(ds.gpu[rows].tolist())}
    iv = novelty.calibrate(ds.y[rows] - oof_gpu, ds.gpu[rows], used)
    idx, pred = forward
    keep = np.isin(idx, rows)
    if not keep.any():
        return iv
    return iv.with_floor(
        ds.y[idx[keep]] - pred[keep],
        np.char.add(ds.round[idx[keep]].astype(str), ds.gpu[idx[keep]].astype(str)),
    )


def _holdout(ds: Dataset) -> tuple[list[dict[str, Any]], novelty.NoveltyIntervals | None]:
    """Held-out metrics, and the novelty intervals calibrated on every GPU type (for the shipped model).

    Kinds without novelty intervals (latency) keep the core's constant conformal offsets; None then.
    """
    everything = np.arange(len(ds.y))
    use_novelty = NOVELTY[ds.kind]
    vectors = gpu_vectors(ds.gpu.tolist())
    scoring = Scoring(ds.roofline, ds.measured, ds.gpu)
    oof = out_of_group(ds.gpu, everything, _p50(ds))
    profiled = profiled_predictions(ds.X, _p50(ds), seed=SEED)
    # Forward-chained round predictions, shared by the GPU hold-outs' interval floors (each held-out
    # type's own rows are excluded from its calibration below).
    forward = _out_of_round_predictions(ds, everything) if use_novelty else (np.zeros(0, dtype=int), oof[:0])

    def novelty_offsets(name: str, others: np.ndarray) -> tuple[float, float]:
        iv = _interval_offsets(ds, others, oof[others], forward, vectors)
        # The held-out type's rows come from the training rounds: no later-round floor.
        return iv.offsets(vectors[name], later=False)

    offsets = novelty_offsets if use_novelty else scoring.conformal(ds.y, oof)
    out, _, _ = scoring.each_group(oof, offsets, MIN_GROUP_ROWS)
    later = np.flatnonzero(ds.round == HOLDOUT_ROUND)
    if later.size:
        out += _later_round(ds, scoring, later, vectors)
    intervals = _interval_offsets(ds, everything, oof, forward, vectors) if use_novelty else None
    return scoring.profiled(out, profiled), intervals


def _later_round(
    ds: Dataset, scoring: Scoring, later: np.ndarray, vectors: Mapping[str, list[float]]
) -> list[dict[str, Any]]:
    """The latest round predicted from the earlier ones: all its rows, those whose GPU type ran the
    same benchmark before (with that last result as a yardstick), and old and new benchmarks apart."""
    use_novelty = NOVELTY[ds.kind]
    earlier = np.flatnonzero(ds.round != HOLDOUT_ROUND)
    model = fit_model(ds, earlier, calibrate=not use_novelty)
    lo, mid, hi = predict_log_ratio(model, ds.X[later], ds.kind)
    if use_novelty:
        iv = _interval_offsets(
            ds,
            earlier,
            out_of_group(ds.gpu, earlier, _p50(ds)),
            _out_of_round_predictions(ds, earlier),
            vectors,
        )
        offs = np.asarray([iv.offsets(vectors[g]) for g in ds.gpu[later]]).reshape(-1, 2)
        lo, hi = mid + offs[:, 0], mid + offs[:, 1]
    out = [scoring.result(f"round={HOLDOUT_ROUND}", later, lo, mid, hi)]
    known, last = last_round_predictions(ds, later)
    if len(known) >= MIN_GROUP_ROWS:
        sel = np.isin(later, known)
        yardstick = mape(ds.roofline[known] * np.exp(last), ds.measured[known])
        label = f"round={HOLDOUT_ROUND},last result known"
        out.append(scoring.result(label, known, lo[sel], mid[sel], hi[sel], mape_last_round=yardstick))
    # A benchmark's first round holds no earlier software to learn its efficiency from.
    first = first_rounds(ds)
    new = np.array([first[b] >= round_number(HOLDOUT_ROUND) for b in ds.benchmark[later]])
    for label, sel in (("earlier", ~new), ("new", new)):
        if sel.sum() >= MIN_GROUP_ROWS:
            t = later[sel]
            out.append(
                scoring.result(f"round={HOLDOUT_ROUND},benchmarks={label}", t, lo[sel], mid[sel], hi[sel])
            )
    return out


def holdout_results(data_dir: Path, kind: str = "throughput") -> list[dict[str, Any]]:
    """Held-out evaluation of the `kind` model: each GPU type left out whole, and the latest round.

    GPU hold-out: one model per GPU type trained without it (leave-one-group-out). The held-out
    type's interval is novelty-scaled conformal (greenmatrix.learned.novelty) calibrated on the
    OTHER types' out-of-group residuals, so neither the point prediction nor the interval has seen
    the held-out type's rows. Round hold-out: model and interval from the earlier rounds only.
    """
    return _holdout(load_dataset(data_dir, kind))[0]


def benchmark(data_dir: Path) -> list[BenchRow]:
    """Held-out accuracy rows for `greenmatrix bench accuracy` (MAPE in percent), throughput then latency."""
    return [row for kind in KINDS for row in bench_rows(DATASET, kind, holdout_results(data_dir, kind))]


def train(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Fit the throughput and latency models on every usable row; write models, sidecars and cards."""
    summary: dict[str, Any] = {"model": MODEL_NAME, "files": []}
    for kind in KINDS:
        ds = load_dataset(data_dir, kind)
        name = MODEL_NAMES[kind]
        model = fit_model(ds, np.arange(len(ds.y)))
        results, intervals = _holdout(ds)
        if intervals is not None:
            model.info["novelty_intervals"] = intervals.to_dict()
        paths = save_with_card(model, out_dir, name, results, card(ds, model, results, kind))
        summary["files"] += [p.name for p in paths]
        summary[kind] = {
            "rows": len(ds.y),
            "gpus": sorted(set(ds.gpu.tolist())),
            "holdout": {r["holdout"]: round(r["mape_model"], 1) for r in results},
        }
    mlperf_inference.predictor.unload()
    return summary
