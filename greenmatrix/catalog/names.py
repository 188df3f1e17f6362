"""One normaliser for accelerator names from every source GreenMatrix reads.

Sources and examples it accepts:
- MLPerf `accelerator_model_name`: "NVIDIA H100-SXM-80GB", "NVIDIA A100-SXM4-80GB (500W)",
  "NVIDIA A100-SXM-80GB (1x1g.10gb MIG)", "NVIDIA GeForce RTX 4090 (Ada Lovelace)", "NVIDIA A10-24Q".
- serving/system ids (shared hardware/systems stems): "h100_sxm", "b200_sxm", "gb200", "b300_sxm".
- GPU Feature Discovery `nvidia.com/gpu.product`: "NVIDIA-H100-80GB-HBM3", "Tesla-T4",
  "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb" (MIG suffix parsed separately).
- Karpenter `karpenter.k8s.aws/instance-gpu-name`: "h100", "a100", "a10g", with
  `instance-gpu-memory` (MiB) to pick the memory variant.
- the price list: "H100-SXM-80GB", "V100-SXM2-16GB".

The result is a catalog key (see `greenmatrix.catalog.hardware.all_gpus`) or None. Edge and
automotive parts (Jetson, Orin, Xavier, DRIVE) and accelerators without a catalog spec give None
rather than a look-alike datacenter part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Variant:
    key: str
    form: str  # "sxm" | "pcie" | "nvl" | "superchip"
    memory_gb: float  # nominal, as in the marketing name
    also_memory_gb: tuple[float, ...] = ()  # other memory figures the name may carry (GH200: with LPDDR)


# Family token -> variants; the first variant is the default when the name does not say more.
# Defaults are the parts the shared data describes (A100 SXM4 80GB, H100 SXM) or the most common
# one (V100 16GB, GH200 96GB: 36 of 38 MLPerf GH200 rows).
_FAMILIES: dict[str, tuple[_Variant, ...]] = {
    "A100": (
        _Variant("A100-SXM4-80GB", "sxm", 80),
        _Variant("A100-SXM4-40GB", "sxm", 40),
        _Variant("A100-PCIe-80GB", "pcie", 80),
        _Variant("A100-PCIe-40GB", "pcie", 40),
    ),
    "H100": (
        _Variant("H100-SXM-80GB", "sxm", 80),
        _Variant("H100-PCIe-80GB", "pcie", 80),
        _Variant("H100-NVL-94GB", "nvl", 94, (96,)),
    ),
    "H200": (_Variant("H200-SXM-141GB", "sxm", 141),),
    "GH200": (
        _Variant("GH200-96GB", "superchip", 96, (480,)),
        _Variant("GH200-144GB", "superchip", 144, (624,)),
    ),
    "B200": (_Variant("B200-SXM-180GB", "sxm", 180, (192,)),),
    "B300": (_Variant("B300-SXM-288GB", "sxm", 288, (270, 275)),),
    "GB200": (_Variant("GB200", "superchip", 186, (185, 192)),),
    "GB300": (_Variant("GB300", "superchip", 288, (278, 279)),),
    "V100": (_Variant("V100-SXM2-16GB", "sxm", 16), _Variant("V100-SXM2-32GB", "sxm", 32)),
    "L4": (_Variant("L4", "pcie", 24),),
    "L40": (_Variant("L40", "pcie", 48),),
    "L40S": (_Variant("L40S", "pcie", 48),),
    "A10": (_Variant("A10", "pcie", 24),),
    "A10G": (_Variant("A10G", "pcie", 24),),
    "A30": (_Variant("A30", "pcie", 24),),
    "A40": (_Variant("A40", "pcie", 48),),
    "A2": (_Variant("A2", "pcie", 16),),
    "T4": (_Variant("T4", "pcie", 16),),
    "T4G": (_Variant("T4", "pcie", 16),),  # AWS g5g: the same T4 silicon on Graviton hosts
    "RTX4090": (_Variant("RTX-4090", "pcie", 24),),
    "RTXA5000": (_Variant("RTX-A5000", "pcie", 24),),
    "RTXPRO6000": (_Variant("RTX-PRO-6000-Server", "pcie", 96),),
    "B60": (_Variant("Arc-Pro-B60", "pcie", 24),),
    "MI300X": (_Variant("MI300X", "sxm", 192),),
    "MI325X": (_Variant("MI325X", "sxm", 256),),
}

# Names of parts that look like a family token but are other products.
_REJECT = frozenset({"JETSON", "ORIN", "XAVIER", "DRIVE", "AGX", "IGX"})
_FORM_TOKENS = {
    "SXM": "sxm", "SXM2": "sxm", "SXM3": "sxm", "SXM4": "sxm", "SXM5": "sxm", "SXM6": "sxm", "HGX": "sxm",
    "PCIE": "pcie", "PCI": "pcie",
    "NVL": "nvl",
}  # fmt: skip
_MIG_GFD = re.compile(r"[-_\s]MIG[-_\s]?(\d+g\.\d+gb(?:\+me)?)", re.IGNORECASE)
_MIG_MLPERF = re.compile(r"(\d+)\s*x\s*(\d+g\.\d+gb(?:\+me)?)\s*MIG", re.IGNORECASE)
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(?:GB|G|GIB)$")
_VGPU = re.compile(r"^(\d+)[QCAB]$")  # vGPU profiles: A10-24Q, A100-SXM-80C, H100-80C
_MEMORY_TOLERANCE = 0.15  # labels report usable MiB (e.g. 81559 for 80 GB, 15360 for T4's 16 GB)


@dataclass(frozen=True)
class ParsedGPUName:
    """What a GPU name says: catalog key, MIG slice (if any), and whether it is a vGPU profile."""

    key: str
    mig_profile: str | None = None  # e.g. "1g.10gb"
    mig_instances: int | None = None  # MLPerf "(7x1g.10gb MIG)" -> 7
    vgpu: bool = False


def _family_of(tokens: list[str]) -> str | None:
    joined = set(tokens)
    if "RTX" in joined and "PRO" in joined and "6000" in joined:
        return "RTXPRO6000"
    if "4090" in joined:
        return "RTX4090"
    if "A5000" in joined and "RTX" in joined:
        return "RTXA5000"
    for token in tokens:
        if token in _FAMILIES:
            return token
    return None


def parse_gpu_name(name: str, memory_mib: float | None = None) -> ParsedGPUName | None:
    """Parse any accelerator name; None when it is not a catalogued part.

    `memory_mib` (a node label such as `karpenter.k8s.aws/instance-gpu-memory` or
    `nvidia.com/gpu.memory`) picks the memory variant when the name alone is ambiguous; it is
    ignored for MIG devices, whose label reports the slice's memory.
    """
    found = _candidates(name, memory_mib)
    if found is None:
        return None
    variants, mig_profile, mig_instances, vgpu = found
    return ParsedGPUName(variants[0].key, mig_profile, mig_instances, vgpu)


def gpu_keys_named(name: str) -> tuple[str, ...]:
    """Every catalog key a name can mean: "A100" is each A100 variant, "A100 80GB" the 80 GB ones.

    A restriction ("exclude a100") means the whole family; only a node label, which names one part,
    needs the single best match of `parse_gpu_name`.
    """
    found = _candidates(name, None)
    return () if found is None else tuple(v.key for v in found[0])


def _candidates(
    name: str, memory_mib: float | None
) -> tuple[tuple[_Variant, ...], str | None, int | None, bool] | None:
    """The catalog variants a name fits (best first), with its MIG profile, MIG count and vGPU flag."""
    if not isinstance(name, str) or not name.strip():
        return None
    text = name.strip()
    mig_profile: str | None = None
    mig_instances: int | None = None
    if m := _MIG_MLPERF.search(text):
        mig_instances, mig_profile = int(m.group(1)), m.group(2).lower()
        text = text[: m.start()] + " " + text[m.end() :]
    elif m := _MIG_GFD.search(text):
        mig_profile = m.group(1).lower()
        text = text[: m.start()] + " " + text[m.end() :]
    text = re.sub(r"\([^)]*\)", " ", text)  # "(500W)", "(Ada Lovelace)"
    tokens = [t for t in re.split(r"[\s\-_/,+]+", text.upper()) if t]
    if _REJECT.intersection(tokens):
        return None
    family = _family_of(tokens)
    if family is None:
        return None
    form = next((_FORM_TOKENS[t] for t in tokens if t in _FORM_TOKENS), None)
    if "HBM3" in tokens and family == "H100" and form is None:
        form = "sxm"  # GFD "NVIDIA-H100-80GB-HBM3" is the SXM5 part; the PCIe card has HBM2e
    vgpu = False
    name_memory: float | None = None
    for token in tokens:
        if m := _MEMORY.match(token):
            name_memory = float(m.group(1))
        elif m := _VGPU.match(token):
            vgpu, name_memory = True, float(m.group(1))
    variants = _FAMILIES[family]
    if form is not None and not (form == "nvl" and variants[0].form == "superchip"):
        variants = tuple(v for v in variants if v.form == form)
        if not variants:
            return None  # e.g. "H200 NVL": a form the catalog does not hold
    if len(variants) > 1:
        if name_memory is not None:
            variants = tuple(v for v in variants if _memory_matches(v, name_memory))
            if not variants:
                return None  # a memory size the catalog does not hold, e.g. "A100 PCIe 20GB"
        elif memory_mib is not None and mig_profile is None:
            variants = (min(variants, key=lambda v: _memory_distance(v, float(memory_mib) / 1024.0)),)
    return variants, mig_profile, mig_instances, vgpu


def _memory_matches(variant: _Variant, gb: float) -> bool:
    return _memory_distance(variant, gb) <= _MEMORY_TOLERANCE


def _memory_distance(variant: _Variant, gb: float) -> float:
    return min(abs(gb - m) / m for m in (variant.memory_gb, *variant.also_memory_gb))


def normalize_gpu_name(name: str, memory_mib: float | None = None) -> str | None:
    """Canonical catalog key for any naming of a GPU, or None when the part is not catalogued."""
    parsed = parse_gpu_name(name, memory_mib)
    return None if parsed is None else parsed.key


def parse_gfd_product(label: str) -> tuple[str | None, str | None]:
    """`nvidia.com/gpu.product` value -> (catalog key or None, MIG profile or None)."""
    parsed = parse_gpu_name(label)
    if parsed is None:
        m = _MIG_GFD.search(label or "")
        return None, (m.group(1).lower() if m else None)
    return parsed.key, parsed.mig_profile


def known_keys() -> frozenset[str]:
    """Every key the normaliser can return (each must have a catalog spec; a test checks it)."""
    return frozenset(v.key for variants in _FAMILIES.values() for v in variants)


def normalize_cpu_name(name: str) -> str:
    """Uppercase model string without trademarks, core counts, clocks or filler words."""
    s = name.upper().replace("®", " ").replace("™", " ")
    s = re.sub(r"\((R|TM)\)", " ", s)
    s = re.sub(r"@.*$", " ", s)
    s = re.sub(r"\b\d+-CORE\b", " ", s)
    s = re.sub(r"\b(CPU|PROCESSOR|PROCESSORS)\b", " ", s)
    return " ".join(s.split())
