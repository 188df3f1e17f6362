"""Numeric precisions: one vocabulary for model weights, tensor-core rates and memory footprints.

The keys are "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4". Every spelling seen in
configs, serving benchmarks and quantisation tool names maps to one of them via
`normalize_precision`.

What the keys mean when a model is *run*:
- "int4" is 4-bit *weight-only* quantisation (AWQ, GPTQ, w4a16, int4_wo): weights are stored in
  4 bits and dequantised, so matrix multiplies run at the 16-bit tensor rate. That is why
  `COMPUTE_FALLBACK["int4"]` starts at bf16 and no GPU spec lists an int4 rate.
- "fp4" is NVFP4/MXFP4 with 4-bit activations too (Blackwell tensor cores run it natively); on
  older GPUs it falls back to the fp8 path (weights upcast), then to bf16.
- "fp8" on GPUs without fp8 tensor cores (Ampere, Turing, Volta) runs as weight-only fp8 with
  16-bit matmuls, so it falls back to bf16/fp16, not to int8.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from greenmatrix.errors import GreenMatrixError

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")

# Storage bytes per parameter. tf32 is a compute mode over fp32 storage.
_BYTES_PER_PARAM: Mapping[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}

# Which tensor-rate key a precision uses, in order of preference. The first key the GPU lists wins.
# fp32 never falls back to tf32: tf32 tensor rates are 8-16x the fp32 vector rate and would flatter
# an fp32 workload. bf16 and fp16 run at the same tensor rate on every GPU that has both; V100/T4
# lack bf16, so bf16 work is costed at their fp16 rate (what a deployment would switch to).
COMPUTE_FALLBACK: Mapping[str, tuple[str, ...]] = {
    "fp32": ("fp32",),
    "tf32": ("tf32", "fp32"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "fp8": ("fp8", "bf16", "fp16"),
    "int8": ("int8", "bf16", "fp16"),
    "int4": ("bf16", "fp16"),
    "fp4": ("fp4", "fp8", "bf16", "fp16"),
}

# Lower-cased spellings (after stripping separators) to keys. Quantisation schemes name their
# weight width: w8a8 is int8 activations and weights; fp8_block is fp8 with block scales.
_ALIASES: Mapping[str, str] = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "single": "fp32",
    "f32": "fp32",
    "tf32": "tf32",
    "tensorfloat32": "tf32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "f16": "fp16",
    "fp8": "fp8",
    "float8": "fp8",
    "e4m3": "fp8",
    "fp8e4m3": "fp8",
    "e5m2": "fp8",
    "fp8e5m2": "fp8",
    "fp8block": "fp8",
    "fp8blockwise": "fp8",
    "fp8pertensor": "fp8",
    "fp8static": "fp8",
    "fp8dynamic": "fp8",
    "w8a8fp8": "fp8",
    "int8": "int8",
    "i8": "int8",
    "w8a8": "int8",
    "w8a8int8": "int8",
    "smoothquant": "int8",
    "int8wo": "int8",
    "w8a16": "int8",
    "int4": "int4",
    "i4": "int4",
    "int4wo": "int4",
    "w4a16": "int4",
    "w4a8": "int4",
    "awq": "int4",
    "gptq": "int4",
    "fp4": "fp4",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "float4": "fp4",
    "e2m1": "fp4",
    "w4a4": "fp4",
}


class UnknownPrecisionError(GreenMatrixError, ValueError):
    """A precision spelling that maps to none of `PRECISIONS`."""

    reason = "UnknownPrecision"

    def __init__(self, text: str, field: str = "precision") -> None:
        self.text = text
        super().__init__(field, f"{text!r} is not a recognised precision or alias", allowed=PRECISIONS)


def normalize_precision(text: str | None) -> str | None:
    """Canonical precision key for any common spelling; None for empty/None.

    Raises UnknownPrecisionError for a non-empty spelling it does not know.
    """
    if text is None:
        return None
    squashed = re.sub(r"[\s_\-./]", "", str(text).strip().lower())
    if not squashed or squashed in ("none", "nan", "default", "auto"):
        return None
    if squashed in _ALIASES:
        return _ALIASES[squashed]
    # "torch.bfloat16" and "awq-int4-g128"-style decorations: look for a known word inside.
    for alias in sorted(_ALIASES, key=len, reverse=True):
        if len(alias) >= 4 and alias in squashed:
            return _ALIASES[alias]
    raise UnknownPrecisionError(str(text))


def _require(precision: str) -> str:
    key = normalize_precision(precision)
    if key is None:
        raise UnknownPrecisionError(str(precision))
    return key


def bytes_per_param(precision: str) -> float:
    """Bytes one parameter occupies in memory at this precision (int4/fp4: 0.5, scales excluded)."""
    return _BYTES_PER_PARAM[_require(precision)]


def flops_key(precision: str, available: Collection[str]) -> str | None:
    """The tensor-rate key a GPU listing `available` keys uses for `precision` (see COMPUTE_FALLBACK).

    None when none of the fallbacks is available (e.g. fp32 on a spec with no fp32/tf32 rate).
    """
    for key in COMPUTE_FALLBACK[_require(precision)]:
        if key in available:
            return key
    return None
