"""The Prometheus client's fault handling, against a tiny local HTTP server scripted per request.

These are the faults a real Prometheus cannot produce on demand (a 500 then a 200, garbage bodies,
an answer slower than the timeout, a port nobody listens on, a dead server under 200 callers); the
real Prometheus of the lab checks the happy paths and PromQL (tests/lab/test_prometheus_adapter.py).
Sleeps and the breaker's clock are injected: no test waits for wall-clock time to pass.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest
from aiohttp import web
from greenmatrix_operator.adapters.prometheus import (
    MAX_POINTS,
    CircuitBreaker,
    MalformedResponse,
    Prometheus,
    PrometheusUnavailable,
    QueryRejected,
)
from local_http import serve

Reply = Callable[[dict[str, str]], Awaitable[web.Response]]


def ok_vector(*values: float) -> Reply:
    async def reply(form: dict[str, str]) -> web.Response:
        result = [
            {"metric": {"pod": f"p{i}"}, "value": [float(form["time"]), str(v)]} for i, v in enumerate(values)
        ]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    return reply


def status(code: int, body: Any = None, *, text: str | None = None) -> Reply:
    async def reply(form: dict[str, str]) -> web.Response:
        if text is not None:
            return web.Response(status=code, text=text)
        return web.json_response(
            body or {"status": "error", "errorType": "internal", "error": "boom"}, status=code
        )

    return reply


def slow(seconds: float) -> Reply:
    async def reply(form: dict[str, str]) -> web.Response:
        await asyncio.sleep(seconds)
        return await ok_vector(1.0)(form)

    return reply


def grid_matrix() -> Reply:
    """A range answer with one series whose value at t is t, on the requested grid."""

    async def reply(form: dict[str, str]) -> web.Response:
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        if (end - start) / step > MAX_POINTS:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "exceeded maximum resolution"},
                status=400,
            )
        times = np.arange(start, end + step / 2, step)
        values = [[float(t), repr(float(t))] for t in times]
        data = {"resultType": "matrix", "result": [{"metric": {"job": "x"}, "values": values}]}
        return web.json_response({"status": "success", "data": data})

    return reply


class ScriptedServer:
    """Answers the n-th request with the n-th reply (the last one repeats) and counts requests."""

    def __init__(self, *replies: Reply, prefix: str = "") -> None:
        self.replies = list(replies)
        self.prefix = prefix
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __aenter__(self) -> ScriptedServer:
        app = web.Application()
        app.router.add_post(self.prefix + "/api/v1/query", self._handle)
        app.router.add_post(self.prefix + "/api/v1/query_range", self._handle)
        self._runner, self.url = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append((request.path, form))
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        return await reply(form)


class RecordedSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class UpperBound:
    """An rng whose 'random' draw is always the top of the range: backoff's ceiling, observable."""

    def uniform(self, low: float, high: float) -> float:
        return high


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(url: str, **kwargs: Any) -> Prometheus:
    kwargs.setdefault("sleep", RecordedSleep())
    return Prometheus(url, client=httpx.AsyncClient(trust_env=False), **kwargs)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def test_a_500_is_retried_after_a_jittered_backoff_and_the_second_answer_used() -> None:
    sleep = RecordedSleep()

    async def scenario() -> None:
        async with ScriptedServer(status(500), ok_vector(2.5)) as server:
            prometheus = client(server.url, sleep=sleep, backoff=0.5)
            samples = await prometheus.instant("up", 1234.0)
            assert [s.value for s in samples] == [2.5]
            assert samples[0].labels == {"pod": "p0"}
            assert len(server.requests) == 2
            path, form = server.requests[0]
            assert path == "/api/v1/query" and form["query"] == "up" and float(form["time"]) == 1234.0

    run(scenario)
    assert len(sleep.calls) == 1 and 0.0 <= sleep.calls[0] <= 0.5


@pytest.mark.parametrize("code", [429, 502, 503])
def test_overload_and_gateway_errors_are_retried_up_to_attempts_with_growing_backoff(code: int) -> None:
    sleep = RecordedSleep()

    async def scenario() -> None:
        async with ScriptedServer(status(code)) as server:
            prometheus = client(server.url, attempts=3, backoff=0.5, sleep=sleep, rng=UpperBound())
            with pytest.raises(PrometheusUnavailable) as caught:
                await prometheus.instant("up", 1.0)
            assert caught.value.reason == "PrometheusUnavailable"
            assert f"HTTP {code}" in str(caught.value)
            assert len(server.requests) == 3

    run(scenario)
    assert sleep.calls == [0.5, 1.0]


@pytest.mark.parametrize(("code", "error_type"), [(400, "bad_data"), (422, "execution")])
def test_a_rejected_query_is_never_retried_and_keeps_prometheus_error(code: int, error_type: str) -> None:
    error = 'parse error: unexpected "}" in label matching'
    body = {"status": "error", "errorType": error_type, "error": error}

    async def scenario() -> None:
        async with ScriptedServer(status(code, body), ok_vector(1.0)) as server:
            prometheus = client(server.url)
            with pytest.raises(QueryRejected) as caught:
                await prometheus.instant("sum(up{)", 1.0)
            assert caught.value.reason == "QueryRejected"
            assert caught.value.query == "sum(up{)"
            assert caught.value.error == error and caught.value.error_type == error_type
            assert len(server.requests) == 1

    run(scenario)


@pytest.mark.parametrize(
    "reply",
    [
        status(200, text="<html>proxy login</html>"),
        status(200, {"status": "success"}),
        status(200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}),
        status(200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "2"]}]}}),
        status(
            200,
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "many"]}]},
            },
        ),
        status(
            200,
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 2]}]},
            },
        ),
        status(302, text="moved"),
    ],
    ids=["html", "no-data", "string-result", "no-labels", "text-value", "unquoted-value", "redirect"],
)
def test_an_answer_that_is_not_prometheus_json_is_malformed_and_not_retried(reply: Reply) -> None:
    async def scenario() -> None:
        async with ScriptedServer(reply) as server:
            prometheus = client(server.url)
            with pytest.raises(MalformedResponse) as caught:
                await prometheus.instant("up", 1.0)
            assert caught.value.reason == "MalformedResponse"
            assert len(server.requests) == 1

    run(scenario)


def test_an_answer_slower_than_the_timeout_is_unavailable_with_the_library_error_chained() -> None:
    async def scenario() -> None:
        async with ScriptedServer(slow(30.0)) as server:
            prometheus = client(server.url, timeout=0.2, attempts=2)
            with pytest.raises(PrometheusUnavailable) as caught:
                await prometheus.instant("up", 1.0)
            assert isinstance(caught.value.__cause__, httpx.TimeoutException)
            assert "0.2s" in str(caught.value)
            assert len(server.requests) == 2
            # Prometheus is told the same deadline, so it stops evaluating too.
            assert float(server.requests[0][1]["timeout"]) == 0.2

    run(scenario)


def test_a_port_nobody_listens_on_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed at the end of the block: nothing listens there

    async def scenario() -> None:
        prometheus = client(f"http://127.0.0.1:{port}", attempts=2)
        with pytest.raises(PrometheusUnavailable) as caught:
            await prometheus.instant("up", 1.0)
        assert isinstance(caught.value.__cause__, httpx.ConnectError)

    run(scenario)


def test_the_circuit_opens_after_n_failures_and_stops_hitting_the_server() -> None:
    clock = FakeClock()

    async def scenario() -> None:
        async with ScriptedServer(status(500)) as server:
            breaker = CircuitBreaker(failures=5, reset_after=30.0, clock=clock)
            prometheus = client(server.url, attempts=3, breaker=breaker)
            messages = []
            for _ in range(10):
                with pytest.raises(PrometheusUnavailable) as caught:
                    await prometheus.instant("up", 1.0)
                messages.append(str(caught.value))
            assert len(server.requests) == 5
            assert breaker.state == "open"
            assert "circuit open" in messages[-1] and "retry after 30s" in messages[-1]
            clock.now += 12.0
            with pytest.raises(PrometheusUnavailable, match="retry after 18s"):
                await prometheus.instant("up", 1.0)
            assert len(server.requests) == 5

    run(scenario)


def test_half_open_lets_one_trial_through_and_its_success_closes_the_circuit() -> None:
    clock = FakeClock()

    async def scenario() -> None:
        async with ScriptedServer(status(500), status(500), slow(0.2), ok_vector(1.0)) as server:
            breaker = CircuitBreaker(failures=2, reset_after=30.0, clock=clock)
            prometheus = client(server.url, attempts=1, breaker=breaker)
            for _ in range(2):
                with pytest.raises(PrometheusUnavailable):
                    await prometheus.instant("up", 1.0)
            assert breaker.state == "open"
            clock.now += 30.0
            assert breaker.state == "half-open"
            # The trial is slow: a second caller meanwhile fails fast instead of piling on.
            trial, second = await asyncio.gather(
                prometheus.instant("up", 1.0), prometheus.instant("up", 1.0), return_exceptions=True
            )
            assert [s.value for s in trial] == [1.0]
            assert isinstance(second, PrometheusUnavailable) and "circuit open" in str(second)
            assert len(server.requests) == 3
            assert breaker.state == "closed"
            assert [s.value for s in await prometheus.instant("up", 1.0)] == [1.0]
            assert len(server.requests) == 4

    run(scenario)


def test_a_failed_trial_opens_the_circuit_again_at_once() -> None:
    clock = FakeClock()

    async def scenario() -> None:
        async with ScriptedServer(status(500)) as server:
            breaker = CircuitBreaker(failures=3, reset_after=10.0, clock=clock)
            prometheus = client(server.url, attempts=1, breaker=breaker)
            for _ in range(3):
                with pytest.raises(PrometheusUnavailable):
                    await prometheus.instant("up", 1.0)
            clock.now += 10.0
            with pytest.raises(PrometheusUnavailable, match="HTTP 500"):
                await prometheus.instant("up", 1.0)  # the trial reaches the server and fails
            with pytest.raises(PrometheusUnavailable, match="circuit open"):
                await prometheus.instant("up", 1.0)
            assert len(server.requests) == 4
            assert breaker.state == "open"

    run(scenario)


def test_a_rejected_trial_still_proves_prometheus_is_up() -> None:
    clock = FakeClock()
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error"}

    async def scenario() -> None:
        async with ScriptedServer(status(503), status(400, bad)) as server:
            breaker = CircuitBreaker(failures=1, reset_after=5.0, clock=clock)
            prometheus = client(server.url, attempts=1, breaker=breaker)
            with pytest.raises(PrometheusUnavailable):
                await prometheus.instant("up", 1.0)
            clock.now += 5.0
            with pytest.raises(QueryRejected):
                await prometheus.instant("up{", 1.0)
            assert breaker.state == "closed"

    run(scenario)


def test_two_hundred_callers_against_a_dead_prometheus_send_a_bounded_number_of_requests() -> None:
    """The retry storm at scale: without the breaker this would be 200 x 3 attempts."""
    clock = FakeClock()

    async def scenario() -> None:
        async with ScriptedServer(status(503)) as server:
            breaker = CircuitBreaker(failures=5, reset_after=30.0, clock=clock)
            prometheus = client(server.url, attempts=3, breaker=breaker, concurrency=4)
            outcomes = await asyncio.gather(
                *(prometheus.instant(f"up{{i='{i}'}}", 1.0) for i in range(200)), return_exceptions=True
            )
            assert all(isinstance(o, PrometheusUnavailable) for o in outcomes)
            # The breaker opens at the 5th failure, with at most 4 requests on the wire.
            assert len(server.requests) <= 5 + 4 - 1
            assert sum("circuit open" in str(o) for o in outcomes) >= 200 - 8

    run(scenario)


def test_a_long_range_is_read_in_chunks_stitched_in_order_without_duplicates() -> None:
    async def scenario() -> None:
        async with ScriptedServer(grid_matrix()) as server:
            prometheus = client(server.url)
            start, step = 1_000_000.0, 10.0
            end = start + 25_000 * step
            series = await prometheus.range("rate(x[1m])", start, end, step)
            assert len(server.requests) == 3
            assert all(path == "/api/v1/query_range" for path, _ in server.requests)
            (one,) = series
            expected = np.arange(start, end + step / 2, step)
            np.testing.assert_array_equal(one.timestamps, expected)
            np.testing.assert_array_equal(one.values, expected)
            assert one.labels == {"job": "x"}

    run(scenario)


def test_a_short_range_is_one_request() -> None:
    async def scenario() -> None:
        async with ScriptedServer(grid_matrix()) as server:
            prometheus = client(server.url)
            series = await prometheus.range("x", 0.0, MAX_POINTS * 60.0, 60.0)
            assert len(server.requests) == 1
            assert len(series[0].timestamps) == MAX_POINTS + 1

    run(scenario)


def test_the_url_may_carry_a_path_prefix_and_a_trailing_slash() -> None:
    async def scenario() -> None:
        async with ScriptedServer(ok_vector(7.0), prefix="/prometheus") as server:
            prometheus = client(server.url + "/prometheus/")
            assert [s.value for s in await prometheus.instant("up", 1.0)] == [7.0]
            assert server.requests[0][0] == "/prometheus/api/v1/query"

    run(scenario)


def test_a_scalar_result_is_one_unlabelled_sample() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3.5"]}}

    async def scenario() -> None:
        async with ScriptedServer(status(200, body)) as server:
            samples = await client(server.url).instant("scalar(up)", 1.0)
            assert [(dict(s.labels), s.value) for s in samples] == [({}, 3.5)]

    run(scenario)


def test_nan_and_infinities_arrive_as_strings_and_parse_as_floats() -> None:
    result = [{"metric": {"a": "1"}, "value": [1, "NaN"]}, {"metric": {"a": "2"}, "value": [1, "+Inf"]}]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}

    async def scenario() -> None:
        async with ScriptedServer(status(200, body)) as server:
            values = [s.value for s in await client(server.url).instant("x", 1.0)]
            assert np.isnan(values[0]) and values[1] == float("inf")

    run(scenario)
