"""CustomResourceDefinitions generated from the pydantic models: the models are the one source of truth.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema. The
translation inlines `$ref`s, turns `Optional[X]` into an optional X, drops what structural
schemas forbid (`additionalProperties: false` beside `properties`, titles, `const`) and keeps
every description, bound, enum, default and CEL rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from greenmatrix.api.meta import GROUP, VERSION
from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec, OptimizationPolicyStatus
from greenmatrix.api.workloadprofile import WorkloadProfileSpec, WorkloadProfileStatus

_DROPPED_KEYS = {"title", "examples", "$defs"}


@dataclass(frozen=True)
class Kind:
    """One custom resource kind and how it is presented."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: tuple[dict[str, Any], ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _ready(column: str = "Ready") -> dict[str, Any]:
    return {"name": column, "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


def _reason() -> dict[str, Any]:
    return {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "priority": 1,
    }


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

WORKLOAD_PROFILE = Kind(
    kind="WorkloadProfile",
    plural="workloadprofiles",
    short_names=("wp",),
    description=(
        "WorkloadProfile describes an AI workload (model, precision, serving or training shape, "
        "objectives); GreenMatrix writes the matching hardware and its recommendation into status."
    ),
    spec=WorkloadProfileSpec,
    status=WorkloadProfileStatus,
    printer_columns=(
        {"name": "Task", "type": "string", "jsonPath": ".spec.task"},
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
        {"name": "GPU", "type": "string", "jsonPath": ".status.recommendation.gpu"},
        {"name": "Count", "type": "integer", "jsonPath": ".status.recommendation.gpusPerReplica"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.recommendation.replicas"},
        {"name": "Latency", "type": "string", "jsonPath": ".status.recommendation.latency"},
        {"name": "$/1M tok", "type": "string", "jsonPath": ".status.recommendation.usdPerMillionTokens"},
        {"name": "Current", "type": "integer", "jsonPath": ".status.scaling.currentReplicas"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.scaling.desiredReplicas"},
        {"name": "Action", "type": "string", "jsonPath": ".status.scaling.action"},
        _ready(),
        _reason(),
        _AGE,
    ),
)

OPTIMIZATION_POLICY = Kind(
    kind="OptimizationPolicy",
    plural="optimizationpolicies",
    short_names=("op",),
    description=(
        "OptimizationPolicy selects WorkloadProfiles in its namespace and sets the objectives, "
        "constraints, mode (Recommend or Auto) and scaling guardrails GreenMatrix uses for them."
    ),
    spec=OptimizationPolicySpec,
    status=OptimizationPolicyStatus,
    printer_columns=(
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
        {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
        {"name": "Selected", "type": "integer", "jsonPath": ".status.selectedCount"},
        {"name": "Applied", "type": "integer", "jsonPath": ".status.appliedCount"},
        _ready(),
        _reason(),
        _AGE,
    ),
)

KINDS = (WORKLOAD_PROFILE, OPTIMIZATION_POLICY)


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _structural(raw, defs)


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # The field's own keys (its description, default) win over the referenced model's.
        node = {**target, **node}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union of {len(branches)} types in a structural schema")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _structural({**branches[0], **rest}, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
            if "conditions" in value:
                # metav1.Condition lists are maps keyed by type, so server-side apply merges them.
                out[key]["conditions"]["x-kubernetes-list-type"] = "map"
                out[key]["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
        else:
            out[key] = _structural(value, defs)
    if "default" in out and out["default"] is None:
        del out["default"]  # an optional field's absence is its default
    if out.get("type") == "integer":
        out.setdefault("format", "int64")
    # Type and description first: the order people read a schema in.
    return {k: out[k] for k in sorted(out, key=lambda k: (k != "type", k != "description"))}


def custom_resource_definition(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition object for one kind."""
    spec_schema = structural_schema(kind.spec)
    status_schema = structural_schema(kind.status)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/name": "greenmatrix", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["greenmatrix"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.printer_columns),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "APIVersion defines the versioned schema of this object.",
                                },
                                "kind": {
                                    "type": "string",
                                    "description": "Kind is the REST resource this object represents.",
                                },
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    """The CRD as the YAML text committed in `crds/` (stable key order, so regeneration is byte-equal)."""
    header = (
        "# Generated by `greenmatrix crds` from greenmatrix/api; edit the pydantic models, not this file.\n"
    )
    body = yaml.safe_dump(custom_resource_definition(kind), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def render_all() -> dict[str, str]:
    """File name in `crds/` → YAML text, for every kind."""
    return {f"{GROUP}_{kind.plural}.yaml": render(kind) for kind in KINDS}


def render_reference() -> str:
    """A Markdown field reference for both kinds, from the same schemas as the CRDs."""
    lines = [
        "# CRD reference",
        "",
        "Generated by `greenmatrix crds` from `greenmatrix/api`;"
        " `kubectl explain wp.spec` shows the same text.",
        "",
    ]
    for kind in KINDS:
        lines += [
            f"## {kind.kind} (`{kind.plural}`, short name `{kind.short_names[0]}`)",
            "",
            kind.description,
            "",
        ]
        for section, model in (("spec", kind.spec), ("status", kind.status)):
            lines += [
                f"### {section}",
                "",
                "| field | type | default | rules | description |",
                "|---|---|---|---|---|",
            ]
            lines += _reference_rows(structural_schema(model), section)
            lines.append("")
    return "\n".join(lines)


def _reference_rows(node: dict[str, Any], path: str) -> list[str]:
    rows: list[str] = []
    for name, prop in node.get("properties", {}).items():
        sub = f"{path}.{name}"
        kind = prop.get("type", "")
        target = prop
        if kind == "array":
            target = prop.get("items", {})
            kind = f"[]{target.get('type', '')}"
        rules = []
        for key, label in (
            ("minimum", ">="),
            ("maximum", "<="),
            ("minLength", "len>="),
            ("maxLength", "len<="),
        ):
            if key in target:
                exclusive = key in ("minimum", "maximum") and target.get(f"exclusive{key.title()[:3]}imum")
                rules.append(f"{label.replace('=', '') if exclusive else label}{target[key]}")
        if "enum" in target:
            rules.append(" \\| ".join(str(v) for v in target["enum"]))
        if "pattern" in target and len(target["pattern"]) < 40:
            rules.append(f"`{target['pattern']}`")
        required = name in node.get("required", [])
        default = "required" if required else ("" if "default" not in prop else f"`{prop['default']}`")
        description = prop.get("description", "").replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{sub}` | {kind} | {default} | {', '.join(rules)} | {description} |")
        for rule in target.get("x-kubernetes-validations", []):
            cel_text = rule["rule"].replace("|", "\\|")
            rows.append(f"| `{sub}` | rule | | `{cel_text}` | {rule['message']} |")
        if target.get("properties"):
            rows += _reference_rows(target, f"{sub}[]" if kind.startswith("[]") else sub)
    return rows
