"""Power, energy, cost and carbon of running a replica: plain numbers in, plain numbers out.

Power model (per replica of `n_gpus` GPUs, `utilization` = busy fraction in [0, 1], e.g.
DCGM_FI_DEV_GPU_UTIL / 100):

    gpu_watts  = n_gpus x TDP x (IDLE + (LOAD - IDLE) x utilization)
    host_watts = n_gpus x host_watts_per_node / gpus_per_node
    facility   = (gpu_watts + host_watts) x PUE

- IDLE = 0.30: an idle datacenter GPU with a model loaded draws about 30% of TDP (memory
  clocks stay up; H100 SXM idles near 100-150 W of 700 W).
- LOAD = 0.72: the one fitted coefficient. MLPerf Inference power rows (Offline/Server, whole
  system watts, v2.0-v4.0) are fitted as `system W = LOAD x n x TDP + sockets x CPU TDP`: at
  benchmark load the accelerators average ~72% of TDP and the host draws about its CPUs' TDP
  (which also absorbs memory, fans and PSU losses). `fit_load_factor` recomputes it;
  tests/engine/test_economics_power.py checks the constant against the data and the
  leave-one-round-out / leave-one-submitter-out error.
- Host: `sockets x CPU TDP` when the CPUs are known (`host_watts_from_cpus`), else the catalog's
  `host_watts_per_node` (two 250 W sockets; 0 for GH200, whose module power covers Grace).
- PUE (facility overhead: cooling, power distribution) defaults to 1.2 and applies to energy
  and carbon, not to cloud prices (which already include it).

Energy is facility energy (IT x PUE). Carbon = facility kWh x grid gCO2eq/kWh of the region
(`carbon_intensity`), operational only (no embodied carbon). `replica_economics` puts it together
for one replica; the planner and the live loop both price replicas with it.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from greenmatrix.catalog import hardware
from greenmatrix.errors import GreenMatrixError

GPU_IDLE_FRACTION = 0.30
MLPERF_LOAD_FACTOR = 0.72
PUE_DEFAULT = 1.2
# IEA, Global Energy & CO2 Status Report 2019: world-average electricity ~475 gCO2/kWh (2018).
WORLD_AVERAGE_G_PER_KWH = 475.0
WORLD_AVERAGE_SOURCE = (
    "default: IEA world-average grid intensity (~475 gCO2/kWh, Global Energy & CO2 Status 2019)"
)

_J_PER_KWH = 3.6e6
_S_PER_H = 3600.0


def _check(
    name: str, value: float, *, low: float = 0.0, high: float | None = None, strict: bool = False
) -> float:
    v = float(value)
    bad = v != v or v < low or (strict and v == low) or (high is not None and v > high)
    if bad:
        rng = f"{'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise ValueError(f"{name}: must be {rng}, got {value!r}")
    return v


# --- power ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerDraw:
    """Average power of one replica, in watts."""

    gpu_watts: float
    host_watts: float
    pue: float

    @property
    def it_watts(self) -> float:
        return self.gpu_watts + self.host_watts

    @property
    def facility_watts(self) -> float:
        return self.it_watts * self.pue


def gpu_watts(
    tdp_watts: float,
    utilization: float,
    *,
    idle_fraction: float = GPU_IDLE_FRACTION,
    load_factor: float = MLPERF_LOAD_FACTOR,
) -> float:
    """Average draw of one GPU: linear from idle_fraction x TDP (idle) to load_factor x TDP (busy)."""
    tdp = _check("tdp_watts", tdp_watts, strict=True)
    u = _check("utilization", utilization, high=1.0)
    return tdp * (idle_fraction + (load_factor - idle_fraction) * u)


def replica_power(
    tdp_watts: float,
    n_gpus: int,
    utilization: float,
    *,
    gpus_per_node: int = 8,
    host_watts_per_node: float = 500.0,
    pue: float = PUE_DEFAULT,
    idle_fraction: float = GPU_IDLE_FRACTION,
    load_factor: float = MLPERF_LOAD_FACTOR,
) -> PowerDraw:
    """Power of a replica on `n_gpus` GPUs of one TDP; the host is shared pro rata per GPU."""
    n = int(_check("n_gpus", n_gpus, low=1))
    per_node = int(_check("gpus_per_node", gpus_per_node, low=1))
    host = _check("host_watts_per_node", host_watts_per_node)
    _check("pue", pue, low=1.0)
    per_gpu = gpu_watts(tdp_watts, utilization, idle_fraction=idle_fraction, load_factor=load_factor)
    return PowerDraw(gpu_watts=n * per_gpu, host_watts=n * host / per_node, pue=float(pue))


def replica_power_for(
    gpu: hardware.GPUSpec | str,
    n_gpus: int,
    utilization: float,
    *,
    host_watts_per_node: float | None = None,
    pue: float = PUE_DEFAULT,
) -> PowerDraw:
    """`replica_power` with TDP, GPUs per node and default host power from the catalog."""
    spec = gpu if isinstance(gpu, hardware.GPUSpec) else hardware.gpu(gpu)
    host = spec.host_watts_per_node if host_watts_per_node is None else host_watts_per_node
    return replica_power(
        spec.tdp_watts,
        n_gpus,
        utilization,
        gpus_per_node=spec.gpus_per_node,
        host_watts_per_node=host,
        pue=pue,
    )


def host_watts_from_cpus(sockets: int, cpu_tdp_watts: float) -> float:
    """Host power per the MLPerf fit: the CPUs' combined TDP stands for the whole host."""
    return _check("sockets", sockets) * _check("cpu_tdp_watts", cpu_tdp_watts)


def system_watts(
    n_accelerators: int,
    accelerator_tdp_watts: float,
    host_watts: float,
    *,
    load_factor: float = MLPERF_LOAD_FACTOR,
) -> float:
    """Whole-system watts at benchmark load (the fitted MLPerf model, no PUE)."""
    n = _check("n_accelerators", n_accelerators, low=1)
    return load_factor * n * _check("accelerator_tdp_watts", accelerator_tdp_watts) + _check(
        "host_watts", host_watts
    )


def fit_load_factor(rows: Iterable[tuple[float, float, float]]) -> float:
    """Least-squares LOAD in `measured = LOAD x accel_tdp_total + host`, on relative error.

    `rows` are (n x accelerator TDP, host watts, measured system watts). Minimising
    sum(((LOAD x a + h - w) / w)^2) weighs a 1-GPU edge box and an 8-GPU server alike.
    """
    num = den = 0.0
    for accel, host, measured in rows:
        w = _check("measured watts", measured, strict=True)
        num += accel * (w - host) / w**2
        den += accel**2 / w**2
    if den == 0.0:
        raise ValueError("rows: need at least one row with accelerator TDP > 0")
    return num / den


# --- cost -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """On-demand price per GPU-hour from one instance listing."""

    gpu_key: str
    usd_per_gpu_hour: float
    instance_type: str
    gpu_count: int
    usd_per_instance_hour: float
    provider: str
    region: str
    source: str


@functools.cache
def _prices() -> tuple[Price, ...]:
    entries = _load("prices.json")
    return tuple(
        Price(
            gpu_key=e["gpu_key"],
            usd_per_gpu_hour=float(e["usd_per_gpu_hour"]),
            instance_type=e["instance_type"],
            gpu_count=int(e["gpu_count"]),
            usd_per_instance_hour=float(e["usd_per_instance_hour"]),
            provider=e["provider"],
            region=e["region"],
            source="; ".join(e["sources"]),
        )
        for e in entries
    )


def prices(
    gpu_key: str | None = None, provider: str | None = None, region: str | None = None
) -> tuple[Price, ...]:
    """Every listing matching the filters (gpu_key may be any GPU alias)."""
    key = None if gpu_key is None else hardware.normalize_gpu_name(gpu_key)
    if gpu_key is not None and key is None:
        return ()
    return tuple(
        p
        for p in _prices()
        if (key is None or p.gpu_key == key)
        and (provider is None or p.provider == provider.strip().lower())
        and (region is None or p.region == region.strip().lower())
    )


def price_per_gpu_hour(gpu_key: str, provider: str | None = None, region: str | None = None) -> Price | None:
    """The cheapest per-GPU-hour listing for this GPU (any alias); None when there is no listing.

    Cheapest per GPU, because a replica is placed on whichever instance size fits; the listing's
    instance type and GPU count say which one that is.
    """
    matches = prices(gpu_key, provider, region)
    if not matches:
        return None
    return min(matches, key=lambda p: (p.usd_per_gpu_hour, p.gpu_count, p.instance_type))


def cost_per_hour(usd_per_gpu_hour: float, n_gpus: int) -> float:
    return _check("usd_per_gpu_hour", usd_per_gpu_hour) * _check("n_gpus", n_gpus, low=1)


# --- carbon -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarbonIntensity:
    """Grid carbon intensity of a region, gCO2eq/kWh, with where the number comes from."""

    g_per_kwh: float
    region: str
    source: str
    is_default: bool
    provider: str | None = None
    method: str = "published"  # "published" | "same-grid proxy of gcp <region>" | "default"


@functools.cache
def _carbon() -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["provider"], e["region"]): e for e in _load("carbon.json")}


def carbon_regions() -> tuple[tuple[str, str], ...]:
    """(provider, region) pairs with a catalogued intensity."""
    return tuple(sorted(_carbon()))


def carbon_intensity(region: str, provider: str | None = None) -> CarbonIntensity:
    """gCO2eq/kWh for a cloud region ("us-central1", "us-east-1", "eastus"; provider optional).

    Region names do not collide across GCP, AWS and Azure, so the provider is only a filter.
    Unknown regions get the world-average default with is_default=True.
    """
    name = (region or "").strip().lower()
    prov = provider.strip().lower() if provider else None
    if prov == "google":
        prov = "gcp"
    return _carbon_intensity(name, prov)


@functools.lru_cache(maxsize=256)
def _carbon_intensity(name: str, prov: str | None) -> CarbonIntensity:
    # The table is fixed for the process and a plan asks once per option: scan it once per region
    # (bounded: region names come from users' specs, and the operator runs for months).
    hits = [e for (p, r), e in _carbon().items() if r == name and (prov is None or p == prov)]
    if len(hits) == 1:
        e = hits[0]
        return CarbonIntensity(
            g_per_kwh=float(e["g_per_kwh"]),
            region=e["region"],
            source="; ".join(e["sources"]),
            is_default=False,
            provider=e["provider"],
            method=e["method"],
        )
    return CarbonIntensity(
        g_per_kwh=WORLD_AVERAGE_G_PER_KWH,
        region=name,
        source=WORLD_AVERAGE_SOURCE,
        is_default=True,
        provider=prov,
        method="default",
    )


def catalogued_region(region: str, field: str = "region") -> str:
    """The region as the carbon table names it, for a region a user typed.

    Raises GreenMatrixError naming ``field`` with the closest catalogued names when the table has no
    intensity for it: a typo must not silently become the world average. (Regions read from node
    labels keep the world-average fallback of `carbon_intensity`: an on-premises region is no typo.)
    """
    name = (region or "").strip().lower()
    names = _region_names()
    if name in names:
        return name
    close = closest_regions(region)
    raise GreenMatrixError(
        field,
        f"{region!r} has no grid carbon intensity in the catalog"
        " (`greenmatrix models --kind regions` lists the regions it has)",
        [*close, *(n for n in names if n not in close)],
    )


def closest_regions(region: str) -> list[str]:
    """The catalogued region names closest to `region`, closest first (none when nothing is close)."""
    name = (region or "").strip().lower()
    return difflib.get_close_matches(name, _region_names(), n=5, cutoff=0.6)


def unknown_region_hint(region: str) -> str:
    """What to add where a region without an intensity is accepted (it may be on premises, or a typo):
    the closest catalogued names, the same `catalogued_region` offers when it refuses one."""
    close = closest_regions(region)
    return f" (closest catalogued: {', '.join(close)})" if close else ""


@functools.cache
def _region_names() -> tuple[str, ...]:
    return tuple(sorted({r for _, r in carbon_regions()}))


# --- one replica, all together ------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaEconomics:
    """Price, facility power and emissions of one replica (or one training job) at a utilisation."""

    usd_per_hour: float | None  # None: no list price
    watts: float  # facility watts (IT x PUE)
    g_per_hour: float
    g_per_kwh: float
    notes: tuple[str, ...]  # why a figure is missing or ranks as it does

    def per_million_tokens(self, tokens_per_s: float) -> tuple[float | None, float, float]:
        """($ per 1M tokens or None, joules per token, gCO2 per 1M tokens) while serving tokens_per_s."""
        usd = None if self.usd_per_hour is None else self.usd_per_hour / (tokens_per_s * _S_PER_H) * 1e6
        j_per_token = self.watts / tokens_per_s
        return usd, j_per_token, j_per_token * 1e6 / _J_PER_KWH * self.g_per_kwh


@functools.cache
def _cheapest(gpu_key: str) -> Price | None:
    # The price list is fixed for the process; looking it up per option dominated small plans.
    return price_per_gpu_hour(gpu_key)


def replica_economics(
    device: hardware.GPUSpec | hardware.CPUSpec, gpus: int, utilization: float, region: str | None
) -> ReplicaEconomics:
    """Price, facility power and emissions of ONE replica of `gpus` GPUs (or a CPU node) busy
    `utilization` of the time, with the carbon of `region`'s grid (the world average when unknown)."""
    u = min(max(utilization, 0.0), 1.0)
    intensity = carbon_intensity(region or "")
    if isinstance(device, hardware.GPUSpec):
        watts = replica_power_for(device, gpus, u).facility_watts
        price = _cheapest(device.key)
        usd = None if price is None else cost_per_hour(price.usd_per_gpu_hour, gpus)
        notes = (
            () if price else (f"no list price for {device.key}: cost unknown, ranked as the most expensive",)
        )
    else:
        # The socket is the whole host here; the same idle-to-load line as a GPU, then PUE.
        watts = gpu_watts(device.tdp_watts, u) * PUE_DEFAULT
        usd = None
        notes = ("no list price for CPU nodes: cost unknown, ranked as the most expensive",)
    return ReplicaEconomics(usd, watts, watts / 1000.0 * intensity.g_per_kwh, intensity.g_per_kwh, notes)


def _load(name: str) -> list[dict[str, Any]]:
    text = resources.files("greenmatrix.catalog").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)["entries"]


def mlperf_power_rows(rows: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """MLPerf Inference CSV rows -> the fields the power fit needs, for rows it can use.

    Keeps whole-system watts rows (Offline/Server; SingleStream/MultiStream report mJ) whose
    accelerator has a catalog TDP; the host is sockets x CPU TDP, or the catalog default host
    when the CPU is unknown. MIG rows are kept (the whole GPU is powered).
    """
    out: list[dict[str, Any]] = []
    for row in rows:
        if str(row.get("has_power", "")).strip().lower() != "true":
            continue
        if str(row.get("Result_Power_Units", "")).strip().lower() != "watts":
            continue
        spec = hardware.try_gpu(row.get("accelerator_model_name", ""))
        try:
            measured = float(row["Result_Power"])
            nodes = int(row.get("number_of_nodes") or 1)
            n = int(row.get("accelerators_per_node") or 0) * nodes
            sockets = int(row.get("host_processors_per_node") or 1) * nodes
        except (KeyError, ValueError):
            continue
        if spec is None or n < 1 or measured <= 0:
            continue
        cpu = hardware.cpu_tdp(row.get("host_processor_model_name", ""))
        host = host_watts_from_cpus(sockets, cpu) if cpu is not None else spec.host_watts_per_node * nodes
        out.append(
            {
                "version": row.get("version", ""),
                "submitter": row.get("Organization", ""),
                "gpu_key": spec.key,
                "accel_tdp_total": n * spec.tdp_watts,
                "host_watts": host,
                "measured_watts": measured,
            }
        )
    return out
