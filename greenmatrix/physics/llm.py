"""LLM inference roofline: prefill, decode, KV cache, parallelism and memory fit.

This is the physics every serving prediction starts from, and the "plain roofline" the learned
correction is measured against:

- **Prefill** (time to first token) is compute-bound: ~2 x active parameters x prompt tokens, plus
  causal attention FLOPs, at the tensor rate of the compute precision, split over the GPUs that
  hold the request; floored by one read of the weights.
- **Decode** (time per output token) is memory-bound at small batch: every step reads the weights
  it needs (for MoE, only the experts the batch's tokens are routed to) and every sequence's KV
  cache; at large batch the FLOPs take over.
- **Elementwise kernels** (norms, residual adds, activations, MoE permutes) stream activations
  through memory between the matmuls, serially, in prefill and decode alike.
- **Mixed batches**: in aggregated serving the other requests' prefill chunks ride in the decode
  passes, so their FLOPs overlap the decode's weight reads (the prefill stall).
- **Communication**: tensor parallelism all-reduces activations twice per layer over NVLink/PCIe;
  expert parallelism moves each token to its experts and back.
- **Memory fit**: weights + KV cache for every concurrent sequence + runtime overhead must fit in
  the GPUs of one replica.

Every quantity is per replica (one serving instance of `gpus` GPUs); all functions are pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from greenmatrix.catalog.llms import ModelArch
from greenmatrix.catalog.precision import PRECISIONS, normalize_precision
from greenmatrix.catalog.precision import bytes_per_param as _bytes_per_param
from greenmatrix.errors import InvalidSpecError
from greenmatrix.physics.device import GPULike

GIB = 1024**3
# Runtime memory outside weights and KV: CUDA context, NCCL buffers, activations and workspace.
# 3.5 GiB follows the deployment margin serving benchmarks budget per GPU.
RUNTIME_OVERHEAD_BYTES = 3.5 * GIB
# Serving engines leave ~10% of memory unallocated to avoid fragmentation failures.
USABLE_MEMORY_FRACTION = 0.9
# Per-collective launch + synchronisation latency (s); NCCL all-reduce of a small message.
COLLECTIVE_LATENCY_S = 8e-6
ACTIVATION_BYTES = 2.0  # activations travel between GPUs in 16-bit
# Elementwise kernels between the matmuls (norms, residual adds, activation functions, MoE
# permutes) stream activations through memory, one kernel after another: 16-bit reads + writes per
# token per layer of hidden-sized tensors, of FFN-width tensors, and per routed copy of a token.
ELEMENTWISE_HIDDEN_RW = 12.0
ELEMENTWISE_FFN_RW = 4.0
ELEMENTWISE_PERMUTE_RW = 4.0
# Precisions here are already canonical keys: a table lookup keeps batch prediction fast.
_BYTES: dict[str, float] = {k: _bytes_per_param(k) for k in PRECISIONS}


def bytes_per_param(precision: str) -> float:
    return _BYTES[precision] if precision in _BYTES else _bytes_per_param(precision)


def tensor_rate(gpu: GPULike, precision: str) -> float:
    """Tensor FLOP/s; a listed rate for the canonical key is what `GPUSpec.flops` returns first."""
    listed = getattr(gpu, "tflops", None)
    if listed and precision in listed:
        return float(listed[precision]) * 1e12
    return gpu.flops(precision)


@dataclass(frozen=True)
class Parallelism:
    """How one replica is split. ``tp`` shards attention/dense weights, ``attention_dp`` replicates
    attention over independent groups of sequences, experts are spread over ``ep`` x ``moe_tp``
    GPUs, ``pp`` splits layers into stages."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    moe_tp: int = 0  # 0: whatever GPUs remain after ep (gpus_per_stage / ep)
    attention_dp: int = 1

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "ep", "attention_dp"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidSpecError(name, f"must be an integer >= 1, got {value!r}")
        if self.moe_tp < 0:
            raise InvalidSpecError("moe_tp", f"must be >= 0, got {self.moe_tp!r}")

    @property
    def gpus_per_stage(self) -> int:
        return max(self.tp * self.attention_dp, self.ep * max(1, self.moe_tp))

    @property
    def gpus(self) -> int:
        return self.gpus_per_stage * self.pp

    @property
    def expert_shards(self) -> int:
        """GPUs one stage's experts are spread over: all of them, whether by expert or tensor
        parallelism (the split between the two changes communication, not bytes per GPU)."""
        return self.gpus_per_stage


@dataclass(frozen=True)
class Precisions:
    """Storage precision of dense weights, of routed experts, of the KV cache; and the matmul rate."""

    weights: str
    experts: str
    kv: str
    compute: str

    @classmethod
    def of(cls, weights: str, experts: str | None = None, kv: str | None = None) -> Precisions:
        w = normalize_precision(weights) or "bf16"
        e = normalize_precision(experts) or w
        # Serving engines store the KV cache in fp8 whenever the weights are 8-bit or narrower, and
        # in the model's own dtype otherwise (vLLM's kv_cache_dtype "auto"): 32 bits for fp32/tf32
        # weights, whose cache half the size would fit layouts that cannot hold it.
        k = normalize_precision(kv) or (
            "fp8"
            if w in ("fp8", "fp4", "int8") or e in ("fp8", "fp4")
            else "fp32"
            if w in ("fp32", "tf32")
            else "bf16"
        )
        # Weight-only int4 dequantises to 16-bit matmuls; fp8/fp4 run natively where supported.
        compute = "bf16" if e == "int4" else e
        return cls(w, e, k, compute)


@dataclass(frozen=True)
class MemoryFit:
    weights_gib_per_gpu: float
    kv_gib_per_gpu: float
    overhead_gib_per_gpu: float
    capacity_gib_per_gpu: float
    kv_bytes_per_sequence: float
    max_concurrency: int  # sequences of this context one replica can hold

    @property
    def needed_gib_per_gpu(self) -> float:
        return self.weights_gib_per_gpu + self.kv_gib_per_gpu + self.overhead_gib_per_gpu

    @property
    def fits(self) -> bool:
        return self.needed_gib_per_gpu <= self.capacity_gib_per_gpu * USABLE_MEMORY_FRACTION

    @property
    def headroom(self) -> float:
        """Fraction of usable memory left (negative when it does not fit)."""
        usable = self.capacity_gib_per_gpu * USABLE_MEMORY_FRACTION
        return (usable - self.needed_gib_per_gpu) / usable


@dataclass(frozen=True)
class Step:
    """One forward pass on the busiest GPU: its time bounds and what drives them."""

    compute_s: float
    memory_s: float
    comm_s: float
    flops: float  # per GPU
    bytes_read: float  # per GPU
    weight_bytes: float  # per GPU, part of bytes_read
    kv_bytes: float  # per GPU, part of bytes_read
    elementwise_s: float = 0.0  # memory-bound kernels between the matmuls, serial with them

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.comm_s + self.elementwise_s

    @property
    def arithmetic_intensity(self) -> float:
        return self.flops / max(self.bytes_read, 1.0)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class ServingRoofline:
    """Roofline TTFT/TPOT for one serving configuration, and the physics behind them."""

    ttft_ms: float  # one request's prefill, alone on its prefill GPUs
    tpot_ms: float  # one decode step at the configured concurrency, plus the prefill stall
    prefill: Step
    decode: Step
    memory: MemoryFit
    decode_memory: MemoryFit  # of the decode layout (same as memory unless disaggregated)
    gpus: int  # per replica (prefill + decode workers when disaggregated)
    batch_per_rank: float  # sequences per attention rank in a decode step
    experts_touched: float  # distinct experts per MoE layer per decode step
    prefill_queue_ms: float  # prefills of the other requests that share the prefill GPUs
    precisions: Precisions
    # Aggregated serving only: other requests' prefills run between decode steps, spread over the
    # output tokens (zero when prefill has its own workers).
    prefill_stall_ms: float = 0.0

    @property
    def fits(self) -> bool:
        return self.memory.fits and self.decode_memory.fits


def expected_experts_touched(experts: int, top_k: int, tokens: float) -> float:
    """Distinct experts hit when ``tokens`` tokens each pick ``top_k`` of ``experts`` (uniform routing)."""
    if experts <= 0 or top_k <= 0 or tokens <= 0:
        return 0.0
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


def kv_bytes_per_sequence(model: ModelArch, context: float, kv_precision: str) -> float:
    """KV cache (and recurrent state) bytes one sequence of ``context`` tokens holds, whole model."""
    b = bytes_per_param(kv_precision)
    window = min(context, model.sliding_window) if model.sliding_window else context
    elems = model.kv_elems_per_token_full * context + model.kv_elems_per_token_window * window
    # Recurrent state is kept in 16-bit or wider whatever the KV cache precision.
    return elems * b + model.state_elems_per_seq * 2.0


def _kv_shards(model: ModelArch, tp: int) -> int:
    # MLA's latent cache is shared by all heads, so tensor parallelism replicates it; GQA shards
    # KV heads across ranks until there is one head per rank, then replicates.
    if model.attention == "mla":
        return 1
    return max(1, min(tp, model.kv_heads))


def _weight_bytes(model: ModelArch, p: Precisions) -> tuple[float, float]:
    """(dense bytes, routed-expert bytes) of the whole model."""
    return model.dense_params * bytes_per_param(p.weights), model.expert_params_total * bytes_per_param(
        p.experts
    )


def memory_fit(
    model: ModelArch, gpu: GPULike, p: Precisions, concurrency: float, context: float, par: Parallelism
) -> MemoryFit:
    dense, experts = _weight_bytes(model, p)
    weights = (dense / par.tp + experts / par.expert_shards) / par.pp
    per_seq = kv_bytes_per_sequence(model, context, p.kv)
    kv_divisor = _kv_shards(model, par.tp) * par.attention_dp * par.pp
    kv = concurrency * per_seq / kv_divisor
    capacity = gpu.memory_gib * GIB
    free = capacity * USABLE_MEMORY_FRACTION - weights - RUNTIME_OVERHEAD_BYTES
    max_conc = int(max(0.0, free) * kv_divisor // per_seq) if per_seq > 0 else 0
    return MemoryFit(
        weights_gib_per_gpu=weights / GIB,
        kv_gib_per_gpu=kv / GIB,
        overhead_gib_per_gpu=RUNTIME_OVERHEAD_BYTES / GIB,
        capacity_gib_per_gpu=gpu.memory_gib,
        kv_bytes_per_sequence=per_seq,
        max_concurrency=max_conc,
    )


def _attention_flops(model: ModelArch, new_tokens: float, context_end: float, causal: bool) -> float:
    """Attention FLOPs for ``new_tokens`` tokens ending at ``context_end`` (whole model)."""
    cap = model.sparse_attention_topk or math.inf
    # Causal prefill: token i attends i tokens, so the mean context is context_end - new_tokens/2.
    mean_ctx = context_end - new_tokens / 2.0 if causal else context_end
    full_ctx = min(mean_ctx, cap)
    window_ctx = min(mean_ctx, model.sliding_window) if model.sliding_window else mean_ctx
    return new_tokens * (
        model.attn_flops_per_ctx_full * full_ctx + model.attn_flops_per_ctx_window * window_ctx
    )


def _elementwise_s(model: ModelArch, gpu: GPULike, tokens: float, par: Parallelism) -> float:
    """Activation traffic of the memory-bound kernels between matmuls for ``tokens`` tokens on one
    attention rank. Hidden-sized tensors are replicated over tensor-parallel ranks, FFN-width ones
    sharded; MoE layers also permute each token's top-k copies to and from the experts. This runs
    at memory bandwidth while the matmuls run at tensor rate, so it weighs most where FLOP/s grew
    faster than bandwidth (fp8/fp4 prefill on Blackwell)."""
    h = model.hidden_size
    dense_layers = model.layers - model.moe_layers
    moe_width = model.expert_params / (3.0 * h) if model.expert_params else 0.0
    expert_ranks = max(par.expert_shards / par.attention_dp, 1.0)
    per_token = (
        model.layers * ELEMENTWISE_HIDDEN_RW * h
        + dense_layers * ELEMENTWISE_FFN_RW * model.intermediate_size / par.tp
        + model.moe_layers
        * model.experts_per_token
        * (ELEMENTWISE_FFN_RW * moe_width / expert_ranks + ELEMENTWISE_PERMUTE_RW * h)
    )
    return tokens * per_token * ACTIVATION_BYTES / (gpu.memory_bandwidth_gbs * 1e9)


def _tp_comm_s(model: ModelArch, gpu: GPULike, tokens: float, tp: int) -> float:
    if tp <= 1:
        return 0.0
    # Ring all-reduce moves 2(tp-1)/tp of the message; two per layer (after attention and MLP).
    msg = tokens * model.hidden_size * ACTIVATION_BYTES
    bw = (gpu.intra_node_bandwidth_gbs if tp <= gpu.gpus_per_node else gpu.inter_node_bandwidth_gbs) * 1e9
    per = 2.0 * (tp - 1) / tp * msg / bw + COLLECTIVE_LATENCY_S
    return 2 * model.layers * per


def _ep_comm_s(model: ModelArch, gpu: GPULike, tokens: float, par: Parallelism) -> float:
    if not model.is_moe or par.ep <= 1:
        return 0.0
    # Dispatch and combine: each token's hidden state goes to top_k experts, (ep-1)/ep of them remote.
    msg = tokens * model.experts_per_token * model.hidden_size * ACTIVATION_BYTES * (par.ep - 1) / par.ep
    bw = (
        gpu.intra_node_bandwidth_gbs
        if par.gpus_per_stage <= gpu.gpus_per_node
        else gpu.inter_node_bandwidth_gbs
    )
    per = msg / (bw * 1e9) + COLLECTIVE_LATENCY_S
    return 2 * model.moe_layers * per


def decode_step(
    model: ModelArch, gpu: GPULike, p: Precisions, batch: float, context: float, par: Parallelism
) -> Step:
    """One decode step for ``batch`` sequences (whole replica) at mean context ``context``."""
    batch = max(batch, 1.0)
    per_rank = batch / par.attention_dp
    dense, _ = _weight_bytes(model, p)
    # The input embedding is a lookup, not a read of the whole table.
    dense_read = max(dense - model.vocab * model.hidden_size * bytes_per_param(p.weights), 0.0) / par.tp
    touched = expected_experts_touched(model.experts, model.experts_per_token, batch)
    expert_read = (
        touched * model.expert_params * model.moe_layers * bytes_per_param(p.experts) / par.expert_shards
    )
    weights = dense_read + expert_read
    kv = per_rank * kv_bytes_per_sequence(model, context, p.kv) / _kv_shards(model, par.tp)
    bytes_read = weights + kv
    active_dense = model.params_active - model.moe_layers * model.experts_per_token * model.expert_params
    flops = (
        2.0 * active_dense * per_rank / par.tp
        + 2.0 * model.moe_layers * model.experts_per_token * model.expert_params * batch / par.expert_shards
        + per_rank * _attention_flops(model, 1.0, context, causal=False) / par.tp
    )
    # Pipeline stages run one after another for a token, so per-token latency sees all stages.
    comm = _tp_comm_s(model, gpu, per_rank, par.tp) + _ep_comm_s(model, gpu, per_rank, par)
    return Step(
        compute_s=flops / tensor_rate(gpu, p.compute),
        memory_s=bytes_read / (gpu.memory_bandwidth_gbs * 1e9),
        comm_s=comm,
        flops=flops,
        bytes_read=bytes_read,
        weight_bytes=weights,
        kv_bytes=kv,
        elementwise_s=_elementwise_s(model, gpu, per_rank, par),
    )


def prefill_step(
    model: ModelArch, gpu: GPULike, p: Precisions, input_tokens: float, par: Parallelism
) -> Step:
    """Prefill of one request of ``input_tokens`` on one attention rank (tp GPUs), experts on all."""
    tokens = max(input_tokens, 1.0)
    dense, _ = _weight_bytes(model, p)
    active_dense = model.params_active - model.moe_layers * model.experts_per_token * model.expert_params
    touched = expected_experts_touched(model.experts, model.experts_per_token, tokens)
    expert_read = (
        touched * model.expert_params * model.moe_layers * bytes_per_param(p.experts) / par.expert_shards
    )
    weights = dense / par.tp + expert_read
    kv_written = kv_bytes_per_sequence(model, tokens, p.kv) / _kv_shards(model, par.tp)
    flops = (
        2.0 * active_dense * tokens / par.tp
        + 2.0 * model.moe_layers * model.experts_per_token * model.expert_params * tokens / par.expert_shards
        + _attention_flops(model, tokens, tokens, causal=True) / par.tp
    )
    comm = _tp_comm_s(model, gpu, tokens, par.tp) + _ep_comm_s(model, gpu, tokens, par)
    return Step(
        compute_s=flops / tensor_rate(gpu, p.compute),
        memory_s=(weights + kv_written) / (gpu.memory_bandwidth_gbs * 1e9),
        comm_s=comm,
        flops=flops,
        bytes_read=weights + kv_written,
        weight_bytes=weights,
        kv_bytes=kv_written,
        elementwise_s=_elementwise_s(model, gpu, tokens, par),
    )


def serving_roofline(
    model: ModelArch,
    gpu: GPULike,
    *,
    precision: str | Precisions,
    input_tokens: int,
    output_tokens: int,
    concurrency: float,
    parallelism: Parallelism = Parallelism(),
    prefill_parallelism: Parallelism | None = None,
    prefill_workers: int | None = None,
    decode_workers: int | None = None,
) -> ServingRoofline:
    """Roofline TTFT and TPOT for ``concurrency`` concurrent requests on one replica.

    Aggregated serving (default): prefill and decode share ``parallelism``'s GPUs. Disaggregated:
    give ``prefill_parallelism`` (and worker counts); ``parallelism`` is then the decode layout and
    concurrency is spread over ``decode_workers`` (when unknown, the fewest that fit in memory).
    """
    if input_tokens < 1 or output_tokens < 1:
        raise InvalidSpecError("input_tokens/output_tokens", "must be >= 1")
    if concurrency < 1:
        raise InvalidSpecError("concurrency", f"must be >= 1, got {concurrency!r}")
    p = precision if isinstance(precision, Precisions) else Precisions.of(precision)
    decode_ctx = input_tokens + output_tokens / 2.0
    full_ctx = float(input_tokens + output_tokens)
    disagg = prefill_parallelism is not None
    if disagg:
        assert prefill_parallelism is not None
        pf_par = prefill_parallelism
        if not decode_workers:
            one = memory_fit(model, gpu, p, 1, full_ctx, parallelism)
            decode_workers = max(1, math.ceil(concurrency / max(one.max_concurrency, 1)))
        decode_batch = concurrency / decode_workers
        prefill_workers = prefill_workers or 1
        gpus = pf_par.gpus * prefill_workers + parallelism.gpus * decode_workers
        # Concurrent requests' prefills queue on the prefill workers' attention ranks.
        queue_share = concurrency / (prefill_workers * pf_par.attention_dp)
    else:
        pf_par = parallelism
        decode_batch = concurrency
        gpus = parallelism.gpus
        queue_share = concurrency / parallelism.attention_dp
    pre = prefill_step(model, gpu, p, input_tokens, pf_par)
    dec = decode_step(model, gpu, p, decode_batch, decode_ctx, parallelism)
    mem_decode = memory_fit(model, gpu, p, decode_batch, full_ctx, parallelism)
    # Disaggregated prefill holds one request's KV until it is handed to a decode worker.
    mem_prefill = (
        memory_fit(model, gpu, p, pf_par.attention_dp, input_tokens, pf_par) if disagg else mem_decode
    )
    # Mean wait behind the other requests' prefills when they arrive together: half of them.
    queue_ms = max(queue_share - 1.0, 0.0) / 2.0 * pre.compute_s * 1e3
    # In steady state every slot of an aggregated replica turns over once per request lifetime, so
    # each request's output tokens share the GPUs with one prefill per OTHER request on its attention
    # rank (its own prefill is in its TTFT): measured TPOT at 128 output tokens is 2x the one at 512
    # for the same step. Alone on a rank (one request in flight) nothing interrupts its decode.
    # The engines batch those prefill chunks with the decode tokens (chunked prefill / mixed
    # batches): one pass reads the weights once, so the prefill's FLOPs overlap the decode's weight
    # reads and only what exceeds the memory-bound step (plus communication and elementwise
    # kernels, which do not overlap) lengthens it.
    share = 0.0 if disagg else max(queue_share - 1.0, 0.0) / output_tokens
    kv_write_s = pre.kv_bytes / (gpu.memory_bandwidth_gbs * 1e9)
    mixed_s = (
        max(dec.compute_s + share * pre.compute_s, dec.memory_s + share * kv_write_s)
        + dec.comm_s
        + dec.elementwise_s
        + share * (pre.comm_s + pre.elementwise_s)
    )
    stall_ms = (mixed_s - dec.time_s) * 1e3
    return ServingRoofline(
        ttft_ms=pre.time_s * 1e3,
        tpot_ms=dec.time_s * 1e3 + stall_ms,
        prefill=pre,
        decode=dec,
        memory=mem_prefill,
        decode_memory=mem_decode,
        gpus=gpus,
        batch_per_rank=decode_batch / parallelism.attention_dp,
        experts_touched=expected_experts_touched(model.experts, model.experts_per_token, decode_batch),
        prefill_queue_ms=queue_ms,
        precisions=p,
        prefill_stall_ms=stall_ms,
    )
