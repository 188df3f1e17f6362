"""The accelerator as the physics sees it: one `GPULike` protocol and the datasheet rates read off it.

Every physics module (LLM serving, MLPerf benchmarks, training) and the learned models read a GPU
through `GPULike`, so a catalog `GPUSpec`, a CPU node shaped like a device, or a test's stand-in all
work the same way. What is read here is datasheet fact, not workload: tensor rates with the catalog's
precision fallbacks, the last-level cache, the architecture generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from greenmatrix.catalog.precision import flops_key


class GPULike(Protocol):
    """The subset of `greenmatrix.catalog.hardware.GPUSpec` the physics reads.

    Optional datasheet facts (`family`, `vendor`, `tdp_watts`, `form_factor`) are read with
    `getattr` and a default, so a device without them still works.
    """

    key: str
    memory_gib: float
    memory_bandwidth_gbs: float
    intra_node_bandwidth_gbs: float
    inter_node_bandwidth_gbs: float
    gpus_per_node: int
    tflops: Mapping[str, float]

    def flops(self, precision: str) -> float: ...


# Tensor-core generation (compute capability); unknown architectures count as Ampere.
GENERATION: Mapping[str, float] = {
    "volta": 7.0,
    "turing": 7.5,
    "ampere": 8.0,
    "ada-lovelace": 8.9,
    "ada": 8.9,
    "hopper": 9.0,
    "blackwell": 10.0,
    "blackwell-ultra": 10.3,
}


def generation(gpu: GPULike) -> float:
    """The GPU's tensor-core generation (8.0, Ampere, when its architecture is not known)."""
    return GENERATION.get(str(getattr(gpu, "family", "")).lower(), 8.0)


def peak_flops(gpu: GPULike, precision: str) -> float:
    """Datasheet FLOP/s of `gpu` at `precision` with the catalog's fallbacks; 0 if it has no usable rate."""
    rates = dict(gpu.tflops)
    key = flops_key(precision, rates)
    return float(rates[key]) * 1e12 if key else 0.0


# Last-level (L2) cache per GPU in MiB (vendor datasheets and architecture whitepapers). A large L2
# keeps a layer's activations or hot embedding rows on chip, so memory-bound benchmarks can run past
# the DRAM roofline: Ada parts (L4: 48 MiB on 300 GB/s) are the extreme case.
_L2_MIB: dict[str, float] = {
    "T4": 4,
    "A2": 2,
    "A10": 6,
    "A10G": 6,
    "A30": 24,
    "A40": 6,
    "RTX-A5000": 6,
    "A100-PCIe-40GB": 40,
    "A100-PCIe-80GB": 40,
    "A100-SXM4-40GB": 40,
    "A100-SXM4-80GB": 40,
    "V100-SXM2-16GB": 6,
    "V100-SXM2-32GB": 6,
    "L4": 48,
    "L40": 96,
    "L40S": 96,
    "RTX-4090": 72,
    "H100-PCIe-80GB": 50,
    "H100-SXM-80GB": 50,
    "H100-NVL-94GB": 50,
    "H200-SXM-141GB": 50,
    "GH200-96GB": 50,
    "GH200-144GB": 50,
    "B200-SXM-180GB": 126,
    "GB200": 126,
    "B300-SXM-288GB": 126,
    "GB300": 126,
    "RTX-PRO-6000-Server": 128,
    "MI300X": 256,  # Infinity Cache, the last level before HBM
}
# Unlisted GPUs: a typical part of their architecture.
_L2_BY_FAMILY = {"volta": 6, "turing": 4, "ampere": 40, "ada-lovelace": 72, "hopper": 50, "blackwell": 126}


def l2_cache_mib(gpu: GPULike) -> float:
    """The GPU's last-level cache in MiB (datasheet), else a typical value for its family (default 40)."""
    if gpu.key in _L2_MIB:
        return float(_L2_MIB[gpu.key])
    return float(_L2_BY_FAMILY.get(str(getattr(gpu, "family", "")).lower(), 40))
