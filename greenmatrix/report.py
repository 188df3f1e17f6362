"""What `greenmatrix simulate` and `greenmatrix models` read and print.

Manifests are read with the API models, and every way a file can be wrong (not YAML, not a
WorkloadProfile, a schema violation) becomes a GreenMatrixError naming the field in camelCase, so
the CLI exits 2 with one line instead of a traceback. Tables are rich tables over a `Plan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from rich.markup import escape
from rich.table import Table

from greenmatrix import economics
from greenmatrix.api import API_VERSION, OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import Interval, OptionPrediction
from greenmatrix.catalog import hardware, llms
from greenmatrix.errors import GreenMatrixError, InvalidSpecError
from greenmatrix.planning.result import Plan
from greenmatrix.validation import describe, field_path


class _ManifestLoader(yaml.SafeLoader):
    """YAML read as kubectl reads it: `1.1e9` is a number (YAML 1.2 and go-yaml), where PyYAML's
    YAML 1.1 rules make it the string "1.1e9" (they want a sign in the exponent)."""


_ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def _documents(path: Path, flag: str = "-f") -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise GreenMatrixError(flag, f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise GreenMatrixError(
            flag, f"{path} is not UTF-8 text (byte {err.start}); expected a YAML manifest"
        ) from None
    try:
        return [d for d in yaml.load_all(text, Loader=_ManifestLoader) if d is not None]
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise GreenMatrixError(
            flag, f"{path} is not valid YAML{at}: {getattr(err, 'problem', err)}"
        ) from None


def schema_error(err: ValidationError, prefix: str = "spec") -> GreenMatrixError:
    """Pydantic's complaints as one error naming the first field (camelCase) and counting the rest."""
    items = err.errors()
    more = f" (and {len(items) - 1} more problem{'s' * (len(items) > 2)})" if len(items) > 1 else ""
    return InvalidSpecError(field_path(items[0]["loc"], prefix), describe(items[0]) + more)


@dataclass(frozen=True)
class Manifest:
    """One object of a manifest file: its name, labels and validated spec."""

    name: str
    labels: dict[str, str]
    spec: Any


def load_objects(path: Path, kind: str, model: type[BaseModel], flag: str = "-f") -> list[Manifest]:
    """Every `kind` object in a YAML file (possibly none), each validated by its API model.

    `flag` is the option that named the file, so a file problem names the option the user gave.
    """
    out = []
    for doc in _documents(path, flag):
        if not isinstance(doc, dict) or doc.get("kind") != kind:
            continue
        if doc.get("apiVersion") not in (None, API_VERSION):
            raise GreenMatrixError("apiVersion", f"{doc.get('apiVersion')!r} is not supported", [API_VERSION])
        # A policy's fields are named as the planner names them (policy.constraints.maxCostPerHour), so
        # an error in a policy beside a workload does not read as the workload's own spec field.
        prefix = "policy" if kind == "OptimizationPolicy" else "spec"
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise InvalidSpecError(prefix, f"the {kind} has no spec mapping")
        try:
            # Strict, as the API server's schema is: `concurrency: "32"` or `true` is refused, not coerced.
            parsed = model.model_validate(spec, strict=True)
        except ValidationError as err:
            raise schema_error(err, prefix) from None
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        labels = metadata.get("labels") if isinstance(metadata.get("labels"), dict) else {}
        out.append(
            Manifest(str(metadata.get("name", "")), {str(k): str(v) for k, v in labels.items()}, parsed)
        )
    return out


def load_manifest(path: Path, kind: str, model: type[BaseModel], flag: str = "-f") -> Manifest:
    """The one `kind` object in a YAML file."""
    found = load_objects(path, kind, model, flag)
    if not found:
        kinds = sorted({_what(d) for d in _documents(path, flag)})
        raise GreenMatrixError(
            "kind",
            f"{path} holds no {kind} (found {', '.join(kinds or ['nothing'])});"
            f" expected apiVersion {API_VERSION}",
            [kind],
        )
    if len(found) > 1:
        raise GreenMatrixError("kind", f"{path} holds {len(found)} {kind} objects; give one per file")
    return found[0]


def _what(doc: Any) -> str:
    """A YAML document as the user would name it: its kind, else what it is instead of an object."""
    if isinstance(doc, dict):
        # str(None) would read as a kind named "None".
        return str(doc["kind"]) if doc.get("kind") is not None else "a mapping without kind"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list"}
    return f"{names.get(type(doc), type(doc).__name__)} instead of a mapping"


def load_workload(path: Path) -> WorkloadProfileSpec:
    return load_manifest(path, "WorkloadProfile", WorkloadProfileSpec).spec


def load_policy(path: Path, flag: str = "--policy") -> OptimizationPolicySpec:
    return load_manifest(path, "OptimizationPolicy", OptimizationPolicySpec, flag).spec


# --- tables ------------------------------------------------------------------------------------------


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
