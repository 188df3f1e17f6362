"""The metrics an emulated pod publishes, named and labelled as vLLM and the DCGM exporter do.

vLLM (v1 engine, `vllm/v1/metrics/loggers.py`): labels `model_name` and `engine`; counters
`vllm:request_success_total{finished_reason}`, `vllm:prompt_tokens_total`,
`vllm:generation_tokens_total`; gauges `vllm:num_requests_running`, `vllm:num_requests_waiting`,
`vllm:kv_cache_usage_perc` (0-1); histograms of TTFT, time per output token and end-to-end
latency with vLLM's own bucket boundaries.

DCGM exporter (default counters, `DCGM_EXPORTER_KUBERNETES=true`): one series per GPU of the pod
with `gpu`, `UUID`, `device`, `modelName`, `pci_bus_id`, `Hostname`, `DCGM_FI_DRIVER_VERSION`
and the pod's `namespace`, `pod`, `container`. Prometheus scrapes these with honor_labels (as a
real setup scraping the node's exporter must), so the pod labels stored are the workload's.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from greenmatrix_lab.emulation import GPUReading, Histogram, Replica

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
TPOT_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
E2E_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
BUCKETS = {"ttft": TTFT_BUCKETS, "tpot": TPOT_BUCKETS, "e2e": E2E_BUCKETS}
HISTOGRAMS = {
    "ttft": "vllm:time_to_first_token_seconds",
    "tpot": "vllm:time_per_output_token_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}
FINISHED_REASONS = ("stop", "length", "abort")
DCGM_METRICS = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
)
_HELP = {
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:prompt_tokens": "Number of prefill tokens processed.",
    "vllm:generation_tokens": "Number of generation tokens processed.",
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:time_per_output_token_seconds": "Histogram of time per output token in seconds.",
    "vllm:e2e_request_latency_seconds": "Histogram of e2e request latency in seconds.",
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %).",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw (in W).",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB).",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "Total energy consumption since boot (in mJ).",
    "kube_deployment_spec_replicas": "Number of desired pods for a deployment.",
    "kube_deployment_status_replicas_ready": "The number of ready replicas per deployment.",
}
_TYPES = {
    "vllm:request_success": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    **{name: "histogram" for name in HISTOGRAMS.values()},
    "DCGM_FI_DEV_GPU_UTIL": "gauge",
    "DCGM_FI_DEV_POWER_USAGE": "gauge",
    "DCGM_FI_DEV_FB_USED": "gauge",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "counter",
    "kube_deployment_spec_replicas": "gauge",
    "kube_deployment_status_replicas_ready": "gauge",
}

Sample = tuple[str, dict[str, str], float]


@dataclass(frozen=True)
class PodIdentity:
    """Who a pod is, as the exporters label it."""

    namespace: str
    pod: str
    node: str
    container: str
    gpu_indices: tuple[int, ...]
    """Device indices on the node (pods sharing a node hold different GPUs)."""
    product: str
    """The node's nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3."""
    driver_version: str = ""

    def gpu_labels(self, index: int) -> dict[str, str]:
        seed = hashlib.blake2b(f"{self.node}/{index}".encode(), digest_size=16).digest()
        labels = {
            "gpu": str(index),
            "UUID": f"GPU-{uuid.UUID(bytes=seed)}",
            "pci_bus_id": f"00000000:{0x18 + 0x10 * index:02X}:00.0",
            "device": f"nvidia{index}",
            "modelName": self.product.replace("-", " "),
            "Hostname": self.node,
        }
        if self.driver_version:
            labels["DCGM_FI_DRIVER_VERSION"] = self.driver_version
        labels.update(container=self.container, namespace=self.namespace, pod=self.pod)
        return labels


def samples(replica: Replica, identity: PodIdentity) -> list[Sample]:
    """Every series of the pod with its current value (histograms as _bucket, _sum, _count)."""
    engine = {"model_name": replica.model.model_name, "engine": "0"}
    tick = replica.last
    out: list[Sample] = []
    for reason in FINISHED_REASONS:
        done = math.floor(replica.requests) if reason == "stop" else 0
        out.append(("vllm:request_success_total", {**engine, "finished_reason": reason}, float(done)))
    out.append(("vllm:prompt_tokens_total", dict(engine), float(math.floor(replica.prompt_tokens))))
    out.append(("vllm:generation_tokens_total", dict(engine), float(math.floor(replica.generation_tokens))))
    out.append(("vllm:num_requests_running", dict(engine), float(round(tick.running))))
    out.append(("vllm:num_requests_waiting", dict(engine), float(round(tick.waiting))))
    out.append(("vllm:kv_cache_usage_perc", dict(engine), round(tick.kv_usage, 4)))
    for key, name in HISTOGRAMS.items():
        out.extend(_histogram(name, engine, replica.histograms[key]))
    gpus = list(zip(tick.gpus, identity.gpu_indices, strict=True))
    # A family's lines stay together, as the text format wants: metric first, then each GPU.
    for name in DCGM_METRICS:
        for reading, index in gpus:
            out.append((name, identity.gpu_labels(index), _dcgm_value(name, reading)))
    return out


def deployment_samples(namespace: str, deployment: str, replicas: int, ready: int) -> list[Sample]:
    """kube-state-metrics' view of a Deployment: desired and Ready replicas."""
    labels = {"namespace": namespace, "deployment": deployment}
    return [
        ("kube_deployment_spec_replicas", dict(labels), float(replicas)),
        ("kube_deployment_status_replicas_ready", dict(labels), float(ready)),
    ]


def _dcgm_value(name: str, reading: GPUReading) -> float:
    return {
        "DCGM_FI_DEV_GPU_UTIL": reading.util_percent,
        "DCGM_FI_DEV_POWER_USAGE": round(reading.watts, 3),
        "DCGM_FI_DEV_FB_USED": reading.fb_used_mib,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": float(math.floor(reading.energy_mj)),
    }[name]


def _histogram(name: str, labels: Mapping[str, str], histogram: Histogram) -> Iterator[Sample]:
    count = math.floor(histogram.count)
    for bound, value in zip(histogram.bounds, histogram.buckets, strict=True):
        yield f"{name}_bucket", {**labels, "le": _number(bound)}, float(min(math.floor(value), count))
    yield f"{name}_bucket", {**labels, "le": "+Inf"}, float(count)
    yield f"{name}_sum", dict(labels), histogram.total
    yield f"{name}_count", dict(labels), float(count)


def _number(value: float) -> str:
    return repr(float(value))


def family(name: str) -> str:
    """The metric family a series name belongs to (`x_bucket` -> `x`, `c_total` -> `c`)."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and _TYPES.get(base) == "histogram":
            return base
    base = name.removesuffix("_total")
    return base if _TYPES.get(base) == "counter" else name


def render(series: list[Sample]) -> str:
    """The Prometheus text format (0.0.4) of `series`, HELP and TYPE lines before each family."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in series:
        base = family(name)
        if base not in seen:
            seen.add(base)
            lines.append(f"# HELP {base} {_HELP.get(base, base)}")
            lines.append(f"# TYPE {base} {_TYPES.get(base, 'untyped')}")
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{text}}} {_value(value)}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
