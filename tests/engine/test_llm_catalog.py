"""Model architecture catalog: lookups, errors, user-given numbers, and the shipped JSON's provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from greenmatrix.catalog import llms_build
from greenmatrix.catalog.llms import all_models, from_numbers, model_arch
from greenmatrix.errors import UnknownModelError

DATA = Path(os.environ.get("GREENMATRIX_DATA", Path(__file__).resolve().parents[2] / "../shared/data"))
SHIPPED = Path(llms_build.__file__).parent / "data" / "llms.json"


@pytest.mark.parametrize(
    ("name", "total_b", "active_b"),
    [
        # Published sizes: Llama 3.1 model card (8.03B, 70.6B), Qwen3 (32.8B; 235B-A22B),
        # gpt-oss model card (116.8B total), Kimi K2 (1.04T total, 32B active).
        ("meta-llama/Llama-3.1-8B-Instruct", 8.03, 8.03),
        ("Llama-3.1-70B", 70.6, 70.6),
        ("Qwen/Qwen3-32B", 32.8, 32.8),
        ("Qwen/Qwen3-235B-A22B-FP8", 235, 22),
        ("openai/gpt-oss-120b", 116.8, None),
        ("moonshotai/Kimi-K2.5", 1040, 32.5),
    ],
)
def test_parameter_counts_match_published_sizes(name: str, total_b: float, active_b: float | None) -> None:
    arch = model_arch(name)
    assert arch.params_total / 1e9 == pytest.approx(total_b, rel=0.02)
    if active_b is not None:
        assert arch.params_active / 1e9 == pytest.approx(active_b, rel=0.05)


def test_served_names_map_to_the_same_architecture() -> None:
    assert (
        model_arch("deepseek-ai/DeepSeek-R1").params_total
        == model_arch("deepseek-ai/DeepSeek-V3").params_total
    )
    glm = model_arch("zhipuai/GLM-5")
    assert any("zai-org/GLM-5" in s for s in glm.sources)
    assert model_arch("deepseek-r1").name == "deepseek-ai/DeepSeek-R1"  # bare, case-insensitive


def test_unknown_model_names_field_and_close_matches() -> None:
    with pytest.raises(UnknownModelError) as info:
        model_arch("meta-llama/Llama-3.1-80B")
    assert info.value.field == "model"
    assert any("Llama-3.1" in s for s in info.value.allowed)


def test_from_numbers_builds_a_moe_arch() -> None:
    arch = from_numbers(
        "mine",
        params_total=46.7e9,
        params_active=12.9e9,
        layers=32,
        hidden_size=4096,
        heads=32,
        kv_heads=8,
        experts=8,
        experts_per_token=2,
    )
    assert arch.is_moe
    # (46.7 - 12.9)e9 over 6 unused experts x 32 layers: one expert-layer ~ 176M = 3 x 4096 x 14336.
    assert arch.expert_params == pytest.approx(3 * 4096 * 14336, rel=0.02)
    assert arch.kv_elems_per_token_full == 32 * 2 * 8 * 128


def test_from_numbers_rejects_bad_fields() -> None:
    with pytest.raises(UnknownModelError, match="experts_per_token"):
        from_numbers("x", params_total=1e9, layers=2, hidden_size=64, heads=4, experts=4, experts_per_token=9)
    with pytest.raises(UnknownModelError, match="layers"):
        from_numbers("x", params_total=1e9, layers=0, hidden_size=64, heads=4)


def test_catalog_is_sorted_and_has_the_served_models() -> None:
    names = [m.name for m in all_models()]
    assert names == sorted(names)
    for served in ("MiniMaxAI/MiniMax-M2.5", "Qwen/Qwen3.5-397B-A17B", "Qwen/Qwen3-8B", "zhipuai/GLM-5"):
        assert served in names


@pytest.mark.skipif(not (DATA / "model_configs").is_dir(), reason="reference data absent")
def test_shipped_catalog_is_the_deterministic_build_of_the_configs() -> None:
    built = llms_build.build(DATA / "model_configs")
    assert json.dumps(built, indent=1, sort_keys=True) + "\n" == SHIPPED.read_text()
