"""Precision vocabulary: spellings, bytes per parameter, fallbacks."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from greenmatrix.catalog import precision
from greenmatrix.errors import GreenMatrixError

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("FP16", "fp16"),
        ("float16", "fp16"),
        ("half", "fp16"),
        ("torch.bfloat16", "bf16"),
        ("BF16", "bf16"),
        ("fp32", "fp32"),
        ("TF32", "tf32"),
        ("FP8", "fp8"),
        ("fp8_block", "fp8"),
        ("fp8_e4m3fn", "fp8"),
        ("int8", "int8"),
        ("w8a8", "int8"),
        ("int4_wo", "int4"),
        ("w4a16", "int4"),
        ("AWQ", "int4"),
        ("gptq", "int4"),
        ("nvfp4", "fp4"),
        ("MXFP4", "fp4"),
        ("fp4", "fp4"),
        ("", None),
        (None, None),
        ("  ", None),
    ],
)
def test_normalize_precision(text: str | None, key: str | None) -> None:
    assert precision.normalize_precision(text) == key


def test_unknown_precision_names_the_field() -> None:
    with pytest.raises(GreenMatrixError) as info:
        precision.normalize_precision("fp7")
    assert info.value.field == "precision" and "fp8" in info.value.allowed


def test_bytes_per_param() -> None:
    assert [precision.bytes_per_param(p) for p in ("fp32", "bf16", "fp8", "int8", "int4", "nvfp4")] == [
        4.0,
        2.0,
        1.0,
        1.0,
        0.5,
        0.5,
    ]


def test_flops_key_fallback_chain() -> None:
    ampere = {"fp32", "tf32", "bf16", "fp16", "int8"}
    assert precision.flops_key("fp8", ampere) == "bf16"
    assert precision.flops_key("fp4", {"bf16", "fp16", "fp8"}) == "fp8"
    assert precision.flops_key("bf16", {"fp16", "fp32"}) == "fp16"
    assert precision.flops_key("fp32", {"bf16", "tf32"}) is None


def test_every_key_is_its_own_spelling() -> None:
    for key in precision.PRECISIONS:
        assert precision.normalize_precision(key) == key
        assert precision.normalize_precision(key.upper()) == key


def test_every_precision_spelling_in_the_serving_data_normalises() -> None:
    path = DATA / "llm_serving" / "measured_ttft_tpot.csv"
    if not path.is_file():
        pytest.skip(f"reference data not found at {DATA}")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    spellings = {r[c] for r in rows for c in ("precision", "gemm_quant_mode", "moe_quant_mode")}
    assert {"fp8", "nvfp4", "int4_wo", "fp8_block"} <= spellings
    for text in spellings:
        key = precision.normalize_precision(text)
        assert (key is None) == (text == ""), text
    assert precision.normalize_precision("float8_e4m3fn") == "fp8"
