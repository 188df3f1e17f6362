"""The Prometheus adapter against the lab's real Prometheus: known series in, the same figures out.

vLLM- and DCGM-shaped series for two pods of a Deployment (and a sibling Deployment that must not
be counted) are pushed by remote write for the last ten minutes, with counters rising at known
rates and histogram buckets holding known shares; `observe` must read back those rates, the p95
Prometheus interpolates from those shares, the pods' gauges, and the demand's history. Every
default query of every engine goes through the real PromQL parser. Each run uses its own
namespace, so it shares the lab with other sessions safely.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence

import httpx
import numpy as np
import pytest
from greenmatrix_lab import Lab
from greenmatrix_lab.remote_write import Series, push
from greenmatrix_operator.adapters.observe import Observation, observe
from greenmatrix_operator.adapters.prometheus import Prometheus, QueryRejected
from greenmatrix_operator.adapters.queries import (
    GPU_ONLY_FRAMEWORKS,
    SERVING_FRAMEWORKS,
    queries_for,
    scope_of,
)

SCRAPE = 15  # seconds between pushed samples, as a typical scrape interval
SPAN = 600  # seconds of history pushed
WINDOW = 60.0
WEB = {"kind": "Deployment", "name": "web"}
# Two pods of Deployment `web` and one of its sibling `web-canary` (which must never be counted).
PODS = {"web-7d4b9c8f6d-x2kqz": 3.0, "web-7d4b9c8f6d-b6p9m": 5.0}
SIBLING = {"web-canary-5f9c7bd8b6-zt4wq": 100.0}
# Time to first token: cumulative shares of requests at or under each bucket bound.
TTFT_BUCKETS = {"0.05": 0.2, "0.1": 0.5, "0.25": 0.8, "0.5": 0.9, "1": 0.97, "+Inf": 1.0}
# p95 lies in (0.5, 1]: Prometheus interpolates linearly between the bounds' cumulative shares.
TTFT_P95 = 0.5 + (1.0 - 0.5) * (0.95 - 0.9) / (0.97 - 0.9)
TPOT_BUCKETS = {"0.01": 0.1, "0.025": 0.6, "0.05": 0.9, "0.1": 1.0, "+Inf": 1.0}
TPOT_P95 = 0.05 + (0.1 - 0.05) * (0.95 - 0.9) / (1.0 - 0.9)
PROMPT_TOKENS, GENERATED_TOKENS = 500.0, 100.0  # per request
GAUGES = {  # per pod, in PODS order: (running, waiting, KV-cache use, GPU util %, FB MiB, watts)
    "web-7d4b9c8f6d-x2kqz": (4.0, 1.0, 0.3, 60.0, 1000.0, 300.0),
    "web-7d4b9c8f6d-b6p9m": (6.0, 2.0, 0.5, 80.0, 2000.0, 250.0),
}


def counter(labels: dict[str, str], per_second: float, times_ms: Sequence[int]) -> Series:
    start = times_ms[0]
    return Series(labels, [(t, 1000.0 + per_second * (t - start) / 1000.0) for t in times_ms])


def gauge(labels: dict[str, str], value: float, times_ms: Sequence[int]) -> Series:
    return Series(labels, [(t, value) for t in times_ms])


def histogram(
    name: str, base: dict[str, str], rate: float, shares: dict[str, float], times: list[int]
) -> list[Series]:
    return [
        counter({**base, "__name__": f"{name}_bucket", "le": le}, rate * share, times)
        for le, share in shares.items()
    ]


def vllm_pod(
    namespace: str, pod: str, rate: float, times: list[int], gauges: Sequence[float]
) -> list[Series]:
    base = {
        "namespace": namespace,
        "pod": pod,
        "job": "vllm",
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
    }
    running, waiting, kv, util, memory, watts = gauges
    gpu = {
        "namespace": namespace,
        "pod": pod,
        "gpu": "0",
        "UUID": f"GPU-{pod}",
        "modelName": "NVIDIA H100 80GB HBM3",
    }
    return [
        counter({**base, "__name__": "vllm:request_success_total", "finished_reason": "stop"}, rate, times),
        counter({**base, "__name__": "vllm:prompt_tokens_total"}, rate * PROMPT_TOKENS, times),
        counter({**base, "__name__": "vllm:generation_tokens_total"}, rate * GENERATED_TOKENS, times),
        *histogram("vllm:time_to_first_token_seconds", base, rate, TTFT_BUCKETS, times),
        # Only the V1 name: the default query must fall back to it.
        *histogram("vllm:inter_token_latency_seconds", base, rate * GENERATED_TOKENS, TPOT_BUCKETS, times),
        gauge({**base, "__name__": "vllm:num_requests_running"}, running, times),
        gauge({**base, "__name__": "vllm:num_requests_waiting"}, waiting, times),
        # Only the pre-V1 name of the KV-cache gauge: the `or` must find it.
        gauge({**base, "__name__": "vllm:gpu_cache_usage_perc"}, kv, times),
        gauge({**gpu, "__name__": "DCGM_FI_DEV_GPU_UTIL"}, util, times),
        gauge({**gpu, "__name__": "DCGM_FI_DEV_FB_USED"}, memory, times),
        gauge({**gpu, "__name__": "DCGM_FI_DEV_POWER_USAGE"}, watts, times),
    ]


@pytest.fixture(scope="module")
def pushed(lab: Lab) -> tuple[str, float]:
    """The namespace the series were pushed under and the time they end at."""
    namespace = f"prom-{uuid.uuid4().hex[:10]}"
    end_ms = int(time.time() * 1000) - 1000
    times = list(range(end_ms - SPAN * 1000, end_ms + 1, SCRAPE * 1000))
    series: list[Series] = []
    for pod, rate in PODS.items():
        series += vllm_pod(namespace, pod, rate, times, GAUGES[pod])
    for pod, rate in SIBLING.items():
        series += vllm_pod(namespace, pod, rate, times, (50.0, 50.0, 0.99, 5.0, 70000.0, 700.0))
    # Deployment `gone` stopped reporting ten minutes ago.
    earlier = [t - SPAN * 1000 for t in times]
    series += vllm_pod(namespace, "gone-6c8d9f7b5-q2w4e", 2.0, earlier, GAUGES["web-7d4b9c8f6d-x2kqz"])
    push(lab.prometheus_url, series)
    return namespace, end_ms / 1000.0


def observe_now(
    lab: Lab, namespace: str, spec_metrics: dict[str, str] | None = None, target: dict[str, str] = WEB
) -> tuple[Observation, float]:
    scope = scope_of(namespace, target)
    queries = queries_for(spec_metrics, "vllm", scope, WINDOW)
    now = time.time()

    async def read() -> Observation:
        # A fractional timeout: Prometheus must accept how it is sent along.
        prometheus = Prometheus(lab.prometheus_url, timeout=7.5)
        try:
            return await observe(prometheus, queries, now, None, history=SPAN + 300.0, step=60.0)
        finally:
            await prometheus.aclose()

    return asyncio.run(read()), now


def test_observe_reads_the_pushed_figures_of_the_targets_pods_only(
    lab: Lab, pushed: tuple[str, float]
) -> None:
    namespace, _ = pushed
    observation, now = observe_now(lab, namespace)
    present = observation.present
    total = sum(PODS.values())
    # The sibling serves 100 requests/s: counted, it would be impossible to miss.
    assert present["request_rate"] == pytest.approx(total, rel=0.05)
    assert present["prompt_tokens_rate"] == pytest.approx(total * PROMPT_TOKENS, rel=0.05)
    assert present["generation_tokens_rate"] == pytest.approx(total * GENERATED_TOKENS, rel=0.05)
    assert present["ttft_p95_seconds"] == pytest.approx(TTFT_P95, rel=1e-3)
    assert present["tpot_p95_seconds"] == pytest.approx(TPOT_P95, rel=1e-3)
    gauges = np.array(list(GAUGES.values()))
    assert present["running_requests"] == pytest.approx(gauges[:, 0].sum())
    assert present["waiting_requests"] == pytest.approx(gauges[:, 1].sum())
    assert present["kv_cache_usage"] == pytest.approx(gauges[:, 2].mean())
    assert present["gpu_utilization"] == pytest.approx(gauges[:, 3].mean())
    assert present["gpu_memory_used_mib"] == pytest.approx(gauges[:, 4].sum())
    assert present["power_watts"] == pytest.approx(gauges[:, 5].sum())
    assert observation.rejected == {} and observation.unavailable == {}
    assert observation.as_of == now and not observation.stale


def test_the_demand_history_is_the_pushed_rate_on_the_step_grid(lab: Lab, pushed: tuple[str, float]) -> None:
    namespace, end = pushed
    observation, _ = observe_now(lab, namespace)
    times, values = observation.demand_timestamps, observation.demand_values
    assert np.all(times % 60.0 == 0) and np.all(np.diff(times) == 60.0)
    # Rows whose whole window lies inside the pushed span carry the pushed rate.
    inside = (times >= end - SPAN + WINDOW) & (times <= end)
    assert inside.sum() >= (SPAN - WINDOW) // 60 - 1
    np.testing.assert_allclose(values[inside], sum(PODS.values()), rtol=0.05)


def test_a_target_that_stopped_reporting_has_no_present_demand_and_is_stale(
    lab: Lab, pushed: tuple[str, float]
) -> None:
    namespace, end = pushed
    observation, _ = observe_now(lab, namespace, target={"kind": "Deployment", "name": "gone"})
    assert observation.present["request_rate"] is None and observation.present["running_requests"] is None
    assert observation.stale
    # Its last row is where its samples end (a rate lasts at most one window past the last sample).
    assert end - SPAN - 60.0 <= observation.as_of <= end - SPAN + WINDOW
    known = observation.demand_values[np.isfinite(observation.demand_values)]
    np.testing.assert_allclose(known[1:-1], 2.0, rtol=0.05)


def test_a_target_without_metrics_has_no_data_and_no_errors(lab: Lab, pushed: tuple[str, float]) -> None:
    namespace, _ = pushed
    observation, _ = observe_now(lab, namespace, target={"kind": "StatefulSet", "name": "web"})
    assert set(observation.present.values()) == {None}
    assert observation.as_of is None and not observation.stale
    assert len(observation.demand_timestamps) == 0
    assert observation.rejected == {} and observation.unavailable == {}


def test_an_override_prometheus_rejects_names_its_field_and_the_rest_is_still_read(
    lab: Lab, pushed: tuple[str, float]
) -> None:
    namespace, _ = pushed
    broken = "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[5m]))"
    observation, _ = observe_now(lab, namespace, {"ttftP95Seconds": broken})
    assert list(observation.rejected) == ["spec.metrics.ttftP95Seconds"]
    assert "parse error" in observation.rejected["spec.metrics.ttftP95Seconds"]
    assert observation.present["ttft_p95_seconds"] is None
    assert observation.present["request_rate"] == pytest.approx(sum(PODS.values()), rel=0.05)


def test_an_override_that_fails_at_evaluation_is_rejected_too(lab: Lab, pushed: tuple[str, float]) -> None:
    namespace, _ = pushed
    # Parses, but the division matches many series to many: Prometheus refuses it when evaluating.
    many_to_many = f'vllm:num_requests_running{{namespace="{namespace}"}} / on() vllm:num_requests_waiting'
    observation, _ = observe_now(lab, namespace, {"powerWatts": many_to_many})
    assert list(observation.rejected) == ["spec.metrics.powerWatts"]
    assert "many" in observation.rejected["spec.metrics.powerWatts"]


def test_every_default_query_of_every_engine_is_valid_promql(lab: Lab) -> None:
    targets = [
        {"kind": "Deployment", "name": "web"},
        {"kind": "StatefulSet", "name": "llm"},
        {"kind": "Deployment", "name": "inference-server-for-llama-three-8b-instruct-abc"},  # hash cut
        {"kind": "Deployment", "name": "llama.3-8b"},
    ]
    queries = [
        query.promql
        for framework in (*SERVING_FRAMEWORKS, *GPU_ONLY_FRAMEWORKS)
        for target in targets
        for query in queries_for(None, framework, scope_of("ml", target), WINDOW).values()
    ]

    async def check() -> list[str]:
        prometheus = Prometheus(lab.prometheus_url)
        refused = []
        try:
            outcomes = await asyncio.gather(
                *(prometheus.instant(q, time.time()) for q in queries), return_exceptions=True
            )
            for query, outcome in zip(queries, outcomes, strict=True):
                if isinstance(outcome, QueryRejected):
                    refused.append(f"{query}: {outcome.error}")
                elif isinstance(outcome, BaseException):
                    raise outcome
        finally:
            await prometheus.aclose()
        return refused

    assert asyncio.run(check()) == []
    assert len(queries) > 100


def test_a_range_longer_than_prometheus_allows_is_read_in_chunks(lab: Lab, pushed: tuple[str, float]) -> None:
    namespace, end = pushed
    query = f"sum(vllm:num_requests_running{scope_of(namespace, WEB).selector()})"
    step = 0.05  # 12,001 points over 600 s
    form = {"query": query, "start": str(end - SPAN), "end": str(end), "step": str(step)}
    # One request for all of it is what Prometheus refuses:
    refused = httpx.post(f"{lab.prometheus_url}/api/v1/query_range", data=form, timeout=30)
    assert refused.status_code == 400 and "exceeded maximum resolution" in refused.json()["error"]
    requests: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        requests.append(request)

    async def read() -> list:
        client = httpx.AsyncClient(event_hooks={"request": [count]})
        try:
            return await Prometheus(lab.prometheus_url, client=client).range(query, end - SPAN, end, step)
        finally:
            await client.aclose()

    (series,) = asyncio.run(read())
    assert len(requests) == 2
    assert len(series.timestamps) == pytest.approx(SPAN / step + 1, abs=1)
    assert np.all(np.diff(series.timestamps) > 0)
    assert np.all(series.values == 10.0)  # the two pods' running requests, not the sibling's
    assert math.isclose(series.timestamps[-1], end, abs_tol=step)
