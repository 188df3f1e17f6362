"""GPU specs are sane: orderings the datasheets imply, dense (not sparse) rates, fallbacks."""

from __future__ import annotations

import pytest

from greenmatrix.catalog import hardware, precision


def g(name: str) -> hardware.GPUSpec:
    return hardware.gpu(name)


def test_bandwidth_ordering_across_generations() -> None:
    bw = [
        g(k).memory_bandwidth_gbs
        for k in ("B200-SXM-180GB", "H200-SXM-141GB", "H100-SXM-80GB", "A100-SXM4-80GB")
    ]
    assert bw == sorted(bw, reverse=True) and len(set(bw)) == 4
    assert (
        g("A100-SXM4-80GB").memory_bandwidth_gbs
        > g("L40S").memory_bandwidth_gbs
        > g("L4").memory_bandwidth_gbs
    )
    assert g("A100-SXM4-80GB").memory_bandwidth_gbs > g("A100-SXM4-40GB").memory_bandwidth_gbs


def test_bf16_ordering() -> None:
    assert g("B200").flops("bf16") > g("H100-SXM-80GB").flops("bf16") > g("A100-SXM4-80GB").flops("bf16")
    # L40S (Ada, 362 dense) out-computes A100 (312) in bf16 though it has far less bandwidth
    assert g("H100-SXM-80GB").flops("bf16") > g("L40S").flops("bf16") > g("A100-SXM4-80GB").flops("bf16")
    assert g("A100-SXM4-80GB").flops("bf16") > g("L4").flops("bf16")
    assert g("H100-SXM-80GB").flops("bf16") > g("H100-PCIe-80GB").flops("bf16")


def test_rates_are_dense() -> None:
    # NVIDIA quotes H100 SXM bf16 as 1979 TFLOPS with sparsity, 989 dense; A100 312 dense.
    assert g("H100-SXM-80GB").tflops["bf16"] == pytest.approx(989, rel=0.01)
    assert g("A100-SXM4-80GB").tflops["bf16"] == pytest.approx(312, rel=0.01)
    for spec in hardware.all_gpus():
        t = spec.tflops
        # fp8 at most 2x bf16 (a sparse figure would show as 4x); fp4 is 2x fp8 on Blackwell and
        # ~3x on Blackwell Ultra (B300/GB300: 14-15 PFLOPS dense), never 4x+
        if "fp8" in t:
            assert t["fp8"] <= 2.0 * t["bf16"] * 1.02, (
                spec.key
            )  # datasheet rounding (L40S: 733 vs 2 x 362.05)
        if "fp4" in t:
            assert t["fp4"] <= 3.5 * t["fp8"] + 1e-9, spec.key
        if "tf32" in t and "bf16" in t:
            assert t["tf32"] <= t["bf16"] / 2 * 1.01, (
                spec.key
            )  # datasheet rounding (A5000: 55.6 vs 111.1 / 2)
        if "fp32" in t and "bf16" in t:
            assert t["fp32"] < t["bf16"], spec.key


def test_every_spec_is_physically_plausible() -> None:
    for spec in hardware.all_gpus():
        assert 8 <= spec.memory_gib <= 300, spec.key
        assert 100 <= spec.memory_bandwidth_gbs <= 10_000, spec.key
        assert 40 <= spec.tdp_watts <= 1500, spec.key
        assert spec.gpus_per_node >= 1
        assert spec.form_factor in ("sxm", "pcie", "superchip")
        assert spec.sources
        assert spec.tflops and all(v > 0 for v in spec.tflops.values())
        assert set(spec.tflops) <= set(precision.PRECISIONS)
        # every spec can run bf16/fp16 work
        assert spec.flops("bf16") > 0 and spec.flops("fp16") > 0


def test_precision_fallbacks_on_gpus_lacking_the_rate() -> None:
    a100, h100, b200, t4 = g("A100-SXM4-80GB"), g("H100-SXM-80GB"), g("B200"), g("T4")
    assert a100.flops("fp8") == a100.flops("bf16")  # weight-only fp8 on Ampere
    assert h100.flops("fp4") == h100.flops("fp8")  # NVFP4 on Hopper
    assert b200.flops("nvfp4") == pytest.approx(2 * b200.flops("fp8"))  # native on Blackwell
    assert t4.flops("bf16") == t4.flops("fp16")  # no bf16 on Turing
    assert h100.flops("w4a16") == h100.flops("bf16")  # int4 weight-only runs 16-bit matmuls
    assert a100.flops_key("int8") == "int8"


def test_fp32_has_no_tensor_fallback() -> None:
    # Blackwell YAMLs carry no fp32 rate; falling back to tf32 would overstate fp32 by 10x+
    with pytest.raises(ValueError, match="precision"):
        g("B200").flops("fp32")


def test_b60_drops_emulated_fp8() -> None:
    b60 = g("b60")
    assert "fp8" not in b60.tflops and b60.flops("fp8") == b60.flops("bf16")
    assert b60.notes


def test_cpu_tdp_lookup() -> None:
    assert hardware.cpu_tdp("AMD EPYC 7742 64-Core Processor") == 225.0
    # 8480C is a cloud SKU of the 8480+: same TDP, matched by model number
    assert hardware.cpu_tdp("Intel(R) Xeon(R) Platinum 8480C") == 350.0
    assert hardware.cpu_tdp("Intel(R) Xeon(R) Gold 5423N CPU @ 2.10GHz") == 145.0
    assert hardware.cpu_tdp("Ampere Altra Q80-30") is None


def test_cpu_option_estimate() -> None:
    spr = hardware.cpu_option("Intel", avx512=True, amx=True, cores=56)
    # 56 cores x 2.0 GHz x 1024 bf16 FLOP/cycle = 114.7 TFLOPS (AMX peak)
    assert spr.flops("bf16") == pytest.approx(56 * 2.0e9 * 1024)
    assert spr.flops("fp32") == pytest.approx(56 * 2.0e9 * 64)
    old = hardware.cpu_option("GenuineIntel", avx512=False, amx=False, cores=56)
    assert old.flops("bf16") < spr.flops("bf16") / 10
    genoa = hardware.cpu_option("AMD", avx512=True, amx=False, cores=None)
    assert genoa.cores == 32 and genoa.memory_bandwidth_gbs > spr.memory_bandwidth_gbs
    # a socket's DDR5 is in L4 territory (~300 GB/s) but far below an A10's GDDR6 or any HBM part
    assert spr.memory_bandwidth_gbs < g("A10").memory_bandwidth_gbs / 1.9


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vendor": "Via", "avx512": False, "amx": False}, "vendor"),
        ({"vendor": "AMD", "avx512": True, "amx": True}, "amx"),
        ({"vendor": "Intel", "avx512": True, "amx": False, "cores": 0}, "cores"),
    ],
)
def test_cpu_option_rejects_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        hardware.cpu_option(**kwargs)


@pytest.mark.parametrize(
    ("name", "vendor", "avx512", "amx"),
    [
        ("Intel(R) Xeon(R) Platinum 8480+", "intel", True, True),  # Sapphire Rapids
        ("INTEL(R) XEON(R) PLATINUM 8592+", "intel", True, True),  # Emerald Rapids
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "intel", True, False),  # Cascade Lake
        ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "intel", True, False),  # Ice Lake
        ("Intel(R) Xeon(R) w7-2495X", "intel", True, True),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "intel", False, False),
        ("AMD EPYC 9554 64-Core Processor", "amd", True, False),  # Genoa
        ("AMD EPYC 7742 64-Core Processor", "amd", False, False),  # Rome
        ("AMD EPYC 7R13 Processor", "amd", False, False),  # AWS Milan
        ("AMD Ryzen 9 7950X 16-Core Processor", "amd", True, False),  # Zen 4
    ],
)
def test_cpu_from_model_name_infers_features(name: str, vendor: str, avx512: bool, amx: bool) -> None:
    spec = hardware.cpu_from_model_name(name, cores=16)
    assert spec is not None and (spec.vendor, spec.avx512, spec.amx, spec.cores) == (vendor, avx512, amx, 16)


def test_cpu_from_model_name_uses_the_tdp_table() -> None:
    spec = hardware.cpu_from_model_name("AMD EPYC 9554 64-Core Processor")
    assert spec is not None and spec.tdp_watts == hardware.cpu_tdp("AMD EPYC 9554") == 360.0
    assert any("360" in a for a in spec.assumptions)


@pytest.mark.parametrize("name", ["Apple M1 Pro", "ARMv8 Processor rev 1 (v8l)", "Neoverse-N1", ""])
def test_cpu_from_model_name_unknown(name: str) -> None:
    assert hardware.cpu_from_model_name(name) is None
