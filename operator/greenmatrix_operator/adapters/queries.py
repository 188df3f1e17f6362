"""Default PromQL per serving engine, scoped to one workload's pods; `spec.metrics` overrides any of them.

A figure is one number the live loop reads (`request_rate`, `ttft_p95_seconds`, ...), always already
aggregated over the target's pods: counters as the sum of their per-second rates, latencies as the
95th percentile of the pods' merged histograms, gauges summed (requests, memory, power) or averaged
(utilisation, KV-cache use). Engines name the same figure differently and some lack one (TGI has no
time-to-first-token histogram); where versions renamed a metric, both names are asked for with
`or`, the current name first. Training frameworks publish no serving metrics: only the GPU figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FIGURES = (
    "request_rate",
    "prompt_tokens_rate",
    "generation_tokens_rate",
    "ttft_p95_seconds",
    "tpot_p95_seconds",
    "ttft_mean_seconds",
    "tpot_mean_seconds",
    "running_requests",
    "waiting_requests",
    "kv_cache_usage",
    "gpu_utilization",
    "gpu_memory_used_mib",
    "power_watts",
)
# The figures `spec.metrics` can override, by their field's name on the wire.
OVERRIDE_FIELDS = {
    "request_rate": "requestRate",
    "ttft_p95_seconds": "ttftP95Seconds",
    "tpot_p95_seconds": "tpotP95Seconds",
    "gpu_utilization": "gpuUtilization",
    "power_watts": "powerWatts",
}
SERVING_FRAMEWORKS = ("vllm", "sglang", "tgi", "trtllm", "triton")
GPU_ONLY_FRAMEWORKS = ("pytorch", "jax", "onnxruntime", "other")
# Kubernetes names a pod `<base>` cut to 58 characters plus 5 random ones; a Deployment's base is
# `<name>-<pod-template-hash>-`, the hash being at most 10 characters.
_GENERATED_BASE = 58
_HASH_MAX = 10


@dataclass(frozen=True)
class Scope:
    """The target's pods: a namespace and an RE2 pattern Prometheus anchors at both ends."""

    namespace: str
    pod_pattern: str

    def selector(self, *matchers: str, exported: bool = False) -> str:
        """`{namespace="...", pod=~"..."}` plus `matchers`; `exported` uses the labels a scrape renames
        a target's own `namespace`/`pod` to (an exporter that reports other pods' GPUs)."""
        prefix = "exported_" if exported else ""
        namespace = f'{prefix}namespace="{_quoted(self.namespace)}"'
        pods = f'{prefix}pod=~"{_quoted(self.pod_pattern)}"'
        return "{" + ", ".join([*matchers, namespace, pods]) + "}"


@dataclass(frozen=True)
class Query:
    """One figure's PromQL; `field` is the spec path when the user wrote it (else None)."""

    figure: str
    promql: str
    field: str | None = None


def scope_of(namespace: str, target_ref: Mapping[str, Any]) -> Scope:
    """The pods of a Deployment (`name-<hash>-<5 chars>`) or a StatefulSet (`name-<ordinal>`)."""
    kind, name = target_ref.get("kind"), str(target_ref.get("name", ""))
    if not name:
        raise ValueError("targetRef has no name")
    if kind == "StatefulSet":
        return Scope(namespace, f"{_literal(name)}-[0-9]+")
    if kind != "Deployment":
        raise ValueError(f"targetRef kind {kind!r} is not Deployment or StatefulSet")
    base = f"{name}-"
    room = _GENERATED_BASE - len(base)  # characters left for `<hash>-` before the cut
    if room <= 0:
        return Scope(namespace, f"{_literal(base[:_GENERATED_BASE])}[a-z0-9]{{5}}")
    # No dash inside the hash: `web-<hash>-<x>` never matches a sibling `web-canary-<hash>-<x>`.
    whole = f"[a-z0-9]{{1,{min(_HASH_MAX, room - 1)}}}-[a-z0-9]{{5}}" if room >= 2 else None
    # A hash too long for the room is cut with its dash: 63 characters, no dash after the name.
    cut = f"[a-z0-9]{{{room + 5}}}" if room <= _HASH_MAX else None
    tail = "|".join(p for p in (whole, cut) if p)
    return Scope(namespace, _literal(base) + (f"({tail})" if whole and cut else tail))


def default_window(scrape_interval: float = 15.0) -> float:
    """A rate window that always holds a few scrapes: at least 60 s and 4 scrape intervals."""
    return max(60.0, 4.0 * scrape_interval)


def duration(seconds: float) -> str:
    """Seconds as a PromQL duration (whole seconds, at least 1s)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a window must be a positive number of seconds, got {seconds!r}")
    return f"{max(1, round(seconds))}s"


def queries_for(
    spec_metrics: Mapping[str, Any] | None, framework: str, scope: Scope, window: float
) -> dict[str, Query]:
    """Every figure's query for this workload: the engine's defaults, then the user's overrides."""
    if framework in SERVING_FRAMEWORKS:
        defaults = {**_ENGINES[framework](scope, duration(window)), **_gpu(scope)}
    elif framework in GPU_ONLY_FRAMEWORKS:
        defaults = _gpu(scope)
    else:
        raise ValueError(f"unknown framework {framework!r}")
    queries = {figure: Query(figure, promql) for figure, promql in defaults.items()}
    for figure, field in OVERRIDE_FIELDS.items():
        promql = _override(spec_metrics, figure, field)
        if promql:
            queries[figure] = Query(figure, promql, f"spec.metrics.{field}")
    return {figure: queries[figure] for figure in FIGURES if figure in queries}


def _override(spec_metrics: Mapping[str, Any] | None, figure: str, field: str) -> str | None:
    """A CR's dict is camelCase; a model dump may be snake_case: accept either."""
    if not spec_metrics:
        return None
    value = spec_metrics.get(field, spec_metrics.get(figure))
    if value is None:
        return None
    return str(value).strip() or None


# -- building blocks ----------------------------------------------------------------------------


def _rate(metric: str, sel: str, w: str) -> str:
    return f"sum(rate({metric}{sel}[{w}]))"


def _arrivals(completed: str, queue: str, sel: str, w: str) -> str:
    """Requests arriving per second: those completed plus the queue's growth. Completions alone stop
    at what the replicas serve, so an overloaded deployment would hide the demand it is missing; a
    draining queue subtracts. A server without the queue gauge counts completions only."""
    return f"{_rate(completed, sel, w)} + (sum(deriv({queue}{sel}[{w}])) or vector(0))"


def _p95(buckets: tuple[str, ...], sel: str, w: str, scale: float = 1.0) -> str:
    # Rates drop the metric name, so `or` between renamed histograms keeps one copy per bucket.
    merged = " or ".join(f"rate({bucket}{sel}[{w}])" for bucket in buckets)
    quantile = f"histogram_quantile(0.95, sum by (le) ({merged}))"
    return quantile if scale == 1.0 else f"{quantile} * {scale:g}"


def _mean(histograms: tuple[str, ...], sel: str, w: str) -> str:
    """The mean of a histogram over the window: what the latency models predict (the p95 is what
    objectives bound), so the capacity is learnt from it."""
    return _either(*(f"{_rate(h + '_sum', sel, w)} / {_rate(h + '_count', sel, w)}" for h in histograms))


def _either(*expressions: str) -> str:
    """The first expression's value where it has one, else the next's (names that changed)."""
    return " or ".join(f"({e})" for e in expressions)


def _gauge(aggregate: str, metric: str, sel: str) -> str:
    return f"{aggregate}({metric}{sel})"


def _gpu(scope: Scope) -> dict[str, str]:
    def dcgm(aggregate: str, metric: str) -> str:
        own, exported = scope.selector(), scope.selector(exported=True)
        return f"{aggregate}({metric}{own} or {metric}{exported})"

    return {
        "gpu_utilization": dcgm("avg", "DCGM_FI_DEV_GPU_UTIL"),
        "gpu_memory_used_mib": dcgm("sum", "DCGM_FI_DEV_FB_USED"),
        "power_watts": dcgm("sum", "DCGM_FI_DEV_POWER_USAGE"),
    }


def _vllm(scope: Scope, w: str) -> dict[str, str]:
    s = scope.selector()
    return {
        "request_rate": _arrivals("vllm:request_success_total", "vllm:num_requests_waiting", s, w),
        "prompt_tokens_rate": _rate("vllm:prompt_tokens_total", s, w),
        "generation_tokens_rate": _rate("vllm:generation_tokens_total", s, w),
        "ttft_p95_seconds": _p95(("vllm:time_to_first_token_seconds_bucket",), s, w),
        # Renamed inter_token_latency_seconds in vLLM V1; older servers have only the first name.
        "tpot_p95_seconds": _p95(
            ("vllm:time_per_output_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket"), s, w
        ),
        "ttft_mean_seconds": _mean(("vllm:time_to_first_token_seconds",), s, w),
        "tpot_mean_seconds": _mean(
            ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"), s, w
        ),
        "running_requests": _gauge("sum", "vllm:num_requests_running", s),
        "waiting_requests": _gauge("sum", "vllm:num_requests_waiting", s),
        "kv_cache_usage": _either(
            _gauge("avg", "vllm:kv_cache_usage_perc", s), _gauge("avg", "vllm:gpu_cache_usage_perc", s)
        ),
    }


def _sglang(scope: Scope, w: str) -> dict[str, str]:
    s = scope.selector()
    return {
        # Every finished request is observed once in the end-to-end latency histogram.
        "request_rate": _arrivals("sglang:e2e_request_latency_seconds_count", "sglang:num_queue_reqs", s, w),
        "prompt_tokens_rate": _rate("sglang:prompt_tokens_total", s, w),
        "generation_tokens_rate": _rate("sglang:generation_tokens_total", s, w),
        "ttft_p95_seconds": _p95(("sglang:time_to_first_token_seconds_bucket",), s, w),
        "tpot_p95_seconds": _p95(
            ("sglang:inter_token_latency_seconds_bucket", "sglang:time_per_output_token_seconds_bucket"), s, w
        ),
        "ttft_mean_seconds": _mean(("sglang:time_to_first_token_seconds",), s, w),
        "tpot_mean_seconds": _mean(
            ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"), s, w
        ),
        "running_requests": _gauge("sum", "sglang:num_running_reqs", s),
        "waiting_requests": _gauge("sum", "sglang:num_queue_reqs", s),
        "kv_cache_usage": _gauge("avg", "sglang:token_usage", s),
    }


def _tgi(scope: Scope, w: str) -> dict[str, str]:
    s = scope.selector()
    return {
        "request_rate": _arrivals("tgi_request_success", "tgi_queue_size", s, w),
        # Token counts are histograms per request: their sums count tokens.
        "prompt_tokens_rate": _rate("tgi_request_input_length_sum", s, w),
        "generation_tokens_rate": _rate("tgi_request_generated_tokens_sum", s, w),
        "tpot_p95_seconds": _p95(("tgi_request_mean_time_per_token_duration_bucket",), s, w),
        "running_requests": _gauge("sum", "tgi_batch_current_size", s),
        "waiting_requests": _gauge("sum", "tgi_queue_size", s),
    }


def _triton(scope: Scope, w: str) -> dict[str, str]:
    """Triton, with the TensorRT-LLM backend's `nv_trt_llm_*` gauges when that backend is loaded."""
    s = scope.selector()
    trt = scope.selector
    kv_blocks = "nv_trt_llm_kv_cache_block_metrics"
    used, most = trt('kv_cache_block_type="used"'), trt('kv_cache_block_type="max"')
    return {
        # An ensemble counts each request in every model it runs: the busiest model counts each once.
        "request_rate": f"max(sum by (model) (rate(nv_inference_request_success{s}[{w}])))",
        "prompt_tokens_rate": _rate("nv_llm_input_token_len_sum", s, w),
        "generation_tokens_rate": _rate("nv_llm_output_token_len_sum", s, w),
        # Opt-in (--metrics-config histogram_latencies=true), in milliseconds.
        "ttft_p95_seconds": _p95(("nv_inference_first_response_histogram_ms_bucket",), s, w, 0.001),
        "running_requests": _gauge("sum", "nv_trt_llm_request_metrics", trt('request_type="scheduled"')),
        "waiting_requests": _either(
            _gauge("sum", "nv_trt_llm_request_metrics", trt('request_type="waiting"')),
            _gauge("sum", "nv_inference_pending_request_count", s),
        ),
        # Older backends publish used and max blocks but not their fraction.
        "kv_cache_usage": _either(
            _gauge("avg", kv_blocks, trt('kv_cache_block_type="fraction"')),
            f"{_gauge('sum', kv_blocks, used)} / {_gauge('sum', kv_blocks, most)}",
        ),
    }


def _trtllm(scope: Scope, w: str) -> dict[str, str]:
    """trtllm-serve's own `trtllm_*` metrics, else TensorRT-LLM served through Triton."""
    s = scope.selector()
    triton = _triton(scope, w)
    own = {
        "request_rate": _rate("trtllm_request_success_total", s, w),
        "prompt_tokens_rate": _rate("trtllm_prompt_tokens_total", s, w),
        "generation_tokens_rate": _rate("trtllm_generation_tokens_total", s, w),
        "ttft_p95_seconds": _p95(("trtllm_time_to_first_token_seconds_bucket",), s, w),
        "tpot_p95_seconds": _p95(("trtllm_time_per_output_token_seconds_bucket",), s, w),
        "running_requests": _either(
            _gauge("sum", "trtllm_num_requests_running", s), _gauge("sum", "trtllm_num_active_requests", s)
        ),
        "waiting_requests": _either(
            _gauge("sum", "trtllm_num_requests_waiting", s), _gauge("sum", "trtllm_server_queue_length", s)
        ),
        "kv_cache_usage": _gauge("avg", "trtllm_kv_cache_utilization", s),
    }
    return {name: _either(query, triton[name]) if name in triton else query for name, query in own.items()}


_ENGINES: dict[str, Callable[[Scope, str], dict[str, str]]] = {
    "vllm": _vllm,
    "sglang": _sglang,
    "tgi": _tgi,
    "trtllm": _trtllm,
    "triton": _triton,
}


def _literal(text: str) -> str:
    """`text` as an RE2 pattern matching only itself (names hold [a-z0-9.-]; `.` is the one meta)."""
    return "".join(f"[{c}]" if c == "." else c for c in text)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
