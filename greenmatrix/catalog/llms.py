"""LLM architectures: the numbers the serving physics needs, by catalog name or from user-given numbers.

The catalog ships as `catalog/data/llms.json`, derived from Hugging Face config.json files by
`greenmatrix.catalog.llms_build` (see that module for how parameters are counted and which served
names reuse another config's architecture, and why).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from greenmatrix.errors import UnknownModelError

_DATA = Path(__file__).parent / "data" / "llms.json"


@dataclass(frozen=True)
class ModelArch:
    """One LLM's architecture, reduced to what compute, memory traffic and KV cache depend on.

    KV cache sizes are in *elements* per token summed over layers (multiply by the KV precision's
    bytes): ``kv_elems_per_token_full`` for layers attending the whole context,
    ``kv_elems_per_token_window`` for sliding-window layers (capped at ``sliding_window`` tokens).
    ``attn_flops_per_ctx_*`` are attention FLOPs per new token per context token (QK and AV).
    ``state_elems_per_seq`` is the fixed recurrent state of linear-attention layers.
    """

    name: str
    params_total: int
    params_active: int
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab: int
    experts: int = 0
    experts_per_token: int = 0
    moe_layers: int = 0
    expert_params: int = 0  # one expert in one layer
    attention: str = "gqa"
    kv_lora_rank: int = 0
    kv_elems_per_token_full: int = 0
    kv_elems_per_token_window: int = 0
    sliding_window: int = 0
    attn_flops_per_ctx_full: int = 0
    attn_flops_per_ctx_window: int = 0
    sparse_attention_topk: int = 0
    state_elems_per_seq: int = 0
    max_context: int = 0
    family: str = ""
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def expert_params_total(self) -> int:
        """Parameters in routed experts (all layers, all experts)."""
        return self.moe_layers * self.experts * self.expert_params

    @property
    def dense_params(self) -> int:
        """Parameters every token touches (attention, dense MLPs, shared experts, embeddings)."""
        return self.params_total - self.expert_params_total


@cache
def _catalog() -> dict[str, ModelArch]:
    raw = json.loads(_DATA.read_text())
    out: dict[str, ModelArch] = {}
    for entry in raw["models"]:
        arch = _from_entry(entry)
        out[arch.name] = arch
    return out


def _from_entry(entry: dict[str, Any]) -> ModelArch:
    known = set(ModelArch.__dataclass_fields__)
    values = {k: v for k, v in entry.items() if k in known}
    values["sources"] = tuple(entry.get("sources", ()))
    return ModelArch(**values)


@cache
def _index() -> dict[str, str]:
    """Lower-cased full names and bare names (after the organisation) to catalog names."""
    index: dict[str, str] = {}
    bare_seen: dict[str, list[str]] = {}
    for name in sorted(_catalog()):
        index[name.lower()] = name
        bare_seen.setdefault(name.split("/", 1)[-1].lower(), []).append(name)
    for bare, names in bare_seen.items():
        # A bare name shared by several organisations resolves to the original publisher's entry
        # (the first without "nvidia/" quantised re-publishing), so "DeepSeek-R1" is deepseek-ai's.
        preferred = [n for n in names if not n.startswith("nvidia/")] or names
        index.setdefault(bare, preferred[0])
    return index


def all_models() -> tuple[ModelArch, ...]:
    return tuple(_catalog()[k] for k in sorted(_catalog()))


def model_arch(name: str) -> ModelArch:
    """Look up by Hugging Face id ("meta-llama/Llama-3.1-8B-Instruct") or bare name, case-insensitive."""
    key = (name or "").strip().lower()
    hit = _index().get(key)
    if hit is not None:
        return _catalog()[hit]
    suggestions = difflib.get_close_matches(key, list(_index()), n=5, cutoff=0.5)
    raise UnknownModelError(
        "model",
        f"{name!r} is not in the model catalog; give architecture numbers instead or use a known name",
        [_index()[s] for s in suggestions] or sorted(_catalog())[:8],
    )


def from_numbers(
    name: str,
    *,
    params_total: float,
    layers: int,
    hidden_size: int,
    heads: int,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    intermediate_size: int = 0,
    vocab: int = 32000,
    params_active: float | None = None,
    experts: int = 0,
    experts_per_token: int = 0,
    kv_lora_rank: int = 0,
    rope_head_dim: int = 64,
    max_context: int = 0,
) -> ModelArch:
    """An architecture from numbers a user knows (e.g. from a model card) rather than a catalog name.

    GQA attention unless ``kv_lora_rank`` is given (then MLA, DeepSeek-style). For MoE models give
    ``experts``, ``experts_per_token`` and ``params_active``; expert sizes are inferred from the
    difference between total and active parameters.
    """
    for fname, value in (("params_total", params_total), ("layers", layers), ("hidden_size", hidden_size)):
        if not value or value <= 0:
            raise UnknownModelError(fname, f"must be a positive number, got {value!r}")
    if heads <= 0:
        raise UnknownModelError("heads", f"must be a positive integer, got {heads!r}")
    kv = kv_heads or heads
    hd = head_dim or hidden_size // heads
    active = params_active if params_active is not None else params_total
    if active > params_total:
        raise UnknownModelError("params_active", f"{active} exceeds params_total {params_total}")
    if experts and (experts_per_token <= 0 or experts_per_token > experts):
        raise UnknownModelError(
            "experts_per_token", f"must be between 1 and experts ({experts}), got {experts_per_token}"
        )
    expert_params = 0
    moe_layers = 0
    if experts:
        moe_layers = layers
        # total - active = (experts - top_k) experts' worth of weights per MoE layer.
        expert_params = int((params_total - active) / max(1, (experts - experts_per_token) * layers))
    if kv_lora_rank:
        attention = "mla"
        kv_full = layers * (kv_lora_rank + rope_head_dim)
        attn = layers * 2 * heads * (hd + rope_head_dim + hd)
    else:
        attention = "gqa"
        kv_full = layers * 2 * kv * hd
        attn = layers * 4 * heads * hd
    return ModelArch(
        name=name,
        params_total=int(params_total),
        params_active=int(active),
        layers=layers,
        hidden_size=hidden_size,
        heads=heads,
        kv_heads=kv,
        head_dim=hd,
        intermediate_size=intermediate_size,
        vocab=vocab,
        experts=experts,
        experts_per_token=experts_per_token,
        moe_layers=moe_layers,
        expert_params=expert_params,
        attention=attention,
        kv_lora_rank=kv_lora_rank,
        kv_elems_per_token_full=kv_full,
        attn_flops_per_ctx_full=attn,
        max_context=max_context,
        family="user",
        sources=("architecture numbers given by the user",),
    )
