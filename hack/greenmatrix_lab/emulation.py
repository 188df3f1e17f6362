"""One emulated serving replica: what the engine predicts for it, and what it does under a given load.

The replica is a queue in front of a batch. The engine's p50 TTFT and TPOT at the profile's
concurrency N give its end-to-end latency L and its capacity C = N / L (requests/s, as
`greenmatrix.replica_capacity` computes it). At a load below C the batch is partly full: latency
falls a little with it (smaller batches decode faster) and the requests in flight follow Little's
law (running = rate x latency). Above C the excess waits: the queue grows at (load - C), the
replica completes C requests/s, and TTFT grows by the time to drain the queue ahead. KV-cache use
follows the running requests; GPU utilisation and power follow the busy fraction.

Counts are accumulated as floats and shown floored, so every counter is an integer that never
goes down, buckets never exceed their count, and a histogram's `+Inf` bucket equals its count.
Everything is deterministic: the noise is a hash of the replica's key and the trace time.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

# Spread of single requests around the median (lognormal sigma): first tokens vary most (prompt
# lengths, prefill batching), per-token time least.
TTFT_SIGMA = 0.35
TPOT_SIGMA = 0.12
E2E_SIGMA = 0.2
# Share of a GPU's memory vLLM takes at start (its default gpu_memory_utilization); DCGM sees this
# much framebuffer in use whatever the load, since the KV cache is allocated up front.
VLLM_MEMORY_FRACTION = 0.9
# KV-cache use with a full batch of the profile's concurrency (the rest is headroom for long prompts).
KV_AT_FULL_BATCH = 0.85
IDLE_POWER_FRACTION = 0.30
BUSY_POWER_FRACTION = 0.72


@dataclass(frozen=True)
class ReplicaModel:
    """What the engine predicts for one replica of the workload on one GPU type (p50 values)."""

    model_name: str
    gpu: str
    """Catalog key of the GPU, e.g. H100-SXM-80GB."""
    gpus: int
    ttft_s: float
    tpot_s: float
    concurrency: int
    input_tokens: int
    output_tokens: int
    tdp_watts: float
    memory_mib: float
    """Framebuffer of one GPU (the node's nvidia.com/gpu.memory)."""
    capacity: float
    """Requests/s the replica completes with a full batch (`greenmatrix.replica_capacity`, p50)."""

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + max(self.output_tokens - 1, 0) * self.tpot_s


@dataclass(frozen=True)
class GPUReading:
    util_percent: float
    watts: float
    fb_used_mib: float
    energy_mj: float


@dataclass(frozen=True)
class Tick:
    """What a replica did over one step: the record's row and the gauges' values."""

    offered: float
    """Requests/s sent to this replica."""
    served: float
    """Requests/s it completed."""
    ttft_s: float
    tpot_s: float
    e2e_s: float
    running: float
    waiting: float
    kv_usage: float
    gpus: tuple[GPUReading, ...]


def noise(key: str, moment: float) -> float:
    """A deterministic value in [-1, 1] for `key` at `moment` (whole seconds)."""
    digest = hashlib.blake2b(f"{key}:{math.floor(moment)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if x <= 0 or median <= 0:
        return 0.0
    return 0.5 * math.erfc(-(math.log(x) - math.log(median)) / (sigma * math.sqrt(2)))


@dataclass
class Histogram:
    """Cumulative bucket counts (as floats) of observations spread lognormally around a median."""

    bounds: tuple[float, ...]
    sigma: float
    buckets: list[float] = field(default_factory=list)
    total: float = 0.0
    count: float = 0.0

    def __post_init__(self) -> None:
        self.buckets = self.buckets or [0.0] * len(self.bounds)

    def observe(self, n: float, median: float) -> None:
        if n <= 0:
            return
        for i, bound in enumerate(self.bounds):
            self.buckets[i] += n * lognormal_cdf(bound, median, self.sigma)
        self.count += n
        self.total += n * median * math.exp(self.sigma**2 / 2)


class Replica:
    """The running state of one emulated pod: its queue, counters and histograms."""

    def __init__(
        self,
        model: ReplicaModel,
        key: str,
        bounds: dict[str, tuple[float, ...]],
    ) -> None:
        self.model = model
        self.key = key
        self.queue = 0.0
        self.requests = 0.0
        self.capacity_factor = 1.0
        """Share of the model's capacity it serves (below 1: an emulated slowdown)."""
        self.histograms = {
            "ttft": Histogram(bounds["ttft"], TTFT_SIGMA),
            "tpot": Histogram(bounds["tpot"], TPOT_SIGMA),
            "e2e": Histogram(bounds["e2e"], E2E_SIGMA),
        }
        # A GPU's energy counter runs since its driver loaded: start it somewhere plausible.
        self.energy_mj = [1e9 * (2 + noise(f"{key}/energy/{i}", 0)) for i in range(model.gpus)]
        self.last = self.advance(0.0, 0.0, 0.0)

    @property
    def prompt_tokens(self) -> float:
        return self.requests * self.model.input_tokens

    @property
    def generation_tokens(self) -> float:
        return self.requests * self.model.output_tokens

    def advance(self, offered: float, dt: float, moment: float) -> Tick:
        """Serve `offered` requests/s for `dt` seconds ending at trace time `moment`."""
        m = self.model
        capacity = m.capacity * self.capacity_factor
        arrived = max(offered, 0.0) * dt
        done = min(self.queue + arrived, capacity * dt)
        self.queue = self.queue + arrived - done
        served = done / dt if dt > 0 else 0.0
        busy = min(1.0, served / capacity)
        # Smaller batches step faster; the engine's figures are those of a full batch.
        tpot = m.tpot_s * (0.7 + 0.3 * busy) * (1 + 0.02 * noise(f"{self.key}/tpot", moment))
        in_batch_ttft = m.ttft_s * (0.6 + 0.4 * busy) * (1 + 0.04 * noise(f"{self.key}/ttft", moment))
        wait = self.queue / capacity
        ttft = in_batch_ttft + wait
        e2e = ttft + max(m.output_tokens - 1, 0) * tpot
        running = min(float(m.concurrency), served * (e2e - wait))
        self.requests += done
        self.histograms["ttft"].observe(done, ttft)
        self.histograms["tpot"].observe(done, tpot)
        self.histograms["e2e"].observe(done, e2e)
        tick = Tick(
            offered=offered,
            served=served,
            ttft_s=ttft,
            tpot_s=tpot,
            e2e_s=e2e,
            running=running,
            waiting=self.queue,
            kv_usage=min(1.0, KV_AT_FULL_BATCH * running / m.concurrency),
            gpus=tuple(self._gpu(i, busy, dt, moment) for i in range(m.gpus)),
        )
        self.last = tick
        return tick

    def _gpu(self, index: int, busy: float, dt: float, moment: float) -> GPUReading:
        m = self.model
        jitter = noise(f"{self.key}/gpu/{index}", moment)
        util = min(1.0, max(0.0, busy * 0.97 + 0.02 * jitter))
        watts = m.tdp_watts * (IDLE_POWER_FRACTION + (BUSY_POWER_FRACTION - IDLE_POWER_FRACTION) * util)
        watts *= 1 + 0.01 * jitter
        self.energy_mj[index] += watts * dt * 1e3
        fb = m.memory_mib * VLLM_MEMORY_FRACTION + 64 * (1 + jitter)
        return GPUReading(round(util * 100), watts, math.floor(fb), self.energy_mj[index])
