"""Learned serving predictor: batch prediction, explanations, determinism, and the card's held-out metrics."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from greenmatrix.catalog import hardware
from greenmatrix.catalog.llms import model_arch
from greenmatrix.interval import Interval
from greenmatrix.learned import serving
from greenmatrix.learned.core import models_dir
from greenmatrix.learned.fitting import serving as trainer
from greenmatrix.scenarios import ServingScenario

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO / "../shared/data"))
CSV = DATA / trainer.DATA_FILE
MODELS = models_dir()
needs_models = pytest.mark.skipif(
    not (MODELS / "serving_ttft.ubj").exists(), reason="serving models not trained (greenmatrix train)"
)
needs_data = pytest.mark.skipif(not CSV.exists(), reason="reference data absent")


def _scenarios() -> list[ServingScenario]:
    gpus = [hardware.gpu(g) for g in ("h100_sxm", "b200_sxm", "gb200", "l4", "a100_sxm")]
    models = [
        (model_arch("meta-llama/Llama-3.1-8B-Instruct"), 1, 1),
        (model_arch("meta-llama/Llama-3.1-70B"), 4, 1),
        (model_arch("deepseek-ai/DeepSeek-R1"), 8, 8),
        (model_arch("openai/gpt-oss-120b"), 2, 1),
        (model_arch("Qwen/Qwen3-32B"), 2, 1),
    ]
    out = []
    for gpu in gpus:
        for model, tp, ep in models:
            for conc in (1, 64):
                out.append(
                    ServingScenario(
                        model=model,
                        gpu=gpu,
                        precision="fp8",
                        backend="vllm",
                        input_tokens=2048,
                        output_tokens=256,
                        concurrency=conc,
                        tp=tp,
                        ep=ep,
                    )
                )
    return out


@needs_models
def test_batch_of_50_scenarios_is_consistent() -> None:
    scenarios = _scenarios()
    assert len(scenarios) == 50
    preds = serving.ServingPredictor.load().predict(scenarios)
    assert len(preds) == 50
    for s, p in zip(scenarios, preds, strict=True):
        for iv in (p.ttft_ms, p.tpot_ms, p.throughput_tokens_s):
            assert 0 < iv.p10 <= iv.p50 <= iv.p90
        # Throughput per replica: concurrency x osl tokens every request latency, ttft + (osl - 1) x tpot.
        latency_s = (p.ttft_ms.p50 + (s.output_tokens - 1) * p.tpot_ms.p50) / 1e3
        expected = s.concurrency * s.output_tokens / latency_s
        assert p.throughput_tokens_s.p50 == pytest.approx(expected)
        roof = serving.roofline(s)
        assert p.roofline_tpot_ms == pytest.approx(roof.tpot_ms)
        assert p.gpus == max(s.tp, s.ep)
        assert p.explanation.endswith(".")


@needs_models
def test_predictor_is_loaded_once_per_process() -> None:
    assert serving.ServingPredictor.load() is serving.ServingPredictor.load()


@needs_models
def test_70b_bf16_on_one_l4_is_reported_as_not_fitting() -> None:
    s = ServingScenario(
        model=model_arch("meta-llama/Llama-3.1-70B"), gpu=hardware.gpu("l4"), precision="bf16", concurrency=1
    )
    (p,) = serving.ServingPredictor.load().predict([s])
    assert not p.fits
    assert p.memory_needed_gib > p.memory_capacity_gib
    assert "does not fit" in p.explanation


@needs_models
def test_explanation_names_the_decode_bound() -> None:
    s = ServingScenario(
        model=model_arch("meta-llama/Llama-3.1-8B-Instruct"), gpu=hardware.gpu("h100_sxm"), precision="fp8"
    )
    (p,) = serving.ServingPredictor.load().predict([s])
    # 8B fp8 weights (~7.5 GB read per token) over H100's 3.35 TB/s.
    assert "memory-bound" in p.explanation
    assert "3.35 TB/s" in p.explanation
    assert p.fits


@needs_models
def test_explanation_says_when_the_gpu_type_was_never_measured() -> None:
    predictor = serving.ServingPredictor.load()
    model = model_arch("meta-llama/Llama-3.1-8B-Instruct")
    l4, h100 = (
        ServingScenario(model=model, gpu=hardware.gpu(g), precision="fp8") for g in ("l4", "h100_sxm")
    )
    p_l4, p_h100 = predictor.predict([l4, h100])
    assert "No serving measurements of L4" in p_l4.explanation and "datasheet" in p_l4.explanation
    assert "H100-SXM-80GB" in p_l4.explanation  # among the measured ones it names
    assert "No serving measurements" not in p_h100.explanation
    # Llama-3.1-8B was measured on H100 (the narrow interval), never on B200 (the wide one).
    assert "measured serving this architecture" in p_h100.explanation
    b200 = ServingScenario(model=model, gpu=hardware.gpu("b200_sxm"), precision="fp8")
    (p_b200,) = predictor.predict([b200])
    assert "never serving this architecture" in p_b200.explanation


@needs_models
@needs_data
def test_measured_gpus_in_the_shipped_model_are_the_data_s() -> None:
    scenarios = trainer.load_dataset(DATA).scenarios
    predictor = serving.ServingPredictor.load()
    assert list(predictor.measured_gpus) == sorted({s.gpu.key for s in scenarios})
    assert predictor.measured_cells == {serving.measured_cell(s) for s in scenarios}


@needs_models
def test_a_gpu_and_model_measured_together_get_the_narrower_interval() -> None:
    # Llama-3.1-8B was measured on H100 only: on H100 it is the profiled case, on B200 (a measured
    # GPU, a measured model, never together) and L4 (never measured) it is new.
    predictor = serving.ServingPredictor.load()
    model = model_arch("meta-llama/Llama-3.1-8B-Instruct")
    on = {
        g: ServingScenario(model=model, gpu=hardware.gpu(g), precision="fp8", concurrency=16)
        for g in ("h100_sxm", "b200_sxm", "l4")
    }
    assert serving.measured_cell(on["h100_sxm"]) in predictor.measured_cells
    assert serving.measured_cell(on["b200_sxm"]) not in predictor.measured_cells
    preds = dict(zip(on, predictor.predict(list(on.values()), point=True), strict=True))

    def log_width(i: Interval) -> float:
        return float(np.log(i.p90 / i.p10))

    for target, model_ in (("ttft_ms", predictor.ttft), ("tpot_ms", predictor.tpot)):
        widths = {g: log_width(getattr(p, target)) for g, p in preds.items()}
        assert widths["h100_sxm"] == pytest.approx(model_.known_hi - model_.known_lo, rel=1e-6)
        assert widths["b200_sxm"] == pytest.approx(model_.offset_hi - model_.offset_lo, rel=1e-6)
        assert widths["l4"] == pytest.approx(widths["b200_sxm"], rel=1e-6)
        assert widths["h100_sxm"] < 0.85 * widths["b200_sxm"], target
        # The point stays inside whichever interval the row gets.
        for p in preds.values():
            i = getattr(p, target)
            assert i.p10 <= i.point <= i.p90


def test_scenario_from_a_disaggregated_row() -> None:
    row = {
        "backend": "trtllm",
        "mode": "disagg",
        "isl": "1024",
        "osl": "1024",
        "precision": "fp8",
        "gemm_quant_mode": "fp8",
        "moe_quant_mode": "fp8_block",
        "prefill_tp_size": "4",
        "prefill_moe_ep_size": "4",
        "prefill_num_workers": "2",
        "decode_tp_size": "8",
        "decode_moe_ep_size": "8",
        "decode_attention_dp_size": "8",
        "decode_num_workers": "1",
        "decode_batch_size": "16",
    }
    s = serving.scenario_from_row(row, model_arch("deepseek-ai/DeepSeek-R1"), hardware.gpu("b200_sxm"))
    assert s.disaggregated
    assert s.concurrency == 16 * 1 * 8  # per-rank batch x workers x attention-DP ranks
    assert (s.prefill_tp, s.prefill_ep, s.prefill_workers) == (4, 4, 2)
    assert (s.tp, s.ep, s.attention_dp) == (8, 8, 8)
    r = serving.roofline(s)
    assert r.gpus == 2 * 4 + 1 * 64  # prefill 2 x tp4; decode tp8 x attention-DP 8


@needs_data
def test_training_is_deterministic(tmp_path: Path) -> None:
    # A twentieth of the rows and no held-out benchmark keep this quick; determinism of the fit and
    # of the conformal calibration does not depend on size.
    with CSV.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for i, r in enumerate(reader) if i % 20 == 0]
        fields = reader.fieldnames
    subset = tmp_path / "data" / trainer.DATA_FILE
    subset.parent.mkdir(parents=True)
    with subset.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    first = trainer.train(tmp_path / "data", tmp_path / "a", evaluate=False)
    second = trainer.train(tmp_path / "data", tmp_path / "b", evaluate=False)
    assert first["sha256_16"] == second["sha256_16"]
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(
        f"{n}{suffix}"
        for n in serving.MODEL_NAMES.values()
        for suffix in (".ubj", ".point.ubj", ".meta.json")
    )
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@needs_data
@needs_models
def test_shipped_models_reach_the_held_out_metrics_in_their_card() -> None:
    # Recompute the leave-one-GPU-type-out rows (the model holdouts follow the same code path and
    # take several more minutes) and compare with what the card and its JSON copy record.
    recorded = {
        (r["holdout"], r["target"]): r
        for r in json.loads((MODELS / trainer.BENCH_FILE).read_text())
        if r["holdout"].startswith("gpu=")
    }
    card = (MODELS / "serving.md").read_text()
    fresh = trainer.benchmark(DATA, kinds=("gpu",))
    assert len(fresh) == len(recorded)
    for row in fresh:
        rec = recorded[(row.holdout, row.target)]
        assert row.n == rec["n"]
        assert row.mape_model <= rec["mape_model"] + 0.5, row
        assert abs(row.coverage80 - rec["coverage80"]) <= 0.02, row
        assert row.mape_profiled == pytest.approx(rec["mape_profiled"], abs=0.5), row
        assert f"| {row.holdout} | {row.target} | {row.n} |" in card
    # Held out by GPU type, the correction must beat the plain roofline on every GPU and target.
    for row in fresh:
        assert row.mape_model < row.mape_roofline, row


def _sweep(tpot_of_concurrency) -> trainer.Dataset:
    """One configuration swept over concurrency on H100, plus one unrelated point."""
    model = model_arch("meta-llama/Llama-3.1-8B-Instruct")
    gpu = hardware.gpu("h100_sxm")
    concs = [1, 2, 4, 8, 16, 32]
    scenarios = [ServingScenario(model=model, gpu=gpu, concurrency=c) for c in concs]
    # A different configuration (other input length) at a concurrency between two of the sweep's:
    # it must not be read off the sweep.
    scenarios.append(ServingScenario(model=model, gpu=gpu, concurrency=3, input_tokens=4096))
    tpot = [tpot_of_concurrency(c) for c in concs] + [1000.0]
    n = len(scenarios)
    return trainer.Dataset(
        scenarios=scenarios,
        ttft_ms=np.full(n, 100.0),
        tpot_ms=np.asarray(tpot, dtype=float),
        system=np.asarray(["h100_sxm"] * n),
        model_name=np.asarray(["llama"] * n),
        skipped={},
    )


def test_neighbour_consistency_reads_rows_off_their_own_concurrency_sweep() -> None:
    # A power law in concurrency is a straight line in log-log: interpolation is exact.
    smooth = trainer.neighbour_consistency(_sweep(lambda c: 5.0 * c**0.3))
    assert smooth["tpot"][0] == 4  # interior points only; the odd configuration has no neighbours
    assert smooth["tpot"][1] == pytest.approx(0.0, abs=1e-9)
    assert smooth["ttft"][1] == pytest.approx(0.0, abs=1e-9)
    # One point twice as slow as the line: read off its neighbours it is predicted at half its
    # value (50% off); concurrency 4 and 16, halfway in log between it and a point on the line,
    # are predicted sqrt(2) too slow (41% off); concurrency 2 is untouched.
    bumped = trainer.neighbour_consistency(_sweep(lambda c: 5.0 * c**0.3 * (2.0 if c == 8 else 1.0)))
    assert bumped["tpot"][1] == pytest.approx((0.0 + 0.5 + 2 * (2**0.5 - 1)) / 4 * 100)


def _export_row(**cols: str) -> dict[str, str]:
    row = {
        "backend": "sglang",
        "isl": "1024",
        "osl": "1024",
        "precision": "fp8",
        "gemm_quant_mode": "fp8",
        "moe_quant_mode": "fp8_block",
    }
    row.update(cols)
    return row


def test_moe_decode_stated_only_as_tp_is_read_as_the_faster_layout() -> None:
    # An export row: 32 GPUs per decode worker, no worker counts, no attention-DP column. At 2048
    # concurrent requests DeepSeek's MLA cache is replicated on every TP rank, so 32-way attention
    # data parallelism (64 sequences per rank) is far faster and is the reading taken.
    row = _export_row(
        mode="disagg",
        silicon_data_source="silicon_concurrency=2048",
        prefill_tp_size="4",
        prefill_moe_ep_size="4",
        decode_tp_size="32",
        decode_moe_tp_size="8",
        decode_moe_ep_size="4",
    )
    dsv3 = model_arch("deepseek-ai/DeepSeek-R1")
    s = serving.scenario_from_row(row, dsv3, hardware.gpu("gb300"))
    assert (s.tp, s.attention_dp, s.ep) == (1, 32, 32)
    plain_tp = dataclasses.replace(s, tp=32, attention_dp=1, ep=4, moe_tp=8)
    assert serving.roofline(s).decode.time_s < serving.roofline(plain_tp).decode.time_s
    # One request at a time: TP splits the attention weights, attention-DP does not; TP stays.
    single = serving.scenario_from_row(
        {**row, "silicon_data_source": "silicon_concurrency=1", "decode_tp_size": "8"},
        dsv3,
        hardware.gpu("gb300"),
    )
    assert (single.tp, single.attention_dp) == (8, 1)


def test_dense_model_tp_row_keeps_its_layout() -> None:
    row = _export_row(mode="agg", batch_size="256", tp_size="8", moe_tp_size="1", moe_ep_size="1")
    s = serving.scenario_from_row(row, model_arch("meta-llama/Llama-3.1-70B"), hardware.gpu("h100_sxm"))
    assert (s.tp, s.attention_dp) == (8, 1)


def test_tp_multiplied_by_the_expert_grid_is_read_back_as_tp() -> None:
    # Some records say tp 64 = moe_tp 8 x ep 8 on an 8-GPU system; the same run elsewhere says tp 8.
    row = _export_row(mode="agg", batch_size="8", tp_size="64", moe_tp_size="8", moe_ep_size="8")
    s = serving.scenario_from_row(row, model_arch("deepseek-ai/DeepSeek-R1"), hardware.gpu("b200_sxm"))
    assert (s.tp, s.ep, s.moe_tp) == (8, 8, 1)
    assert s.parallelism.gpus == 8


def test_explanation_names_a_large_prefill_stall() -> None:
    # 64 requests of 8k-token prompts and 128 output tokens: every output token waits behind about
    # half a prefill, more than the decode step itself.
    s = ServingScenario(
        model=model_arch("meta-llama/Llama-3.1-8B-Instruct"),
        gpu=hardware.gpu("h100_sxm"),
        precision="bf16",
        input_tokens=8192,
        output_tokens=128,
        concurrency=64,
    )
    r = serving.roofline(s)
    assert r.prefill_stall_ms > r.decode.time_s * 1e3
    assert "prefills add" in serving.explain(s, r)
    quiet = dataclasses.replace(s, input_tokens=128, output_tokens=1024, concurrency=1)
    assert "prefills add" not in serving.explain(quiet, serving.roofline(quiet))
