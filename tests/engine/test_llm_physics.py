"""LLM serving roofline: each check is a physical fact with the arithmetic in the comment."""

from __future__ import annotations

import dataclasses

import pytest

from greenmatrix.catalog import hardware
from greenmatrix.catalog.llms import model_arch
from greenmatrix.errors import InvalidSpecError
from greenmatrix.physics.llm import (
    Parallelism,
    Precisions,
    decode_step,
    expected_experts_touched,
    kv_bytes_per_sequence,
    memory_fit,
    prefill_step,
    serving_roofline,
)

H100 = hardware.gpu("h100_sxm")
L4 = hardware.gpu("l4")
LLAMA8 = model_arch("meta-llama/Llama-3.1-8B-Instruct")
LLAMA70 = model_arch("meta-llama/Llama-3.1-70B")
DSV3 = model_arch("deepseek-ai/DeepSeek-V3")


def test_decode_time_scales_with_inverse_bandwidth() -> None:
    fast = dataclasses.replace(H100, memory_bandwidth_gbs=H100.memory_bandwidth_gbs * 2)
    p = Precisions.of("bf16")
    slow_step = decode_step(LLAMA8, H100, p, 1, 1024, Parallelism())
    fast_step = decode_step(LLAMA8, fast, p, 1, 1024, Parallelism())
    assert slow_step.bound == "memory"
    assert fast_step.memory_s == pytest.approx(slow_step.memory_s / 2)
    assert fast_step.time_s == pytest.approx(slow_step.time_s / 2)  # tp=1: no communication term


def test_single_stream_decode_reads_the_weights_once() -> None:
    # Llama-3.1-8B in bf16: ~8.0e9 params minus the 0.53e9 input embedding (a lookup) = ~15 GB per
    # token; at 3.35 TB/s that is ~4.5 ms.
    step = decode_step(LLAMA8, H100, Precisions.of("bf16"), 1, 1, Parallelism())
    assert step.weight_bytes == pytest.approx((8.03e9 - 128256 * 4096) * 2, rel=0.01)
    assert step.time_s * 1e3 == pytest.approx(4.5, rel=0.05)


def test_fp8_halves_weight_bytes_versus_bf16() -> None:
    kv = "bf16"  # hold the KV cache precision fixed so only the weights change
    bf16 = decode_step(LLAMA70, H100, Precisions.of("bf16", kv=kv), 8, 2048, Parallelism(tp=4))
    fp8 = decode_step(LLAMA70, H100, Precisions.of("fp8", kv=kv), 8, 2048, Parallelism(tp=4))
    assert fp8.weight_bytes == pytest.approx(bf16.weight_bytes / 2)
    assert fp8.kv_bytes == pytest.approx(bf16.kv_bytes)


def test_decode_time_grows_with_weight_bytes() -> None:
    p = Precisions.of("bf16")
    assert (
        decode_step(LLAMA70, H100, p, 1, 512, Parallelism()).memory_s
        > 8 * decode_step(LLAMA8, H100, p, 1, 512, Parallelism()).memory_s
    )


def test_moe_active_parameters_match_published_counts() -> None:
    # DeepSeek-V3's paper: 671B total, 37B activated per token.
    assert DSV3.params_total == pytest.approx(671e9, rel=0.01)
    assert DSV3.params_active == pytest.approx(37e9, rel=0.03)
    assert DSV3.is_moe and DSV3.experts == 256 and DSV3.experts_per_token == 8


def test_moe_decode_reads_only_the_experts_the_batch_touches() -> None:
    p = Precisions.of("fp8")
    one = decode_step(DSV3, H100, p, 1, 1024, Parallelism(tp=8, ep=8))
    many = decode_step(DSV3, H100, p, 512, 1024, Parallelism(tp=8, ep=8))
    # Batch 1 touches 8 of 256 experts per layer: far less than the whole 671 GB / 8 GPUs.
    assert one.weight_bytes < 0.15 * DSV3.params_total / 8
    # Batch 512 touches essentially all experts.
    assert many.weight_bytes == pytest.approx(DSV3.params_total / 8, rel=0.05)


def test_expected_experts_touched_limits() -> None:
    assert expected_experts_touched(256, 8, 1) == pytest.approx(8)
    assert expected_experts_touched(256, 8, 10_000) == pytest.approx(256)
    assert expected_experts_touched(0, 0, 100) == 0.0


def test_kv_cache_per_token_gqa_and_mla() -> None:
    # Llama-3.1-70B: 80 layers x 2 (K,V) x 8 KV heads x 128 dims x 2 bytes = 327,680 B per token.
    assert kv_bytes_per_sequence(LLAMA70, 1, "bf16") == pytest.approx(327_680)
    # DeepSeek-V3 MLA: 61 layers x (512 latent + 64 rope) x 1 byte in fp8.
    assert kv_bytes_per_sequence(DSV3, 1, "fp8") == pytest.approx(61 * 576)


@pytest.mark.parametrize(
    ("weights", "kv"),
    [("fp32", "fp32"), ("tf32", "fp32"), ("bf16", "bf16"), ("int4", "bf16"), ("fp8", "fp8")],
)
def test_the_kv_cache_defaults_to_the_weights_width(weights: str, kv: str) -> None:
    # As spec.model.kvCachePrecision documents: fp32 weights used to get a 16-bit cache, so a layout
    # too small for the real (32-bit) cache was planned as fitting.
    assert Precisions.of(weights).kv == kv
    fit = memory_fit(LLAMA8, H100, Precisions.of(weights), 64, 8192 + 256, Parallelism(tp=2))
    assert fit.kv_gib_per_gpu == pytest.approx(64 * kv_bytes_per_sequence(LLAMA8, 8192 + 256, kv) / 2 / 2**30)
    if weights == "fp32":
        assert not fit.fits  # 15 GiB of weights and 66 GiB of cache per GPU


def test_memory_fit_rejects_70b_bf16_on_one_l4() -> None:
    fit = memory_fit(LLAMA70, L4, Precisions.of("bf16"), 1, 2048, Parallelism())
    assert not fit.fits
    assert fit.weights_gib_per_gpu > 120  # 70.6e9 x 2 B = 141 GB
    assert fit.max_concurrency == 0


def test_tensor_parallelism_divides_weights() -> None:
    p = Precisions.of("fp8")
    one = memory_fit(LLAMA70, H100, p, 1, 2048, Parallelism(tp=1))
    four = memory_fit(LLAMA70, H100, p, 1, 2048, Parallelism(tp=4))
    assert four.weights_gib_per_gpu == pytest.approx(one.weights_gib_per_gpu / 4)


def test_max_concurrency_is_the_boundary_of_fit() -> None:
    p = Precisions.of("fp8")
    par = Parallelism(tp=2)
    limit = memory_fit(LLAMA70, H100, p, 1, 4096, par).max_concurrency
    assert limit > 0
    assert memory_fit(LLAMA70, H100, p, limit, 4096, par).fits
    assert not memory_fit(LLAMA70, H100, p, limit + 2, 4096, par).fits


def test_large_batch_decode_becomes_compute_bound() -> None:
    p = Precisions.of("bf16")
    assert decode_step(LLAMA8, H100, p, 1, 128, Parallelism()).bound == "memory"
    # Arithmetic intensity ~ batch FLOP/byte; H100 bf16 ridge is 989e12 / 3.35e12 ~ 295.
    assert decode_step(LLAMA8, H100, p, 2048, 128, Parallelism()).bound == "compute"


def test_prefill_is_compute_bound_and_scales_with_prompt() -> None:
    r1 = serving_roofline(LLAMA8, H100, precision="bf16", input_tokens=2048, output_tokens=16, concurrency=1)
    r2 = serving_roofline(LLAMA8, H100, precision="bf16", input_tokens=4096, output_tokens=16, concurrency=1)
    assert r1.prefill.bound == "compute"
    # 2 x 7.5e9 x 2048 ~ 3.1e13 FLOP at 989 TFLOPS ~ 31 ms (plus attention).
    assert r1.prefill.compute_s * 1e3 == pytest.approx(31, rel=0.15)
    assert 2.0 <= r2.prefill.compute_s / r1.prefill.compute_s <= 2.3  # linear + a growing attention term


def test_tensor_parallel_adds_communication() -> None:
    r1 = serving_roofline(LLAMA70, H100, precision="fp8", input_tokens=1024, output_tokens=128, concurrency=8)
    r4 = serving_roofline(
        LLAMA70,
        H100,
        precision="fp8",
        input_tokens=1024,
        output_tokens=128,
        concurrency=8,
        parallelism=Parallelism(tp=4),
    )
    assert r1.decode.comm_s == 0.0
    assert r4.decode.comm_s > 0.0
    assert r4.tpot_ms < r1.tpot_ms
    assert r4.gpus == 4


def test_invalid_layout_names_the_field() -> None:
    with pytest.raises(InvalidSpecError, match="tp"):
        Parallelism(tp=0)
    with pytest.raises(InvalidSpecError, match="concurrency"):
        serving_roofline(LLAMA8, H100, precision="bf16", input_tokens=10, output_tokens=10, concurrency=0)


def test_aggregated_tpot_carries_the_prefill_stall() -> None:
    # 32 concurrent requests turn over once per request lifetime: each request's output tokens share
    # the GPU with the 31 other requests' prefills (its own prefill is in its TTFT). The engines batch
    # those prefill chunks with the decode tokens, so their FLOPs overlap the decode's weight reads:
    # the stall is at most 31 x prefill / output length and at least what the prefill FLOPs exceed
    # the memory-bound decode step by.
    kw = dict(precision="bf16", input_tokens=4096, concurrency=32)
    short = serving_roofline(LLAMA8, H100, output_tokens=128, **kw)
    long = serving_roofline(LLAMA8, H100, output_tokens=512, **kw)

    def bounds(r, others: int, osl: int) -> tuple[float, float]:
        share = others / osl
        upper = share * r.ttft_ms
        lower = share * r.prefill.compute_s * 1e3 - r.decode.memory_s * 1e3
        return lower, upper

    lo, hi = bounds(short, 31, 128)
    assert lo <= short.prefill_stall_ms <= hi
    assert short.prefill_stall_ms > 0.5 * hi  # a 4k-token bf16 prefill is far bigger than a decode step
    assert short.prefill_stall_ms > 3 * long.prefill_stall_ms
    assert short.tpot_ms == pytest.approx(short.decode.time_s * 1e3 + short.prefill_stall_ms)
    # With attention data parallelism each rank only stalls for its own requests' prefills.
    dp = serving_roofline(LLAMA8, H100, output_tokens=128, parallelism=Parallelism(attention_dp=4), **kw)
    lo, hi = bounds(dp, 7, 128)
    assert lo <= dp.prefill_stall_ms <= hi
    assert dp.prefill_stall_ms < short.prefill_stall_ms


def test_elementwise_kernels_add_activation_traffic_at_memory_bandwidth() -> None:
    # Norms, residual adds and activation functions stream 16-bit activations between the matmuls:
    # serial with them, proportional to tokens, and paid at memory bandwidth, not tensor rate.
    p = Precisions.of("bf16")
    small = prefill_step(LLAMA8, H100, p, 1024, Parallelism())
    big = prefill_step(LLAMA8, H100, p, 4096, Parallelism())
    assert big.elementwise_s == pytest.approx(4 * small.elementwise_s)
    assert 0 < small.elementwise_s < small.compute_s
    assert small.time_s == pytest.approx(
        max(small.compute_s, small.memory_s) + small.comm_s + small.elementwise_s
    )


def test_a_lone_request_is_not_stalled_by_its_own_prefill() -> None:
    # One request in flight with a long prompt and a short answer: nothing else prefills during its
    # decode, so TPOT is the decode step (it once carried the whole 100k-token prefill / 10 tokens).
    r = serving_roofline(
        LLAMA8, H100, precision="bf16", input_tokens=100_000, output_tokens=10, concurrency=1
    )
    assert r.prefill_stall_ms == 0.0
    assert r.tpot_ms == pytest.approx(r.decode.time_s * 1e3)
    assert r.ttft_ms > 100 * r.tpot_ms


def test_disaggregated_decode_has_no_prefill_stall() -> None:
    r = serving_roofline(
        LLAMA8,
        H100,
        precision="bf16",
        input_tokens=4096,
        output_tokens=128,
        concurrency=32,
        prefill_parallelism=Parallelism(),
        prefill_workers=2,
        decode_workers=1,
    )
    assert r.prefill_stall_ms == 0.0
    assert r.tpot_ms == pytest.approx(r.decode.time_s * 1e3)
