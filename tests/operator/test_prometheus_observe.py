"""One evaluation's reads (`observe`): how answers, rejections and faults per figure become an Observation.

The Prometheus here is a stub answering per query, because what is tested is the bookkeeping above
the client (which figure lost what, what raises, which rows are asked for); the client's own faults
are in test_prometheus.py and the whole path against the real Prometheus in
tests/lab/test_prometheus_adapter.py.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from greenmatrix_operator.adapters.observe import Observation, demand_grid, observe
from greenmatrix_operator.adapters.prometheus import (
    MalformedResponse,
    PrometheusUnavailable,
    QueryRejected,
    RangeSeries,
    Sample,
)
from greenmatrix_operator.adapters.queries import Query

NOW = 1_800_000_123.0
STEP = 60.0


class StubPrometheus:
    """Answers each query from a table: a list of samples / range series, or an exception to raise."""

    def __init__(self, instant: dict[str, Any], ranges: dict[str, Any] | None = None) -> None:
        self.instant_answers = instant
        self.range_answers = ranges or {}
        self.instant_calls: list[tuple[str, float]] = []
        self.range_calls: list[tuple[str, float, float, float]] = []

    async def instant(self, query: str, at: float) -> list[Sample]:
        self.instant_calls.append((query, at))
        return self._answer(self.instant_answers.get(query, []))

    async def range(self, query: str, start: float, end: float, step: float) -> list[RangeSeries]:
        self.range_calls.append((query, start, end, step))
        return self._answer(self.range_answers.get(query, []))

    @staticmethod
    def _answer(answer: Any) -> Any:
        if isinstance(answer, BaseException):
            raise answer
        return answer


def queries(**promql: str) -> dict[str, Query]:
    return {figure: Query(figure, text) for figure, text in promql.items()}


def read(stub: StubPrometheus, qs: dict[str, Query], since: float | None = None) -> Observation:
    return asyncio.run(observe(stub, qs, NOW, since, history=3600.0, step=STEP))


def rows(start: float, values: list[float], labels: dict[str, str] | None = None) -> RangeSeries:
    times = start + STEP * np.arange(len(values))
    return RangeSeries(labels or {}, times, np.array(values, dtype=float))


def test_each_figure_is_read_once_at_now_and_several_series_are_summed() -> None:
    stub = StubPrometheus(
        {
            "rr": [Sample({}, 12.5)],
            "power": [Sample({"gpu": "0"}, 300.0), Sample({"gpu": "1"}, 250.0)],
            "ttft": [Sample({}, math.nan)],  # a quantile over no observations
            "kv": [],
        }
    )
    observation = read(
        stub, queries(request_rate="rr", power_watts="power", ttft_p95_seconds="ttft", kv_cache_usage="kv")
    )
    assert observation.present == {
        "request_rate": 12.5,
        "power_watts": 550.0,
        "ttft_p95_seconds": None,
        "kv_cache_usage": None,
    }
    assert sorted(stub.instant_calls) == sorted((q, NOW) for q in ("rr", "power", "ttft", "kv"))
    assert observation.rejected == {} and observation.unavailable == {}


def test_the_demand_history_is_read_on_the_step_grid_within_history() -> None:
    first = math.ceil((NOW - 3600.0) / STEP) * STEP
    last = math.floor(NOW / STEP) * STEP
    stub = StubPrometheus({"rr": [Sample({}, 2.0)]}, {"rr": [rows(first, [1.0, math.nan, 3.0])]})
    observation = read(stub, queries(request_rate="rr"))
    assert stub.range_calls == [("rr", first, last, STEP)]
    np.testing.assert_array_equal(observation.demand_timestamps, first + STEP * np.arange(3))
    np.testing.assert_array_equal(observation.demand_values, [1.0, math.nan, 3.0])


def test_since_limits_the_history_to_rows_the_engine_has_not_seen() -> None:
    last = math.floor(NOW / STEP) * STEP
    stub = StubPrometheus({"rr": [Sample({}, 2.0)]})
    read(stub, queries(request_rate="rr"), since=last - 2 * STEP)
    assert stub.range_calls == [("rr", last - STEP, last, STEP)]
    # Between two grid points `since` rounds up to the next one.
    assert demand_grid(NOW, last - 2.5 * STEP, 3600.0, STEP) == (last - 2 * STEP, last)
    # A `since` older than the history window changes nothing.
    assert demand_grid(NOW, NOW - 10 * 3600.0, 3600.0, STEP)[0] == math.ceil((NOW - 3600.0) / STEP) * STEP


def test_nothing_new_since_the_last_row_reads_no_history() -> None:
    stub = StubPrometheus({"rr": [Sample({}, 2.0)]})
    observation = read(stub, queries(request_rate="rr"), since=math.floor(NOW / STEP) * STEP)
    assert stub.range_calls == []
    assert len(observation.demand_timestamps) == 0 and len(observation.demand_values) == 0
    assert observation.as_of == NOW and not observation.stale


def test_several_history_series_are_summed_per_timestamp() -> None:
    first = math.ceil((NOW - 3600.0) / STEP) * STEP
    a = rows(first, [1.0, 2.0, math.nan], {"pod": "a"})
    b = rows(first + STEP, [10.0, math.nan, 30.0], {"pod": "b"})
    stub = StubPrometheus({}, {"rr": [a, b]})
    observation = read(stub, queries(request_rate="rr"))
    np.testing.assert_array_equal(observation.demand_timestamps, first + STEP * np.arange(4))
    np.testing.assert_array_equal(observation.demand_values, [1.0, 12.0, math.nan, 30.0])


def test_a_rejected_override_names_its_field_and_the_other_figures_are_still_read() -> None:
    error = 'bad_data: 1:6: parse error: unexpected "}"'
    stub = StubPrometheus(
        {"rr": [Sample({}, 4.0)], "bad{": QueryRejected("bad{", error), "util": QueryRejected("util", "boom")}
    )
    qs = queries(request_rate="rr", gpu_utilization="util")
    qs["ttft_p95_seconds"] = Query("ttft_p95_seconds", "bad{", "spec.metrics.ttftP95Seconds")
    observation = read(stub, qs)
    assert observation.rejected == {"spec.metrics.ttftP95Seconds": error, "gpu_utilization": "boom"}
    assert observation.present == {"request_rate": 4.0, "gpu_utilization": None, "ttft_p95_seconds": None}


def test_a_rejected_demand_query_is_reported_once() -> None:
    stub = StubPrometheus(
        {"rr{": QueryRejected("rr{", "parse error")}, {"rr{": QueryRejected("rr{", "parse error")}
    )
    qs = {"request_rate": Query("request_rate", "rr{", "spec.metrics.requestRate")}
    observation = read(stub, qs)
    assert observation.rejected == {"spec.metrics.requestRate": "parse error"}
    assert observation.present == {"request_rate": None} and observation.as_of is None


def test_prometheus_down_for_every_query_fails_the_evaluation() -> None:
    down = PrometheusUnavailable("circuit open after 5 consecutive failures; retry after 30s")
    stub = StubPrometheus({"rr": down, "power": down}, {"rr": down})
    with pytest.raises(PrometheusUnavailable, match="circuit open"):
        read(stub, queries(request_rate="rr", power_watts="power"))


def test_garbage_for_every_query_fails_the_evaluation_as_malformed() -> None:
    garbage = MalformedResponse("body is not JSON")
    stub = StubPrometheus({"rr": garbage}, {"rr": garbage})
    with pytest.raises(MalformedResponse):
        read(stub, queries(request_rate="rr"))


def test_down_beats_rejected_when_nothing_answered() -> None:
    stub = StubPrometheus(
        {"rr": PrometheusUnavailable("down"), "x{": QueryRejected("x{", "e")},
        {"rr": PrometheusUnavailable("down")},
    )
    with pytest.raises(PrometheusUnavailable):
        read(stub, queries(request_rate="rr", power_watts="x{"))


def test_only_rejections_is_an_observation_not_an_error() -> None:
    stub = StubPrometheus({"x{": QueryRejected("x{", "e")}, {"x{": QueryRejected("x{", "e")})
    observation = read(stub, queries(request_rate="x{"))
    assert observation.rejected == {"request_rate": "e"} and observation.present == {"request_rate": None}


def test_a_transient_fault_on_one_figure_costs_only_that_figure() -> None:
    stub = StubPrometheus({"rr": [Sample({}, 3.0)], "power": PrometheusUnavailable("no answer within 10s")})
    observation = read(stub, queries(request_rate="rr", power_watts="power"))
    assert observation.present == {"request_rate": 3.0, "power_watts": None}
    assert observation.unavailable == {"power_watts": "no answer within 10s"}
    assert observation.rejected == {}


def test_no_demand_at_all_is_none_without_staleness() -> None:
    observation = read(StubPrometheus({}), queries(request_rate="rr"))
    assert observation.present == {"request_rate": None}
    assert observation.as_of is None and not observation.stale


def test_a_demand_that_stopped_reporting_is_stale_as_of_its_last_row() -> None:
    first = math.ceil((NOW - 3600.0) / STEP) * STEP
    history = rows(first, [5.0] * 20 + [math.nan] * 5)  # rows end 25 steps after `first`
    stub = StubPrometheus({}, {"rr": [history]})
    observation = read(stub, queries(request_rate="rr"))
    assert observation.present["request_rate"] is None
    assert observation.as_of == first + 19 * STEP
    assert observation.stale


def test_a_recent_last_row_is_not_stale() -> None:
    last = math.floor(NOW / STEP) * STEP
    stub = StubPrometheus({}, {"rr": [rows(last - 2 * STEP, [5.0, 5.0])]})
    observation = read(stub, queries(request_rate="rr"))
    assert observation.as_of == last - STEP and not observation.stale


def test_a_bug_below_is_not_swallowed_as_a_metrics_fault() -> None:
    stub = StubPrometheus({"rr": TypeError("bug")})
    with pytest.raises(TypeError):
        read(stub, queries(request_rate="rr"))


def test_without_a_demand_query_any_current_figure_dates_the_data() -> None:
    stub = StubPrometheus({"util": [Sample({}, 90.0)]})
    observation = read(stub, queries(gpu_utilization="util", power_watts="power"))
    assert observation.as_of == NOW and not observation.stale
    assert stub.range_calls == [] and len(observation.demand_values) == 0
    assert read(StubPrometheus({}), queries(gpu_utilization="util")).as_of is None


def test_the_history_can_use_its_own_demand_query() -> None:
    stub = StubPrometheus({"rr[1m]": [Sample({}, 2.0)]})
    observation = read_with(stub, queries(request_rate="rr[1m]"), Query("request_rate", "rr[5m]"))
    assert [call[0] for call in stub.range_calls] == ["rr[5m]"]
    assert stub.instant_calls == [("rr[1m]", NOW)]
    assert observation.present == {"request_rate": 2.0}


def test_a_rejected_history_query_names_its_own_field() -> None:
    stub = StubPrometheus({"rr": [Sample({}, 2.0)]}, {"rr[": QueryRejected("rr[", "parse error")})
    history = Query("request_rate", "rr[", "spec.metrics.requestRate")
    observation = read_with(stub, queries(request_rate="rr"), history)
    assert observation.rejected == {"spec.metrics.requestRate": "parse error"}


def read_with(stub: StubPrometheus, qs: dict[str, Query], demand: Query) -> Observation:
    return asyncio.run(observe(stub, qs, NOW, None, history=3600.0, step=STEP, demand_query=demand))
