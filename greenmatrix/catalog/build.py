"""Deterministic builder of the shipped catalogs from the shared reference data.

    python -m greenmatrix.catalog.build --data /work/shared/data [--out DIR]

regenerates `greenmatrix/catalog/data/{gpus,cpus,prices,carbon}.json`. Each entry holds derived,
normalised facts and a `sources` field; no source file is copied. Output is byte-stable: sorted
keys, sorted entries, fixed float rounding, no timestamps.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from greenmatrix.catalog.datasheets import DATASHEET_GPUS, DEFAULT_HOST_WATTS_PER_NODE, SYSTEM_IDENTITY
from greenmatrix.catalog.names import normalize_cpu_name, normalize_gpu_name

PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"
CATALOG_FILES: tuple[str, ...] = ("gpus.json", "cpus.json", "prices.json", "carbon.json")

_SYSTEMS_SOURCE = "shared/data hardware/systems/{name} (ai-dynamo/aiconfigurator, Apache-2.0)"
_RULE_FP16 = "rule: fp16 tensor rate = bf16 tensor rate (same tensor-core path on these parts)"
_RULE_TF32 = "rule: tf32 tensor rate = bf16 rate / 2 (NVIDIA Ampere and later datasheets)"
# Precision keys as they appear in the systems YAML files.
_YAML_FLOPS_KEYS: dict[str, str] = {
    "float32_tc_flops": "fp32",
    "bfloat16_tc_flops": "bf16",
    "fp8_tc_flops": "fp8",
    "int8_tc_flops": "int8",
    "fp4_tc_flops": "fp4",
}
_TF32_FAMILIES = frozenset({"ampere", "hopper", "ada-lovelace", "blackwell", "blackwell-ultra"})


def _r(x: float, digits: int = 4) -> float:
    """Round so that float noise from unit conversion never changes the output bytes."""
    return float(round(x, digits))


def gpu_entries(data: Path) -> list[dict[str, Any]]:
    """GPU specs: one entry per systems YAML (with identity from datasheets.py) plus datasheet-only parts."""
    entries: list[dict[str, Any]] = []
    systems = data / "hardware" / "systems"
    for path in sorted(systems.glob("*.yaml")):
        system_id = path.stem
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict) or "gpu" not in doc:
            continue  # e.g. perf_data_reuse_manifest.yaml: kernel provenance, no hardware facts
        identity = SYSTEM_IDENTITY.get(system_id)
        if identity is None:
            raise SystemExit(
                f"hardware/systems/{path.name}: no identity in greenmatrix/catalog/datasheets.py"
            )
        gpu, node = doc["gpu"], doc["node"]
        sources = [_SYSTEMS_SOURCE.format(name=path.name)]
        tflops: dict[str, float] = {}
        for yaml_key, key in _YAML_FLOPS_KEYS.items():
            if yaml_key in gpu:
                tflops[key] = _r(float(gpu[yaml_key]) / 1e12)
        notes: list[str] = []
        # A listed fp8 rate equal to the bf16 rate marks emulation (b60.yaml says so): not native fp8.
        if "fp8" in tflops and "bf16" in tflops and tflops["fp8"] == tflops["bf16"]:
            del tflops["fp8"]
            notes.append(
                "fp8 listed at the bf16 rate (no native fp8 tensor cores): dropped, falls back to bf16"
            )
        if "bf16" in tflops:
            tflops["fp16"] = tflops["bf16"]
            sources.append(_RULE_FP16)
            if identity["family"] in _TF32_FAMILIES and identity["vendor"] == "nvidia":
                tflops["tf32"] = _r(tflops["bf16"] / 2)
                sources.append(_RULE_TF32)
        if "fp32" in identity and "fp32" not in tflops:
            tflops["fp32"] = float(identity["fp32"])
            sources.append(f"vendor datasheet: {identity['datasheet']} (fp32 non-tensor rate)")
        entries.append(
            {
                "key": identity["key"],
                "vendor": identity["vendor"],
                "family": identity["family"],
                "form_factor": identity["form_factor"],
                "system_id": system_id,
                "memory_gib": _r(float(gpu["mem_capacity"]) / 2**30, 2),
                "memory_bandwidth_gbs": _r(float(gpu["mem_bw"]) / 1e9, 1),
                "tflops": tflops,
                "tdp_watts": float(gpu["power"]),
                "intra_node_bandwidth_gbs": _r(float(node["intra_node_bw"]) / 1e9, 1),
                "inter_node_bandwidth_gbs": _r(float(node["inter_node_bw"]) / 1e9, 1),
                "gpus_per_node": int(node["num_gpus_per_node"]),
                "host_watts_per_node": DEFAULT_HOST_WATTS_PER_NODE,
                "derived": "shared/data hardware/systems",
                "sources": sources,
                "notes": notes,
            }
        )
    for sheet in DATASHEET_GPUS:
        entry = {k: v for k, v in sheet.items() if k != "source"}
        entry.update(
            {
                "host_watts_per_node": float(sheet.get("host_watts_per_node", DEFAULT_HOST_WATTS_PER_NODE)),
                "system_id": None,
                "tflops": {k: float(v) for k, v in sheet["tflops"].items()},
                "derived": "datasheet",
                "sources": [sheet["source"]],
                "notes": [],
            }
        )
        entries.append(entry)
    keys = [e["key"] for e in entries]
    if len(set(keys)) != len(keys):
        raise SystemExit(f"duplicate GPU keys: {sorted(k for k in keys if keys.count(k) > 1)}")
    return sorted(entries, key=lambda e: e["key"])


# CPUs: only server and workstation lines (Xeon, EPYC, Ryzen, Threadripper) matter for hosts
# and CPU-only inference nodes; the codecarbon table also lists decades of desktop parts.
_CPU_LINES = re.compile(r"\b(XEON|EPYC|RYZEN|THREADRIPPER)\b")


def cpu_entries(data: Path) -> list[dict[str, Any]]:
    """CPU model (normalised) -> TDP watts, server/workstation lines only."""
    path = data / "hardware" / "cpu_tdp_watts.csv"
    by_name: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            name = normalize_cpu_name(row["Name"])
            if not _CPU_LINES.search(name) or not row["TDP"].strip():
                continue
            # Duplicate spellings keep the first TDP seen (file order), which is deterministic.
            by_name.setdefault(name, _r(float(row["TDP"]), 1))
    source = "shared/data hardware/cpu_tdp_watts.csv (mlco2/codecarbon)"
    return [{"model": n, "tdp_watts": w, "sources": [source]} for n, w in sorted(by_name.items())]


def price_entries(data: Path) -> list[dict[str, Any]]:
    """Per-GPU-hour on-demand prices: instance price / GPUs in the instance."""
    path = data / "prices" / "aws_us_east_1_gpu_on_demand.csv"
    out: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            key = normalize_gpu_name(row["gpu"])
            if key is None:
                raise SystemExit(f"prices: GPU name {row['gpu']!r} does not normalise; extend names.py")
            count = int(row["gpu_count"])
            usd = float(row["usd_per_hour"])
            out.append(
                {
                    "gpu_key": key,
                    "provider": "aws",
                    "region": "us-east-1",
                    "instance_type": row["instance_type"],
                    "gpu_count": count,
                    "usd_per_instance_hour": _r(usd, 6),
                    "usd_per_gpu_hour": _r(usd / count, 6),
                    "sources": [f"shared/data prices/aws_us_east_1_gpu_on_demand.csv ({row['source']})"],
                }
            )
    return sorted(out, key=lambda e: (e["gpu_key"], e["provider"], e["region"], e["instance_type"]))


# Same-grid proxies: a non-GCP region in the same metro/balancing area as a GCP region with a
# published 2024 figure. Only pairs in the same city or the same grid operator are listed.
CARBON_PROXIES: dict[tuple[str, str], str] = {
    ("aws", "us-east-1"): "us-east4",  # N. Virginia / Ashburn (PJM)
    ("aws", "us-east-2"): "us-east5",  # Ohio / Columbus (PJM)
    ("aws", "us-west-1"): "us-west2",  # N. California / Los Angeles (CAISO)
    ("aws", "us-west-2"): "us-west1",  # Oregon / The Dalles (BPA area)
    ("aws", "ca-central-1"): "northamerica-northeast1",  # Montreal (Hydro-Quebec)
    ("aws", "sa-east-1"): "southamerica-east1",  # Sao Paulo
    ("aws", "eu-central-1"): "europe-west3",  # Frankfurt
    ("aws", "eu-central-2"): "europe-west6",  # Zurich
    ("aws", "eu-west-2"): "europe-west2",  # London
    ("aws", "eu-west-3"): "europe-west9",  # Paris
    ("aws", "eu-south-1"): "europe-west8",  # Milan
    ("aws", "eu-north-1"): "europe-north2",  # Stockholm
    ("aws", "ap-northeast-1"): "asia-northeast1",  # Tokyo
    ("aws", "ap-northeast-2"): "asia-northeast3",  # Seoul
    ("aws", "ap-northeast-3"): "asia-northeast2",  # Osaka
    ("aws", "ap-southeast-1"): "asia-southeast1",  # Singapore
    ("aws", "ap-southeast-2"): "australia-southeast1",  # Sydney
    ("aws", "ap-southeast-3"): "asia-southeast2",  # Jakarta
    ("aws", "ap-south-1"): "asia-south1",  # Mumbai
    ("aws", "ap-east-1"): "asia-east2",  # Hong Kong
    ("aws", "il-central-1"): "me-west1",  # Tel Aviv
    ("azure", "eastus"): "us-east4",  # Virginia (PJM)
    ("azure", "eastus2"): "us-east4",  # Virginia (PJM)
    ("azure", "westeurope"): "europe-west4",  # Netherlands
    ("azure", "uksouth"): "europe-west2",  # London
    ("azure", "francecentral"): "europe-west9",  # Paris
    ("azure", "germanywestcentral"): "europe-west3",  # Frankfurt
    ("azure", "switzerlandnorth"): "europe-west6",  # Zurich
    ("azure", "japaneast"): "asia-northeast1",  # Tokyo
    ("azure", "koreacentral"): "asia-northeast3",  # Seoul
    ("azure", "southeastasia"): "asia-southeast1",  # Singapore
    ("azure", "australiaeast"): "australia-southeast1",  # Sydney
    ("azure", "canadacentral"): "northamerica-northeast2",  # Toronto
    ("azure", "brazilsouth"): "southamerica-east1",  # Sao Paulo
}


_REGION_TYPOS = {"me-cenrtal1": "me-central1"}  # as spelled in the codecarbon file


def carbon_entries(data: Path) -> list[dict[str, Any]]:
    """Region -> grid gCO2eq/kWh. GCP 2024 file preferred; older cloud_region file fills gaps."""
    carbon = data / "carbon"
    by_region: dict[tuple[str, str], dict[str, Any]] = {}
    with (carbon / "gcp_region_grid_intensity_2024.csv").open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            region = row["Google Cloud Region"].strip()
            by_region[("gcp", region)] = {
                "provider": "gcp",
                "region": region,
                "location": row["Location"].strip(),
                "g_per_kwh": _r(float(row["Grid carbon intensity (gCO2eq / kWh)"]), 2),
                "method": "published",
                "sources": [
                    "shared/data carbon/gcp_region_grid_intensity_2024.csv (GoogleCloudPlatform 2024)"
                ],
            }
    with (carbon / "cloud_region_grid_intensity.csv").open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            provider, region = row["provider"].strip(), row["region"].strip()
            region = _REGION_TYPOS.get(region, region)
            if (provider, region) in by_region or not row["impact"].strip():
                continue
            by_region[(provider, region)] = {
                "provider": provider,
                "region": region,
                "location": ", ".join(x for x in (row["city"].strip(), row["country_name"].strip()) if x),
                "g_per_kwh": _r(float(row["impact"]), 2),
                "method": "published",
                "sources": ["shared/data carbon/cloud_region_grid_intensity.csv (mlco2/codecarbon)"],
            }
    for (provider, region), gcp_region in sorted(CARBON_PROXIES.items()):
        base = by_region.get(("gcp", gcp_region))
        if base is None or (provider, region) in by_region:
            continue
        by_region[(provider, region)] = {
            "provider": provider,
            "region": region,
            "location": base["location"],
            "g_per_kwh": base["g_per_kwh"],
            "method": f"same-grid proxy of gcp {gcp_region}",
            "sources": [
                *base["sources"],
                f"proxy: {provider} {region} shares the grid area of gcp {gcp_region}",
            ],
        }
    return [by_region[k] for k in sorted(by_region)]


def render(entries: Iterable[dict[str, Any]], kind: str) -> str:
    """Stable JSON text for one catalog file."""
    # One entry per line: small files, readable diffs when the shared data changes.
    lines = [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in entries]
    body = ",\n".join(lines)
    return f'{{"kind": {json.dumps(kind)}, "schema": 1, "entries": [\n{body}\n]}}\n'


def build(data: Path, out: Path) -> list[Path]:
    """Write every catalog file for `data` into `out`; return the paths written."""
    if not (data / "hardware" / "systems").is_dir():
        raise SystemExit(f"--data {data}: expected hardware/systems/ inside (the shared reference data)")
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "gpus.json": render(gpu_entries(data), "gpus"),
        "cpus.json": render(cpu_entries(data), "cpus"),
        "prices.json": render(price_entries(data), "prices"),
        "carbon.json": render(carbon_entries(data), "carbon"),
    }
    written = []
    for name in CATALOG_FILES:
        path = out / name
        path.write_text(texts[name], encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greenmatrix.catalog.build", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the shared reference data folder")
    parser.add_argument(
        "--out", type=Path, default=PACKAGE_DATA_DIR, help="output folder (default: package data)"
    )
    args = parser.parse_args(argv)
    for path in build(args.data, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
