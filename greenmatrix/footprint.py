"""What running an option takes: the region it is counted in, its price, facility power and emissions,
and the policy's constraints on them. Serving and training share it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from greenmatrix import economics
from greenmatrix.evaluated import PlanContext
from greenmatrix.explain import money
from greenmatrix.options import HardwareOption


def region_for(ctx: PlanContext, o: HardwareOption) -> tuple[str | None, str | None]:
    """(region used for carbon, failure text) for an option."""
    if not o.in_cluster or not o.regions:
        return ctx.region, None
    usable = ctx.restrictions.usable_regions(o.regions) if ctx.restrictions.region_restricted else o.regions
    if not usable:
        allowed = ", ".join(sorted({r for lst in ctx.restrictions.regions for r in lst}))
        return None, f"its nodes are in {', '.join(o.regions)}; allowed regions: {allowed}"
    return (ctx.region if ctx.region in usable else usable[0]), None


@dataclass
class Money:
    """Price, facility power and emissions of one replica (or one training job)."""

    usd_per_hour: float | None
    watts: float
    g_per_hour: float
    g_per_kwh: float
    notes: list[str]


@functools.cache
def _price(gpu_key: str) -> economics.Price | None:
    # The price list is fixed for the process; looking it up per option dominated small plans.
    return economics.price_per_gpu_hour(gpu_key)


def replica_economics(
    ctx: PlanContext, o: HardwareOption, gpus: int, utilization: float, region: str | None
) -> Money:
    """Price, facility power and emissions of ONE replica (or one training job) at a utilisation."""
    u = min(max(utilization, 0.0), 1.0)
    intensity = economics.carbon_intensity(region or "")
    notes = []
    if o.gpu is not None:
        power = economics.replica_power_for(o.gpu, gpus, u)
        price = _price(o.gpu.key)
        usd = None if price is None else economics.cost_per_hour(price.usd_per_gpu_hour, gpus)
        if price is None:
            notes.append(f"no list price for {o.name}: cost unknown, ranked as the most expensive")
        watts = power.facility_watts
    else:
        assert o.cpu is not None
        # The socket is the whole host here; the same idle-to-load line as a GPU, then PUE.
        watts = economics.gpu_watts(o.cpu.tdp_watts, u) * economics.PUE_DEFAULT
        usd = None
        notes.append("no list price for CPU nodes: cost unknown, ranked as the most expensive")
    return Money(usd, watts, watts / 1000.0 * intensity.g_per_kwh, intensity.g_per_kwh, notes)


def constraint_failures(
    ctx: PlanContext, name: str, usd_h: float | None, watts: float, g_h: float
) -> list[tuple[str, str]]:
    """The policy's cost, power and carbon limits an option breaks, as (field, why) pairs."""
    c = ctx.constraints
    out = []
    if c.max_cost_per_hour is not None:
        if usd_h is None:
            out.append(
                (
                    "policy.constraints.maxCostPerHour",
                    f"{name} has no list price to check ${c.max_cost_per_hour:g}/h",
                )
            )
        elif usd_h > c.max_cost_per_hour:
            out.append(
                ("policy.constraints.maxCostPerHour", f"{money(usd_h)}/h > ${c.max_cost_per_hour:g}/h")
            )
    if c.max_power_watts is not None and watts > c.max_power_watts:
        out.append(("policy.constraints.maxPowerWatts", f"{watts:,.0f} W > {c.max_power_watts:,.0f} W"))
    if c.max_carbon_grams_per_hour is not None and g_h > c.max_carbon_grams_per_hour:
        out.append(
            (
                "policy.constraints.maxCarbonGramsPerHour",
                f"{g_h:,.0f} gCO2/h > {c.max_carbon_grams_per_hour:,.0f} g/h",
            )
        )
    return out
