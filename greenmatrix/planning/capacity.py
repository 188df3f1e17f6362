"""A replica's capacity, and the replicas a demand needs: the one place both are computed.

The static recommendation sizes replicas from predicted latencies; the live loop asks the same
functions with capacity learned from what a deployment is seen doing, so the two never disagree
on what "enough replicas" means.
"""

from __future__ import annotations

import math

from greenmatrix.interval import Interval

# Floor of a latency in seconds: a prediction of 0 must not make a replica infinitely fast.
_MIN_LATENCY_S = 1e-9


def request_latency(ttft_ms: Interval, tpot_ms: Interval, output_tokens: int) -> Interval:
    """End-to-end latency of one request (ms): the first token, then one step per further token."""
    n = max(output_tokens - 1, 0)
    return Interval(
        ttft_ms.p10 + n * tpot_ms.p10, ttft_ms.p50 + n * tpot_ms.p50, ttft_ms.p90 + n * tpot_ms.p90
    )


def replica_capacity(concurrency: int, latency_ms: Interval) -> Interval:
    """Requests per second one replica completes with `concurrency` requests in flight (Little's law).

    The slow end of the latency interval gives the low end of the capacity interval."""

    def rate(ms: float) -> float:
        return concurrency / max(ms / 1e3, _MIN_LATENCY_S)

    return Interval(rate(latency_ms.p90), rate(latency_ms.p50), rate(latency_ms.p10))


def replicas_for(demand: float, capacity: float, target_utilization: float) -> int:
    """Replicas that serve `demand` with each at most `target_utilization` of its `capacity` (>= 1).

    Demand and capacity in the same unit (requests/s, tokens/s)."""
    return max(1, math.ceil(demand / (capacity * target_utilization) - 1e-9))
