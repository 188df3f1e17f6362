"""The API models are the one source of truth: the CRDs on disk must be exactly what they generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.crd import KINDS, custom_resource_definition, render_all, render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_equal_regenerated_bytes() -> None:
    for name, text in render_all().items():
        assert (ROOT / "crds" / name).read_text() == text, f"crds/{name} is stale: run `greenmatrix crds`"
    reference = (ROOT / "docs" / "crd-reference.md").read_text()
    assert reference == render_reference(), "docs/crd-reference.md is stale: run `greenmatrix crds`"


def _walk(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_has_a_description_and_no_json_schema_leftovers(kind) -> None:
    root = custom_resource_definition(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for section in ("spec", "status"):
        for path, node in _walk(root["properties"][section], section):
            if not (path.endswith("[]") and node.get("type") != "object"):  # scalar items share the list's
                assert node.get("description"), f"{kind.kind} {path} has no description (kubectl explain)"
            assert "type" in node, f"{kind.kind} {path} has no type (structural schemas need one)"
            for forbidden in ("$ref", "anyOf", "allOf", "title", "const"):
                assert forbidden not in node, f"{kind.kind} {path} keeps {forbidden}"
            assert node.get("additionalProperties") is not False


def test_crds_carry_cel_rules_and_printer_columns() -> None:
    text = render_all()["greenmatrix.io_workloadprofiles.yaml"]
    crd = yaml.safe_load(text)
    version = crd["spec"]["versions"][0]
    rules = [
        rule["rule"]
        for _, node in _walk(version["schema"]["openAPIV3Schema"])
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert any("has(self.name) != has(self.architecture)" in r for r in rules)
    assert any("self.task == 'inference'" in r for r in rules)
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"GPU", "Count", "Ready", "Latency"}
    assert crd["spec"]["names"]["shortNames"] == ["wp"]
    assert crd["spec"]["names"]["categories"] == ["greenmatrix"]


def _spec(path: Path) -> tuple[str, dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return doc["kind"], doc["spec"]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_parse(path: Path) -> None:
    kind, spec = _spec(path)
    model = WorkloadProfileSpec if kind == "WorkloadProfile" else OptimizationPolicySpec
    parsed = model.model_validate(spec)
    # Round trip: what the operator would write back is what the user wrote, plus defaults.
    wire = parsed.to_wire()
    assert model.model_validate(wire) == parsed


BASE = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
    "inference": {"inputTokens": 128},
}


def _tiny(**numbers: Any) -> dict[str, Any]:
    """A two-layer architecture; `numbers` add to or replace its numbers."""
    return {"parameters": 1e9, "layers": 2, "hiddenSize": 64, "attentionHeads": 2, **numbers}


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"model": {"name": "x", "architecture": _tiny()}}, "exactly one of model.name"),
        ({"model": {}}, "exactly one of model.name"),
        ({"task": "training"}, "task training needs spec.training"),
        ({"inference": {"inputTokens": -1}}, "inputTokens"),
        ({"model": {"name": "x", "precision": "fp7"}}, "precision"),
        ({"hardware": {"minGpusPerReplica": 4, "maxGpusPerReplica": 2}}, "minGpusPerReplica"),
        ({"model": {"architecture": _tiny(kvHeads=4)}}, "kvHeads"),
        ({"model": {"architecture": _tiny(experts=8, activeExperts=9)}}, "activeExperts"),
        ({"inference": {"bogus": 1}}, "bogus"),
    ],
)
def test_bad_specs_name_the_field(patch: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        WorkloadProfileSpec.model_validate({**BASE, **patch})
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"objectives": {"latency": 0, "cost": 0}}, "at least one objective weight"),
        ({"scaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
        ({"scaling": {"cooldown": "5 minutes"}}, "cooldown"),
        ({"mode": "Sometimes"}, "mode"),
        ({"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}, "operator"),
    ],
)
def test_bad_policies_name_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        OptimizationPolicySpec.model_validate(spec)
    assert needle in str(err.value)


def test_label_selector_follows_kubernetes_semantics() -> None:
    spec = OptimizationPolicySpec.model_validate(
        {
            "selector": {
                "matchLabels": {"team": "chat"},
                "matchExpressions": [
                    {"key": "tier", "operator": "NotIn", "values": ["batch"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            }
        }
    )
    assert spec.selector.matches({"team": "chat"})
    assert spec.selector.matches({"team": "chat", "tier": "interactive"})
    assert not spec.selector.matches({"team": "chat", "tier": "batch"})
    assert not spec.selector.matches({"team": "chat", "legacy": "yes"})
    assert not spec.selector.matches({"team": "search"})
    assert OptimizationPolicySpec().selector.matches({"anything": "at all"})
