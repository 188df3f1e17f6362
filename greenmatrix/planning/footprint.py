"""Where an option is counted (its region) and the policy's cost, power and carbon limits it breaks.
Serving and training share it; the figures themselves come from `economics.replica_economics`.
"""

from __future__ import annotations

from greenmatrix.planning.context import PlanContext
from greenmatrix.planning.explain import money
from greenmatrix.planning.options import HardwareOption


def region_for(ctx: PlanContext, o: HardwareOption) -> tuple[str | None, str | None]:
    """(region used for carbon, failure text) for an option."""
    if not o.in_cluster or not o.regions:
        return ctx.region, None
    usable = ctx.restrictions.usable_regions(o.regions) if ctx.restrictions.region_restricted else o.regions
    if not usable:
        allowed = ", ".join(sorted({r for lst in ctx.restrictions.regions for r in lst}))
        return None, f"its nodes are in {', '.join(o.regions)}; allowed regions: {allowed}"
    return (ctx.region if ctx.region in usable else usable[0]), None


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
