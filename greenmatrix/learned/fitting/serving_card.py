"""The model card of the LLM serving corrections (models/serving.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from greenmatrix.learned.fitting.holdout import RANDOM_HOLDOUT, BenchRow
from greenmatrix.learned.serving import FEATURES, REQUEST_OVERHEAD_MS, STEP_OVERHEAD_MS_PER_LAYER, TARGETS

if TYPE_CHECKING:
    from greenmatrix.learned.fitting.serving import Dataset


def card(
    ds: Dataset,
    rows: Sequence[BenchRow],
    offsets: Mapping[str, tuple[float, float, float, float]],
    consistency: Mapping[str, tuple[int, float]],
    params: Mapping[str, Mapping[str, Any]],
    rounds: int,
) -> dict[str, Any]:
    """The card of the corrections fitted on `ds` with `params` and `rounds`, scored by `rows`."""
    table = [
        {
            "held out": r.holdout,
            "target": r.target,
            "n": r.n,
            "MAPE model %": round(r.mape_model, 1),
            "MAPE roofline %": round(r.mape_roofline, 1),
            "MAPE profiled %": round(r.mape_profiled or 0.0, 1),
            "80% interval coverage": round(r.coverage80, 2),
        }
        for r in rows
    ]
    summary = _summary(rows)
    return {
        **_method(ds, params, rounds),
        "Held-out summary": summary,
        "What the data allows": (
            "Two references beside the held-out figures. 'MAPE profiled': the same model with rows "
            "split at random (5 folds, repeated configurations kept together), so every GPU and model "
            "is in training. The data's own consistency: each row read off its own configuration's "
            "concurrency sweep (same GPU, model, engine, layout and lengths; log-log interpolation "
            "between the nearest lower and higher concurrency) is off by "
            + ", ".join(f"{mape_:.1f}% for {t.upper()} ({n} rows)" for t, (n, mape_) in consistency.items())
            + ". Engine versions, speculative decoding and benchmark-client effects the CSV does not "
            "record move neighbouring points that much, and a model of hardware it never saw should not "
            "be expected to beat that scatter by much."
        ),
        "Held-out metrics": table,
        "Shipped intervals": {
            **{
                f"{t} log-offsets (p10, p90), new GPU or model": f"{offsets[t][0]:+.3f}, {offsets[t][1]:+.3f}"
                for t in TARGETS
            },
            **{
                f"{t} log-offsets (p10, p90), GPU and model measured together": (
                    f"{offsets[t][2]:+.3f}, {offsets[t][3]:+.3f}"
                )
                for t in TARGETS
            },
        },
        "Limitations": _LIMITATIONS,
    }


def _summary(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    """The held-out summary: each grouping pooled (row-weighted and each group once), then random rows."""
    summary = []
    by_label = {(r.holdout, r.target): r for r in rows}
    for kind, known_only in (("gpu", False), ("gpu", True), ("model", False), ("model", True)):
        for target in TARGETS:
            whole = [r for r in rows if r.holdout.startswith(kind + "=") and ",layout=" not in r.holdout]
            sel = [r for r in whole if r.target == target]
            if known_only:
                # A group's known-layout row when it has one; otherwise the group had no unknown layouts.
                sel = [by_label.get((r.holdout + ",layout=known", target), r) for r in sel]
            n = sum(r.n for r in sel)
            summary.append(
                {
                    "held out": f"each {kind} in turn{' (rows with known layout)' if known_only else ''}",
                    "target": target,
                    "n": n,
                    "MAPE model % (row-weighted)": round(sum(r.mape_model * r.n for r in sel) / n, 1),
                    "MAPE roofline %": round(sum(r.mape_roofline * r.n for r in sel) / n, 1),
                    "MAPE profiled %": round(sum((r.mape_profiled or 0.0) * r.n for r in sel) / n, 1),
                    "coverage": round(sum(r.coverage80 * r.n for r in sel) / n, 2),
                    # The calibration weighs each group once, where rows let B200 (half the rows) speak
                    # for the other GPU types; both readings are shown, for error and coverage alike.
                    "MAPE model %, each group once": round(sum(r.mape_model for r in sel) / len(sel), 1),
                    "coverage, each group once": round(sum(r.coverage80 for r in sel) / len(sel), 2),
                }
            )
    for r in rows:
        if r.holdout == RANDOM_HOLDOUT:
            summary.append(
                {
                    "held out": "rows at random (GPU and model measured)",
                    "target": r.target,
                    "n": r.n,
                    "MAPE model % (row-weighted)": round(r.mape_model, 1),
                    "MAPE roofline %": round(r.mape_roofline, 1),
                    "MAPE profiled %": round(r.mape_profiled or 0.0, 1),
                    "coverage": round(r.coverage80, 2),
                    "MAPE model %, each group once": float("nan"),
                    "coverage, each group once": float("nan"),
                }
            )
    return summary


def _method(ds: Dataset, params: Mapping[str, Mapping[str, Any]], rounds: int) -> dict[str, Any]:
    """The card's sections on what is predicted, from what data and features, and how it is checked."""
    return {
        "title": "LLM serving TTFT / TPOT correction (serving_ttft, serving_tpot)",
        "What it predicts": (
            "Time to first token (TTFT, ms) and time per output token (TPOT, ms) of one serving replica: "
            "a baseline times exp(correction). The baseline is the roofline of `greenmatrix.physics.llm` "
            "(for TPOT of aggregated serving: a decode step plus the prefill stall) "
            f"plus fixed costs it leaves out: {REQUEST_OVERHEAD_MS:g} ms per request for TTFT (request "
            f"handling, tokenisation, scheduling) and {STEP_OVERHEAD_MS_PER_LAYER:g} ms per layer per decode "
            "step for TPOT (kernel launches and the engine's CPU scheduler). Each model is XGBoost "
            f"({rounds} rounds, depth {params['ttft']['max_depth']} for TTFT and "
            f"{params['tpot']['max_depth']} for TPOT, absolute error) regressing "
            "log(measured / baseline), plus a point booster per target (see 'Point prediction'). "
            "'MAPE roofline' below is the plain roofline, without the fixed costs."
        ),
        "Data": (
            f"{len(ds.scenarios)} measured rows of `llm_serving/measured_ttft_tpot.csv` "
            f"(ai-dynamo/aiconfigurator, Apache-2.0): {len(set(ds.system.tolist()))} GPU systems, "
            f"{len(set(ds.model_name.tolist()))} architectures, backends trtllm/vllm/sglang, aggregated and "
            f"disaggregated serving. Rows skipped: {ds.skipped or 'none'}. Rows are weighted "
            "1/sqrt(rows in their (GPU, architecture) cell)."
        ),
        "Features": (
            "Physics only, never a GPU or model name: "
            + ", ".join(f"`{f}`" for f in FEATURES)
            + ". Roofline times (prefill compute/memory/communication, decode compute/memory/"
            "communication, prefill queue), the baselines and the share of them that is fixed cost or "
            "prefill stall, arithmetic intensity, memory headroom, parallelism, serving engine, batch, "
            "input length, layers, MoE sparsity and experts touched. Precision widths are not features: "
            "bf16 is almost only on H100 and in a few anomalous GB200 runs, and as features they taught "
            "the trees a bf16 penalty (H100 held out: 58% with them, 40% without); precision enters "
            "through the roofline's bytes and FLOP rates. "
            "Raw bandwidth/FLOPS are deliberately left out: with five GPU types they act as GPU identifiers "
            "and hurt leave-one-GPU-out error; they enter through the roofline times instead. For the same "
            "reason output length, active parameters and weight GiB per GPU are not features (they identify "
            "benchmark campaigns and models; dropping them cut held-out TPOT error by ~2 points and TTFT by "
            "~2.5 on both groupings, over three seeds): they enter through the roofline times."
        ),
        "Validation": (
            "Held out by whole groups, never random rows: each GPU system in turn (trained on the "
            "other four), then each architecture in turn. Intervals are split-conformal on "
            "out-of-group residuals (CV+ style: grouped refits inside the training set, each group "
            "weighted equally, by GPU and by architecture, the two pooled), so the held-out "
            "coverage measures calibration on a GPU or architecture the model never saw. A "
            "configuration on a GPU and architecture the data measured together is the profiled case: "
            "its interval is calibrated on rows split at random (5 folds inside the training rows, "
            "rows weighted as in training, never wider than the out-of-group one), and 'random rows' "
            "scores it that way (5 outer folds, each calibrated inside its own training rows)."
        ),
        # The shipped card names `learned.core._train_point`, where the point booster was fitted when
        # it was written (now `learned.fitting.correction._Recipe.train_point`): new wording waits for a
        # retrain.
        "Point prediction": (
            "The 80% interval comes from the median model (p50, what the planner and SLO checks use). "
            "The single number `greenmatrix predict` writes (`predicted_ttft_ms`, `predicted_tpot_ms`) "
            "is the value with the least expected relative error, from a second booster per target fitted "
            "to that error itself (absolute error weighted by exp(-(y - prediction)), weights refreshed "
            "from its own residuals twice; `learned.core._train_point`), kept inside the interval. Errors "
            "this wide are skewed (a prediction can be 300% high but only 100% low), so that value sits "
            "below the median where the spread is wide and on it where the spread is narrow. It is what "
            "the MAPE columns score: against the median, leave-one-GPU-out TPOT/TTFT was 23.9% / 46.1% "
            "and leave-one-architecture-out 29.9% / 55.6% (coverage is the median model's, unchanged)."
        ),
    }


_LIMITATIONS = [
    "Disaggregated rows without worker counts (1172 rows, almost all DeepSeek-R1/V3) leave "
    "the decode batch per worker unknown: the physics assumes the fewest decode workers that fit "
    "in memory and the `decode_workers_known` feature lets the correction treat them apart. The "
    "same exports fold attention data parallelism into the tp column (checked against 295 runs "
    "that also appear with their full layout): an MoE layout stated only as tp is read as the "
    "faster of TP and attention-DP, and a tp equal to moe_tp x ep as that expert grid. The "
    "`,layout=known` rows show accuracy for stated layouts, which is what a user's scenario always "
    "has. DeepSeek rows sit at ~0.7 of the baseline TPOT already at 1-16 concurrent requests, which "
    "points at speculative decoding (MTP), which the data does not record.",
    "Aggregated TPOT includes the other requests' prefills run between decode steps (concurrency "
    "per attention rank x prefill time / output tokens): measured TPOT at 128 output tokens is about "
    "twice the one at 512 for the same decode step. Adding it to the baseline cut held-out TPOT "
    "error most for dense models on H100 (Llama-3.1-8B rows, all on H100, held out with it: "
    "49% -> 22%). Those prefill chunks ride in the decode batches (chunked prefill), so the "
    "baseline overlaps their FLOPs with the decode step's weight reads instead of adding the two, "
    "and both prefill and decode pay the elementwise kernels between the matmuls (norms, residuals, "
    "activations, MoE permutes) at memory bandwidth; together these cut leave-one-GPU-out TPOT "
    "error from 25.8% to 23.8% (H100 29.5% -> 23.2%) and leave-one-architecture-out from 31.7% to "
    "29.8% (three seeds each), TTFT unchanged within noise.",
    "Speculative decoding (MTP), engine versions and chunked-prefill settings are not recorded; "
    "they are absorbed into the correction's spread (TTFT especially: it includes queueing behind "
    "other requests' prefills, which depends on the benchmark client).",
    "Only NVIDIA Hopper/Blackwell systems are in the data (H100 is the only Hopper), so other "
    "GPUs are predicted from their specs through the roofline. Off the measured GPU x "
    "architecture pairs the interval has the same log-width for every GPU: it was checked on "
    "hold-outs as far apart as Hopper from Blackwell "
    "(H100 held out: the TPOT interval covered 87%), not on parts unlike all of them (L4, T4, "
    "AMD). Widening it with datasheet distance, as the MLPerf model does, pushed the H100 "
    "hold-out to full coverage, so the data gave no support for it here.",
    "A GPU and architecture each measured, but never together (e.g. Llama-3.1-8B on B200), get "
    "the out-of-group interval: the random-row calibration only covers pairs it had rows of.",
]
