"""Accelerator facts GreenMatrix states itself, from vendor datasheets, for what the shared data lacks.

Two kinds of entries read by `greenmatrix.catalog.build`, and one read by the physics:

- `SYSTEM_IDENTITY`: for each shared `hardware/systems/<id>.yaml`, the canonical key, vendor,
  architecture family and form factor (the YAML files carry numbers, not names), plus the fp32
  (non-tensor) rate from the datasheet, which the YAMLs omit.
- `DATASHEET_GPUS`: accelerators named by MLPerf, the price list or node labels that have no YAML.
  Only parts whose datasheets we know well are listed; anything else has no spec and callers say so.
- `BOOST_CLOCK_MHZ`: the boost clock each part's datasheet tensor rates are quoted at, which
  `greenmatrix.physics.benchmarks` uses to compare energy per operation across clocks.

All TFLOPS are DENSE (vendor "with sparsity" figures halved). Bandwidth in GB/s (1e9 B/s).
Interconnect figures are per GPU, one direction. `inter_node_bandwidth_gbs` for cards without a
documented fabric repeats the assumption of the shared PCIe system files (1:1 200 Gb/s, 25 GB/s).
"""

from __future__ import annotations

from typing import Any

# yaml stem -> identity + supplementary datasheet facts.
SYSTEM_IDENTITY: dict[str, dict[str, Any]] = {
    "a100_sxm": {
        "key": "A100-SXM4-80GB",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "sxm",
        "fp32": 19.5,
        "datasheet": "NVIDIA A100 Tensor Core GPU datasheet",
    },
    "a100_pcie": {
        "key": "A100-PCIe-80GB",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "fp32": 19.5,
        "datasheet": "NVIDIA A100 Tensor Core GPU datasheet",
    },
    "a30": {
        "key": "A30",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "fp32": 10.3,
        "datasheet": "NVIDIA A30 Tensor Core GPU datasheet",
    },
    "h100_sxm": {
        "key": "H100-SXM-80GB",
        "vendor": "nvidia",
        "family": "hopper",
        "form_factor": "sxm",
        "fp32": 67.0,
        "datasheet": "NVIDIA H100 Tensor Core GPU datasheet",
    },
    "h100_pcie": {
        "key": "H100-PCIe-80GB",
        "vendor": "nvidia",
        "family": "hopper",
        "form_factor": "pcie",
        "fp32": 51.0,
        "datasheet": "NVIDIA H100 Tensor Core GPU datasheet",
    },
    "h200_sxm": {
        "key": "H200-SXM-141GB",
        "vendor": "nvidia",
        "family": "hopper",
        "form_factor": "sxm",
        "fp32": 67.0,
        "datasheet": "NVIDIA H200 Tensor Core GPU datasheet",
    },
    "l4": {
        "key": "L4",
        "vendor": "nvidia",
        "family": "ada-lovelace",
        "form_factor": "pcie",
        "fp32": 30.3,
        "datasheet": "NVIDIA L4 Tensor Core GPU datasheet",
    },
    "l40s": {
        "key": "L40S",
        "vendor": "nvidia",
        "family": "ada-lovelace",
        "form_factor": "pcie",
        "fp32": 91.6,
        "datasheet": "NVIDIA L40S GPU datasheet",
    },
    "b200_sxm": {"key": "B200-SXM-180GB", "vendor": "nvidia", "family": "blackwell", "form_factor": "sxm"},
    "b300_sxm": {
        "key": "B300-SXM-288GB",
        "vendor": "nvidia",
        "family": "blackwell-ultra",
        "form_factor": "sxm",
    },
    "gb200": {"key": "GB200", "vendor": "nvidia", "family": "blackwell", "form_factor": "superchip"},
    "gb300": {"key": "GB300", "vendor": "nvidia", "family": "blackwell-ultra", "form_factor": "superchip"},
    "rtx_pro_6000_server": {
        "key": "RTX-PRO-6000-Server",
        "vendor": "nvidia",
        "family": "blackwell",
        "form_factor": "pcie",
    },
    "b60": {"key": "Arc-Pro-B60", "vendor": "intel", "family": "battlemage", "form_factor": "pcie"},
}

# Host (CPUs, memory, fans, NICs) per node when the host is not known: two 250 W sockets, the
# generic socket of hardware.cpu_option. GH200 overrides it with 0: its module power covers Grace.
DEFAULT_HOST_WATTS_PER_NODE = 500.0

_PCIE_FABRIC = 25.0  # GB/s per GPU, one direction: the shared PCIe systems' 1:1 200 Gb/s assumption


def _variant(part: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Another product of the same silicon: `part`'s datasheet with `changes` (memory, power, name)."""
    return {**part, **changes}


_GH200_96GB: dict[str, Any] = {
    "key": "GH200-96GB",
    "vendor": "nvidia",
    "family": "hopper",
    "form_factor": "superchip",
    "memory_gib": 96.0,
    "memory_bandwidth_gbs": 4000.0,
    "tdp_watts": 1000.0,
    "tflops": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.0, "fp16": 989.0, "fp8": 1979.0, "int8": 1979.0},
    "intra_node_bandwidth_gbs": 450.0,
    "inter_node_bandwidth_gbs": 50.0,
    "gpus_per_node": 1,
    "host_watts_per_node": 0.0,
    "source": "vendor datasheet: NVIDIA GH200 Grace Hopper Superchip (96GB HBM3); TDP is the module's "
    "configurable 450-1000 W including the Grace CPU and LPDDR5X",
}

_V100_SXM2_16GB: dict[str, Any] = {
    "key": "V100-SXM2-16GB",
    "vendor": "nvidia",
    "family": "volta",
    "form_factor": "sxm",
    "memory_gib": 16.0,
    "memory_bandwidth_gbs": 900.0,
    "tdp_watts": 300.0,
    "tflops": {"fp32": 15.7, "fp16": 125.0},
    "intra_node_bandwidth_gbs": 150.0,
    "inter_node_bandwidth_gbs": _PCIE_FABRIC,
    "gpus_per_node": 8,
    "source": "vendor datasheet: NVIDIA Tesla V100 (SXM2); NVLink2 300 GB/s bidirectional; no bf16/int8 "
    "tensor cores",
}

_MI300X: dict[str, Any] = {
    "key": "MI300X",
    "vendor": "amd",
    "family": "cdna3",
    "form_factor": "sxm",
    "memory_gib": 192.0,
    "memory_bandwidth_gbs": 5300.0,
    "tdp_watts": 750.0,
    "tflops": {
        "fp32": 163.4,
        "tf32": 653.7,
        "bf16": 1307.4,
        "fp16": 1307.4,
        "fp8": 2614.9,
        "int8": 2614.9,
    },
    "intra_node_bandwidth_gbs": 448.0,
    "inter_node_bandwidth_gbs": 50.0,
    "gpus_per_node": 8,
    "source": "vendor datasheet: AMD Instinct MI300X (OAM module, counted as sxm); 7 Infinity Fabric "
    "links x 64 GB/s per direction",
}

DATASHEET_GPUS: tuple[dict[str, Any], ...] = (
    {
        "key": "A100-SXM4-40GB",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "sxm",
        "memory_gib": 40.0,
        "memory_bandwidth_gbs": 1555.0,
        "tdp_watts": 400.0,
        "tflops": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
        "intra_node_bandwidth_gbs": 300.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA A100 Tensor Core GPU (SXM4 40GB); NVLink3 600 GB/s bidirectional",
    },
    {
        "key": "A100-PCIe-40GB",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "memory_gib": 40.0,
        "memory_bandwidth_gbs": 1555.0,
        "tdp_watts": 250.0,
        "tflops": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA A100 Tensor Core GPU (PCIe 40GB); PCIe Gen4 x16, no NVLink",
    },
    {
        "key": "H100-NVL-94GB",
        "vendor": "nvidia",
        "family": "hopper",
        "form_factor": "pcie",
        "memory_gib": 94.0,
        "memory_bandwidth_gbs": 3900.0,
        "tdp_watts": 400.0,
        "tflops": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5, "fp8": 1670.5, "int8": 1670.5},
        "intra_node_bandwidth_gbs": 64.0,
        "inter_node_bandwidth_gbs": 50.0,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA H100 NVL (350-400 W); NVLink bridge pairs only, so PCIe Gen5 x16",
    },
    _GH200_96GB,
    _variant(
        _GH200_96GB,
        key="GH200-144GB",
        memory_gib=144.0,
        memory_bandwidth_gbs=4900.0,
        source="vendor datasheet: NVIDIA GH200 Grace Hopper Superchip (144GB HBM3e); module 450-1000 W",
    ),
    _V100_SXM2_16GB,
    _variant(
        _V100_SXM2_16GB,
        key="V100-SXM2-32GB",
        memory_gib=32.0,
        source="vendor datasheet: NVIDIA Tesla V100 (SXM2 32GB); NVLink2 300 GB/s bidirectional",
    ),
    {
        "key": "T4",
        "vendor": "nvidia",
        "family": "turing",
        "form_factor": "pcie",
        "memory_gib": 16.0,
        "memory_bandwidth_gbs": 320.0,
        "tdp_watts": 70.0,
        "tflops": {"fp32": 8.1, "fp16": 65.0, "int8": 130.0},
        "intra_node_bandwidth_gbs": 16.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA T4 Tensor Core GPU; PCIe Gen3 x16; no bf16",
    },
    {
        "key": "A10",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "memory_gib": 24.0,
        "memory_bandwidth_gbs": 600.0,
        "tdp_watts": 150.0,
        "tflops": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0, "int8": 250.0},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 4,
        "source": "vendor datasheet: NVIDIA A10 Tensor Core GPU; PCIe Gen4 x16",
    },
    {
        "key": "A10G",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "memory_gib": 24.0,
        "memory_bandwidth_gbs": 600.0,
        "tdp_watts": 300.0,
        "tflops": {"fp32": 35.0, "tf32": 35.0, "bf16": 70.0, "fp16": 70.0, "int8": 140.0},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA A10G (AWS G5 variant: 80 SMs, GeForce-rate tensor cores "
        "with fp32 accumulate, 300 W board power); PCIe Gen4 x16",
    },
    {
        "key": "L40",
        "vendor": "nvidia",
        "family": "ada-lovelace",
        "form_factor": "pcie",
        "memory_gib": 48.0,
        "memory_bandwidth_gbs": 864.0,
        "tdp_watts": 300.0,
        "tflops": {"fp32": 90.5, "tf32": 90.5, "bf16": 181.0, "fp16": 181.0, "fp8": 362.0, "int8": 362.0},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA L40 GPU; PCIe Gen4 x16",
    },
    {
        "key": "A40",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "memory_gib": 48.0,
        "memory_bandwidth_gbs": 696.0,
        "tdp_watts": 300.0,
        "tflops": {"fp32": 37.4, "tf32": 74.8, "bf16": 149.7, "fp16": 149.7, "int8": 299.3},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA A40 GPU; PCIe Gen4 x16",
    },
    {
        "key": "A2",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "memory_gib": 16.0,
        "memory_bandwidth_gbs": 200.0,
        "tdp_watts": 60.0,
        "tflops": {"fp32": 4.5, "tf32": 9.0, "bf16": 18.0, "fp16": 18.0, "int8": 36.0},
        "intra_node_bandwidth_gbs": 16.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 4,
        "source": "vendor datasheet: NVIDIA A2 Tensor Core GPU (40-60 W configurable); PCIe Gen4 x8",
    },
    {
        "key": "RTX-4090",
        "vendor": "nvidia",
        "family": "ada-lovelace",
        "form_factor": "pcie",
        "memory_gib": 24.0,
        "memory_bandwidth_gbs": 1008.0,
        "tdp_watts": 450.0,
        "tflops": {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2, "fp8": 330.3, "int8": 660.6},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA Ada GPU architecture whitepaper, GeForce RTX 4090 (tensor rates "
        "with fp32 accumulate); PCIe Gen4 x16",
    },
    {
        "key": "RTX-A5000",
        "vendor": "nvidia",
        "family": "ampere",
        "form_factor": "pcie",
        "memory_gib": 24.0,
        "memory_bandwidth_gbs": 768.0,
        "tdp_watts": 230.0,
        "tflops": {"fp32": 27.8, "tf32": 55.6, "bf16": 111.1, "fp16": 111.1, "int8": 222.2},
        "intra_node_bandwidth_gbs": 32.0,
        "inter_node_bandwidth_gbs": _PCIE_FABRIC,
        "gpus_per_node": 8,
        "source": "vendor datasheet: NVIDIA RTX A5000 (222.2 TFLOPS tensor with sparsity); PCIe Gen4 x16",
    },
    _MI300X,
    _variant(
        _MI300X,
        key="MI325X",
        memory_gib=256.0,
        memory_bandwidth_gbs=6000.0,
        tdp_watts=1000.0,
        source="vendor datasheet: AMD Instinct MI325X (OAM module, counted as sxm; the MI300X compute die "
        "with 256 GB HBM3E); 7 Infinity Fabric links x 64 GB/s per direction",
    ),
)


# Vendor datasheet boost clock (MHz) at which each part's tensor rates are quoted, by catalog key.
# Parts not listed fall back to comparing FLOP/s per watt without the clock (see physics.benchmarks).
BOOST_CLOCK_MHZ: dict[str, float] = {
    "T4": 1590,
    "A2": 1770,
    "A10": 1695,
    "A10G": 1710,
    "A30": 1440,
    "A40": 1740,
    "RTX-A5000": 1695,
    "A100-PCIe-40GB": 1410,
    "A100-PCIe-80GB": 1410,
    "A100-SXM4-40GB": 1410,
    "A100-SXM4-80GB": 1410,
    "V100-SXM2-16GB": 1530,
    "V100-SXM2-32GB": 1530,
    "L4": 2040,
    "L40": 2490,
    "L40S": 2520,
    "RTX-4090": 2520,
    "H100-PCIe-80GB": 1755,
    "H100-SXM-80GB": 1980,
    "H100-NVL-94GB": 1785,
    "H200-SXM-141GB": 1980,
    "GH200-96GB": 1980,
    "GH200-144GB": 1980,
}
