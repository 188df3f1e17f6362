"""Hardware catalog: GPU specs by canonical key, CPU TDPs, and a generic CPU-node estimate.

Specs come from the shipped `data/gpus.json` and `data/cpus.json`, built by
`python -m greenmatrix.catalog.build` from the shared reference data plus `datasheets.py`.
Every GPU figure is a datasheet peak: TFLOPS are DENSE tensor rates, bandwidth in GB/s (1e9 B/s).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from greenmatrix import errors
from greenmatrix.catalog.names import (
    ParsedGPUName,
    gpu_keys_named,
    normalize_cpu_name,
    normalize_gpu_name,
    parse_gfd_product,
    parse_gpu_name,
)
from greenmatrix.catalog.precision import COMPUTE_FALLBACK, flops_key, normalize_precision

__all__ = [
    "CPUSpec",
    "GPUSpec",
    "ParsedGPUName",
    "UnknownHardwareError",
    "all_gpus",
    "cpu_from_model_name",
    "cpu_option",
    "cpu_tdp",
    "gpu",
    "gpu_keys_named",
    "normalize_gpu_name",
    "parse_gfd_product",
    "parse_gpu_name",
    "try_gpu",
]


class UnknownHardwareError(errors.UnknownHardwareError, ValueError):
    """A hardware name with no catalog spec; names the field, the value and close known keys."""

    def __init__(self, field: str, name: str, suggestions: tuple[str, ...] = ()) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            field, f"accelerator {name!r} has no specs in the catalog{hint}", allowed=sorted(_gpus())
        )


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet facts about one accelerator model (per GPU)."""

    key: str
    vendor: str
    family: str
    memory_gib: float
    memory_bandwidth_gbs: float
    tflops: Mapping[str, float]
    tdp_watts: float
    intra_node_bandwidth_gbs: float
    inter_node_bandwidth_gbs: float
    gpus_per_node: int
    form_factor: str
    sources: tuple[str, ...]
    derived: str = "datasheet"  # "shared/data hardware/systems" | "datasheet"
    system_id: str | None = None  # the shared systems YAML stem, e.g. "h100_sxm"
    host_watts_per_node: float = 500.0  # CPUs+memory+fans per node; 0 when the module covers the host
    notes: tuple[str, ...] = field(default=())

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    @property
    def memory_bandwidth_bytes_s(self) -> float:
        return self.memory_bandwidth_gbs * 1e9

    def flops_key(self, precision: str) -> str | None:
        """Which listed rate `precision` runs at here (fallbacks in precision.COMPUTE_FALLBACK)."""
        return flops_key(precision, self.tflops)

    def flops(self, precision: str) -> float:
        """Dense FLOP/s for `precision`, falling back fp4 -> fp8 -> bf16 -> fp16, int8 -> bf16, int4 -> bf16.

        Raises ValueError when no fallback rate is listed (e.g. fp32 on a spec without it).
        """
        key = self.flops_key(precision)
        if key is None:
            canon = normalize_precision(precision)
            chain = " -> ".join(COMPUTE_FALLBACK[canon]) if canon else "?"
            raise ValueError(f"precision: {self.key} lists no tensor rate for {precision!r} (tried {chain})")
        return self.tflops[key] * 1e12


@dataclass(frozen=True)
class CPUSpec:
    """A CPU socket, estimated; see `cpu_option` for the assumptions."""

    vendor: str
    cores: int
    avx512: bool
    amx: bool
    clock_ghz: float
    tflops: Mapping[str, float]
    memory_bandwidth_gbs: float
    tdp_watts: float
    assumptions: tuple[str, ...]

    def __hash__(self) -> int:
        return hash((self.vendor, self.cores, self.avx512, self.amx))

    def flops(self, precision: str) -> float:
        """Peak FLOP/s for `precision` (int4/fp4/fp8 weights are computed at the bf16 rate on CPUs)."""
        canon = normalize_precision(precision)
        if canon in ("fp8", "int4", "fp4"):
            canon = "bf16"
        if canon == "tf32" or canon == "fp16":
            canon = "fp32" if canon == "tf32" else "bf16"
        if canon not in self.tflops:
            raise ValueError(f"precision: CPU estimate has no rate for {precision!r}")
        return self.tflops[canon] * 1e12


def _load(name: str) -> list[dict[str, Any]]:
    text = resources.files("greenmatrix.catalog").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)["entries"]


@functools.cache
def _gpus() -> dict[str, GPUSpec]:
    specs: dict[str, GPUSpec] = {}
    for e in _load("gpus.json"):
        specs[e["key"]] = GPUSpec(
            key=e["key"],
            vendor=e["vendor"],
            family=e["family"],
            memory_gib=float(e["memory_gib"]),
            memory_bandwidth_gbs=float(e["memory_bandwidth_gbs"]),
            tflops=MappingProxyType({k: float(v) for k, v in e["tflops"].items()}),
            tdp_watts=float(e["tdp_watts"]),
            intra_node_bandwidth_gbs=float(e["intra_node_bandwidth_gbs"]),
            inter_node_bandwidth_gbs=float(e["inter_node_bandwidth_gbs"]),
            gpus_per_node=int(e["gpus_per_node"]),
            host_watts_per_node=float(e["host_watts_per_node"]),
            form_factor=e["form_factor"],
            sources=tuple(e["sources"]),
            derived=e["derived"],
            system_id=e["system_id"],
            notes=tuple(e["notes"]),
        )
    return specs


def all_gpus() -> tuple[GPUSpec, ...]:
    """Every catalogued accelerator, sorted by key."""
    return tuple(_gpus()[k] for k in sorted(_gpus()))


def try_gpu(name: str, memory_mib: float | None = None) -> GPUSpec | None:
    """Spec for any naming of a GPU, or None when it is not catalogued."""
    key = normalize_gpu_name(name, memory_mib)
    return None if key is None else _gpus().get(key)


def gpu(name: str, memory_mib: float | None = None, *, field: str = "gpu") -> GPUSpec:
    """Spec for any naming of a GPU; raises UnknownHardwareError(field, name, suggestions)."""
    spec = try_gpu(name, memory_mib)
    if spec is None:
        keys = list(_gpus())
        probe = re.sub(r"^(nvidia|tesla|amd|intel)[\s\-_]+", "", str(name).strip(), flags=re.IGNORECASE)
        upper = {k.upper(): k for k in keys}
        close = difflib.get_close_matches(probe.upper(), list(upper), n=3, cutoff=0.5)
        raise UnknownHardwareError(field, str(name), tuple(upper[c] for c in close))
    return spec


# --- CPUs -------------------------------------------------------------------------------------


@functools.cache
def _cpu_tdps() -> dict[str, float]:
    return {e["model"]: float(e["tdp_watts"]) for e in _load("cpus.json")}


def cpu_tdp(model_name: str) -> float | None:
    """TDP (W) of a server CPU model as MLPerf or /proc/cpuinfo spells it, or None when unknown.

    Exact match after normalisation first; otherwise the same line and model number with a
    different suffix letter (8480C vs 8480+) when all such variants share one TDP.
    """
    table = _cpu_tdps()
    name = normalize_cpu_name(model_name)
    if name in table:
        return table[name]
    m = re.match(r"^(.*?\b)(\d{3,5})[A-Z+]*$", name)
    if not m:
        return None
    stem = m.group(1) + m.group(2)
    tdps = {w for n, w in table.items() if re.match(re.escape(stem) + r"[A-Z+]*$", n)}
    return tdps.pop() if len(tdps) == 1 else None


# Generic CPU-socket assumptions (documented in cpu_option).
_CPU_DEFAULT_CORES = 32
_CPU_CLOCK_GHZ = 2.0  # sustained all-core clock under wide-vector load (AVX-512/AMX licence)
_CPU_TDP_PER_SOCKET = 250.0


def cpu_option(vendor: str, avx512: bool, amx: bool, cores: int | None = None) -> CPUSpec:
    """A generic one-socket CPU estimate from what Node Feature Discovery shows.

    Inputs: `feature.node.kubernetes.io/cpu-model.vendor_id` ("Intel"/"AMD"), `cpu-cpuid.AVX512F`,
    `cpu-cpuid.AMXBF16`, and the core count if known (default 32). Assumptions, per core per cycle,
    at a sustained 2.0 GHz:
    - fp32: 64 FLOP with AVX-512 on Intel (2 FMA ports x 16 lanes x 2), 32 on AMD with AVX-512
      (Zen 4 runs 512-bit ops as two 256-bit halves) and 32 with AVX2 only.
    - bf16: 1024 FLOP with AMX (Intel's AMX-BF16 tile rate); otherwise 2x fp32 with AVX-512
      (VDPBF16PS), otherwise the fp32 rate.
    - int8: 2048 OP with AMX, 256 with AVX-512 VNNI, 64 otherwise.
    Memory bandwidth per socket: AMX -> 8 ch DDR5-4800 (307 GB/s, Sapphire Rapids class); AMD with
    AVX-512 -> 12 ch DDR5-4800 (461 GB/s, Genoa class); otherwise 8 ch DDR4-3200 (205 GB/s).
    TDP: 250 W per socket. These are peaks; real small-model inference reaches a fraction of them.
    """
    v = vendor.strip().lower()
    if v in ("genuineintel", "intel"):
        v = "intel"
    elif v in ("authenticamd", "amd"):
        v = "amd"
    else:
        raise ValueError(f"vendor: {vendor!r} is not supported; allowed: Intel, AMD")
    if amx and v != "intel":
        raise ValueError("amx: AMX is an Intel extension; vendor AMD cannot have it")
    n = _CPU_DEFAULT_CORES if cores is None else int(cores)
    if n < 1:
        raise ValueError(f"cores: must be >= 1, got {cores!r}")
    fp32_per_cycle = 64.0 if (avx512 and v == "intel") else 32.0
    bf16_per_cycle = 1024.0 if amx else (2 * fp32_per_cycle if avx512 else fp32_per_cycle)
    int8_per_cycle = 2048.0 if amx else (256.0 if avx512 else 64.0)
    scale = n * _CPU_CLOCK_GHZ * 1e9 / 1e12
    if amx:
        bandwidth = 8 * 4.8 * 8  # channels x GT/s x 8 bytes
    elif v == "amd" and avx512:
        bandwidth = 12 * 4.8 * 8
    else:
        bandwidth = 8 * 3.2 * 8
    return CPUSpec(
        vendor=v,
        cores=n,
        avx512=bool(avx512),
        amx=bool(amx),
        clock_ghz=_CPU_CLOCK_GHZ,
        tflops=MappingProxyType(
            {"fp32": fp32_per_cycle * scale, "bf16": bf16_per_cycle * scale, "int8": int8_per_cycle * scale}
        ),
        memory_bandwidth_gbs=round(bandwidth, 1),
        tdp_watts=_CPU_TDP_PER_SOCKET,
        assumptions=(
            f"{n} cores at a sustained {_CPU_CLOCK_GHZ} GHz"
            + (" (default core count)" if cores is None else ""),
            f"per core per cycle: fp32 {fp32_per_cycle:g}, bf16 {bf16_per_cycle:g}, int8 {int8_per_cycle:g}",
            f"one socket, memory bandwidth {bandwidth:.0f} GB/s, TDP {_CPU_TDP_PER_SOCKET:g} W",
        ),
    )


# Instruction-set generations by model number, for CPU names without NFD labels (MLPerf hosts).
# Xeon Scalable "Pxyzz": y is the generation (1 Skylake, 2 Cascade Lake, 3 Ice Lake: AVX-512;
# 4 Sapphire Rapids, 5 Emerald Rapids: AVX-512 + AMX). EPYC "abcN": N is the Zen generation
# (1-3 Naples/Rome/Milan: AVX2 only; 4 Genoa/Siena/Bergamo, 5 Turin: AVX-512). Ryzen 7000+ is Zen 4.
_XEON_SCALABLE = re.compile(r"\bXEON\b.*\b(PLATINUM|GOLD|SILVER|BRONZE)\s+\d(\d)\d\d")
_XEON_6 = re.compile(r"\bXEON\b.*\b6\d{3}[PE]\b")
_XEON_D = re.compile(r"\bXEON\b.*\bD-?\s?(\d)\d{3}")
_XEON_SPR_OTHER = re.compile(r"\bXEON\b.*(\bW\d-[23]\d{3}|\bMAX\s+9\d{3})")  # workstation W-2400/3400, Max
_XEON_E = re.compile(r"\bXEON\b.*\bE[357]-\d{4}")
_EPYC = re.compile(r"\bEPYC\b\s+\d[0-9A-Z]{2}(\d)")  # also AWS parts such as 7R13 (Milan)
_RYZEN = re.compile(r"\b(?:RYZEN\b\s+\d|THREADRIPPER(?:\s+PRO)?)\s+(\d)\d{3}")


def cpu_from_model_name(model_name: str, cores: int | None = None) -> CPUSpec | None:
    """`cpu_option` for a CPU model string ("Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC 9554").

    The instruction-set features come from the model number (see the patterns above); TDP from
    the codecarbon table when the model is there. None for CPUs it cannot place (ARM, Apple,
    pre-Scalable Xeons): callers say "CPU not recognised".
    """
    name = normalize_cpu_name(model_name or "")
    vendor: str | None = None
    avx512 = amx = False
    if m := _XEON_SCALABLE.search(name):
        vendor, gen = "intel", int(m.group(2))
        avx512, amx = gen >= 1, gen >= 4
    elif (
        _XEON_6.search(name)
        or _XEON_SPR_OTHER.search(name)
        or "SAPPHIRE RAPIDS" in name
        or "EMERALD RAPIDS" in name
    ):
        vendor, avx512, amx = "intel", True, True
    elif (m := _XEON_D.search(name)) and int(m.group(1)) >= 2:
        vendor, avx512 = "intel", True  # Xeon D-2100 and later have AVX-512
    elif _XEON_E.search(name):
        vendor = "intel"  # Xeon E3/E5/E7 (Haswell/Broadwell servers): AVX2 only
    elif m := _EPYC.search(name):
        vendor, avx512 = "amd", int(m.group(1)) >= 4
    elif m := _RYZEN.search(name):
        vendor, avx512 = "amd", int(m.group(1)) >= 7
    if vendor is None:
        return None
    spec = cpu_option(vendor, avx512=avx512, amx=amx, cores=cores)
    tdp = cpu_tdp(model_name)
    if tdp is None:
        return spec
    return dataclasses.replace(
        spec,
        tdp_watts=tdp,
        assumptions=(
            *spec.assumptions[:-1],
            spec.assumptions[-1].replace(
                f"TDP {_CPU_TDP_PER_SOCKET:g} W", f"TDP {tdp:g} W ({name}, codecarbon table)"
            ),
        ),
    )
