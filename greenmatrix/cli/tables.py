"""What `greenmatrix simulate` and `greenmatrix models` print: rich tables over a `Plan` and the catalogs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from greenmatrix import economics
from greenmatrix.catalog import hardware, llms

if TYPE_CHECKING:
    from greenmatrix import Plan
    from greenmatrix.api.workloadprofile import Interval, OptionPrediction


def _g(x: float) -> str:
    """Three significant figures, without exponents for the magnitudes a table shows."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _iv(i: Interval | None) -> str:
    if i is None:
        return "-"
    return f"{_g(i.p50)} [{_g(i.p10)}-{_g(i.p90)}]"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None else f"{x:{fmt}}"


def _label(o: OptionPrediction) -> str:
    if o.gpus_per_replica == 0:
        return o.gpu
    return f"{o.gpu} x{o.gpus_per_replica}"


def _status(o: OptionPrediction) -> str:
    if not o.feasible:
        return f"[red]no[/red]: {escape(o.reason)}"
    mark = "[green]yes[/green]"
    if o.slo_margin is False:
        mark += " (not at p90)"
    return mark


def plan_table(plan: Plan, *, limit: int | None = None) -> Table:
    """The options of a plan, best first, with predictions and their p10-p90 ranges."""
    training = plan.task == "training"
    in_cluster = any(o.in_cluster for o in plan.options)
    # $/1M tok and gCO2/1M tok count the tokens the load sends, not the capacity tok/s/replica shows:
    # dividing $/h by that column would make a half-idle replica look cheap.
    caption = (
        None
        if training
        else "tok/s/replica: one replica's capacity at the concurrency; per-token cost and carbon count the"
        " tokens served (requestsPerSecond x outputTokens, else the target utilisation of that capacity)"
    )
    table = Table(
        title=escape("Hardware options, best first (p50 [p10-p90])"), caption=caption, show_lines=False
    )
    table.add_column("#", justify="right")
    table.add_column("option")
    if in_cluster:
        table.add_column("in cluster")
    table.add_column("pods" if training else "replicas", justify="right")
    if training:
        table.add_column("time h", justify="right")
        table.add_column("tokens/s", justify="right")
    else:
        table.add_column("TTFT ms", justify="right")
        table.add_column("TPOT ms", justify="right")
        table.add_column("tok/s/replica", justify="right")
    table.add_column("$/h", justify="right")
    table.add_column("$/run" if training else "$/1M tok", justify="right")
    table.add_column("W", justify="right")
    table.add_column("kgCO2/run" if training else "gCO2/1M tok", justify="right")
    table.add_column("score", justify="right")
    table.add_column("feasible")
    shown = plan.options if limit is None else plan.options[:limit]
    for i, o in enumerate(shown, 1):
        row = [str(i), _label(o)]
        if in_cluster:
            row.append("yes" if o.in_cluster else "-")
        row.append(str(o.replicas))
        if training:
            row += [
                _iv(o.training_hours),
                _num(o.throughput_tokens_per_second and o.throughput_tokens_per_second.p50, ",.0f"),
            ]
            row += [_num(o.usd_per_hour, ".4g"), _num(o.usd_per_run, ",.0f")]
            row += [_num(o.watts, ",.0f"), _num(o.grams_co2_per_run and o.grams_co2_per_run / 1000, ",.1f")]
        else:
            row += [
                _iv(o.ttft_ms),
                _iv(o.tpot_ms),
                _num(o.throughput_tokens_per_second and o.throughput_tokens_per_second.p50, ",.0f"),
            ]
            row += [_num(o.usd_per_hour, ".4g"), _num(o.usd_per_million_tokens)]
            row += [_num(o.watts, ",.0f"), _num(o.grams_co2_per_million_tokens, ",.0f")]
        row += [_num(o.score, ".3f"), _status(o)]
        table.add_row(*(cell if cell.startswith("[") and "[/" in cell[:20] else escape(cell) for cell in row))
    return table


def summary_lines(plan: Plan) -> list[str]:
    """The recommendation, the advice and the notes, one line each."""
    lines = []
    if plan.recommendation is not None:
        r = plan.recommendation
        lines.append(f"Recommended: {r.explanation}")
        if r.basis:
            lines.append(f"  why these numbers: {r.basis}")
        if r.resources:
            lines.append(f"  resources per replica: {r.resources}")
        if r.node_selector:
            lines.append(f"  nodeSelector: {r.node_selector}")
    for o in plan.better_outside_cluster:
        lines.append(f"Better outside the cluster: {_label(o)} (score {o.score})")
    for a in plan.advice:
        lines.append(f"Advice ({a.action}): {a.detail}: {a.predicted_gain}")
    for n in plan.notes:
        lines.append(f"Note: {n}")
    return lines


def models_table() -> Table:
    table = Table(title="Catalog models (use model.name; or give model.architecture)")
    for col in ("name", "params B", "active B", "layers", "attention", "context"):
        table.add_column(col, justify="left" if col in ("name", "attention") else "right")
    for m in llms.all_models():
        table.add_row(
            m.name,
            f"{m.params_total / 1e9:.3g}",
            f"{m.params_active / 1e9:.3g}",
            str(m.layers),
            m.attention + (f" MoE {m.experts_per_token}/{m.experts}" if m.experts else ""),
            f"{m.max_context:,}" if m.max_context else "-",
        )
    return table


def regions_table() -> Table:
    table = Table(title="Catalog regions (grid carbon intensity, operational)")
    for col in ("provider", "region", "gCO2/kWh", "method"):
        table.add_column(col, justify="right" if col == "gCO2/kWh" else "left")
    for provider, region in economics.carbon_regions():
        c = economics.carbon_intensity(region, provider)
        table.add_row(provider, region, f"{c.g_per_kwh:.0f}", escape(c.method))
    return table


def gpus_table() -> Table:
    table = Table(title="Catalog GPUs (dense tensor TFLOPS; cheapest on-demand price per GPU-hour)")
    for col in ("gpu", "memory GiB", "GB/s", "bf16 TF", "fp8 TF", "fp4 TF", "TDP W", "per node", "$/GPU-h"):
        table.add_column(col, justify="left" if col == "gpu" else "right")
    for g in hardware.all_gpus():
        price = economics.price_per_gpu_hour(g.key)
        table.add_row(
            g.key,
            f"{g.memory_gib:.0f}",
            f"{g.memory_bandwidth_gbs:,.0f}",
            _num(g.tflops.get("bf16") or g.tflops.get("fp16"), ",.0f"),
            _num(g.tflops.get("fp8"), ",.0f"),
            _num(g.tflops.get("fp4"), ",.0f"),
            f"{g.tdp_watts:.0f}",
            str(g.gpus_per_node),
            "-" if price is None else f"{price.usd_per_gpu_hour:.3g}",
        )
    return table
