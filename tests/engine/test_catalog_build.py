"""The shipped catalog JSON is exactly what the builder derives from the shared data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from greenmatrix.catalog import build

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data not found at {DATA}")


@needs_data
def test_rebuild_is_byte_identical_to_the_shipped_files(tmp_path: Path) -> None:
    written = build.build(DATA, tmp_path)
    assert [p.name for p in written] == list(build.CATALOG_FILES)
    for name in build.CATALOG_FILES:
        shipped = (build.PACKAGE_DATA_DIR / name).read_bytes()
        assert (tmp_path / name).read_bytes() == shipped, (
            f"{name} is stale: run python -m greenmatrix.catalog.build"
        )


@needs_data
def test_two_builds_are_identical(tmp_path: Path) -> None:
    build.build(DATA, tmp_path / "a")
    build.build(DATA, tmp_path / "b")
    for name in build.CATALOG_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("name", build.CATALOG_FILES)
def test_every_entry_has_provenance(name: str) -> None:
    doc = json.loads((build.PACKAGE_DATA_DIR / name).read_text(encoding="utf-8"))
    assert doc["entries"], name
    for entry in doc["entries"]:
        assert entry["sources"] and all(isinstance(s, str) and s for s in entry["sources"]), entry


def test_gpu_entries_say_how_they_were_derived() -> None:
    doc = json.loads((build.PACKAGE_DATA_DIR / "gpus.json").read_text(encoding="utf-8"))
    for entry in doc["entries"]:
        assert entry["derived"] in ("shared/data hardware/systems", "datasheet")
        if entry["derived"] == "datasheet":
            assert entry["system_id"] is None
            assert any(s.startswith("vendor datasheet:") for s in entry["sources"])
        else:
            assert any(f"hardware/systems/{entry['system_id']}.yaml" in s for s in entry["sources"])


@needs_data
def test_derived_facts_not_copies() -> None:
    # the systems YAMLs' tuning knobs (empirical factors, NCCL memory) are not shipped
    text = (build.PACKAGE_DATA_DIR / "gpus.json").read_text(encoding="utf-8")
    for knob in ("mem_bw_empirical_scaling_factor", "nccl_mem", "other_mem", "p2p_latency"):
        assert knob not in text


@needs_data
def test_yaml_figures_are_converted_not_altered() -> None:
    doc = json.loads((build.PACKAGE_DATA_DIR / "gpus.json").read_text(encoding="utf-8"))
    by_system = {e["system_id"]: e for e in doc["entries"] if e["system_id"]}
    for path in (DATA / "hardware" / "systems").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        if "gpu" not in raw:
            continue
        e = by_system[path.stem]
        assert e["memory_bandwidth_gbs"] * 1e9 == pytest.approx(raw["gpu"]["mem_bw"], rel=1e-6)
        assert e["memory_gib"] * 2**30 == pytest.approx(raw["gpu"]["mem_capacity"], rel=1e-3)
        assert e["tflops"]["bf16"] * 1e12 == pytest.approx(raw["gpu"]["bfloat16_tc_flops"], rel=1e-6)
        assert e["tdp_watts"] == raw["gpu"]["power"]
        assert e["gpus_per_node"] == raw["node"]["num_gpus_per_node"]


def test_build_refuses_a_folder_without_systems(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="hardware/systems"):
        build.build(tmp_path, tmp_path / "out")
