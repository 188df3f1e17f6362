"""Prediction intervals that widen with how unlike the training GPUs a GPU is (normalised conformal).

A held-out GPU type's errors share one bias (its sustained clocks, cache, software maturity), so a
single interval width is too wide for an A100 variant the model has nearly seen and far too narrow
for a part unlike anything in training (a 70 W Turing card). The width is therefore scaled by the
GPU's *novelty*: its distance, in datasheet units standardised over the training GPUs, to the
nearest training GPU type. Calibration is split-conformal on out-of-GPU-type residuals divided by
each calibration type's own novelty (measured against the other calibration types), so the offsets
answer "how wrong on a new GPU this far from what we know" (Papadopoulos et al. 2008, normalised
nonconformity scores).

The GPU description is physics only (dense fp16 rate, memory bandwidth, TDP, capacity,
architecture generation, L2 per bandwidth), never the GPU's name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from greenmatrix.learned.cells import too_few_rows
from greenmatrix.learned.conformal import conformal_offsets
from greenmatrix.physics.device import generation, l2_cache_mib, peak_flops

# Below this novelty the width stops shrinking: a GPU type seen in training still meets new
# software, new submitters and new benchmarks.
MIN_SCALE = 0.5


def gpu_vector(gpu: Any) -> list[float]:
    """Datasheet description of a GPU (a catalog GPUSpec) in the units novelty is measured in."""
    fp16 = peak_flops(gpu, "fp16") or peak_flops(gpu, "bf16") or 1e12
    bandwidth = max(float(gpu.memory_bandwidth_gbs), 1.0)
    return [
        math.log10(fp16 / 1e12),
        math.log10(bandwidth),
        math.log10(max(float(gpu.tdp_watts), 1.0)),
        math.log2(max(float(gpu.memory_gib), 1.0)),
        generation(gpu),
        math.log10(l2_cache_mib(gpu) / bandwidth * 1000.0),
    ]


@dataclass(frozen=True)
class NoveltyIntervals:
    """Normalised conformal offsets and the training GPUs they are measured against."""

    vectors: dict[str, list[float]]  # training GPU type -> gpu_vector
    scale_sd: list[float]  # per-dimension spread of the training GPUs
    offset_lo: float  # p10 of residual / novelty scale
    offset_hi: float  # p90 of residual / novelty scale
    min_scale: float = MIN_SCALE
    # Offsets every prediction gets at least, whatever its GPU: calibrated on residuals of a
    # different kind of novelty (a later round's software), see `with_floor`.
    floor_lo: float = 0.0
    floor_hi: float = 0.0

    def novelty(self, vector: Sequence[float]) -> float:
        """Standardised distance to the nearest training GPU type (0 for a training type)."""
        if not self.vectors:
            raise too_few_rows("no GPU type left to measure a GPU's novelty against")
        v = np.asarray(vector, dtype=float)
        sd = np.asarray(self.scale_sd, dtype=float)
        return min(float(np.sqrt((((v - np.asarray(u)) / sd) ** 2).sum())) for u in self.vectors.values())

    def scale(self, vector: Sequence[float]) -> float:
        return max(self.min_scale, self.novelty(vector))

    def offsets(self, vector: Sequence[float], *, later: bool = True) -> tuple[float, float]:
        """(p10, p90) offsets of the log-ratio target for a GPU described by `vector`.

        `later`: the prediction is for software newer than the training data (any real request),
        so the interval is at least the later-round floor; False only when scoring a hold-out whose
        rows come from the training rounds.
        """
        s = self.scale(vector)
        lo, hi = self.offset_lo * s, self.offset_hi * s
        return (min(lo, self.floor_lo), max(hi, self.floor_hi)) if later else (lo, hi)

    def with_floor(self, residuals: np.ndarray, groups: np.ndarray) -> NoveltyIntervals:
        """These intervals, at least as wide as plain conformal offsets of `residuals` grouped by `groups`.

        Used with leave-one-round-out residuals: a GPU type seen in training still meets new software
        in a later round, which its (small) novelty says nothing about.
        """
        lo, hi = conformal_offsets(np.asarray(residuals, dtype=float), np.asarray(groups))
        return replace(self, floor_lo=min(lo, 0.0), floor_hi=max(hi, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "floor_lo": _r(self.floor_lo),
            "floor_hi": _r(self.floor_hi),
            "min_scale": self.min_scale,
            "offset_lo": _r(self.offset_lo),
            "offset_hi": _r(self.offset_hi),
            "scale_sd": [_r(x) for x in self.scale_sd],
            "vectors": {k: [_r(x) for x in v] for k, v in sorted(self.vectors.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NoveltyIntervals:
        return cls(
            vectors={str(k): [float(x) for x in v] for k, v in d["vectors"].items()},
            scale_sd=[float(x) for x in d["scale_sd"]],
            offset_lo=float(d["offset_lo"]),
            offset_hi=float(d["offset_hi"]),
            min_scale=float(d.get("min_scale", MIN_SCALE)),
            floor_lo=float(d.get("floor_lo", 0.0)),
            floor_hi=float(d.get("floor_hi", 0.0)),
        )


def calibrate(
    residuals: np.ndarray,
    groups: np.ndarray,
    vectors: Mapping[str, Sequence[float]],
    min_scale: float = MIN_SCALE,
) -> NoveltyIntervals:
    """Offsets from out-of-group residuals (actual - predicted log-ratio) of the GPU types in `vectors`.

    Each calibration type's residuals are divided by its novelty against the OTHER calibration
    types, which is what a truly new type's novelty is measured against at prediction time.
    """
    keys = sorted(vectors)
    m = np.asarray([vectors[k] for k in keys], dtype=float)
    sd = np.where(m.std(axis=0) > 1e-6, m.std(axis=0), 1.0)
    g = np.asarray([str(x) for x in groups])
    r = np.asarray(residuals, dtype=float)
    scale = np.ones_like(r)
    for k in keys:
        others = {j: list(vectors[j]) for j in keys if j != k}
        if others:
            ref = NoveltyIntervals(others, sd.tolist(), 0.0, 0.0, min_scale)
            scale[g == k] = ref.scale(vectors[k])
    lo, hi = conformal_offsets(r / scale, g)
    return NoveltyIntervals({k: list(vectors[k]) for k in keys}, sd.tolist(), lo, hi, min_scale)


def _r(x: float) -> float:
    # Stable text in sidecars across platforms.
    return float(f"{x:.8g}")
