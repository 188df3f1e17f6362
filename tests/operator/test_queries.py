"""Default PromQL per engine: scoped to exactly the target's pods, overridable field by field.

The same queries go through the lab's real Prometheus in tests/lab/test_prometheus_adapter.py;
here they are checked for what needs no server: which pod names the scope admits, which figures
each engine has, that every selector carries the scope, and that overrides land where they should.
"""

from __future__ import annotations

import re

import pytest
from greenmatrix_operator.adapters.queries import (
    FIGURES,
    GPU_ONLY_FRAMEWORKS,
    OVERRIDE_FIELDS,
    SERVING_FRAMEWORKS,
    Scope,
    default_window,
    duration,
    queries_for,
    scope_of,
)

from greenmatrix.api.workloadprofile import Framework, MetricsSpec

GPU_FIGURES = {"gpu_utilization", "gpu_memory_used_mib", "power_watts"}
# What each engine's metrics cannot tell (a user can still supply it through spec.metrics).
# The mean latencies (what the capacity is learnt from) are read where the engine's histograms give them.
MEANS = {"ttft_mean_seconds", "tpot_mean_seconds"}
LACKING = {
    "vllm": set(),
    "sglang": set(),
    "tgi": {"ttft_p95_seconds", "kv_cache_usage"} | MEANS,
    "trtllm": MEANS,
    "triton": {"tpot_p95_seconds"} | MEANS,
}


def admits(scope: Scope, pod: str) -> bool:
    # Prometheus anchors `=~` at both ends; its RE2 and Python agree on this pattern subset.
    return re.fullmatch(scope.pod_pattern, pod) is not None


def deployment_pod(name: str, template_hash: str = "7d4b9c8f6d", suffix: str = "x2kqz") -> str:
    """A pod name as Kubernetes generates it: `<name>-<hash>-` cut to 58 characters, then 5 more."""
    return f"{name}-{template_hash}-"[:58] + suffix


def test_a_deployment_scope_admits_its_pods_and_not_its_siblings() -> None:
    scope = scope_of("ml", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    assert scope.namespace == "ml"
    assert admits(scope, "web-7d4b9c8f6d-x2kqz")
    assert admits(scope, "web-5f9c7-b2x4p")  # a short pod-template-hash
    for sibling in (
        "web-canary-7d4b9c8f6d-x2kqz",  # Deployment web-canary
        "web-0",  # StatefulSet web
        "webapp-7d4b9c8f6d-x2kqz",
        "web-7d4b9c8f6d-x2kqz-extra",
        "web-7d4b9c8f6d-x2kq",
        "old-web-7d4b9c8f6d-x2kqz",
    ):
        assert not admits(scope, sibling), sibling


def test_a_statefulset_scope_admits_its_ordinals_only() -> None:
    scope = scope_of("db", {"kind": "StatefulSet", "name": "llm"})
    assert admits(scope, "llm-0") and admits(scope, "llm-12")
    for sibling in ("llm-canary-0", "llm-7d4b9c8f6d-x2kqz", "llm-", "llm", "xllm-0"):
        assert not admits(scope, sibling), sibling


def test_a_dot_in_a_name_matches_only_a_dot() -> None:
    scope = scope_of("ml", {"kind": "Deployment", "name": "llama.3-8b"})
    assert admits(scope, "llama.3-8b-7d4b9c8f6d-x2kqz")
    assert not admits(scope, "llamax3-8b-7d4b9c8f6d-x2kqz")
    assert "\\" not in scope.pod_pattern  # no escape that PromQL's string syntax would need doubled


def test_every_pod_name_kubernetes_can_generate_for_a_deployment_matches_however_long_the_name() -> None:
    for length in range(1, 80):
        name = ("inference-server-" * 5)[: length - 1] + "x"
        scope = scope_of("ml", {"kind": "Deployment", "name": name})
        for hash_length in range(1, 11):
            pod = deployment_pod(name, template_hash="5f9c7bd8b6"[:hash_length])
            assert len(pod) <= 63
            assert admits(scope, pod), (name, pod, scope.pod_pattern)
            assert not admits(scope, "y" + pod[1:])
            assert not admits(scope, pod + "z")


def test_a_target_without_a_name_or_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="no name"):
        scope_of("ml", {"kind": "Deployment"})
    with pytest.raises(ValueError, match="DaemonSet"):
        scope_of("ml", {"kind": "DaemonSet", "name": "x"})


def test_every_framework_of_the_schema_has_queries() -> None:
    assert set(Framework.__args__) == set(SERVING_FRAMEWORKS) | set(GPU_ONLY_FRAMEWORKS)


def test_overridable_figures_are_the_fields_of_spec_metrics() -> None:
    wire = {field.alias for field in MetricsSpec.model_fields.values()}
    assert set(OVERRIDE_FIELDS.values()) == wire
    assert set(OVERRIDE_FIELDS) == set(MetricsSpec.model_fields)


@pytest.mark.parametrize("framework", SERVING_FRAMEWORKS)
def test_every_serving_engine_reads_demand_latency_and_gpus(framework: str) -> None:
    scope = scope_of("ml", {"kind": "Deployment", "name": "web"})
    queries = queries_for(None, framework, scope, 60.0)
    assert list(queries) == [f for f in FIGURES if f in queries]
    assert set(queries) == set(FIGURES) - LACKING[framework]
    for figure, query in queries.items():
        assert query.figure == figure and query.field is None
        assert_scoped_and_balanced(query.promql, scope)


@pytest.mark.parametrize("framework", GPU_ONLY_FRAMEWORKS)
def test_training_frameworks_get_only_the_gpu_figures(framework: str) -> None:
    scope = scope_of("train", {"kind": "StatefulSet", "name": "job"})
    queries = queries_for(None, framework, scope, 60.0)
    assert set(queries) == GPU_FIGURES
    for query in queries.values():
        assert_scoped_and_balanced(query.promql, scope)


def assert_scoped_and_balanced(promql: str, scope: Scope) -> None:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    inside_string = False
    for char in promql:
        if char == '"':
            inside_string = not inside_string
        elif inside_string:
            continue
        elif char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, promql
    assert not inside_string and all(v == 0 for v in depth.values()), promql
    # Every series selector names the target's namespace and pods (or their exported_ twins).
    selectors = re.findall(r'[A-Za-z_:][A-Za-z0-9_:]*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})', promql)
    assert selectors, promql
    for selector in selectors:
        assert f'namespace="{scope.namespace}"' in selector, selector
        assert f'pod=~"{scope.pod_pattern}"' in selector, selector


def test_the_known_vllm_queries() -> None:
    scope = Scope("ml", "web-[a-z0-9]{1,10}-[a-z0-9]{5}")
    queries = queries_for(None, "vllm", scope, 120.0)
    sel = '{namespace="ml", pod=~"web-[a-z0-9]{1,10}-[a-z0-9]{5}"}'
    assert queries["request_rate"].promql == (
        f"sum(rate(vllm:request_success_total{sel}[120s]))"
        f" + (sum(deriv(vllm:num_requests_waiting{sel}[120s])) or vector(0))"
    )
    assert queries["ttft_p95_seconds"].promql == (
        f"histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{sel}[120s])))"
    )
    assert queries["kv_cache_usage"].promql == (
        f"(avg(vllm:kv_cache_usage_perc{sel})) or (avg(vllm:gpu_cache_usage_perc{sel}))"
    )
    assert queries["running_requests"].promql == f"sum(vllm:num_requests_running{sel})"
    assert queries["power_watts"].promql.startswith(f"sum(DCGM_FI_DEV_POWER_USAGE{sel} or ")


@pytest.mark.parametrize("key_style", ["wire", "python"])
def test_an_override_replaces_its_figure_and_names_its_field(key_style: str) -> None:
    scope = scope_of("ml", {"kind": "Deployment", "name": "web"})
    mine = 'sum(rate(my_requests_total{app="web"}[5m]))'
    key = "requestRate" if key_style == "wire" else "request_rate"
    queries = queries_for({key: mine, "powerWatts": "  "}, "vllm", scope, 60.0)
    assert queries["request_rate"].promql == mine
    assert queries["request_rate"].field == "spec.metrics.requestRate"
    # A blank override is no override; the other figures keep their defaults.
    assert queries["power_watts"].field is None and "DCGM_FI_DEV_POWER_USAGE" in queries["power_watts"].promql
    assert queries["ttft_p95_seconds"] == queries_for(None, "vllm", scope, 60.0)["ttft_p95_seconds"]


def test_an_override_adds_a_figure_the_engine_lacks() -> None:
    scope = scope_of("ml", {"kind": "Deployment", "name": "tgi"})
    assert "ttft_p95_seconds" not in queries_for(None, "tgi", scope, 60.0)
    queries = queries_for({"ttftP95Seconds": "my_ttft"}, "tgi", scope, 60.0)
    assert queries["ttft_p95_seconds"].promql == "my_ttft"
    assert queries["ttft_p95_seconds"].field == "spec.metrics.ttftP95Seconds"
    assert list(queries) == [f for f in FIGURES if f in queries]


def test_an_unknown_framework_is_an_error_not_a_silent_default() -> None:
    with pytest.raises(ValueError, match="vlm"):
        queries_for(None, "vlm", Scope("ml", "x"), 60.0)


def test_windows() -> None:
    assert default_window() == 60.0
    assert default_window(30.0) == 120.0
    assert duration(60.0) == "60s" and duration(0.4) == "1s" and duration(90.6) == "91s"
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            duration(bad)


def test_quotes_in_a_namespace_cannot_break_out_of_the_selector() -> None:
    selector = Scope('a"b', "p").selector()
    assert selector == '{namespace="a\\"b", pod=~"p"}'
