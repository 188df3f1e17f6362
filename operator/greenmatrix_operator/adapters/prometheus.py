"""The Prometheus adapter: PromQL in, samples and series out, HTTP faults translated at the boundary.

Every failure becomes one of three `MetricsError`s, each with the condition reason it maps to:
`PrometheusUnavailable` (connection errors, timeouts, 429, 5xx, an open circuit: retried with
exponential backoff and full jitter), `QueryRejected` (400/422: the query itself is wrong, so it is
never retried) and `MalformedResponse` (an answer that is not Prometheus's JSON). One
`CircuitBreaker` per Prometheus and a limit on requests in flight stop a retry storm: at 10,000
workloads a dead Prometheus would otherwise receive attempts x figures x workloads requests each
interval; with them it receives about `failures + concurrency` and then none until `reset_after`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

# Prometheus refuses a range query whose (end - start) / step exceeds this many points.
MAX_POINTS = 11_000
_RETRIED_STATUSES = {429} | set(range(500, 600))
_REJECTED_STATUSES = {400, 422}


class MetricsError(Exception):
    """A read from Prometheus that did not return usable data; `reason` names the condition."""

    reason = "MetricsError"


class PrometheusUnavailable(MetricsError):
    """Prometheus could not be reached or could not answer now (worth retrying later)."""

    reason = "PrometheusUnavailable"


class QueryRejected(MetricsError):
    """Prometheus refused the query (bad syntax, unknown function, a failed evaluation)."""

    reason = "QueryRejected"

    def __init__(self, query: str, error: str, error_type: str = "") -> None:
        self.query = query
        self.error = error
        self.error_type = error_type
        super().__init__(f"Prometheus rejected {query!r}: {error_type + ': ' if error_type else ''}{error}")


class MalformedResponse(MetricsError):
    """An answer that is not the JSON Prometheus's HTTP API documents."""

    reason = "MalformedResponse"


class CircuitBreaker:
    """Fails fast after `failures` consecutive failed requests, for `reset_after` seconds.

    Closed: requests pass. Open: every request fails at once. After `reset_after` one trial
    request passes (half-open): its success closes the circuit, its failure opens it again.
    """

    def __init__(
        self, failures: int = 5, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or reset_after <= 0:
            raise ValueError("failures must be >= 1 and reset_after > 0")
        self.failures = failures
        self.reset_after = reset_after
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_after else "open"

    def before_request(self) -> bool:
        """Raise PrometheusUnavailable when the circuit is open (or half-open with its trial running);
        returns True when this request is the half-open trial."""
        if self._opened_at is None:
            return False
        waited = self._clock() - self._opened_at
        if waited >= self.reset_after and not self._trial_running:
            self._trial_running = True
            return True
        retry_after = max(0.0, self.reset_after - waited)
        raise PrometheusUnavailable(
            f"circuit open after {self._consecutive} consecutive failures; retry after {retry_after:.0f}s"
        )

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_running = False

    def abandon(self, trial: bool) -> None:
        """A request that ended with no verdict (cancelled): if it was the trial, the next one is."""
        if trial:
            self._trial_running = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._trial_running or self._consecutive >= self.failures:
            self._opened_at = self._clock()
        self._trial_running = False


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's result."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query's result: epoch-second timestamps, increasing, and their values."""

    labels: Mapping[str, str]
    timestamps: np.ndarray
    values: np.ndarray


class Prometheus:
    """An async client for Prometheus's query API; one per Prometheus, shared by every workload."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        breaker: CircuitBreaker | None = None,
        concurrency: int = 32,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1 or concurrency < 1:
            raise ValueError("attempts and concurrency must be >= 1")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._in_flight = asyncio.Semaphore(concurrency)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()

    async def instant(self, query: str, at: float) -> list[Sample]:
        """The query's value at `at` (epoch seconds), one Sample per series (a scalar has no labels)."""
        data = await self._call("/api/v1/query", {"query": query, "time": _seconds(at)}, query)
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector":
                return [Sample(_labels(item["metric"]), _number(item["value"][1])) for item in result]
            if kind == "scalar":
                return [Sample({}, _number(result[1]))]
        except (KeyError, IndexError, TypeError) as err:
            raise MalformedResponse(f"instant query {query!r}: unexpected result shape: {err!r}") from err
        raise MalformedResponse(f"instant query {query!r}: result type {kind!r} is not a vector or scalar")

    async def range(self, query: str, start: float, end: float, step: float) -> list[RangeSeries]:
        """The query evaluated at start, start + step, ... <= end; long spans are read in chunks."""
        if step <= 0 or end < start:
            raise ValueError("a range needs step > 0 and end >= start")
        pieces: dict[tuple[tuple[str, str], ...], list[tuple[np.ndarray, np.ndarray]]] = {}
        labels_of: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
        last_point = math.floor((end - start) / step + 1e-9)
        # Chunks of MAX_POINTS + 1 points on the one grid start + k * step: they abut, never overlap.
        for first in range(0, last_point + 1, MAX_POINTS + 1):
            last = min(last_point, first + MAX_POINTS)
            for series in await self._range_once(query, start + first * step, start + last * step, step):
                key = tuple(sorted(series.labels.items()))
                labels_of[key] = series.labels
                pieces.setdefault(key, []).append((series.timestamps, series.values))
        return [_stitched(labels_of[key], parts) for key, parts in pieces.items()]

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _range_once(self, query: str, start: float, end: float, step: float) -> list[RangeSeries]:
        form = {"query": query, "start": _seconds(start), "end": _seconds(end), "step": _seconds(step)}
        data = await self._call("/api/v1/query_range", form, query)
        if data.get("resultType") != "matrix":
            raise MalformedResponse(f"range query {query!r}: result type {data.get('resultType')!r}")
        out = []
        try:
            for item in data["result"]:
                points = item["values"]
                times = np.array([float(t) for t, _ in points], dtype=float)
                values = np.array([_number(v) for _, v in points], dtype=float)
                out.append(RangeSeries(_labels(item["metric"]), times, values))
        except (KeyError, TypeError, ValueError) as err:
            raise MalformedResponse(f"range query {query!r}: unexpected result shape: {err!r}") from err
        return out

    async def _call(self, path: str, form: Mapping[str, str], query: str) -> dict[str, Any]:
        """POST the form (queries can be long), retrying only PrometheusUnavailable; returns `data`."""
        for attempt in range(self.attempts):
            try:
                return await self._attempt(path, form, query)
            except PrometheusUnavailable:
                if attempt + 1 == self.attempts or self.breaker.state != "closed":
                    raise
            # Full jitter: callers that failed together do not come back together.
            await self._sleep(self._rng.uniform(0.0, self.backoff * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, path: str, form: Mapping[str, str], query: str) -> dict[str, Any]:
        # The breaker is asked inside the in-flight limit: when Prometheus dies, at most
        # `concurrency` requests are on the wire as it opens, however many workloads are waiting.
        async with self._in_flight:
            trial = self.breaker.before_request()
            try:
                body = await self._post_once(path, form, query)
            except PrometheusUnavailable:
                self.breaker.record_failure()
                raise
            except MetricsError:
                self.breaker.record_success()  # Prometheus answered; the query or the body was wrong
                raise
            except BaseException:
                self.breaker.abandon(trial)  # a cancelled trial must not hold the circuit half-open
                raise
            self.breaker.record_success()
            return body

    async def _post_once(self, path: str, form: Mapping[str, str], query: str) -> dict[str, Any]:
        # Prometheus stops evaluating at its own `timeout` too, so a slow query frees its server.
        fields = {**form, "timeout": _seconds(self.timeout)}
        try:
            response = await self._client.post(self.url + path, data=fields, timeout=self.timeout)
        except httpx.TimeoutException as err:
            raise PrometheusUnavailable(f"{self.url}: no answer within {self.timeout:g}s") from err
        except httpx.HTTPError as err:
            raise PrometheusUnavailable(f"{self.url}: {type(err).__name__}: {err}") from err
        if response.status_code in _RETRIED_STATUSES:
            raise PrometheusUnavailable(f"{self.url}: HTTP {response.status_code}: {_brief(response)}")
        try:
            body = response.json()
        except ValueError as err:
            if response.status_code in _REJECTED_STATUSES:
                raise QueryRejected(query, _brief(response)) from err
            raise MalformedResponse(
                f"{self.url}: HTTP {response.status_code}, body is not JSON: {_brief(response)}"
            ) from err
        if response.status_code in _REJECTED_STATUSES:
            error = body.get("error", "") if isinstance(body, dict) else ""
            error_type = body.get("errorType", "") if isinstance(body, dict) else ""
            raise QueryRejected(query, str(error) or _brief(response), str(error_type))
        if response.status_code != 200:
            raise MalformedResponse(f"{self.url}: unexpected HTTP {response.status_code}: {_brief(response)}")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or body.get("status") != "success":
            raise MalformedResponse(f"{self.url}: not a Prometheus success response: {_brief(response)}")
        return data


def _stitched(labels: Mapping[str, str], parts: list[tuple[np.ndarray, np.ndarray]]) -> RangeSeries:
    times = np.concatenate([t for t, _ in parts])
    values = np.concatenate([v for _, v in parts])
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    keep = np.ones(len(times), dtype=bool)
    keep[1:] = np.diff(times) > 0
    return RangeSeries(labels, times[keep], values[keep])


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict):
        raise TypeError(f"metric labels are {type(metric).__name__}, not an object")
    return {str(k): str(v) for k, v in metric.items()}


def _number(text: Any) -> float:
    """Prometheus sends values as strings ("1.5", "NaN", "+Inf"); anything else is malformed."""
    if not isinstance(text, str):
        raise MalformedResponse(f"sample value {text!r} is not a string")
    try:
        return float(text)
    except ValueError as err:
        raise MalformedResponse(f"sample value {text!r} is not a number") from err


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"time {value!r} is not finite")
    return repr(float(value))


def _brief(response: httpx.Response) -> str:
    return response.text[:300].strip() or "(empty body)"
