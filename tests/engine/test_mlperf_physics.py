"""Physics of the MLPerf Inference benchmarks: per-sample work, rooflines, system scaling."""

from __future__ import annotations

import dataclasses
import math

import pytest
from mlperf_rows import mlperf_row

from greenmatrix.catalog import hardware
from greenmatrix.learned.mlperf_inference import FEATURES, prepare, resolve_accelerator
from greenmatrix.physics import benchmark_roofline as rl
from greenmatrix.physics import benchmarks as bench
from greenmatrix.physics import device

H100 = hardware.gpu("H100-SXM-80GB")
L4 = hardware.gpu("L4")


def _row(**over: str) -> dict[str, str]:
    return mlperf_row(**{"has_power": "False", "SystemName": "test", **over})


def test_resnet50_work_is_4_1_gmac_per_image() -> None:
    # 4.1 GMAC per 224x224 image (benchmark_models.csv) is 8.2 GFLOP: one multiply and one add.
    assert bench.work("resnet50").flops_per_sample == pytest.approx(2 * 4.1e9)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet50", ("resnet50", False)),
        ("bert-99.9", ("bert", True)),
        ("3d-unet-99", ("3d-unet", False)),
        ("dlrm-v2-99.9", ("dlrm-v2", True)),
        ("llama2-70b-99", ("llama2-70b", False)),
        ("mixtral-8x7b", ("mixtral-8x7b", False)),
        ("stable-diffusion-xl", ("stable-diffusion-xl", False)),
        ("gpt3-175b", None),
    ],
)
def test_parse_benchmark(name: str, expected: tuple[str, bool] | None) -> None:
    assert bench.parse_benchmark(name) == expected


def test_int8_benchmarks_run_at_int8_and_strict_bert_at_higher_precision() -> None:
    assert bench.precision_for("resnet50", H100) == "int8"
    assert bench.precision_for("bert-99", H100) == "fp8"
    # A100 has no fp8 tensor cores: bert-99 falls back to int8, the 99.9% variant to fp16.
    a100 = hardware.gpu("A100-SXM4-80GB")
    assert bench.precision_for("bert-99", a100) == "int8"
    assert bench.precision_for("bert-99.9", a100) == "fp16"
    # Ada has fp8 tensor cores, but only Hopper/Blackwell's FP8 path holds 99.9% BERT accuracy.
    l40 = hardware.gpu("L40")
    assert "fp8" in dict(l40.tflops)
    assert bench.precision_for("bert-99", l40) == "fp8"
    assert bench.precision_for("bert-99.9", l40) == "fp16"
    assert bench.precision_for("bert-99.9", H100) == "fp8"
    assert bench.precision_for("bert-99.9", hardware.gpu("B200")) == "fp8"


def test_compute_bound_roofline_scales_with_flops_not_bandwidth() -> None:
    base = rl.roofline("stable-diffusion-xl", H100)
    assert base.bound == "compute"
    # Twice the tensor rate at twice the power: the same FLOP/s per watt, so no power limit applies.
    faster = dataclasses.replace(
        H100, tflops={k: 2 * v for k, v in H100.tflops.items()}, tdp_watts=2 * H100.tdp_watts
    )
    wider = dataclasses.replace(H100, memory_bandwidth_gbs=2 * H100.memory_bandwidth_gbs)
    assert rl.roofline("stable-diffusion-xl", faster).samples_per_s == pytest.approx(2 * base.samples_per_s)
    assert rl.roofline("stable-diffusion-xl", wider).samples_per_s == pytest.approx(base.samples_per_s)


def test_llm_decode_is_memory_bound_and_scales_with_bandwidth() -> None:
    base = rl.roofline("gptj-99", H100)
    assert base.bound == "memory"
    wider = dataclasses.replace(H100, memory_bandwidth_gbs=2 * H100.memory_bandwidth_gbs)
    assert rl.roofline("gptj-99", wider).samples_per_s > 1.5 * base.samples_per_s


def test_llama2_70b_needs_several_small_gpus() -> None:
    # 69 GB of fp8 weights cannot sit in one 24 GiB L4.
    with pytest.raises(rl.DoesNotFitError):
        rl.roofline("llama2-70b-99", L4, max_gpus=1)
    roof = rl.roofline("llama2-70b-99", L4, max_gpus=8)
    assert roof.gpus_per_replica >= 4


def test_llm_replica_widens_only_when_the_weights_crowd_out_the_kv_cache() -> None:
    # 69 GB of fp8 Llama-2-70B weights fill ~90% of an H100's usable 77 GB: one GPU has room for a
    # decode batch of ~80 sequences, two GPUs for ~900, so 8x H100 run two GPUs per replica, and
    # their roofline per GPU is higher than a single-GPU replica's.
    alone = rl.roofline("llama2-70b-99", H100, max_gpus=1)
    eight = rl.roofline("llama2-70b-99", H100, max_gpus=8)
    assert alone.gpus_per_replica == 1
    assert eight.gpus_per_replica == 2
    assert eight.samples_per_s > alone.samples_per_s
    # An H200 (141 GB) holds the weights with a large batch: widening buys no roofline throughput.
    h200 = hardware.gpu("H200-SXM-141GB")
    assert rl.roofline("llama2-70b-99", h200, max_gpus=8).gpus_per_replica == 1
    # GPT-J (6 GB at fp8) leaves most of the GPU to the KV cache: never split.
    assert rl.roofline("gptj-99", H100, max_gpus=8).gpus_per_replica == 1


def test_llama2_offline_results_count_tokens_server_counts_queries() -> None:
    assert bench.results_per_sample("llama2-70b-99", "Offline", "Samples/s", 4.0) == pytest.approx(294.0)
    assert bench.results_per_sample("llama2-70b-99", "Server", "Queries/s", 4.0) == 1.0
    assert bench.results_per_sample("resnet50", "Offline", "Samples/s", 4.0) == 1.0
    # From v4.1 GPT-J, Llama-2-70B and Mixtral report tokens/s in Offline and Server alike.
    assert bench.results_per_sample("gptj-99", "Offline", "Samples/s", 4.0) == 1.0
    assert bench.results_per_sample("gptj-99", "Offline", "Samples/s", 4.1) == pytest.approx(128.0)
    assert bench.results_per_sample("gptj-99", "Server", "Queries/s", 4.1) == pytest.approx(128.0)
    assert bench.results_per_sample("llama2-70b-99", "Server", "Queries/s", 4.1) == pytest.approx(294.0)
    assert bench.results_per_sample("resnet50", "Server", "Queries/s", 4.1) == 1.0


def test_system_roofline_is_linear_in_accelerator_count() -> None:
    one, _ = prepare(_row())
    eight, _ = prepare(_row(accelerators_per_node="4", number_of_nodes="2"))
    assert one is not None and eight is not None
    assert eight.roofline == pytest.approx(8 * one.roofline)


def test_mig_slice_gets_its_share_of_the_gpu() -> None:
    acc, _ = resolve_accelerator("NVIDIA A100-SXM-80GB (1x1g.10gb MIG)")
    assert acc is not None and acc.mig_fraction == pytest.approx(1 / 7)
    full, _ = prepare(_row(accelerator_model_name="NVIDIA A100-SXM-80GB"))
    mig, _ = prepare(_row(accelerator_model_name="NVIDIA A100-SXM-80GB (1x1g.10gb MIG)"))
    assert full is not None and mig is not None
    assert mig.roofline == pytest.approx(full.roofline / 7)


def test_single_mig_slice_results_count_one_slice_whatever_the_gpu_count() -> None:
    # HPE's "8x A100-SXM-80GB-MIG-1x1g.10gb" reports the same bert result as NVIDIA's 1x: one slice.
    one, _ = prepare(_row(accelerator_model_name="NVIDIA A100-SXM-80GB (1x1g.10gb MIG)"))
    eight, _ = prepare(
        _row(accelerator_model_name="NVIDIA A100-SXM-80GB (1x1g.10gb MIG)", accelerators_per_node="8")
    )
    full, _ = prepare(
        _row(accelerator_model_name="NVIDIA A100-SXM-80GB (7x1g.10gb MIG)", accelerators_per_node="8")
    )
    assert one is not None and eight is not None and full is not None
    assert eight.roofline == pytest.approx(one.roofline)
    assert full.roofline == pytest.approx(8 * 7 * one.roofline)


def test_server_queries_through_an_inference_server_are_capped_by_its_payload_rate() -> None:
    # 8x A100 DLRM: the GPUs' roofline is millions of samples/s; a Triton server feeds ~25 GB/s of
    # ~42 KB queries. Offline batches and the bare harness are not capped.
    a100 = {
        "accelerator_model_name": "NVIDIA A100-SXM-80GB",
        "accelerators_per_node": "8",
        "Model": "dlrm-99",
    }
    triton = {"SystemName": "NVIDIA DGX A100 (8x A100-SXM-80GB, TensorRT, Triton)"}
    bare, _ = prepare(_row(**a100, Scenario="Server"))
    served, _ = prepare(_row(**a100, **triton, Scenario="Server"))
    offline, _ = prepare(_row(**a100, **triton))
    assert bare is not None and served is not None and offline is not None
    ceiling = bench.served_ceiling("dlrm-99")
    assert ceiling == pytest.approx(bench.SERVED_PAYLOAD_BYTES_PER_S / bench.work("dlrm").query_payload_bytes)
    assert served.roofline == pytest.approx(ceiling) and bare.roofline > 2 * ceiling
    assert offline.roofline == pytest.approx(bare.roofline)
    # The flag is a feature either way, from the system name or the framework.
    column = FEATURES.index("inference_server")
    assert served.features[column] == offline.features[column] == 1.0 and bare.features[column] == 0.0
    by_framework, _ = prepare(_row(**a100, framework="Triton 2.30.0, CUDA 12.0", Scenario="Server"))
    assert by_framework is not None and by_framework.roofline == pytest.approx(ceiling)


def test_small_queries_are_not_held_back_by_an_inference_server() -> None:
    # BERT's 4.6 KB queries: 25 GB/s is ~5M queries/s, far above what one H100 computes.
    triton = {"SystemName": "x (1x H100, TensorRT, Triton)", "Scenario": "Server", "Model": "bert-99"}
    bare, _ = prepare(_row(Scenario="Server", Model="bert-99"))
    served, _ = prepare(_row(**triton))
    assert bare is not None and served is not None
    assert served.roofline == pytest.approx(bare.roofline)
    assert bench.work("gptj").query_payload_bytes == pytest.approx(4 * 800)


def test_power_limit_in_the_name_overrides_tdp() -> None:
    acc, _ = resolve_accelerator("NVIDIA A100-SXM4-80GB (400W)")
    assert acc is not None and acc.tdp_watts == 400.0


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"accelerator_model_name": "QUALCOMM Cloud AI 100 Pro"}, "no specs in the catalog"),
        ({"accelerator_model_name": "N/A", "accelerators_per_node": "0"}, "CPU"),
        ({"Scenario": "Burst"}, "scenario"),
        ({"Scenario": "SingleStream", "Units": "Watts"}, "power"),
        ({"Units": "Watts"}, "power"),
        ({"Model": "gpt3-175b"}, "not modelled"),
        ({"accelerators_per_node": "N/A"}, "accelerators_per_node"),
    ],
)
def test_unpredictable_rows_say_why(over: dict[str, str], needle: str) -> None:
    prepared, reason = prepare(_row(**over))
    assert prepared is None
    assert needle.lower() in reason.lower()


def test_batch_one_latency_pays_for_the_weights_every_query() -> None:
    # Offline amortises weights over a batch; a SingleStream query reads them all.
    offline = rl.roofline("bert-99", H100)
    single = rl.latency_roofline("bert-99", H100)
    assert 1.0 / single.samples_per_s > 1.0 / offline.samples_per_s
    # Eight samples per MultiStream query take longer than one, but less than 8x (weights read once).
    one = 1.0 / rl.latency_roofline("resnet50", H100).samples_per_s
    eight = 1.0 / rl.latency_roofline("resnet50", H100, samples_per_query=8).samples_per_s
    assert one < eight < 8 * one
    # GPT-J generates 128 tokens one after another, each re-reading ~6 GB of fp8 weights.
    gptj_s = 1.0 / rl.latency_roofline("gptj-99", H100).samples_per_s
    assert gptj_s > 128 * 6.05e9 / (H100.memory_bandwidth_gbs * 1e9)


def test_latency_rows_are_predicted_in_milliseconds_per_query() -> None:
    single, _ = prepare(_row(Scenario="SingleStream", Units="Latency (ms)"))
    multi, _ = prepare(_row(Scenario="MultiStream", Units="Latency (ms)"))
    assert single is not None and multi is not None
    assert single.kind == multi.kind == "latency"
    assert 0 < single.roofline < multi.roofline < 8 * single.roofline


def test_features_are_finite() -> None:
    for model in ("resnet50", "bert-99", "gptj-99", "llama2-70b-99.9", "stable-diffusion-xl", "dlrm-v2-99"):
        prepared, reason = prepare(_row(Model=model, accelerators_per_node="8"))
        assert prepared is not None, reason
        assert all(math.isfinite(v) for v in prepared.features)
        assert prepared.roofline > 0


def test_full_power_parts_sustain_their_datasheet_rate() -> None:
    # Parts drawing >= 250 W run near their rated clocks; so do small parts below their
    # architecture's FLOP/s per watt (A2: 18 TFLOPS fp16 on 60 W, a third of A100 PCIe's 1.25/W).
    for key in ("H100-SXM-80GB", "H100-PCIe-80GB", "A100-SXM4-80GB", "L40", "RTX-4090", "A2", "A10"):
        assert bench.sustained_fraction(hardware.gpu(key)) == 1.0, key


def test_low_power_parts_are_capped_at_their_architectures_flops_per_watt() -> None:
    t4 = hardware.gpu("T4")
    v100 = hardware.gpu("V100-SXM2-32GB")
    l40s = hardware.gpu("L40S")
    # T4 (Turing, 1590 MHz) borrows the V100's 125 TFLOPS / 300 W (1530 MHz): the same TSMC 12 nm
    # node; energy per operation is compared at the T4's clock, (1530 / 1590)^2.
    assert bench.sustained_fraction(t4) == pytest.approx((125.0 / 300.0) / (65.0 / 70.0) * (1530 / 1590) ** 2)
    # L4 (72 W, 2040 MHz) against L40S, the best full-power Ada part (362 TFLOPS / 350 W, 2520 MHz):
    # at its lower rated clock (lower voltage) the L4 spends (2040 / 2520)^2 of the energy per operation.
    l4_share = (
        (device.peak_flops(l40s, "fp16") / l40s.tdp_watts)
        / (device.peak_flops(L4, "fp16") / L4.tdp_watts)
        * (2520 / 2040) ** 2
    )
    assert bench.sustained_fraction(L4) == pytest.approx(l4_share)
    assert 0.4 < bench.sustained_fraction(t4) < bench.sustained_fraction(L4) < 1.0
    assert bench.sustained_fraction(v100) == 1.0


def test_clock_scaling_needs_both_clocks() -> None:
    # A part whose boost clock the catalog lacks is compared on plain FLOP/s per watt.
    l40s = hardware.gpu("L40S")
    plain = (device.peak_flops(l40s, "fp16") / l40s.tdp_watts) / (
        device.peak_flops(L4, "fp16") / L4.tdp_watts
    )
    assert bench.sustained_fraction(dataclasses.replace(L4, key="L4-unknown-clock")) == pytest.approx(plain)


def test_sustained_fraction_scales_the_compute_roof_only() -> None:
    t4 = hardware.gpu("T4")
    share = bench.sustained_fraction(t4)
    sdxl = rl.roofline("stable-diffusion-xl", t4)
    assert sdxl.bound == "compute"
    assert sdxl.peak_flops == pytest.approx(device.peak_flops(t4, sdxl.precision) * share)
    assert sdxl.samples_per_s == pytest.approx(sdxl.peak_flops / sdxl.flops_per_sample)
    # GPT-J decode stays bandwidth-bound: the power cap leaves its roofline alone.
    gptj = rl.roofline("gptj-99", t4, max_gpus=4)
    uncapped = dataclasses.replace(t4, tdp_watts=1000.0)
    assert bench.sustained_fraction(uncapped) == 1.0
    assert gptj.bound == "memory"
    assert gptj.samples_per_s == pytest.approx(rl.roofline("gptj-99", uncapped, max_gpus=4).samples_per_s)


def test_parts_without_a_reference_are_not_capped() -> None:
    # An architecture with no full-power sibling and no process-node sibling: nothing says it is limited.
    odd = dataclasses.replace(L4, key="X1", family="unknown-arch")
    assert bench.sustained_fraction(odd) == 1.0
    no_tdp = dataclasses.replace(L4, key="X2", tdp_watts=0.0)
    assert bench.sustained_fraction(no_tdp) == 1.0


def test_l2_adds_its_size_per_kernel_to_the_dram_bandwidth() -> None:
    bw = L4.memory_bandwidth_gbs * 1e9
    l2 = device.l2_cache_mib(L4) * 2**20
    share = bench.l2_dram_share(L4, bw)
    # Effective bandwidth bw + L2 / t_k: the memory time shrinks by bw / (bw + L2 / t_k).
    assert share == pytest.approx(bw / (bw + l2 / bench.KERNEL_SECONDS))
    assert 0.3 < share < 0.45  # 48 MiB on 300 GB/s: the largest gain in the catalog's data
    assert bench.l2_dram_share(H100, H100.memory_bandwidth_gbs * 1e9) > 0.8


def test_l2_raises_only_the_memory_roof_of_non_llm_benchmarks() -> None:
    r = rl.roofline("resnet50", L4)  # memory-bound on L4's DRAM alone
    assert r.bound == "memory"
    dram_only = r.bandwidth / r.bytes_per_sample
    assert r.samples_per_s > dram_only
    assert r.samples_per_s == pytest.approx(min(1 / r.compute_time, dram_only / r.dram_share))
    assert r.memory_time == pytest.approx(r.bytes_per_sample / r.bandwidth)  # features see DRAM traffic
    # Compute-bound rows keep the compute roof; LLM traffic (streamed weights, KV) gets no L2 term.
    c = rl.roofline("3d-unet", hardware.gpu("A100-SXM4-80GB"))
    assert c.bound == "compute" and c.samples_per_s == pytest.approx(1 / c.compute_time)
    assert rl.roofline("gptj-99", H100).dram_share == 1.0
    assert rl.latency_roofline("resnet50", L4).dram_share == 1.0
