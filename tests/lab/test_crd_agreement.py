"""The pydantic models and the CRDs a real API server admits agree, spec for spec.

A user checks a manifest with `greenmatrix simulate -f` (the pydantic models in greenmatrix/api, read
strictly as greenmatrix/report.py does) and applies the same manifest with `kubectl`, where the CRD
schema and CEL rules generated from those models decide. Many rules exist twice (a CEL rule and a
pydantic validator), so nothing but this test keeps the two from drifting apart.

About 1200 specs are derived deterministically from valid WorkloadProfiles and
OptimizationPolicies: every field of the generated schema set at and around its bounds, to the wrong
type, to null, removed, joined by an unknown field; both sides of every rule across fields; random
pairs of those mutations. All of them go to the API server in one `kubectl create --dry-run=server`,
and each must get the same answer from both sides:

* a spec the CLI accepts, the API server admits;
* a spec the API server admits, the CLI accepts, unless every complaint is a rule listed in
  PYDANTIC_ONLY (none today: each pydantic validator restates a CEL rule);
* a spec both reject, both reject for the same fields.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from pydantic import BaseModel, ValidationError

from greenmatrix.api import API_VERSION, OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.crd import structural_schema
from greenmatrix.api.meta import DURATION_PATTERN
from greenmatrix.validation import field_path

# The `crds` fixture (a plugin, so session fixtures run once per session).
pytest_plugins = ["operator_fixtures"]

SEED = 4_2024
RANDOM_PAIRS = 120
NAMESPACE = "default"
MODELS: dict[str, type[BaseModel]] = {
    "WorkloadProfile": WorkloadProfileSpec,
    "OptimizationPolicy": OptimizationPolicySpec,
}
SCHEMAS = {kind: structural_schema(model) for kind, model in MODELS.items()}

# Pydantic validators with no CEL rule, each as (a substring of its message, why the CRD cannot hold
# it). The operator reports them as an InvalidSpec condition on an admitted object. Empty: every
# validator in greenmatrix/api restates a CEL rule.
PYDANTIC_ONLY: dict[str, str] = {}

REMOVE = object()  # a mutation's value that deletes the field

Path = tuple[str | int, ...]
Mutation = tuple[Path, Any]

# --- valid specs the mutations start from; together they set every field of both schemas ----------

SERVING: dict[str, Any] = {
    "task": "inference",
    "model": {
        "name": "meta-llama/Llama-3.1-8B-Instruct",
        "precision": "fp8",
        "kvCachePrecision": "fp8",
        "framework": "sglang",
    },
    "inference": {
        "inputTokens": 2048,
        "outputTokens": 512,
        "concurrency": 32,
        "requestsPerSecond": 12.5,
        "slo": {"ttftMs": 500, "tpotMs": 40, "p95LatencyMs": 30000, "minThroughputTokensPerSecond": 2000},
    },
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama-chat"},
    "hardware": {
        "allowedGpus": ["H100-SXM-80GB", "NVIDIA-L4"],
        "excludedGpus": ["A10G"],
        "allowCpu": False,
        "minGpusPerReplica": 1,
        "maxGpusPerReplica": 4,
        "regions": ["us-east-1"],
    },
    "metrics": {
        "requestRate": 'sum(rate(vllm:request_success_total{namespace="ml"}[5m]))',
        "ttftP95Seconds": "histogram_quantile(0.95, sum by (le) (rate(ttft_bucket[5m])))",
        "tpotP95Seconds": "histogram_quantile(0.95, sum by (le) (rate(tpot_bucket[5m])))",
        "gpuUtilization": "avg(DCGM_FI_DEV_GPU_UTIL)",
        "powerWatts": "sum(DCGM_FI_DEV_POWER_USAGE)",
    },
}
ARCHITECTURE: dict[str, Any] = {
    "parameters": 4.7e10,
    "layers": 32,
    "hiddenSize": 4096,
    "attentionHeads": 32,
    "kvHeads": 8,
    "headDim": 128,
    "intermediateSize": 14336,
    "vocabSize": 32000,
    "experts": 8,
    "activeExperts": 2,
    "activeParameters": 1.3e10,
}
CUSTOM_MOE: dict[str, Any] = {
    "task": "inference",
    "model": {"architecture": ARCHITECTURE, "precision": "bf16"},
    "inference": {"outputTokens": 1, "slo": {"ttftMs": 200}},
}
TRAINING: dict[str, Any] = {
    "task": "training",
    "model": {"name": "meta-llama/Llama-3.1-8B", "framework": "pytorch"},
    "training": {
        "tokens": 2e10,
        "epochs": 2,
        "globalBatchSize": 512,
        "sequenceLength": 8192,
        "deadlineHours": 72,
    },
}
SAMPLES: dict[str, Any] = {
    "task": "training",
    "model": {"name": "meta-llama/Llama-3.1-8B"},
    "training": {"samples": 1e6, "sequenceLength": 4096},
}
POLICY: dict[str, Any] = {
    "selector": {
        "matchLabels": {"team": "search"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["prod", "staging"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    },
    "priority": 10,
    "objectives": {"latency": 2, "throughput": 0.5, "cost": 1, "energy": 0, "carbon": 1},
    "constraints": {
        "maxCostPerHour": 50,
        "maxPowerWatts": 5000,
        "maxCarbonGramsPerHour": 2000,
        "allowedGpus": ["H100-SXM-80GB"],
        "regions": ["eu-west-1"],
    },
    "mode": "Auto",
    "scaling": {
        "minReplicas": 1,
        "maxReplicas": 8,
        "maxScaleUpStep": 2,
        "maxScaleDownStep": 1,
        "cooldown": "10m",
        "scaleDownStabilization": "1h30m",
        "targetUtilization": 0.8,
    },
    "evaluationInterval": "90s",
    "paused": False,
}
BASES: list[tuple[str, dict[str, Any]]] = [
    ("WorkloadProfile", SERVING),
    ("WorkloadProfile", CUSTOM_MOE),
    ("WorkloadProfile", TRAINING),
    ("WorkloadProfile", SAMPLES),
    ("OptimizationPolicy", POLICY),
    ("OptimizationPolicy", {}),
]


@dataclass
class Case:
    """One manifest, the mutations that made it, and each side's answer."""

    name: str
    kind: str
    spec: dict[str, Any]
    how: str
    cli_errors: list[dict[str, Any]] = field(default_factory=list)
    server_error: str | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        metadata = {"name": self.name, "namespace": NAMESPACE}
        return {"apiVersion": API_VERSION, "kind": self.kind, "metadata": metadata, "spec": self.spec}

    def report(self) -> str:
        cli = [f"{field_path(e['loc'])}: {e['msg']}" for e in self.cli_errors] or "accepted"
        server = self.server_error or "admitted"
        return f"{self.name} ({self.how}): {self.spec}\n    CLI: {cli}\n    API server: {server}"


# --- mutations ---------------------------------------------------------------------------------------


def _unique(values: list[Any]) -> list[Any]:
    # 0, 0.0 and False are equal in Python and different on the wire: compare by type and repr.
    seen: set[tuple[str, str]] = set()
    out = []
    for value in values:
        key = (type(value).__name__, repr(value))
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _padded(base: str, length: int) -> str:
    # Digits in front keep every pattern of the API (names, regions, durations) satisfied.
    return base[:length] if len(base) >= length else "1" * (length - len(base)) + base


def _scalar_values(schema: dict[str, Any], base: Any) -> list[Any]:
    """Values for one scalar field: its bounds and just past them, other types, and null."""
    kind = schema.get("type")
    if "enum" in schema:
        enum = schema["enum"]
        return [*enum, enum[0].upper(), "", "other", 1, None]
    if kind == "integer":
        low, high = schema["minimum"], schema["maximum"]
        return [low - 1, low, low + 0.5, float(high), high, high + 1, -1, 0, 2**63, str(low), True, None]
    if kind == "number":
        low, high = schema["minimum"], schema["maximum"]
        values = [low, math.nextafter(low, math.inf), high, math.nextafter(high, math.inf)]
        values += [-1.0, 0, 1, 1e308, "1", True, None]
        if float(high).is_integer():
            values.append(int(high))
        return values
    if kind == "boolean":
        return [True, False, "true", 1, None]
    if kind == "string":
        text = base if isinstance(base, str) and base else "a"
        values = ["", text + "\n", " " + text, text + "!", "é" + text, 1, True, None]
        if "maxLength" in schema:
            longest = schema["maxLength"]
            values += [_padded(text, longest), _padded(text, longest + 1)]
            values += ["é" * longest, "😀" * (longest + 1)]
        if schema.get("pattern") == DURATION_PATTERN:
            values += ["30s", "250ms", "1.5h", "0s", "2h45m30s", "5 minutes", "1d", "5", "-5m", "5M", "1.m"]
        return values
    raise AssertionError(f"no values for schema type {kind!r}")


def _field_mutations(schema: dict[str, Any], base: Any, path: Path) -> Iterator[Mutation]:
    """Every mutation of the value `base` at `path` and of what it contains, guided by its schema."""
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        # A spec that is no mapping at all is the CLI's own error (report.load_objects), not pydantic's.
        others = ({}, None, [], "text") if path else ({},)
        for value in (*others, {**base, "unknownField": 1}, {**base, "unknownField": None}):
            yield path, value
        for name, sub in schema["properties"].items():
            if name in base:
                yield (*path, name), REMOVE
                yield from _field_mutations(sub, base[name], (*path, name))
            elif sub.get("type") not in ("object", "array"):
                yield from (((*path, name), value) for value in _scalar_values(sub, None))
    elif kind == "object":  # a map such as matchLabels
        value_schema = schema["additionalProperties"]
        for value in ({}, None, "text", {"app": None}, {"app": 1}, {"app": "v", "": "v"}):
            yield path, value
        for value in _scalar_values(value_schema, "v"):
            yield path, {"app": value}
    elif kind == "array":
        first = base[0]
        for value in ([], None, "text", [None], [first, first]):
            yield path, value
        if "maxItems" in schema:
            yield path, [first] * schema["maxItems"]
            yield path, [first] * (schema["maxItems"] + 1)
        yield from _field_mutations(schema["items"], first, (*path, 0))
    else:
        yield from ((path, value) for value in _unique(_scalar_values(schema, base)))


def _mutated(base: dict[str, Any], mutations: list[Mutation]) -> dict[str, Any] | None:
    """A copy of `base` with the mutations applied, or None when one lands inside a replaced value."""
    doc = copy.deepcopy(base)
    for path, value in mutations:
        if not path:
            doc = copy.deepcopy(value)
            continue
        node: Any = doc
        for part in path[:-1]:
            if isinstance(part, int):
                if not isinstance(node, list) or len(node) <= part:
                    return None
            elif not isinstance(node, dict):
                return None
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        leaf = path[-1]
        if value is REMOVE:
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(value)
    return doc


def _spec(base: dict[str, Any], **dotted: Any) -> dict[str, Any]:
    """`base` with each path (`model__architecture__kvHeads`) set to its value, or removed for REMOVE."""
    doc = _mutated(base, [(tuple(key.split("__")), value) for key, value in dotted.items()])
    assert doc is not None
    return doc


def _architecture(**numbers: Any) -> dict[str, Any]:
    return _spec(CUSTOM_MOE, model__architecture={**ARCHITECTURE, **numbers})


def _rule_cases() -> list[tuple[str, dict[str, Any], str]]:
    """Both sides of every rule across fields, at its boundary: (kind, spec, what it tries)."""
    wp, op = "WorkloadProfile", "OptimizationPolicy"
    cases: list[tuple[str, dict[str, Any], str]] = []
    cases += [
        (wp, _spec(SERVING, model__architecture=ARCHITECTURE), "model name and architecture"),
        (wp, _spec(SERVING, model__name=REMOVE), "model with neither name nor architecture"),
        (wp, _spec(SERVING, model={}), "empty model"),
    ]
    for kv in (None, -4, 0, 1, 2, 6, 8, 16, 32, 33, 64):
        if kv is None:
            spec = _spec(CUSTOM_MOE, model__architecture__kvHeads=REMOVE)
        else:
            spec = _architecture(kvHeads=kv)
        cases.append((wp, spec, f"kvHeads {kv} of 32 attention heads"))
    for heads, hidden in ((64, 64), (65, 64), (96, 4096), (1024, 1024), (1024, 1023), (1, 64)):
        spec = _architecture(attentionHeads=heads, hiddenSize=hidden, kvHeads=1)
        cases.append((wp, spec, f"{heads} heads in hiddenSize {hidden}"))
    for experts, active in ((0, 0), (0, 1), (8, 0), (8, 1), (8, 8), (8, 9), (1, 1), (4096, 256), (300, 257)):
        spec = _architecture(experts=experts, activeExperts=active)
        cases.append((wp, spec, f"{active} of {experts} experts active"))
    cases.append((wp, _spec(CUSTOM_MOE, model__architecture__experts=0), "dense experts, activeExperts 2"))
    cases.append((wp, _spec(CUSTOM_MOE, model__architecture__activeExperts=REMOVE), "experts, no active"))
    params = ARCHITECTURE["parameters"]
    for active_params in (params, math.nextafter(params, math.inf), params * 2, 1.0):
        spec = _architecture(activeParameters=active_params)
        cases.append((wp, spec, f"activeParameters {active_params!r} of {params!r}"))
    for output, slo in (
        (1, {"tpotMs": 40}),
        (1, {"ttftMs": 40}),
        (1, {}),
        (2, {"tpotMs": 40}),
        (1, None),
        (None, {"tpotMs": 40}),
    ):
        inference: dict[str, Any] = {} if output is None else {"outputTokens": output}
        if slo is not None:
            inference["slo"] = slo
        cases.append((wp, _spec(SERVING, inference=inference), f"outputTokens {output} with slo {slo}"))
    for amounts in ({}, {"tokens": 1e9, "samples": 1e6}, {"tokens": 1e9}, {"samples": 1e6}):
        cases.append((wp, _spec(TRAINING, training=amounts), f"training amounts {amounts}"))
    for task in ("inference", "training"):
        for present in ((), ("inference",), ("training",), ("inference", "training")):
            spec = {"task": task, "model": {"name": "m"}}
            spec.update({p: SERVING[p] if p == "inference" else TRAINING[p] for p in present})
            cases.append((wp, spec, f"task {task} with {present or 'neither'}"))
    for low, high in ((4, 4), (3, 2), (4, 2), (1, 1), (9, None), (None, 1), (None, 0), (64, 64), (2, 64)):
        bounds = {
            **({} if low is None else {"minGpusPerReplica": low}),
            **({} if high is None else {"maxGpusPerReplica": high}),
        }
        cases.append((wp, _spec(SERVING, hardware=bounds), f"GPUs per replica {low}..{high}"))
    for operator in ("In", "NotIn", "Exists", "DoesNotExist"):
        for values in (REMOVE, [], ["a"], None, ["a", "b"]):
            requirement: dict[str, Any] = {"key": "team", "operator": operator}
            if values is not REMOVE:
                requirement["values"] = values
            spec = {"selector": {"matchExpressions": [requirement]}}
            cases.append((op, spec, f"{operator} with values {'absent' if values is REMOVE else values}"))
    weights = ("latency", "throughput", "cost", "energy", "carbon")
    cases.append((op, {"objectives": dict.fromkeys(weights, 0)}, "all weights zero"))
    cases.append((op, {"objectives": {"latency": 0, "cost": 0}}, "the default weights zeroed"))
    cases.append((op, {"objectives": {"latency": 0}}, "latency zero, cost by default"))
    for weight in weights:
        spec = {"objectives": {**dict.fromkeys(weights, 0), weight: 5e-324}}
        cases.append((op, spec, f"only {weight} positive, barely"))
    for low, high in ((5, 5), (3, 2), (5, 2), (0, 1), (11, None), (None, 0), (10000, 10000), (0, None)):
        scaling = {
            **({} if low is None else {"minReplicas": low}),
            **({} if high is None else {"maxReplicas": high}),
        }
        cases.append((op, {"scaling": scaling}, f"replicas {low}..{high}"))
    return cases


def _cases() -> list[Case]:
    rng = random.Random(SEED)
    cases: list[Case] = []

    def add(kind: str, spec: dict[str, Any], how: str) -> None:
        prefix = "wp" if kind == "WorkloadProfile" else "op"
        cases.append(Case(f"{prefix}-{len(cases):04d}", kind, spec, how))

    mutated: set[tuple[str, Path]] = set()
    singles: list[tuple[str, dict[str, Any], list[Mutation]]] = []
    for kind, base in BASES:
        add(kind, copy.deepcopy(base), "a valid base")
        # A field is mutated in the first base that holds it; later bases add only their own fields.
        own = [
            (path, value)
            for path, value in _field_mutations(SCHEMAS[kind], base, ())
            if (kind, path) not in mutated
        ]
        singles += [(kind, base, [mutation]) for mutation in own]
        mutated |= {(kind, path) for path, _ in own}
    for kind, base, mutations in singles:
        spec = _mutated(base, mutations)
        assert spec is not None
        add(kind, spec, _how(mutations))
    for kind, spec, how in _rule_cases():
        add(kind, spec, how)
    pairs = 0
    while pairs < RANDOM_PAIRS:
        kind, base, first = rng.choice(singles)
        second = rng.choice([m for _, b, m in singles if b is base])
        if _nested(first[0][0], second[0][0]):
            continue
        spec = _mutated(base, first + second)
        if spec is not None:
            add(kind, spec, f"{_how(first)} and {_how(second)}")
            pairs += 1
    return cases


def _nested(a: Path, b: Path) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


def _how(mutations: list[Mutation]) -> str:
    parts = []
    for path, value in mutations:
        where = field_path(path)
        parts.append(f"{where} removed" if value is REMOVE else f"{where} = {value!r}")
    return ", ".join(parts)


# --- the two sides -------------------------------------------------------------------------------------

# One line per rejected object. Only "is invalid" names the object; a strict decoding error
# (an unknown field) does not, so the lines are matched to the rejected objects in order.
_INVALID = re.compile(r'^Error from server \(Invalid\): .* "(?P<name>(wp|op)-\d+)" is invalid: (?P<c>.*)$')
_BAD_REQUEST = re.compile(r"^Error from server \(BadRequest\): .*strict decoding error: (?P<c>.*)$")
# One cause of an "is invalid": "spec.x[0]: Invalid value: ...", joined by ", " within [...] when several.
_PATH = r"(?:spec[\w.\[\]]*|<nil>)"
_CAUSE = re.compile(rf"(?:^\[?|, )(?P<path>{_PATH}): (?P<text>.*?)(?=, {_PATH}: |\]$|$)")
_UNKNOWN_FIELD = re.compile(r'unknown field "(spec[^"]*)"')
# The API server's note that a type error kept it from evaluating the CEL rules.
_NOT_CHECKED = "some validation rules were not checked"
_CEL_CAUSE = 'Invalid value: "object": '


def _ask_api_server(lab: Lab, cases: list[Case]) -> None:
    """Each case's rejection message from one `kubectl create --dry-run=server` of all of them."""
    stream = yaml.safe_dump_all([case.manifest for case in cases], sort_keys=False)
    result = lab.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-", input=stream, check=False
    )
    admitted = {line.rsplit("/", 1)[-1] for line in result.stdout.split()}
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith("Error from server (") for line in errors), result.stderr[:4000]
    pending = iter(errors)
    for case in cases:
        if case.name in admitted:
            continue
        line = next(pending, None)
        assert line is not None, f"kubectl printed no answer for {case.name}: {case.report()}"
        named = _INVALID.match(line)
        assert named is None or named["name"] == case.name, f"{line} is not about {case.name}"
        assert named or _BAD_REQUEST.match(line), f"unexpected kubectl error: {line}"
        case.server_error = line
    assert next(pending, None) is None, "kubectl printed more errors than objects it rejected"


def _ask_cli(case: Case) -> None:
    """The CLI's answer: the YAML as kubectl reads it, validated strictly as report.load_objects does."""
    spec = yaml.safe_load(yaml.safe_dump(case.spec))
    try:
        MODELS[case.kind].model_validate(spec, strict=True)
    except ValidationError as err:
        case.cli_errors = list(err.errors())


def _rules(schema: dict[str, Any]) -> Iterator[dict[str, str]]:
    yield from schema.get("x-kubernetes-validations", [])
    for sub in schema.get("properties", {}).values():
        yield from _rules(sub)
    if "items" in schema:
        yield from _rules(schema["items"])


def _schema_at(kind: str, loc: tuple[int | str, ...]) -> dict[str, Any]:
    node = SCHEMAS[kind]
    for part in loc:
        node = node["items"] if isinstance(part, int) else node["properties"][part]
    return node


@dataclass(frozen=True)
class Cause:
    """One field the API server names in a rejection; for a CEL rule, also the object the rule is on."""

    path: str
    rule_object: str | None


def _server_causes(kind: str, message: str) -> list[Cause]:
    named = _INVALID.match(message)
    assert named is not None, message
    rules = {rule["message"]: rule.get("fieldPath", "") for rule in _rules(SCHEMAS[kind])}
    causes = []
    for cause in _CAUSE.finditer(named["c"]):
        path, text = cause["path"], cause["text"]
        if path == "<nil>":
            continue
        rule = text.removeprefix(_CEL_CAUSE) if text.startswith(_CEL_CAUSE) else None
        if rule is not None and rule in rules:
            causes.append(Cause(path, path.removesuffix(rules[rule])))
        else:
            causes.append(Cause(path, None))
    return causes


def _cli_paths(case: Case, error: dict[str, Any]) -> set[str]:
    """The API server paths one pydantic error may appear as. A model validator reports a rule across
    fields at its object, and its message starts with the field it is about ("kvHeads must divide
    ..."), where the CEL rule's fieldPath points the API server at that field: either path agrees."""
    path = field_path(error["loc"])
    if error["type"] != "value_error":
        return {path}
    named = str(error["msg"]).removeprefix("Value error, ").split(" ", 1)[0]
    node = _schema_at(case.kind, error["loc"])
    for part in named.split("."):
        node = node.get("properties", {}).get(part, {})
    return {path, f"{path}.{named}"} if node else {path}


def _within(path: str, obj: str) -> bool:
    return path == obj or path.startswith((f"{obj}.", f"{obj}["))


def _field_disagreement(case: Case) -> str | None:
    """Why the two rejections of a case name different fields, or None when they name the same."""
    assert case.server_error is not None
    if _BAD_REQUEST.match(case.server_error):
        # Decoding stops at unknown fields, before the schema is checked: those are all it names.
        unknown = {field_path(e["loc"]) for e in case.cli_errors if e["type"] == "extra_forbidden"}
        named = set(_UNKNOWN_FIELD.findall(case.server_error))
        return None if unknown == named else f"unknown fields: CLI {sorted(unknown)}, API {sorted(named)}"
    causes = _server_causes(case.kind, case.server_error)
    server = {cause.path for cause in causes}
    cli = [(error, _cli_paths(case, error)) for error in case.cli_errors]
    unchecked = _NOT_CHECKED in case.server_error
    for error, paths in cli:
        # A type error elsewhere keeps the API server from its CEL rules; pydantic still runs the
        # validators of every object whose own fields are fine.
        if not paths & server and not (unchecked and error["type"] == "value_error"):
            return f"the API server does not name {sorted(paths)}"
    pydantic_paths = [field_path(error["loc"]) for error, _ in cli]
    for cause in causes:
        if any(cause.path in paths for _, paths in cli):
            continue
        # A model validator runs only when every field of its object is valid, and stops at the first
        # rule it finds broken, where the API server checks all CEL rules regardless: a rule on an
        # object pydantic already complained within is one it did not get to.
        if cause.rule_object is not None and any(_within(p, cause.rule_object) for p in pydantic_paths):
            continue
        return f"the CLI does not name {cause.path}"
    return None


def _pydantic_only(case: Case) -> bool:
    return bool(case.cli_errors) and all(
        any(text in error["msg"] for text in PYDANTIC_ONLY) for error in case.cli_errors
    )


@pytest.fixture(scope="module")
def answered(crds: Lab) -> list[Case]:
    cases = _cases()
    _ask_api_server(crds, cases)
    for case in cases:
        _ask_cli(case)
    return cases


def _listing(cases: list[Case], limit: int = 12) -> str:
    more = f"\n... and {len(cases) - limit} more" if len(cases) > limit else ""
    return "\n".join(case.report() for case in cases[:limit]) + more


def test_what_the_cli_accepts_the_api_server_admits(answered: list[Case]) -> None:
    refused = [case for case in answered if not case.cli_errors and case.server_error]
    assert not refused, f"{len(refused)} specs the CLI accepts are rejected by the API server:\n" + _listing(
        refused
    )


def test_what_the_api_server_admits_the_cli_accepts(answered: list[Case]) -> None:
    refused = [
        case for case in answered if case.cli_errors and not case.server_error and not _pydantic_only(case)
    ]
    assert not refused, f"{len(refused)} specs the API server admits are refused by the CLI:\n" + _listing(
        refused
    )


def test_both_name_the_same_fields(answered: list[Case]) -> None:
    differing = []
    for case in answered:
        if case.cli_errors and case.server_error is not None:
            why = _field_disagreement(case)
            if why is not None:
                differing.append(f"{why}: {case.report()}")
    more = f"\n... and {len(differing) - 12} more" if len(differing) > 12 else ""
    assert not differing, f"{len(differing)} specs are rejected for different fields:\n" + (
        "\n".join(differing[:12]) + more
    )


def test_the_specs_break_every_rule(answered: list[Case]) -> None:
    """Guards the generator: every base is valid, and every CEL rule is broken by some spec."""
    assert len(answered) >= 500
    bases = [case for case in answered if case.how == "a valid base"]
    assert len(bases) == len(BASES) and not any(c.cli_errors or c.server_error for c in bases)
    rejected = [case.server_error for case in answered if case.server_error]
    assert len(answered) / 4 < len(rejected) < len(answered) * 3 / 4
    for kind, schema in SCHEMAS.items():
        for rule in _rules(schema):
            assert any(rule["message"] in message for message in rejected), f"{kind}: never broke {rule}"
