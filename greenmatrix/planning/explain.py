"""What the planner says: numbers as people read them, and the one line on why an option won."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from greenmatrix.api.workloadprofile import InferenceSpec
from greenmatrix.api.workloadprofile import Interval as WireInterval
from greenmatrix.interval import Interval
from greenmatrix.planning.context import CRITERIA, Evaluated, PlanContext

# --- formatting -----------------------------------------------------------------------------------


def wire(i: Interval | None) -> WireInterval | None:
    if i is None:
        return None
    return WireInterval(p10=sig_figs(i.p10), p50=sig_figs(i.p50), p90=sig_figs(i.p90))


def sig_figs(x: float, digits: int = 4) -> float:
    """Round to `digits` significant figures: status stays small and diffs stay quiet."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def num(x: float) -> str:
    """Three significant figures, without exponents for the magnitudes people read."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def fmt_ms(i: Interval) -> str:
    return f"{num(i.p50)} ms [{num(i.p10)}-{num(i.p90)}]"


def fmt_hours(i: Interval) -> str:
    return f"{num(i.p50)} h [{num(i.p10)}-{num(i.p90)}]"


def money(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"${x:.3g}" if x < 100 else f"${x:,.0f}"


# --- the explanation ----------------------------------------------------------------------------

_BETTER_WORDS = {
    "latency": ("faster", 0),
    "throughput": ("more throughput", 1),
    "cost": ("cheaper", 2),
    "energy": ("less energy", 3),
    "carbon": ("less carbon", 4),
}


def _meets_text(ctx: PlanContext, e: Evaluated) -> str:
    p = e.prediction
    parts = []
    if ctx.spec.task == "training":
        t = ctx.spec.training
        assert t is not None and p.training_hours is not None
        pred = f"pred {num(p.training_hours.p50)} h [{num(p.training_hours.p10)}-{num(p.training_hours.p90)}]"
        if t.deadline_hours is not None:
            return f"meets the {t.deadline_hours:g} h deadline ({pred})"
        return f"trains in {pred[5:]}"
    slo = ctx.spec.inference.slo if ctx.spec.inference else None

    def ms(i: WireInterval | None) -> str:
        assert i is not None
        return f"{num(i.p50)} ms [{num(i.p10)}-{num(i.p90)}]"

    if slo is not None:
        if slo.ttft_ms is not None:
            parts.append(f"TTFT {slo.ttft_ms:g} ms (pred {ms(p.ttft_ms)})")
        if slo.tpot_ms is not None:
            parts.append(f"TPOT {slo.tpot_ms:g} ms (pred {ms(p.tpot_ms)})")
        if slo.p95_latency_ms is not None:
            parts.append(f"latency {slo.p95_latency_ms:g} ms (pred {ms(p.request_latency_ms)})")
        if slo.min_throughput_tokens_per_second is not None:
            parts.append(f"{slo.min_throughput_tokens_per_second:g} tokens/s")
    if not parts:
        return f"predicts TPOT {ms(p.tpot_ms)}" if p.tpot_ms else f"predicts TTFT {ms(p.ttft_ms)}"
    return "meets " + " and ".join(parts)


def explanation(
    ctx: PlanContext, best: Evaluated, others: Sequence[Evaluated], weights: dict[str, float]
) -> str:
    """One line on why `best` won, e.g. "L4 x1 meets TPOT 40 ms (pred 31 ms [27-36]) at $0.21/1M
    tokens, 3.1x cheaper than the next feasible option (A100-SXM4-80GB x1)"."""
    p = best.prediction
    who = best.option.label + (
        f" ({p.replicas} replicas)" if p.replicas > 1 and ctx.spec.task == "inference" else ""
    )
    price = (
        f"{money(p.usd_per_million_tokens)}/1M tokens"
        if ctx.spec.task == "inference"
        else f"{money(p.usd_per_run)} per run"
    )
    if price.startswith("n/a"):
        price = "unknown price"
    line = f"{who} {_meets_text(ctx, best)} at {price}"
    if not others:
        return line + ", the only feasible option"
    runner = others[0]
    # Compare on the criterion the policy weighs most among those where the winner is better.
    for name in sorted(weights, key=lambda k: (-weights[k], CRITERIA.index(k))):
        if weights[name] <= 0:
            break
        word, j = _BETTER_WORDS[name]
        a, b = best.values[j], runner.values[j]
        if any(math.isnan(x) or x <= 0 for x in (a, b)):
            continue
        ratio = a / b if name == "throughput" else b / a
        if ratio > 1.05:
            return line + f", {ratio:.2g}x {word} than the next feasible option ({runner.option.label})"
    return line + f", best balance of the policy's objectives ahead of {runner.option.label}"


def headline_metric(inference: InferenceSpec) -> Literal["TPOT", "TTFT", "latency"]:
    """The latency figure a serving option is summed up by: the one its objectives bound, TPOT by
    default (decode dominates a long answer), TTFT or latency when there is a single output token."""
    slo = inference.slo
    if slo is not None and slo.tpot_ms is not None:
        return "TPOT"
    if slo is not None and slo.ttft_ms is not None:
        return "TTFT"
    if slo is not None and slo.p95_latency_ms is not None:
        return "latency"
    return "TPOT" if inference.output_tokens > 1 else "TTFT"


def headline_latency(ctx: PlanContext, e: Evaluated) -> str:
    p = e.prediction
    if ctx.spec.task == "training":
        assert p.training_hours is not None
        return f"run {num(p.training_hours.p50)}h"
    assert ctx.spec.inference is not None
    metric = headline_metric(ctx.spec.inference)
    shown = {"TPOT": p.tpot_ms, "TTFT": p.ttft_ms, "latency": p.request_latency_ms}[metric]
    assert shown is not None
    return f"{metric} {num(shown.p50)}ms"


def cost_text(ctx: PlanContext, e: Evaluated) -> str:
    p = e.prediction
    if ctx.spec.task == "training":
        return f"{money(p.usd_per_run)} per run"
    return f"{money(p.usd_per_million_tokens)}/1M tokens"
