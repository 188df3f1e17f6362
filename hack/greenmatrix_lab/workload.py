"""The replayed workload as the cluster has it: its Deployment, WorkloadProfile, Ready pods and their GPUs.

Read through the lab's kubectl (the lab needs nothing else to talk to its apiserver). The
replica's predicted behaviour comes from the engine through the `greenmatrix` facade: the
profile planned on the pod's GPU type alone, at the pod's GPU count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import greenmatrix
from greenmatrix_lab.emulation import ReplicaModel
from greenmatrix_lab.lab import Lab

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT = "nvidia.com/gpu.product"
GPU_MEMORY = "nvidia.com/gpu.memory"
DRIVER_VERSION = "nvidia.com/cuda.driver-version.full"
PROFILES = "workloadprofiles.greenmatrix.io"
# Used when no WorkloadProfile in the namespace targets the Deployment: the 8B chat assistant of
# examples/llama-8b-chat.yaml, a common vLLM deployment.
DEFAULT_PROFILE: dict[str, Any] = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16", "framework": "vllm"},
    "inference": {"inputTokens": 1024, "outputTokens": 256, "concurrency": 32},
}


class TargetError(ValueError):
    """The --target cannot be replayed; the message names it and says what is missing."""


@dataclass(frozen=True)
class Target:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Target:
        namespace, _, name = text.partition("/")
        if not namespace or not name or "/" in name:
            raise TargetError(f"--target must be NAMESPACE/DEPLOYMENT, got {text!r}")
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ReadyPod:
    name: str
    node: str
    container: str
    gpus: int


def _get_json(lab: Lab, *args: str, timeout: float = 60) -> dict[str, Any] | None:
    result = lab.kubectl("get", *args, "-o", "json", check=False, timeout=timeout)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "the server doesn't have a resource type" in result.stderr:
            return None
        raise TargetError(f"`kubectl get {' '.join(args)}` failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def deployment_selector(lab: Lab, target: Target) -> str:
    """The label selector of the target's pods; TargetError when the Deployment does not exist."""
    deployment = _get_json(lab, "deployment", target.name, "-n", target.namespace)
    if deployment is None:
        raise TargetError(
            f"--target {target}: no Deployment {target.name!r} in namespace {target.namespace!r}"
        )
    selector = deployment["spec"]["selector"]
    terms = [f"{k}={v}" for k, v in sorted(selector.get("matchLabels", {}).items())]
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        terms.append(
            {
                "In": f"{key} in ({','.join(values)})",
                "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[operator]
        )
    return ",".join(terms)


def deployment_replicas(lab: Lab, target: Target) -> int | None:
    """spec.replicas of the target (None when it is gone)."""
    deployment = _get_json(lab, "deployment", target.name, "-n", target.namespace, timeout=10)
    return None if deployment is None else int(deployment["spec"].get("replicas", 1))


def find_profile(lab: Lab, target: Target) -> tuple[Any, str | None]:
    """The spec of the WorkloadProfile whose targetRef names the Deployment, and its name.

    (DEFAULT_PROFILE, None) when there is none (or the CRDs are not installed)."""
    listing = _get_json(lab, PROFILES, "-n", target.namespace)
    for item in (listing or {}).get("items", []):
        ref = item.get("spec", {}).get("targetRef") or {}
        if ref.get("name") == target.name and ref.get("kind", "Deployment") == "Deployment":
            spec = greenmatrix.WorkloadProfileSpec.model_validate(item["spec"])
            if spec.task != "inference":
                raise TargetError(
                    f"--target {target}: WorkloadProfile {item['metadata']['name']} is a training "
                    "workload; replay emulates serving only"
                )
            return spec, item["metadata"]["name"]
    return greenmatrix.WorkloadProfileSpec.model_validate(DEFAULT_PROFILE), None


def ready_pods(lab: Lab, target: Target, selector: str) -> list[ReadyPod]:
    """The target's pods that are Ready and not terminating, by name."""
    # Short: the replay polls every second and keeps its pods when one listing is slow.
    listing = _get_json(lab, "pods", "-n", target.namespace, "-l", selector, timeout=10) or {"items": []}
    pods = []
    for pod in listing["items"]:
        meta, status = pod["metadata"], pod.get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        node = pod.get("spec", {}).get("nodeName")
        if not ready or not node or meta.get("deletionTimestamp"):
            continue
        container, gpus = _gpu_container(pod["spec"].get("containers", []))
        pods.append(ReadyPod(meta["name"], node, container, gpus))
    return sorted(pods, key=lambda p: p.name)


def _gpu_container(containers: list[dict[str, Any]]) -> tuple[str, int]:
    """The container that holds the GPUs (the serving engine) and how many it holds."""
    best = (containers[0]["name"] if containers else "", 0)
    for container in containers:
        resources = container.get("resources", {})
        count = resources.get("limits", {}).get(GPU_RESOURCE) or resources.get("requests", {}).get(
            GPU_RESOURCE
        )
        if count and int(count) > best[1]:
            best = (container["name"], int(count))
    return best


def node_labels(lab: Lab, node: str) -> dict[str, str]:
    found = _get_json(lab, "node", node)
    return dict((found or {}).get("metadata", {}).get("labels", {}))


class ReplicaModels:
    """The engine's prediction for a replica of `spec` per (GPU product, GPUs per replica), cached."""

    def __init__(self, spec: Any) -> None:
        # Only the hardware in question is planned: the spec's own restrictions may exclude it.
        self.spec = spec.model_copy(update={"hardware": None})
        self._cache: dict[tuple[str, str, int], ReplicaModel] = {}

    def for_node(self, labels: Mapping[str, str], gpus: int, where: str) -> ReplicaModel:
        product = labels.get(GPU_PRODUCT, "")
        memory = labels.get(GPU_MEMORY, "")
        key = (product, memory, gpus)
        if key not in self._cache:
            self._cache[key] = self._predict(product, memory, gpus, where)
        return self._cache[key]

    def _predict(self, product: str, memory: str, gpus: int, where: str) -> ReplicaModel:
        if gpus < 1:
            raise TargetError(f"{where}: requests no {GPU_RESOURCE}; replay emulates GPU serving pods")
        node = greenmatrix.NodeHardware.from_node("node", {GPU_PRODUCT: product, GPU_MEMORY: memory})
        gpu = node.gpu.key if node.gpu else None
        if gpu is None:
            raise TargetError(f"{where}: the node's {GPU_PRODUCT}={product!r} is no GPU the catalog knows")
        plan = greenmatrix.plan(self.spec, None, gpus=[gpu], advise=False)
        options = [
            o for o in plan.options if o.gpu == gpu and o.ttft_ms is not None and o.tpot_ms is not None
        ]
        if not options:
            raise TargetError(
                f"{where}: the engine has no latency prediction for {self.spec.model.name} on {gpu}"
            )
        option = min(options, key=lambda o: (abs(o.gpus_per_replica - gpus), o.gpus_per_replica))
        inference = self.spec.inference
        from greenmatrix.catalog import hardware  # the datasheet TDP; the facade has no GPU lookup

        spec = hardware.try_gpu(gpu)
        latency = option.request_latency_ms or greenmatrix.Interval(0, 0, 0)
        capacity = greenmatrix.replica_capacity(inference.concurrency, latency).p50
        return ReplicaModel(
            model_name=self.spec.model.name or "model",
            gpu=gpu,
            gpus=gpus,
            ttft_s=option.ttft_ms.p50 / 1e3,
            tpot_s=option.tpot_ms.p50 / 1e3,
            concurrency=inference.concurrency,
            input_tokens=inference.input_tokens,
            output_tokens=inference.output_tokens,
            tdp_watts=spec.tdp_watts if spec else 400.0,
            memory_mib=float(memory) if memory.isdigit() else (spec.memory_gib * 1024 if spec else 81920.0),
            capacity=capacity,
        )
