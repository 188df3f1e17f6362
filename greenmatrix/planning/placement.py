"""Where the recommended pods go: the node selector and the resources each pod asks for."""

from __future__ import annotations

import math

from greenmatrix.planning.context import Evaluated, PlanContext
from greenmatrix.predict.roofline import TRAINING_STATE_BYTES_PER_PARAM

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
CPU_VENDOR_LABEL = "feature.node.kubernetes.io/cpu-model.vendor_id"
CPU_AMX_LABEL = "feature.node.kubernetes.io/cpu-cpuid.AMXBF16"
# Host resources a serving pod asks for beside its GPUs: tokenisation, the HTTP server, and
# room to stage the weights in host memory while loading them.
CPU_CORES_PER_GPU = 4
HOST_MEMORY_MARGIN_GIB = 8.0
TRAINING_CPU_CORES_PER_GPU = 8
TRAINING_HOST_GIB_PER_GPU = 4.0


def pod_resources(ctx: PlanContext, e: Evaluated) -> dict[str, dict[str, str]]:
    o = e.option
    if o.cpu is not None:
        cores = o.cpu.cores
        memory = math.ceil(e.weights_gib * 1.5 + HOST_MEMORY_MARGIN_GIB)
        requests = {"cpu": str(cores), "memory": f"{memory}Gi"}
        return {"requests": requests, "limits": {"memory": f"{memory}Gi"}}
    n = o.gpus_per_replica
    if ctx.spec.task == "training":
        # A worker pod stages its share of the sharded states when checkpointing, and feeds its GPUs
        # from data-loader processes.
        states_gib = TRAINING_STATE_BYTES_PER_PARAM * ctx.arch.params_total / 2**30 / max(o.pods, 1)
        memory = math.ceil(states_gib + HOST_MEMORY_MARGIN_GIB + TRAINING_HOST_GIB_PER_GPU * n)
        cores = TRAINING_CPU_CORES_PER_GPU * n
    else:
        memory = math.ceil(e.weights_gib + HOST_MEMORY_MARGIN_GIB)
        cores = CPU_CORES_PER_GPU * n
    requests = {"nvidia.com/gpu": str(n), "cpu": str(cores), "memory": f"{memory}Gi"}
    return {"requests": requests, "limits": {"nvidia.com/gpu": str(n), "memory": f"{memory}Gi"}}


def node_selector_for(e: Evaluated) -> dict[str, str] | None:
    o = e.option
    if not o.in_cluster:
        return None
    if o.cpu is not None:
        selector = {CPU_VENDOR_LABEL: o.cpu.vendor.capitalize() if o.cpu.vendor != "amd" else "AMD"}
        if o.cpu.amx:
            selector[CPU_AMX_LABEL] = "true"
        return selector
    return {GPU_PRODUCT_LABEL: o.product} if o.product else None
