"""Roofline throughput and latency of an MLPerf Inference benchmark on one accelerator.

The per-sample work comes from `greenmatrix.physics.benchmarks`, the device's rates from
`greenmatrix.physics.device` and its sustained peak from `benchmarks.sustained_flops`. Throughput
(Offline/Server) amortises the weights over the batch the memory allows; latency
(SingleStream/MultiStream) reads them for every query.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenmatrix.catalog.precision import bytes_per_param
from greenmatrix.physics.benchmarks import (
    BenchmarkWork,
    active_params,
    l2_dram_share,
    precision_for,
    sustained_flops,
    work,
)
from greenmatrix.physics.device import GPULike

# Memory left for activations/KV after weights: the runtime, workspace and fragmentation take the rest.
_USABLE_MEMORY = 0.9
# Largest decode batch a serving engine schedules, whatever memory allows.
_MAX_DECODE_BATCH = 1024
# Weights above this share of the smallest replica's usable memory leave too little KV room: wider
# replicas (more tensor parallelism) are then considered (see _llm_roofline). Not a fitted value: any
# share from 0.3 to 0.8 picks the same replicas for every MLPerf row.
_WIDER_REPLICA_SHARE = 0.5


@dataclass(frozen=True)
class Roofline:
    """Roofline throughput of ONE accelerator on a benchmark, in samples/s."""

    samples_per_s: float
    flops_per_sample: float
    bytes_per_sample: float
    peak_flops: float  # sustained FLOP/s at the chosen precision (see sustained_fraction)
    bandwidth: float  # B/s
    precision: str
    bound: str  # "compute" | "memory"
    gpus_per_replica: int  # >1 when the weights need tensor parallelism to fit (LLMs)
    # Share of the memory time left once L2 keeps activations on chip (l2_dram_share); 1.0 for LLMs
    # and latency rooflines. `bound` and `memory_time` describe DRAM traffic alone.
    dram_share: float = 1.0

    @property
    def compute_time(self) -> float:
        """Seconds per sample per GPU if compute were the only limit."""
        return self.flops_per_sample / (self.peak_flops * self.gpus_per_replica)

    @property
    def memory_time(self) -> float:
        """Seconds per sample per GPU if DRAM bandwidth were the only limit (no L2 term)."""
        return self.bytes_per_sample / (self.bandwidth * self.gpus_per_replica)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity of the workload, FLOP/byte."""
        return self.flops_per_sample / max(self.bytes_per_sample, 1.0)


class DoesNotFitError(ValueError):
    """The benchmark's weights do not fit in the memory of the accelerators available."""


def roofline(name: str, gpu: GPULike, *, max_gpus: int = 1 << 16, precision: str | None = None) -> Roofline:
    """Roofline throughput per accelerator of benchmark `name` on `gpu`.

    Non-LLM benchmarks: 1 / max(FLOPs / sustained peak, bytes x l2_dram_share / DRAM bandwidth).
    For LLMs the weights are split over the fewest GPUs (a power of two, at most `max_gpus`) that
    hold them with room for KV cache, or over more when the weights fill over half of that replica
    and a wider one has a higher roofline per GPU; the returned throughput is per GPU of the replica.
    Raises DoesNotFitError when even `max_gpus` GPUs cannot hold the weights, ValueError for an
    unknown benchmark or a GPU without any usable tensor rate.
    """
    w = work(name)
    prec = precision or precision_for(name, gpu)
    if prec is None:
        raise ValueError(
            f"gpu {gpu.key!r} lists no tensor rate usable for {w.key} (has {sorted(dict(gpu.tflops))})"
        )
    flops = sustained_flops(gpu, prec)
    if flops <= 0:
        raise ValueError(f"gpu {gpu.key!r} has no tensor rate for precision {prec!r}")
    bw = float(gpu.memory_bandwidth_gbs) * 1e9
    elem = bytes_per_param(prec)
    if w.is_llm:
        return _llm_roofline(w, gpu, prec, flops, bw, elem, max_gpus)
    f = w.flops_per_sample
    b = w.bytes_per_sample * elem
    return _bounded(f, b, flops, bw, prec, g=1, share=l2_dram_share(gpu, bw), per_gpu=True)


def _bounded(
    f: float, b: float, flops: float, bw: float, prec: str, g: int, share: float, per_gpu: bool
) -> Roofline:
    """The roofline of `f` FLOPs and `b` DRAM bytes per sample on a replica of `g` GPUs: per GPU of
    the replica (throughput) or per replica (latency)."""
    t_compute, t_memory = f / (g * flops), b / (g * bw)
    per_replica = 1.0 / max(t_compute, t_memory * share)
    return Roofline(
        samples_per_s=per_replica / g if per_gpu else per_replica,
        flops_per_sample=f,
        bytes_per_sample=b,
        peak_flops=flops,
        bandwidth=bw,
        precision=prec,
        bound="compute" if t_compute >= t_memory else "memory",
        gpus_per_replica=g,
        dram_share=share,
    )


def _llm_roofline(
    w: BenchmarkWork, gpu: GPULike, prec: str, flops: float, bw: float, elem: float, max_gpus: int
) -> Roofline:
    weight_bytes = w.params * elem
    mem = float(gpu.memory_gib) * 2**30 * _USABLE_MEMORY
    # Longest context a sequence reaches, which bounds the KV each sequence holds.
    kv_seq_max = w.kv_bytes_per_token * elem * (w.input_tokens + w.output_tokens)
    g = 1
    # Need room for the weights and at least a handful of sequences of KV.
    while weight_bytes / g + 8 * kv_seq_max * w.beams / g > mem:
        g *= 2
        if g > max_gpus:
            raise DoesNotFitError(
                f"{w.key} weights ({weight_bytes / 1e9:.0f} GB at {prec}) do not fit in {max_gpus} x "
                f"{gpu.memory_gib:g} GiB"
            )
    best = _llm_replica(w, prec, flops, bw, elem, g, mem)
    # When the weights fill most of the smallest replica, KV room (hence the decode batch) is what
    # limits it, and a submitter splits the model wider when that raises throughput per GPU (on 8x
    # H100 this puts Llama-2-70B on two GPUs per replica; an H200 keeps it on one). A small model
    # (GPT-J) leaves room for a large batch on one GPU and is never split.
    if weight_bytes > _WIDER_REPLICA_SHARE * g * mem:
        wider = 2 * g
        while wider <= max_gpus:
            r = _llm_replica(w, prec, flops, bw, elem, wider, mem)
            if r.samples_per_s > best.samples_per_s * (1 + 1e-9):
                best = r
            wider *= 2
    return best


def _llm_replica(
    w: BenchmarkWork, prec: str, flops: float, bw: float, elem: float, g: int, mem: float
) -> Roofline:
    """Roofline per GPU of an LLM served by replicas of `g` GPUs, each with `mem` usable bytes."""
    weight_bytes = w.params * elem
    kv_token = w.kv_bytes_per_token * elem
    kv_seq_max = kv_token * (w.input_tokens + w.output_tokens)
    free = g * mem - weight_bytes
    batch = min(_MAX_DECODE_BATCH, max(1.0, free / (kv_seq_max * w.beams))) / w.beams  # samples in flight
    active = active_params(w)
    sequences = w.beams
    f = 2.0 * active * (w.input_tokens + w.output_tokens * sequences)
    # Mean context during decode is the prompt plus half the output.
    mean_ctx = w.input_tokens + w.output_tokens / 2.0
    decode_bytes = w.output_tokens * (weight_bytes / batch + sequences * kv_token * mean_ctx)
    prefill_bytes = weight_bytes / batch + kv_token * w.input_tokens
    return _bounded(f, decode_bytes + prefill_bytes, flops, bw, prec, g=g, share=1.0, per_gpu=True)


# MLPerf MultiStream queries carry 8 samples (resnet50, retinanet); SingleStream queries one.
MULTISTREAM_SAMPLES = 8


def latency_roofline(
    name: str, gpu: GPULike, *, samples_per_query: int = 1, max_gpus: int = 1, precision: str | None = None
) -> Roofline:
    """Roofline of one query at batch `samples_per_query` on one accelerator (or the fewest that hold it).

    Unlike Offline throughput, nothing amortises the weights: every query reads them all, and an LLM
    reads them once per generated token. `samples_per_s` is queries per second of ONE replica
    (1 / latency); flops/bytes are per query.
    """
    w = work(name)
    prec = precision or precision_for(name, gpu)
    if prec is None:
        raise ValueError(f"gpu {gpu.key!r} lists no tensor rate usable for {w.key}")
    flops = sustained_flops(gpu, prec)
    if flops <= 0:
        raise ValueError(f"gpu {gpu.key!r} has no tensor rate for precision {prec!r}")
    bw = float(gpu.memory_bandwidth_gbs) * 1e9
    elem = bytes_per_param(prec)
    weight_bytes = w.params * elem
    mem = float(gpu.memory_gib) * 2**30 * _USABLE_MEMORY
    g = 1
    while weight_bytes / g > mem:
        g *= 2
        if g > max_gpus:
            raise DoesNotFitError(
                f"{w.key} weights ({weight_bytes / 1e9:.0f} GB at {prec}) do not fit in {max_gpus} x "
                f"{gpu.memory_gib:g} GiB"
            )
    q = max(1, int(samples_per_query))
    if w.is_llm:
        active = active_params(w)
        f = q * 2.0 * active * (w.input_tokens + w.output_tokens * w.beams)
        kv_token = w.kv_bytes_per_token * elem
        mean_ctx = w.input_tokens + w.output_tokens / 2.0
        # Prefill reads the weights once; each generated token reads them again plus the KV cache.
        b = (w.output_tokens + 1) * weight_bytes + q * w.output_tokens * w.beams * kv_token * mean_ctx
    else:
        f = q * w.flops_per_sample
        b = weight_bytes + q * w.bytes_per_sample * elem
    return _bounded(f, b, flops, bw, prec, g=g, share=1.0, per_gpu=False)
