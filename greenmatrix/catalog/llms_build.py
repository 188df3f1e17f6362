"""Build `catalog/data/llms.json` from Hugging Face config.json files, deterministically.

Run: ``python -m greenmatrix.catalog.llms_build --configs DIR --out greenmatrix/catalog/data/llms.json``
(DIR defaults to $GREENMATRIX_DATA/model_configs). The output is sorted and formatted so rebuilding
from the same configs gives the same bytes.

Parameter counts are computed from the layer shapes (projections, experts, embeddings); norms,
biases and router/indexer vectors are left out (well under 0.1% of any model here). Served names
that have no config file of their own map to an architecture-identical config, with the reason
recorded in the entry's ``sources``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Families whose layer shapes this builder knows how to count.
_DENSE = {"llama", "qwen3", "qwen3_vl_text", "mimo", "mistral", "qwen2"}
_MOE_GQA = {"qwen3_moe", "qwen3_vl_moe_text", "mixtral", "minimax_m2", "gpt_oss"}
_MLA = {"deepseek_v3", "deepseek_v32", "kimi_k2", "glm_moe_dsa"}
_HYBRID_LINEAR = {"qwen3_5_text", "qwen3_5_moe_text"}

# Served names (as benchmarks and users spell them) that reuse another config's architecture.
# Each reason is what makes the architectures identical.
ALIASES: Mapping[str, tuple[str, str]] = {
    "nvidia/DeepSeek-R1-NVFP4": (
        "deepseek-ai/DeepSeek-R1",
        "NVFP4 quantisation of DeepSeek-R1; same layer shapes (quantisation changes bytes, not architecture)",
    ),
    "nvidia/Qwen3-32B-NVFP4": ("Qwen/Qwen3-32B", "NVFP4 quantisation of Qwen3-32B; same layer shapes"),
    "meta-llama/Llama-3.1-70B": (
        "meta-llama/Meta-Llama-3.1-70B",
        "Meta renamed Meta-Llama-3.1-* to Llama-3.1-*; same checkpoint",
    ),
    "meta-llama/Llama-3.1-70B-Instruct": (
        "meta-llama/Meta-Llama-3.1-70B",
        "instruction tuning keeps the base model's architecture",
    ),
    "meta-llama/Llama-3.1-8B": (
        "meta-llama/Meta-Llama-3.1-8B",
        "Meta renamed Meta-Llama-3.1-* to Llama-3.1-*",
    ),
    "meta-llama/Llama-3.1-8B-Instruct": (
        "meta-llama/Meta-Llama-3.1-8B",
        "instruction tuning keeps the base model's architecture",
    ),
    "meta-llama/Llama-3.1-405B": (
        "meta-llama/Meta-Llama-3.1-405B",
        "Meta renamed Meta-Llama-3.1-* to Llama-3.1-*",
    ),
    "meta-llama/Llama-3.1-405B-Instruct": (
        "meta-llama/Meta-Llama-3.1-405B",
        "instruction tuning keeps the base model's architecture",
    ),
    "zhipuai/GLM-5": ("zai-org/GLM-5", "Zhipu AI publishes GLM-5 under the zai-org organisation"),
    "moonshotai/Kimi-K2.5-Instruct": ("moonshotai/Kimi-K2.5", "same checkpoint family"),
}


def _text_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    # Multimodal configs nest the language model; the outer keys (vision ids) do not matter here.
    cfg = dict(raw)
    for key in ("text_config", "llm_config"):
        inner = raw.get(key)
        if isinstance(inner, Mapping):
            cfg.update(inner)
    return cfg


def _gqa_attention(h: int, heads: int, kv: int, hd: int, gated: bool = False) -> int:
    q = h * heads * hd * (2 if gated else 1)
    return q + 2 * h * kv * hd + heads * hd * h


def _mla_attention(c: Mapping[str, Any]) -> int:
    h = c["hidden_size"]
    heads = c["num_attention_heads"]
    nope, rope, v = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    kv_rank = c["kv_lora_rank"]
    q_rank = c.get("q_lora_rank")
    q = h * q_rank + q_rank * heads * (nope + rope) if q_rank else h * heads * (nope + rope)
    return q + h * (kv_rank + rope) + kv_rank * heads * (nope + v) + heads * v * h


def _linear_attention(c: Mapping[str, Any]) -> int:
    # Gated DeltaNet projections: qkvz in, beta/alpha gates, depthwise conv, out.
    h = c["hidden_size"]
    kh, kd = c["linear_num_key_heads"], c["linear_key_head_dim"]
    vh, vd = c["linear_num_value_heads"], c["linear_value_head_dim"]
    conv = (2 * kh * kd + vh * vd) * c.get("linear_conv_kernel_dim", 4)
    return h * (2 * kh * kd + 2 * vh * vd) + h * 2 * vh + conv + vh * vd * h


@dataclass
class _Counts:
    """What a family's layers add up to; defaults are a dense GQA model's."""

    attn_per_layer: list[int]
    inter: int
    head_dim: int
    experts: int = 0
    top_k: int = 0
    shared_params_per_layer: int = 0
    expert_params: int = 0  # one expert, one layer
    moe_layers: int = 0
    dense_mlp_layers: int = 0
    attention: str = "gqa"
    kv_elems_full: int = 0
    kv_elems_window: int = 0
    attn_flops_full: int = 0
    attn_flops_window: int = 0
    window: int = 0
    state_elems: int = 0
    kv_lora_rank: int = 0


def _dense(c: Mapping[str, Any], n: _Shape) -> _Counts:
    return _Counts(
        attn_per_layer=[_gqa_attention(n.h, n.heads, n.kv_heads, n.head_dim)] * n.layers,
        inter=int(c.get("intermediate_size") or 0),
        head_dim=n.head_dim,
        dense_mlp_layers=n.layers,
        kv_elems_full=n.layers * 2 * n.kv_heads * n.head_dim,
        attn_flops_full=n.layers * 4 * n.heads * n.head_dim,
    )


def _routed_experts(k: _Counts, c: Mapping[str, Any], h: int, layers: int, experts: int, top_k: int) -> None:
    """Every layer's MLP is routed experts (the MoE GQA and hybrid-linear families)."""
    k.experts, k.top_k = experts, top_k
    k.inter = int(c.get("moe_intermediate_size") or c["intermediate_size"])
    k.expert_params = 3 * h * k.inter
    k.moe_layers, k.dense_mlp_layers = layers, 0


def _moe_gqa(c: Mapping[str, Any], n: _Shape) -> _Counts:
    k = _Counts([_gqa_attention(n.h, n.heads, n.kv_heads, n.head_dim)] * n.layers, 0, n.head_dim)
    experts = int(c.get("num_experts") or c.get("num_local_experts") or c.get("n_routed_experts"))
    _routed_experts(
        k, c, n.h, n.layers, experts, int(c.get("num_experts_per_tok") or c.get("experts_per_token"))
    )
    k.shared_params_per_layer = 3 * n.h * int(c.get("shared_intermediate_size") or 0)
    per_layer_kv = 2 * n.kv_heads * n.head_dim
    per_layer_flops = 4 * n.heads * n.head_dim
    types = c.get("layer_types") or []
    window_layers = 0
    if c.get("model_type") == "gpt_oss" and types:
        k.window = int(c.get("sliding_window") or 0)
        window_layers = sum(1 for t in types if t == "sliding_attention")
    full_layers = n.layers - window_layers
    k.kv_elems_full, k.kv_elems_window = full_layers * per_layer_kv, window_layers * per_layer_kv
    k.attn_flops_full, k.attn_flops_window = full_layers * per_layer_flops, window_layers * per_layer_flops
    return k


def _mla(c: Mapping[str, Any], n: _Shape) -> _Counts:
    moe_inter = int(c["moe_intermediate_size"])
    dense_layers = int(c.get("first_k_dense_replace") or 0)
    rope_dim = int(c["qk_rope_head_dim"])
    qk = int(c["qk_nope_head_dim"]) + rope_dim
    return _Counts(
        attn_per_layer=[_mla_attention(c)] * n.layers,
        inter=int(c.get("intermediate_size") or 0),
        head_dim=qk,
        attention="mla",
        experts=int(c["n_routed_experts"]),
        top_k=int(c["num_experts_per_tok"]),
        expert_params=3 * n.h * moe_inter,
        shared_params_per_layer=3 * n.h * moe_inter * int(c.get("n_shared_experts") or 0),
        dense_mlp_layers=dense_layers,
        moe_layers=n.layers - dense_layers,
        kv_lora_rank=int(c["kv_lora_rank"]),
        # The latent cache: one compressed vector plus the shared rope key per token and layer.
        kv_elems_full=n.layers * (int(c["kv_lora_rank"]) + rope_dim),
        attn_flops_full=n.layers * 2 * n.heads * (qk + int(c["v_head_dim"])),
    )


def _hybrid_linear(c: Mapping[str, Any], n: _Shape) -> _Counts:
    types = list(c.get("layer_types") or [])
    if len(types) != n.layers:
        interval = int(c.get("full_attention_interval") or 4)
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n.layers)]
    full_layers = sum(1 for t in types if t == "full_attention")
    gated = bool(c.get("attn_output_gate", False))
    k = _dense(c, n)
    k.attention = "hybrid_linear"
    k.attn_per_layer = [
        _gqa_attention(n.h, n.heads, n.kv_heads, n.head_dim, gated)
        if t == "full_attention"
        else _linear_attention(c)
        for t in types
    ]
    k.kv_elems_full = full_layers * 2 * n.kv_heads * n.head_dim
    k.attn_flops_full = full_layers * 4 * n.heads * n.head_dim
    # The recurrent state is a fixed matrix per value head, whatever the context length.
    k.state_elems = (
        (n.layers - full_layers)
        * int(c["linear_num_value_heads"])
        * int(c["linear_key_head_dim"])
        * int(c["linear_value_head_dim"])
    )
    if "num_experts" in c:
        _routed_experts(k, c, n.h, n.layers, int(c["num_experts"]), int(c["num_experts_per_tok"]))
        k.shared_params_per_layer = 3 * n.h * int(c.get("shared_expert_intermediate_size") or 0)
    return k


@dataclass(frozen=True)
class _Shape:
    h: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int


_FAMILIES = (
    (_DENSE, _dense),
    (_MOE_GQA, _moe_gqa),
    (_MLA, _mla),
    (_HYBRID_LINEAR, _hybrid_linear),
)


def derive(name: str, raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Architecture numbers for one config; raises ValueError for families it cannot count."""
    c = _text_config(raw)
    family = str(c.get("model_type", ""))
    h, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
    kv_heads = int(c.get("num_key_value_heads") or heads)
    n = _Shape(h, int(c["num_hidden_layers"]), heads, kv_heads, int(c.get("head_dim") or h // heads))
    count = next((f for names, f in _FAMILIES if family in names), None)
    if count is None:
        raise ValueError(f"model_type {family!r} is not a family this builder can count")
    k = count(c, n)
    vocab = int(c["vocab_size"])
    embed = vocab * h * (1 if c.get("tie_word_embeddings", False) else 2)
    common = (
        sum(k.attn_per_layer)
        + k.dense_mlp_layers * 3 * h * int(c.get("intermediate_size") or 0)
        + embed
        + k.moe_layers * h * k.experts  # routers
    )
    total = common + k.moe_layers * (k.shared_params_per_layer + k.experts * k.expert_params)
    active = common + k.moe_layers * (k.shared_params_per_layer + k.top_k * k.expert_params)
    return {
        "name": name,
        "family": family,
        "params_total": int(total),
        "params_active": int(active),
        "layers": n.layers,
        "hidden_size": h,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": k.head_dim,
        "intermediate_size": k.inter,
        "experts": k.experts,
        "experts_per_token": k.top_k,
        "moe_layers": k.moe_layers,
        "expert_params": int(k.expert_params),
        "vocab": vocab,
        "attention": k.attention,
        "kv_lora_rank": k.kv_lora_rank,
        "kv_elems_per_token_full": int(k.kv_elems_full),
        "kv_elems_per_token_window": int(k.kv_elems_window),
        "sliding_window": k.window,
        "attn_flops_per_ctx_full": int(k.attn_flops_full),
        "attn_flops_per_ctx_window": int(k.attn_flops_window),
        "sparse_attention_topk": int(c.get("index_topk") or 0),
        "state_elems_per_seq": int(k.state_elems),
        "max_context": int(c.get("max_position_embeddings") or 0),
        "sources": [source],
    }


def _config_name(path: Path) -> str:
    return path.stem.replace("--", "/", 1)


def build(configs_dir: Path) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for path in sorted(configs_dir.glob("*.json")):
        name = _config_name(path)
        try:
            models[name] = derive(name, json.loads(path.read_text()), f"config.json of {name} (Hugging Face)")
        except (ValueError, KeyError, TypeError) as exc:
            skipped[name] = str(exc)
    for alias, (target, reason) in sorted(ALIASES.items()):
        if target in models and alias not in models:
            entry = dict(models[target])
            entry["name"] = alias
            entry["sources"] = [*models[target]["sources"], f"architecture of {target}: {reason}"]
            models[alias] = entry
    return {
        "note": "Derived by greenmatrix.catalog.llms_build from Hugging Face config.json files; do not edit.",
        "models": [models[k] for k in sorted(models)],
        "skipped": dict(sorted(skipped.items())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("GREENMATRIX_DATA", "../shared/data")) / "model_configs"
    parser.add_argument("--configs", type=Path, default=default)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "llms.json")
    args = parser.parse_args(argv)
    catalog = build(args.configs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(catalog, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(catalog['models'])} models to {args.out}; skipped {len(catalog['skipped'])}")


if __name__ == "__main__":
    main()
