"""Economics arithmetic against hand computations, and the price and carbon look-ups."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenmatrix import economics as ec
from greenmatrix.catalog import hardware

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data not found at {DATA}")


def test_gpu_watts_is_linear_from_idle_to_load() -> None:
    # 700 W TDP: idle 0.30 x 700 = 210 W; busy 0.72 x 700 = 504 W; half busy 357 W
    assert ec.gpu_watts(700, 0.0) == pytest.approx(210.0)
    assert ec.gpu_watts(700, 1.0) == pytest.approx(700 * ec.MLPERF_LOAD_FACTOR)
    assert ec.gpu_watts(700, 0.5) == pytest.approx((210.0 + 700 * ec.MLPERF_LOAD_FACTOR) / 2)


def test_replica_power_hand_computed() -> None:
    # 2 x 400 W GPUs at 50% busy, idle 0.3, load 0.8 (explicit), 8 per node, 500 W host, PUE 1.5:
    # per GPU 400 x (0.3 + 0.5 x 0.5) = 220 W -> 440 W; host 2 x 500 / 8 = 125 W; IT 565 W; facility 847.5 W
    p = ec.replica_power(400, 2, 0.5, gpus_per_node=8, host_watts_per_node=500, pue=1.5, load_factor=0.8)
    assert p.gpu_watts == pytest.approx(440.0)
    assert p.host_watts == pytest.approx(125.0)
    assert p.it_watts == pytest.approx(565.0)
    assert p.facility_watts == pytest.approx(847.5)


def test_replica_power_for_uses_the_catalog() -> None:
    spec = hardware.gpu("H100-SXM-80GB")
    p = ec.replica_power_for("h100_sxm", 8, 1.0, pue=1.0)
    assert p.gpu_watts == pytest.approx(8 * spec.tdp_watts * ec.MLPERF_LOAD_FACTOR)
    assert p.host_watts == pytest.approx(spec.host_watts_per_node)  # a whole node's host
    # GH200's module power covers its Grace CPU: no extra host
    assert ec.replica_power_for("GH200-96GB", 1, 1.0).host_watts == 0.0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ec.gpu_watts(700, 1.5), "utilization"),
        (lambda: ec.gpu_watts(0, 0.5), "tdp_watts"),
        (lambda: ec.replica_power(700, 0, 0.5), "n_gpus"),
        (lambda: ec.replica_power(700, 1, 0.5, pue=0.9), "pue"),
        (lambda: ec.cost_per_hour(2.5, 0), "n_gpus"),
    ],
)
def test_bad_numbers_name_the_field(call, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()


def test_per_token_arithmetic() -> None:
    assert ec.cost_per_hour(2.5, 4) == 10.0
    # $10/h and 1000 W at 1000 tok/s: 3.6M tokens/h -> $2.78/1M tokens; 1 J/token -> 0.2778 kWh per
    # 1M tokens x 360 g/kWh = 100 g
    r = ec.ReplicaEconomics(usd_per_hour=10.0, watts=1000.0, g_per_hour=360.0, g_per_kwh=360.0, notes=())
    usd, j_per_token, grams = r.per_million_tokens(1000.0)
    assert usd == pytest.approx(10 / 3.6) and j_per_token == 1.0 and grams == pytest.approx(100.0)
    unpriced = ec.ReplicaEconomics(usd_per_hour=None, watts=1000.0, g_per_hour=0.0, g_per_kwh=0.0, notes=())
    assert unpriced.per_million_tokens(1000.0)[0] is None


@needs_data
def test_prices_are_instance_price_over_gpu_count() -> None:
    with (DATA / "prices" / "aws_us_east_1_gpu_on_demand.csv").open(newline="") as fh:
        listings = list(csv.DictReader(fh))
    for row in listings:
        key = hardware.normalize_gpu_name(row["gpu"])
        match = [p for p in ec.prices(key) if p.instance_type == row["instance_type"]]
        assert len(match) == 1
        assert match[0].usd_per_gpu_hour == pytest.approx(float(row["usd_per_hour"]) / int(row["gpu_count"]))
        # the chosen price is the cheapest per GPU among this GPU's listings
        best = ec.price_per_gpu_hour(row["gpu"])
        assert best is not None
        assert best.usd_per_gpu_hour == pytest.approx(
            min(float(r["usd_per_hour"]) / int(r["gpu_count"]) for r in listings if r["gpu"] == row["gpu"])
        )


def test_price_lookup_accepts_aliases_and_filters() -> None:
    p = ec.price_per_gpu_hour("NVIDIA-H100-80GB-HBM3")
    assert p is not None and p.gpu_key == "H100-SXM-80GB" and p.provider == "aws" and p.region == "us-east-1"
    assert p.instance_type == "p5.48xlarge" and "skypilot" in p.source
    assert ec.price_per_gpu_hour("H100-SXM-80GB", provider="gcp") is None
    assert ec.price_per_gpu_hour("B200") is None  # catalogued GPU, no listing
    assert ec.price_per_gpu_hour("Foo X1") is None


@needs_data
def test_gcp_intensity_comes_from_the_2024_file() -> None:
    with (DATA / "carbon" / "gcp_region_grid_intensity_2024.csv").open(
        newline="", encoding="utf-8-sig"
    ) as fh:
        rows = {
            r["Google Cloud Region"]: float(r["Grid carbon intensity (gCO2eq / kWh)"])
            for r in csv.DictReader(fh)
        }
    for region, value in rows.items():
        c = ec.carbon_intensity(region)
        assert c.g_per_kwh == pytest.approx(value) and not c.is_default and c.provider == "gcp"
        assert "2024" in c.source


def test_aws_region_uses_a_same_grid_proxy() -> None:
    aws = ec.carbon_intensity("us-east-1")
    assert not aws.is_default and aws.provider == "aws" and "us-east4" in aws.method
    assert aws.g_per_kwh == ec.carbon_intensity("us-east4").g_per_kwh


def test_unknown_region_gets_the_documented_default() -> None:
    c = ec.carbon_intensity("mars-north1")
    assert c.is_default and c.g_per_kwh == ec.WORLD_AVERAGE_G_PER_KWH == 475.0 and "IEA" in c.source
    assert ec.carbon_intensity("us-east-1", provider="gcp").is_default  # provider filter applies


def test_replica_economics_composes_the_parts() -> None:
    h100 = hardware.gpu("h100_sxm")
    r = ec.replica_economics(h100, 8, 0.6, "us-east-1")
    price = ec.price_per_gpu_hour("H100-SXM-80GB")
    assert price is not None and r.usd_per_hour == pytest.approx(8 * price.usd_per_gpu_hour)
    power = ec.replica_power_for("H100-SXM-80GB", 8, 0.6)
    assert r.watts == pytest.approx(power.facility_watts)
    assert r.g_per_kwh == ec.carbon_intensity("us-east-1").g_per_kwh
    assert r.g_per_hour == pytest.approx(power.facility_watts / 1000 * r.g_per_kwh)
    assert r.notes == ()
    # utilisation is clamped to [0, 1]
    busy = ec.replica_economics(h100, 8, 1.0, None).watts
    assert ec.replica_economics(h100, 8, 1.7, "us-east-1").watts == busy


def test_replica_economics_explains_missing_figures() -> None:
    r = ec.replica_economics(hardware.gpu("B200"), 8, 0.5, "nowhere-1")
    assert r.usd_per_hour is None and any("no list price" in m for m in r.notes)
    assert r.g_per_kwh == ec.WORLD_AVERAGE_G_PER_KWH
    cpu = ec.replica_economics(hardware.cpu_option("Intel", avx512=True, amx=True), 0, 0.5, None)
    assert cpu.usd_per_hour is None and cpu.watts > 0 and "CPU" in cpu.notes[0]


@given(
    tdp=st.floats(50, 1500),
    n=st.integers(1, 16),
    u1=st.floats(0, 1),
    u2=st.floats(0, 1),
)
def test_power_grows_with_utilization_and_gpus(tdp: float, n: int, u1: float, u2: float) -> None:
    lo, hi = sorted((u1, u2))
    assert ec.replica_power(tdp, n, lo).it_watts <= ec.replica_power(tdp, n, hi).it_watts + 1e-9
    assert ec.replica_power(tdp, n, hi).it_watts < ec.replica_power(tdp, n + 1, hi).it_watts
    # never above TDP plus host share, never below the idle floor
    p = ec.replica_power(tdp, n, hi, host_watts_per_node=0.0)
    assert ec.GPU_IDLE_FRACTION * n * tdp - 1e-6 <= p.gpu_watts <= n * tdp
