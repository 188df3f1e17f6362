"""Training time: data-parallel roofline x a learned efficiency, with 80% intervals.

Physics (greenmatrix.physics.training) gives the time at an assumed 40% MFU plus gradient
all-reduce; an XGBoost CorrectionModel learns log(measured / roofline) on MLPerf Training v1.0-v2.1
from physics features only (roofline time and its parts, GPU count, nodes, work per GPU, steps,
per-GPU batch, task family, framework family), never the accelerator's name or datasheet columns.

Two entry points use the same model:
- MLPerf rows (`TrainingRowPredictor`, batch prediction; `greenmatrix.learned.fitting.training_time`
  trains and scores the model on them);
- a user's job (`TrainingPredictor.predict(jobs)`): 6 x params x tokens physics for transformers,
  corrected with what was learned on MLPerf's transformer rows (BERT). That is an extrapolation
  from BERT-Large on up to ~4,000 A100/H100s to whatever the user asks; the card says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greenmatrix.errors import GreenMatrixError
from greenmatrix.interval import Interval
from greenmatrix.learned.cells import count_cell, mlperf_round, prepare_rows
from greenmatrix.learned.core import CorrectionModel, LoadedOnce, models_dir, ratio_interval
from greenmatrix.learned.mlperf_inference import Accelerator, resolve_accelerator
from greenmatrix.physics import training as phys
from greenmatrix.scenarios import TrainingJob

MODEL_NAME = "training_time"
LATEST_ROUND = 2.1

FAMILIES: tuple[str, ...] = (
    "cnn-classification",
    "cnn-detection",
    "transformer",
    "rnn",
    "recommendation",
    "reinforcement",
)
FRAMEWORKS: tuple[str, ...] = ("mxnet", "pytorch", "tensorflow", "hugectr")

# Only workload-side physics and how the job is spread: with 8 GPU types (mostly A100 variants),
# datasheet columns (TDP, bandwidth, memory...) let the trees memorise GPU types and extrapolate badly
# to a new one (H100 error 71% with them, 40% without, on the leave-one-GPU-out check).
FEATURES: list[str] = [
    "log10_roofline_minutes",
    "comm_fraction",
    "log10_memory_over_compute_time",
    "log2_gpus",
    "log2_nodes",
    "log10_pflop_per_gpu",
    "log10_steps",
    "log2_per_gpu_batch",
    "elementwise_fraction",
    "log2_total_memory_gib",
    "round",
    *[f"framework_{f}" for f in FRAMEWORKS],
    *[f"family_{f}" for f in FAMILIES],
]


def framework_flags(framework: str) -> list[float]:
    f = (framework or "").lower()
    return [1.0 if k in f else 0.0 for k in FRAMEWORKS]


def _features(
    work: phys.TrainingWork, acc: Accelerator, n: int, t: phys.TrainingTime, framework: str, round_: float
) -> list[float]:
    gpu = acc.gpu
    nodes = math.ceil(n / max(1, int(gpu.gpus_per_node)))
    return [
        math.log10(t.minutes),
        t.comm_fraction,
        math.log10(max(t.memory_s, 1e-9) / t.compute_s),
        math.log2(n),
        math.log2(nodes),
        math.log10(t.total_flops / n / 1e15),
        math.log10(t.steps),
        math.log2(max(t.per_gpu_batch, 1e-3)),
        t.elementwise_s / t.seconds,
        math.log2(n * float(gpu.memory_gib)),
        round_,
        *framework_flags(framework),
        *[1.0 if work.family == f else 0.0 for f in FAMILIES],
    ]


def round_number(version: Any, *, strict: bool = False) -> float:
    return mlperf_round(version, LATEST_ROUND, "2.1", strict=strict)


@dataclass(frozen=True)
class Prepared:
    features: list[float]
    roofline_minutes: float
    gpu_key: str
    benchmark: str


def prepare(row: Mapping[str, Any]) -> tuple[Prepared | None, str]:
    """Physics and features for one MLPerf Training CSV row; (None, reason) when not predictable."""
    model_id = str(row.get("Model_ID", "") or row.get("Benchmark", "") or "").strip()
    version = row.get("version")
    work = phys.mlperf_training_work(model_id, version)
    if work is None:
        return (
            None,
            f"benchmark {model_id!r} is not modelled (known: {', '.join(sorted(phys.MLPERF_TRAINING))})",
        )
    acc, reason = resolve_accelerator(str(row.get("accelerator_model_name", "") or ""))
    if acc is None:
        return None, reason
    try:
        n = count_cell(row, "accelerators_count")
        round_number(version, strict=True)
    except GreenMatrixError as err:
        return None, str(err)
    if n is None:
        return None, "accelerators_count: is empty (the accelerators in the system, 1 or more)"
    try:
        t = phys.training_time(work, acc.gpu, n)
    except ValueError as err:
        return None, str(err)
    feats = _features(work, acc, n, t, str(row.get("framework", "") or ""), round_number(version))
    return Prepared(feats, t.minutes, acc.gpu.key, work.name), ""


# --- runtime prediction: MLPerf rows ------------------------------------------------------------


@dataclass(frozen=True)
class RowPrediction:
    minutes: Interval | None
    roofline_minutes: float | None
    reason: str = ""


class TrainingRowPredictor:
    """Loads the model once; predicts batches of MLPerf Training rows (mappings of column to text)."""

    def __init__(self, model: CorrectionModel) -> None:
        self.model = model

    @classmethod
    def load(cls, directory: Path | None = None) -> TrainingRowPredictor:
        return cls(CorrectionModel.load(directory or models_dir(), MODEL_NAME))

    def predict_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[RowPrediction]:
        prepared = prepare_rows(rows, prepare)
        out = [RowPrediction(None, None, reason) for _, reason in prepared]
        ok = [i for i, (p, _) in enumerate(prepared) if p is not None]
        if ok:
            X = np.asarray([prepared[i][0].features for i in ok], dtype=np.float32)  # type: ignore[union-attr]
            lo, mid, hi = self.model.predict(X)
            for j, i in enumerate(ok):
                p = prepared[i][0]
                assert p is not None
                r = p.roofline_minutes
                out[i] = RowPrediction(ratio_interval(r, lo[j], mid[j], hi[j]), r)
        return out


# --- runtime prediction: a user's job ------------------------------------------------------------


@dataclass(frozen=True)
class TrainingPrediction:
    minutes: Interval
    roofline_minutes: float
    gpu_hours: Interval
    explanation: str


class TrainingPredictor:
    """Predicts user training jobs with the MLPerf-trained correction (loaded once)."""

    def __init__(self, model: CorrectionModel) -> None:
        self.model = model

    @classmethod
    def load(cls, directory: Path | None = None) -> TrainingPredictor:
        return cls(predictor(directory).model)

    def predict(self, jobs: Sequence[TrainingJob]) -> list[TrainingPrediction]:
        """One prediction per job, vectorised. Raises ValueError naming the field for a bad job."""
        prepared = [_job_physics(i, job) for i, job in enumerate(jobs)]
        if not prepared:
            return []
        X = np.asarray([p[0] for p in prepared], dtype=np.float32)
        lo, mid, hi = self.model.predict(X)
        out = []
        for j, (_, t, work, job) in enumerate(prepared):
            r = t.minutes
            minutes = ratio_interval(r, lo[j], mid[j], hi[j])
            hours = minutes.scaled(job.gpus / 60.0)
            out.append(TrainingPrediction(minutes, r, hours, _explain(work, job, t, minutes)))
        return out


def _job_physics(
    index: int, job: TrainingJob
) -> tuple[list[float], phys.TrainingTime, phys.TrainingWork, TrainingJob]:
    where = f"jobs[{index}]"
    if job.gpus is None or int(job.gpus) < 1:
        raise ValueError(f"{where}.gpus must be a positive integer, got {job.gpus!r}")
    if job.epochs is None or job.epochs <= 0:
        raise ValueError(f"{where}.epochs must be positive, got {job.epochs!r}")
    if job.family not in FAMILIES:
        raise ValueError(f"{where}.family {job.family!r} is not one of {', '.join(FAMILIES)}")
    params = job.params
    grad_params = None
    layers_x_hidden = None
    if job.model is not None:
        params = float(getattr(job.model, "params_active", 0) or getattr(job.model, "params_total", 0))
        grad_params = float(getattr(job.model, "params_total", 0) or params)
        layers_x_hidden = (
            float(getattr(job.model, "layers", 0) * getattr(job.model, "hidden_size", 0)) or None
        )
    if job.forward_flops_per_sample:
        if not job.samples or job.samples <= 0:
            raise ValueError(f"{where}.samples must be positive when forward_flops_per_sample is given")
        work = phys.TrainingWork(
            name="job",
            family=job.family,
            forward_flops_per_sample=float(job.forward_flops_per_sample),
            samples=float(job.samples) * job.epochs,
            grad_params=float(grad_params or params or 0.0),
            per_gpu_batch=32.0,
            precision=job.precision,
            global_batch=float(job.global_batch) if job.global_batch else None,
        )
    else:
        if not params or params <= 0:
            raise ValueError(f"{where}.params (or model) must be given and positive for a transformer job")
        tokens = job.tokens
        if tokens is None and job.samples:
            tokens = float(job.samples) * job.sequence_length
        if not tokens or tokens <= 0:
            raise ValueError(f"{where}.tokens (or samples) must be given and positive")
        work = phys.transformer_work(
            float(params),
            float(tokens) * job.epochs,
            global_batch=float(job.global_batch) if job.global_batch else None,
            sequence_length=int(job.sequence_length),
            precision=job.precision,
            grad_params=grad_params,
            layers_x_hidden=layers_x_hidden,
        )
    n = int(job.gpus)
    try:
        t = phys.training_time(work, job.gpu, n)
    except ValueError as err:
        raise ValueError(f"{where}.precision: {err}") from err
    acc = Accelerator(job.gpu, 1.0, float(job.gpu.tdp_watts))
    return _features(work, acc, n, t, job.framework, LATEST_ROUND), t, work, job


def _explain(work: phys.TrainingWork, job: TrainingJob, t: phys.TrainingTime, minutes: Interval) -> str:
    return (
        f"{t.total_flops:.3g} FLOPs "
        f"({'6 x params x tokens' if work.family == 'transformer' else '3 x forward x samples'}) "
        f"on {job.gpus} x {job.gpu.key} at {t.peak_flops / 1e12:.0f} TFLOPS {t.precision}: roofline "
        f"{t.minutes:.1f} min at {phys.ASSUMED_MFU:.0%} MFU ({t.comm_fraction:.0%} gradient all-reduce over "
        f"{t.steps:.0f} steps); learned MLPerf efficiency gives {minutes.p50:.1f} min "
        f"(80% interval {minutes.p10:.1f}-{minutes.p90:.1f})."
        + (
            " Extrapolated from MLPerf BERT-Large: LLM jobs at other scales carry more uncertainty than "
            "shown."
            if work.family == "transformer"
            else ""
        )
    )


# The process-wide predictor for a models directory (default: models_dir()), loaded once.
predictor = LoadedOnce(TrainingRowPredictor.load)


def predict_rows(rows: Sequence[Mapping[str, Any]], directory: Path | None = None) -> list[RowPrediction]:
    return predictor(directory).predict_rows(rows)
