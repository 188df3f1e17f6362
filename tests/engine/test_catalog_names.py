"""The one GPU-name normaliser, over the real names in the shared data and in node labels."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenmatrix.catalog import hardware
from greenmatrix.catalog.names import known_keys

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data not found at {DATA}")


def _column(path: Path, column: str) -> Counter[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return Counter(row[column] for row in csv.DictReader(fh))


def test_every_normaliser_key_has_a_spec() -> None:
    specs = {g.key for g in hardware.all_gpus()}
    assert known_keys() <= specs
    # and every spec is reachable by name, including its own key (idempotence)
    for key in specs:
        assert hardware.normalize_gpu_name(key) == key


@needs_data
def test_every_serving_system_id_normalises_to_its_yaml_spec() -> None:
    systems = _column(DATA / "llm_serving" / "measured_ttft_tpot.csv", "system")
    assert systems, "no systems read"
    for system in systems:
        spec = hardware.gpu(system)
        # the spec for a serving system id is the one built from that id's YAML file
        assert spec.system_id == system, (system, spec.key)


@needs_data
def test_every_systems_yaml_stem_normalises_to_its_own_entry() -> None:
    stems = [
        p.stem for p in (DATA / "hardware" / "systems").glob("*.yaml") if p.stem != "perf_data_reuse_manifest"
    ]
    assert len(stems) >= 10
    for stem in stems:
        assert hardware.gpu(stem).system_id == stem


@needs_data
def test_every_price_list_gpu_normalises() -> None:
    names = _column(DATA / "prices" / "aws_us_east_1_gpu_on_demand.csv", "gpu")
    failed = [n for n in names if hardware.normalize_gpu_name(n) is None]
    assert not failed


@needs_data
def test_price_list_memory_sizes_pick_the_matching_variant() -> None:
    for name in _column(DATA / "prices" / "aws_us_east_1_gpu_on_demand.csv", "gpu"):
        spec = hardware.gpu(name)
        for token in name.split("-"):
            if token.endswith("GB"):
                # the memory the name states is the spec's nominal memory (within label rounding)
                assert abs(spec.memory_gib - float(token[:-2])) / float(token[:-2]) < 0.1, (name, spec.key)


@needs_data
def test_mlperf_names_cover_the_common_datacenter_gpus() -> None:
    inference = _column(DATA / "mlperf" / "inference_closed.csv", "accelerator_model_name")
    training = _column(DATA / "mlperf" / "training.csv", "accelerator_model_name")
    for counts in (inference, training):
        nvidia_dc = {n: c for n, c in counts.items() if n.upper().startswith(("NVIDIA A1", "NVIDIA H"))}
        # every NVIDIA A100/H100/H200 spelling except the automotive DRIVE part resolves
        unresolved = [n for n in nvidia_dc if hardware.normalize_gpu_name(n) is None and "Drive" not in n]
        assert not unresolved
    rows_total = sum(inference.values())
    rows_known = sum(c for n, c in inference.items() if hardware.normalize_gpu_name(n) is not None)
    # Qualcomm, Jetson/Orin, Mali, TPU, Gaudi and blanks have no spec; the rest (about 77%) do.
    assert rows_known / rows_total > 0.7


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100-SXM-80GB", "H100-SXM-80GB"),
        ("NVIDIA H100-SXM5-80GB", "H100-SXM-80GB"),
        ("NVIDIA A100-SXM-80GB (500W)", "A100-SXM4-80GB"),
        ("NVIDIA A100-PCIe-40GB(250W)", "A100-PCIe-40GB"),
        ("NVIDIA A100-SXM-40GB", "A100-SXM4-40GB"),
        ("NVIDIA GeForce RTX 4090 (Ada Lovelace)", "RTX-4090"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA RTX A5000 GPU", "RTX-A5000"),
        ("NVIDIA H100 NVL", "H100-NVL-94GB"),
        ("NVIDIA GH200-GraceHopper-Superchip", "GH200-96GB"),
        ("AMD Instinct MI300X-NPS1-SPX-192GB-750W", "MI300X"),
        ("AMD Instinct MI325X", "MI325X"),
        ("NVIDIA A10-24Q", "A10"),
        ("Tesla T4", "T4"),
        ("h100_sxm", "H100-SXM-80GB"),
        ("b200_sxm", "B200-SXM-180GB"),
        ("gb200", "GB200"),
        ("b300_sxm", "B300-SXM-288GB"),
        ("gb300", "GB300"),
        ("NVIDIA-H100-80GB-HBM3", "H100-SXM-80GB"),
        ("NVIDIA-A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("NVIDIA-A100-SXM4-40GB", "A100-SXM4-40GB"),
        ("NVIDIA-L4", "L4"),
        ("Tesla-T4", "T4"),
        ("NVIDIA-L40S", "L40S"),
        ("NVIDIA-H200", "H200-SXM-141GB"),
        ("NVIDIA-A10G", "A10G"),
        ("NVIDIA-B200", "B200-SXM-180GB"),
        ("NVIDIA-H100-PCIe", "H100-PCIe-80GB"),
        ("NVIDIA-A100-80GB-PCIe", "A100-PCIe-80GB"),
        ("Tesla-V100-SXM2-32GB", "V100-SXM2-32GB"),
        ("NVIDIA-GH200-480GB", "GH200-96GB"),
        ("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", "RTX-PRO-6000-Server"),
        ("h100", "H100-SXM-80GB"),
        ("l4", "L4"),
        ("t4", "T4"),
        ("a10g", "A10G"),
        ("l40s", "L40S"),
        ("H100-SXM-80GB", "H100-SXM-80GB"),
        ("V100-SXM2-16GB", "V100-SXM2-16GB"),
    ],
)
def test_known_spellings(name: str, key: str) -> None:
    assert hardware.normalize_gpu_name(name) == key


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA Jetson AGX Orin 32G",
        "NVIDIA Orin NX",
        "NVIDIA Drive-A100-PCIe",  # automotive part, not a datacenter A100
        "QUALCOMM Cloud AI 100 Ultra",
        "TPU v5e",
        "Habana Gaudi2",
        "NVIDIA A5000X",
        "NVIDIA-H200-NVL",  # a form factor the catalog lacks: no look-alike
        "NVIDIA A100-PCIe-20GB",  # a memory size the catalog lacks
        "N/A",
        "",
        "-",
    ],
)
def test_unknown_parts_give_none(name: str) -> None:
    assert hardware.normalize_gpu_name(name) is None


@pytest.mark.parametrize(
    ("name", "memory_mib", "key"),
    [
        ("a100", 40960, "A100-SXM4-40GB"),  # p4d
        ("a100", 81920, "A100-SXM4-80GB"),  # p4de
        ("v100", 16384, "V100-SXM2-16GB"),
        ("v100", 32768, "V100-SXM2-32GB"),
        ("NVIDIA-A100-SXM4", 81559, "A100-SXM4-80GB"),  # GFD usable MiB
        ("h100", None, "H100-SXM-80GB"),
    ],
)
def test_memory_label_resolves_ambiguous_names(name: str, memory_mib: int | None, key: str) -> None:
    assert hardware.normalize_gpu_name(name, memory_mib=memory_mib) == key


def test_memory_in_the_name_wins_over_the_label() -> None:
    assert hardware.normalize_gpu_name("NVIDIA-A100-SXM4-40GB", memory_mib=81920) == "A100-SXM4-40GB"


@pytest.mark.parametrize(
    ("label", "key", "profile"),
    [
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "A100-SXM4-40GB", "1g.5gb"),
        ("NVIDIA-H100-80GB-HBM3-MIG-3g.40gb", "H100-SXM-80GB", "3g.40gb"),
        ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb+me", "A100-SXM4-80GB", "1g.10gb+me"),
        ("NVIDIA-L4", "L4", None),
        ("Some-Other-Card-MIG-1g.5gb", None, "1g.5gb"),
    ],
)
def test_parse_gfd_product_separates_mig(label: str, key: str | None, profile: str | None) -> None:
    assert hardware.parse_gfd_product(label) == (key, profile)


def test_mig_slice_memory_label_does_not_change_the_parent() -> None:
    # MIG single strategy: gpu.memory is per slice (4864 MiB for 1g.5gb), not the parent's
    assert (
        hardware.normalize_gpu_name("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", memory_mib=4864) == "A100-SXM4-40GB"
    )


def test_mlperf_mig_and_vgpu_are_flagged() -> None:
    mig = hardware.parse_gpu_name("NVIDIA A100-SXM-80GB (7x1g.10gb MIG)")
    assert mig is not None and (mig.key, mig.mig_profile, mig.mig_instances) == (
        "A100-SXM4-80GB",
        "1g.10gb",
        7,
    )
    vgpu = hardware.parse_gpu_name("NVIDIA A100-SXM-80C")
    assert vgpu is not None and vgpu.vgpu and vgpu.key == "A100-SXM4-80GB"


def test_unknown_gpu_error_names_field_and_suggests() -> None:
    with pytest.raises(hardware.UnknownHardwareError) as info:
        hardware.gpu("H10-SXM", field="spec.hardware.gpus[0]")
    assert info.value.field == "spec.hardware.gpus[0]"
    assert "H100-SXM-80GB" in info.value.suggestions
    assert "H10-SXM" in str(info.value)


@given(st.text(max_size=60))
def test_normaliser_never_raises_and_returns_a_catalog_key(text: str) -> None:
    key = hardware.normalize_gpu_name(text)
    assert key is None or key in known_keys()


@given(st.sampled_from(sorted(known_keys())), st.sampled_from(["", "NVIDIA ", "nvidia-", "Tesla "]))
def test_vendor_prefix_and_case_do_not_matter(key: str, prefix: str) -> None:
    assert hardware.normalize_gpu_name(prefix + key.lower()) == key
