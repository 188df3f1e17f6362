"""The model cards of the MLPerf Inference throughput and latency models (models/mlperf_*.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from greenmatrix.learned import novelty
from greenmatrix.learned.core import CorrectionModel
from greenmatrix.learned.fitting.cards import conformal_text, holdout_table
from greenmatrix.learned.fitting.mlperf_inference_data import (
    HOLDOUT_ROUND,
    KIND_PARAMS,
    KIND_ROUNDS,
    MIN_GROUP_ROWS,
    OUTLIER_FACTOR,
    TARGET_MAPE,
    Dataset,
)
from greenmatrix.learned.mlperf_inference import FEATURES_BY_KIND
from greenmatrix.physics import benchmarks as bench


def _last_round_text(results: list[dict[str, Any]]) -> str:
    known = [r for r in results if "mape_last_round" in r]
    if not known:
        return ""
    r = known[0]
    text = (
        f" On the {r['n']} {HOLDOUT_ROUND} rows whose GPU type ran the same benchmark and scenario "
        f"before, that earlier result itself is off by {r['mape_last_round']:.1f}% and the model by "
        f"{r['mape_model']:.1f}%."
    )
    if r["mape_last_round"] > TARGET_MAPE:
        text += (
            f" A {TARGET_MAPE:g}% target asks for more than the same hardware's own last result gives: "
            "what changed between rounds, which no input column describes."
        )
    return text


def card(ds: Dataset, model: CorrectionModel, results: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The model card of the `kind` model fitted on `ds`, with its hold-out `results`."""
    penalty = float(model.info.get("reference_penalty", 0.0))
    return {
        "title": (
            "MLPerf Inference throughput model (mlperf_inference)"
            if kind == "throughput"
            else "MLPerf Inference latency model (mlperf_latency)"
        ),
        "Data": _data(ds, kind),
        "Physics": _physics(ds, kind),
        "Latency physics": (
            "One query on one accelerator at batch 1 (8 for MultiStream): nothing amortises the weights, "
            "so latency = max(FLOPs / peak, (weights + activations) / bandwidth); an LLM re-reads its "
            "weights and KV cache for every generated token. Target log(measured ms / roofline ms)."
            if kind == "latency"
            else "See the mlperf_latency card."
        ),
        "Features": FEATURES_BY_KIND[kind],
        "Target": _target(kind, penalty),
        "Intervals": _intervals_text(model),
        "Validation": _validation(ds),
        "Held-out metrics": holdout_table(results, last_result=True),
        "Limits": _limits(results, kind),
    }


def _data(ds: Dataset, kind: str) -> str:
    """The card's Data section."""
    return (
        f"MLPerf Inference closed division v2.0-v4.0 (mlperf/inference_closed.csv): {len(ds.y)} "
        + (
            "Offline/Server throughput rows"
            if kind == "throughput"
            else "SingleStream/MultiStream latency rows (ms per query; a MultiStream query is 8 samples)"
        )
        + f" on {len(set(ds.gpu.tolist()))} catalogued GPU types, benchmarks "
        f"{', '.join(sorted(set(ds.benchmark.tolist())))}. CPU-only, TPU, Qualcomm, Gaudi, Jetson/Orin "
        "and other accelerators without catalog specs are excluded (and get a reason at prediction "
        "time), as are power rows. The "
        + (
            "latency model (mlperf_latency)"
            if kind == "throughput"
            else "throughput model (mlperf_inference)"
        )
        + " covers the other scenarios."
    )


def _physics(ds: Dataset, kind: str) -> list[str]:
    """The card's Physics section: each benchmark's work, then the roofline's parts."""
    return (
        [f"{w.key}: {w.note}" for w in (bench.work(k) for k in bench.benchmark_names())]
        + [
            "Roofline per accelerator = 1 / max(FLOPs / sustained peak at the submission precision, "
            "bytes / bandwidth); "
            "system roofline = per-accelerator x accelerators_per_node x number_of_nodes (x MIG share).",
            "Sustained peak (physics.benchmarks.sustained_fraction): a part whose datasheet FLOP/s per "
            "watt exceeds the best full-power (>= 250 W) part of its architecture cannot hold its boost "
            "clock inside its TDP, so its tensor rate is capped at TDP x that reference FLOP/s per watt "
            "(Turing has no full-power part in the catalog and borrows Volta's V100, the same TSMC 12 nm "
            "node). Energy per operation is compared at the part's own rated clock: it goes as V^2 and "
            "voltage rises with clock, so the reference's FLOP/s per watt is scaled by (f_ref / f)^2 "
            "with datasheet boost clocks (physics.benchmarks.boost_mhz). No fitted constant: "
            + ", ".join(
                f"{k} keeps {bench.sustained_fraction(g):.0%}"
                for k, g in sorted(_catalog_gpus(set(ds.gpu.tolist())).items())
                if bench.sustained_fraction(g) < 1.0
            )
            + " of its datasheet rate, every other GPU in these rows 100%.",
            "Precision: int8 for CNNs/DLRM, fp8 where the GPU has it for BERT/LLMs/SDXL (else int8/fp16; "
            "GPT-J falls back to fp16, as its submissions without fp8 do), fp16 for RNN-T and the "
            "strict-accuracy DLRM; strict BERT (99.9) keeps fp8 only on Hopper/Blackwell, whose FP8 path "
            "holds that accuracy (Ada submissions run it in fp16, at 0.40-0.47 of their BERT-99).",
            "L2 cache in the roofline (physics.benchmarks.l2_dram_share): a layer's output can stay in L2 "
            "for the next layer, so the memory side of every non-LLM roofline uses DRAM bandwidth + L2 "
            f"bytes / t_k, t_k = {bench.KERNEL_SECONDS * 1e6:.0f} us (one large-batch kernel; halving or "
            "doubling it moves held-out MAPE by under 0.3 points). L4 (48 MiB on 300 GB/s) keeps 0.37 of "
            "its DRAM memory time, L40 0.46, RTX-4090 0.57, H100 SXM 0.87. LLM traffic (weights streamed "
            "per decode step, KV cache) gets no L2 term. The memory-bound flag and memory/compute-time "
            "feature stay on DRAM traffic; L2 MiB per TB/s of DRAM bandwidth is also a feature.",
            "llama2-70b Offline results are tokens/s (labelled Samples/s in the data); Server results are "
            "queries/s.",
            "Inference server (physics.benchmarks.served_ceiling): Server-scenario rows whose system name or "
            "framework names Triton also cannot beat the rate at which the server's host path moves query "
            "payloads, 25 GB/s (one PCIe 4.0 x16 path host-to-device) / the benchmark's payload per query "
            "(a 150 KB int8 image for ResNet-50, ~42 KB of dense features and ids for a 270-pair DLRM "
            "query, 4.6 KB for BERT). Triton's DLRM Server results plateau at 600-725k samples/s on 8x A100 "
            "PCIe, 8x A100 SXM and 8x A30 alike where the same systems reach 1.3-2.5M without it; Offline "
            "Triton rows match their harness siblings and are not capped. The flag is also a feature.",
        ]
        + (
            [
                "LLM replicas: the fewest GPUs (a power of two) that hold the weights, or a wider replica "
                "when the weights fill over half of that one and the wider replica's larger KV room (decode "
                "batch) raises the roofline per GPU (on 8x H100 Llama-2-70B gets two GPUs per replica, on an "
                "H200 one; GPT-J is never split). Any share from 0.3 to 0.8 picks the same replicas here."
            ]
            if kind == "throughput"
            else []
        )
    )


def _target(kind: str, penalty: float) -> str:
    """The card's Target section: the boosting settings and the reference-implementation offset."""
    return (
        "log(measured / roofline); XGBoost (core.CorrectionModel: depth "
        f"{KIND_PARAMS[kind].get('max_depth', 4)}, {KIND_ROUNDS[kind]} rounds"
        + (
            f" of {KIND_PARAMS[kind]['num_parallel_tree']} subsampled trees averaged"
            if KIND_PARAMS[kind].get("num_parallel_tree", 1) > 1
            else ""
        )
        + ", eta 0.1, seed 0, 2 threads), rows weighted 1/sqrt(rows of their GPU type) so H100/A100 "
        "do not dominate. "
        "Rows from reference (non-TensorRT) implementations carry an explicit offset the trees refine: "
        "the median gap between a reference row and TensorRT rows of the same GPU type, benchmark and "
        "scenario in the training rows"
        + (f" ({penalty:+.2f} in log, x{math.exp(penalty):.2f})" if penalty else " (none in these rows)")
        + "; only two GPU types have such rows, too few for the trees alone to carry it to the other."
    )


def _validation(ds: Dataset) -> str:
    """The card's Validation section."""
    return (
        f"Whole GPU types held out one at a time (reported when they have at least {MIN_GROUP_ROWS} "
        "rows; the held-out type's interval comes from the other types' out-of-group residuals), and a "
        f"later round: trained on v2.0-v3.1, tested on {HOLDOUT_ROUND}. Never random rows. 'MAPE "
        "roofline' is the plain roofline (an upper bound, no efficiency) on the same rows. "
        f"{ds.dropped} rows more than {OUTLIER_FACTOR:g}x below their benchmark's median efficiency "
        "are treated as data errors and left out of training and scoring. The later round is also "
        "split into benchmarks that ran in an earlier round and benchmarks new in it (no earlier "
        "submission to learn their software efficiency from). 'MAPE profiled' is the reference for "
        "hardware that was profiled: the same model with rows split at random (5 folds, identical "
        "configurations kept together), so every GPU type and round is in training. 'MAPE last "
        "result' is the later round's own yardstick, on its rows whose GPU type ran the same "
        "benchmark and scenario in an earlier round (holdout 'last result known'): each row read off "
        "that GPU type's latest earlier result (same efficiency per accelerator), which knows the "
        "hardware and the benchmark exactly and misses only what the software gained since."
    )


def _limits(results: list[dict[str, Any]], kind: str) -> list[str]:
    """The card's Limits section: targets missed, what was tried, what the data cannot say."""
    return [
        f"Targets were {TARGET_MAPE:g}% MAPE per held-out GPU type and on the later round: not met by "
        + ", ".join(
            f"{r['holdout'].split('=', 1)[1]} ({r['mape_model']:.0f}%)"
            for r in sorted(results, key=lambda r: -r["mape_model"])
            if r["mape_model"] > TARGET_MAPE
        )
        + ". "
        + (
            "History (pooled GPU hold-out / round v4.0, seed 0): 18.9% / 21.3% before the sustained "
            "peak and the reference offset; 17.0% / 19.5% with them (T4 79% -> 10%, A2 32% -> 14%, L4 "
            "24% -> 30%); 16.3% / 19.8% with wider LLM replicas (H100-SXM 16.3% -> 14.2%, H200 20.9% -> "
            "18.9%, GH200 17.7% -> 16.3%). Averaged over training seeds 0-7, which move single figures "
            "by about a point, the replica rule took the pooled figure from 17.3% to 17.0% and v4.0 from "
            "20.5% to 20.3%. Comparing energy per operation at each part's rated clock ((f_ref/f)^2: "
            "L4 keeps 94% of its rate, not 62%) took seeds 0-3 from 17.0% +/- 0.4 to 16.2% +/- 0.2 "
            "pooled (better on 7 of seeds 0-7; seed 0 alone 16.3% -> 16.5%), v4.0 20.5% -> 20.4%, "
            "L4 30% -> 24%, L40 23% -> 26% (mostly BERT-99.9, which Ada runs in fp16). Held out, "
            "L4's memory-bound benchmarks (ResNet-50, RNN-T, DLRM) still run 1.3-1.6x faster than "
            "predicted: activations and hot embedding rows living in its 48 MiB L2, which the roofline "
            "did not model yet. Strict BERT in fp16 off Hopper/Blackwell then took seeds 0-3 to "
            "15.9% +/- 0.5 pooled (seed 0: 15.5%) and v4.0 to 19.9% (L40 26% -> 18%). Modelling that "
            "L2 in the roofline then reached 14.7% +/- 0.3 pooled but v4.0 22.0% (the benchmarks new "
            "in v4.0 34% -> 45%), so it waited. "
            "Tried and not kept (seed-averaged, worse on at least one scheme): a milder clock cap "
            "(clock ~ power^(1/2) or ^(2/3): L4 better, T4 far worse); dropping TFLOP/s per watt or "
            "replacing it by the sustained fraction (L4 30% -> 20%, pooled and v4.0 worse); the tensor "
            "to fp32-vector rate ratio as a feature; the fastest accepted precision (RTX 4090 BERT at "
            "int8 660 TOPS rather than fp8 330); RTX 4090 fp16/fp8 at fp16-accumulate rates; LLM time "
            "as prefill plus decode phases; a benchmark software-age feature (pooled 16.3%, v4.0 "
            "21-24%). Column subsampling (0.7) gained ~0.4 point on both but is tuning, not physics. "
            "The inference-server ceiling then took seeds 0-7 from 15.9% +/- 0.5 to 15.4% +/- 0.5 "
            "pooled (better on 6 of 8 seeds; Triton-served Server rows 40% -> 25%), v4.0 unchanged "
            "(20.2% -> 20.3%, no v4.0 row is Triton-served), and averaging four subsampled trees per "
            "boosting round to 14.9% +/- 0.2 pooled and 20.0% +/- 0.2 on v4.0. On top of those the "
            "L2 term took seeds 0-7 to 13.9% +/- 0.2 pooled (L4 24% -> 19%, RTX 4090 34% -> 30%) and "
            "v4.0 to 20.5% +/- 0.3: benchmarks run before v4.0 17.0% -> 16.6%, but SDXL, the one "
            "family with no training row, 40% -> 52% (its efficiency is a guess from other families' "
            "rows either way; it is compute-bound, so the L2 term does not touch its own roofline)."
            if kind == "throughput"
            else "The sustained-peak physics (see the mlperf_inference card) applies here too."
        ),
        "Software gains between rounds (GPT-J x2.3 from v3.1 to v4.0 with TensorRT-LLM) are not "
        "physics; the round feature can only carry the latest seen round forward."
        + _last_round_text(results),
        "llama2-70b and stable-diffusion-xl appear only in v4.0, so the round hold-out predicts them "
        "from other families' efficiencies.",
        "MIG: '1x1g' results measure one slice even when the node lists several GPUs.",
        "Per-sample work figures are approximate (see Physics).",
    ] + (
        [
            "Latency: batch-1 queries are dominated by kernel launches and host transfers the datasheet "
            "does not describe. The model beats the plain roofline pooled and on the later round, but "
            "not on every held-out GPU (L4, RTX 4090 are worse than the roofline); intervals are wide. "
            "Use it to compare options, not to promise an SLO."
        ]
        if kind == "latency"
        else []
    )


def _catalog_gpus(keys: Iterable[str]) -> dict[str, Any]:
    from greenmatrix.catalog import hardware

    return {k: hardware.gpu(k) for k in sorted(keys)}


def _intervals_text(model: CorrectionModel) -> str:
    if "novelty_intervals" not in model.info:
        return conformal_text(model)
    iv = novelty.NoveltyIntervals.from_dict(model.info["novelty_intervals"])
    return (
        "80% split-conformal intervals from out-of-GPU-type residuals, normalised by GPU novelty "
        "(greenmatrix.learned.novelty): the standardised datasheet distance (fp16 rate, bandwidth, "
        "TDP, memory, generation, L2 per bandwidth) to the nearest training GPU type, floored at "
        f"{iv.min_scale:g}. Offsets (log ratio) = novelty x ({iv.offset_lo:+.3f}, {iv.offset_hi:+.3f}), "
        f"and at least ({iv.floor_lo:+.3f}, {iv.floor_hi:+.3f}): the 80% band of forward-chained "
        "residuals (each round predicted from the earlier ones), since every request is for newer "
        "software than the data. In the GPU hold-out the held-out rows share the training rounds, so "
        "that floor is not applied there; the round hold-out applies both. A single width for every GPU "
        "had covered the mainstream types ~95% and the unusual ones (T4 5%, A2 41%) far less. Compared on "
        "the held-out types: constant, per-benchmark, per-bound and four novelty scalings."
    )
