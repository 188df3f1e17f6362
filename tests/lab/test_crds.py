"""The generated CRDs on a real API server: they install, explain themselves, and refuse bad specs.

Rejections go through `kubectl create --dry-run=server`, so the API server's own OpenAPI and CEL
validation answers, exactly as a user applying a manifest would see it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from greenmatrix_lab import Lab
from operator_helpers import wait_until

# The `crds` and `gm_operator` fixtures (a plugin, so session fixtures run once per session).
pytest_plugins = ["operator_fixtures"]

NAMESPACE = "default"

WORKLOAD: dict[str, Any] = {
    "apiVersion": "greenmatrix.io/v1alpha1",
    "kind": "WorkloadProfile",
    "metadata": {"name": "bad", "namespace": NAMESPACE},
    "spec": {
        "task": "inference",
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16"},
        "inference": {"inputTokens": 1024, "outputTokens": 256},
    },
}
TRAINING: dict[str, Any] = {
    **WORKLOAD,
    "spec": {"task": "training", "model": {"name": "meta-llama/Llama-3.1-8B"}, "training": {"tokens": 1e9}},
}
ARCHITECTURE = {"parameters": 1.0e9, "layers": 16, "hiddenSize": 2048, "attentionHeads": 16}
POLICY: dict[str, Any] = {
    "apiVersion": "greenmatrix.io/v1alpha1",
    "kind": "OptimizationPolicy",
    "metadata": {"name": "bad", "namespace": NAMESPACE},
    "spec": {"selector": {}},
}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (or removed when value is ...)."""
    doc = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        del node[leaf]
    else:
        node[leaf] = value
    return doc


# (case id, manifest, substrings the API server's answer must contain)
MALFORMED = [
    ("missing-task", _with(WORKLOAD, "spec.task", ...), ["spec.task", "Required value"]),
    (
        "bad-precision",
        _with(WORKLOAD, "spec.model.precision", "fp9"),
        ["spec.model.precision", "Unsupported value"],
    ),
    ("bad-task", _with(WORKLOAD, "spec.task", "serving"), ["spec.task", "Unsupported value"]),
    (
        "negative-tokens",
        _with(TRAINING, "spec.training.tokens", -5),
        ["spec.training.tokens", "greater than 0"],
    ),
    (
        "zero-input-tokens",
        _with(WORKLOAD, "spec.inference.inputTokens", 0),
        ["spec.inference.inputTokens", "greater than or equal to 1"],
    ),
    (
        "zero-requests-per-second",
        _with(WORKLOAD, "spec.inference.requestsPerSecond", 0),
        ["spec.inference.requestsPerSecond", "greater than 0"],
    ),
    (
        "name-and-architecture",
        _with(WORKLOAD, "spec.model.architecture", ARCHITECTURE),
        ["spec.model", "set exactly one of model.name"],
    ),
    (
        "neither-name-nor-architecture",
        _with(WORKLOAD, "spec.model", {"precision": "bf16"}),
        ["spec.model", "set exactly one of model.name"],
    ),
    (
        "inference-task-without-inference",
        _with(WORKLOAD, "spec.inference", ...),
        ["spec", "task inference needs spec.inference"],
    ),
    (
        "training-task-with-inference",
        _with(TRAINING, "spec.inference", {"inputTokens": 10}),
        ["task training needs spec.training and no spec.inference"],
    ),
    (
        "tokens-and-samples",
        _with(TRAINING, "spec.training.samples", 1000),
        ["spec.training", "set exactly one of training.tokens or training.samples"],
    ),
    (
        "kv-heads-over-attention-heads",
        _with(
            _with(WORKLOAD, "spec.model", {"architecture": {**ARCHITECTURE, "kvHeads": 32}}),
            "spec.model.precision",
            "bf16",
        ),
        ["spec.model.architecture.kvHeads", "kvHeads must divide attentionHeads"],
    ),
    (
        "tpot-objective-with-one-output-token",
        _with(WORKLOAD, "spec.inference", {"outputTokens": 1, "slo": {"tpotMs": 40}}),
        ["spec.inference.slo.tpotMs", "slo.tpotMs needs outputTokens of 2 or more"],
    ),
    (
        "kv-heads-not-dividing-attention-heads",
        _with(WORKLOAD, "spec.model", {"architecture": {**ARCHITECTURE, "kvHeads": 6}}),
        ["spec.model.architecture.kvHeads", "kvHeads must divide attentionHeads"],
    ),
    (
        "attention-heads-over-hidden-size",
        _with(
            WORKLOAD,
            "spec.model",
            {"architecture": {**ARCHITECTURE, "hiddenSize": 64, "attentionHeads": 128}},
        ),
        ["spec.model.architecture.attentionHeads", "attentionHeads must not exceed hiddenSize"],
    ),
    (
        "active-experts-over-experts",
        _with(WORKLOAD, "spec.model", {"architecture": {**ARCHITECTURE, "experts": 8, "activeExperts": 9}}),
        ["spec.model.architecture.activeExperts", "activeExperts must be between 1 and experts"],
    ),
    (
        "min-gpus-over-max",
        _with(WORKLOAD, "spec.hardware", {"minGpusPerReplica": 4, "maxGpusPerReplica": 2}),
        ["spec.hardware.minGpusPerReplica", "minGpusPerReplica must not exceed maxGpusPerReplica"],
    ),
    (
        "gpu-name-with-bad-characters",
        _with(WORKLOAD, "spec.hardware", {"allowedGpus": ["H100;rm -rf"]}),
        ["spec.hardware.allowedGpus[0]", "should match"],
    ),
    (
        "bad-duration",
        _with(POLICY, "spec.scaling", {"cooldown": "5 minutes"}),
        ["spec.scaling.cooldown", "should match"],
    ),
    (
        "policy-min-replicas-over-max",
        _with(POLICY, "spec.scaling", {"minReplicas": 5, "maxReplicas": 2}),
        ["spec.scaling.minReplicas", "minReplicas must not exceed maxReplicas"],
    ),
    (
        "all-objective-weights-zero",
        _with(
            POLICY, "spec.objectives", {"latency": 0, "throughput": 0, "cost": 0, "energy": 0, "carbon": 0}
        ),
        ["spec.objectives", "at least one objective weight must be positive"],
    ),
    ("bad-mode", _with(POLICY, "spec.mode", "Yolo"), ["spec.mode", "Unsupported value"]),
    (
        "selector-in-without-values",
        _with(POLICY, "spec.selector", {"matchExpressions": [{"key": "team", "operator": "In"}]}),
        ["values must be non-empty for In and NotIn"],
    ),
    (
        "priority-out-of-range",
        _with(POLICY, "spec.priority", 5000),
        ["spec.priority", "less than or equal to 1000"],
    ),
    ("unknown-field", _with(WORKLOAD, "spec.model.foo", "bar"), ['unknown field "spec.model.foo"']),
]


def test_crds_are_established_with_short_names(crds: Lab) -> None:
    names = crds.kubectl("api-resources", "--api-group=greenmatrix.io", "-o", "wide").stdout
    assert "workloadprofiles" in names and " wp " in f" {names} ".replace("\t", " ")
    assert "optimizationpolicies" in names


def _explain(lab: Lab, field: str) -> str:
    # The API server publishes a new CRD's OpenAPI a moment after it is Established.
    result = wait_until(
        lambda: (r := lab.kubectl("explain", field, check=False)).returncode == 0 and r,
        60,
        f"kubectl explain {field}",
    )
    return result.stdout


def test_kubectl_explain_shows_the_models_descriptions(crds: Lab) -> None:
    text = _explain(crds, "wp.spec.model")
    assert "The model and how it is run." in text
    assert "Catalog name of the model" in text  # the name field's description
    assert "precision" in text and "framework" in text
    policy = _explain(crds, "op.spec.objectives")
    assert "Weights of latency, throughput, cost, energy and carbon" in policy
    assert "Weight of emissions" in policy  # a nested field's description


@pytest.mark.parametrize(
    ("manifest", "expected"), [(m, e) for _, m, e in MALFORMED], ids=[c for c, _, _ in MALFORMED]
)
def test_api_server_rejects_malformed_manifests(
    crds: Lab, manifest: dict[str, Any], expected: list[str]
) -> None:
    result = crds.kubectl(
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=yaml.safe_dump(manifest),
        check=False,
    )
    assert result.returncode != 0, f"accepted: {manifest}"
    for text in expected:
        assert text in result.stderr, f"{text!r} not in: {result.stderr}"


def test_the_unmodified_bases_are_accepted(crds: Lab) -> None:
    # Guards the table above: each case fails for its own mutation, not for a broken base.
    for base in (WORKLOAD, TRAINING, POLICY):
        crds.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump(base))
