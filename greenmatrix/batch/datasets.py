"""The reference datasets `greenmatrix predict`, `train` and `bench` know, and how each row is predicted.

Each dataset names the columns a row needs and the columns read by name (as in ../shared/data), the
columns a prediction adds, the learned module trained on it, and a row predictor. This is the one
place the CLI and batch prediction name the learned modules: they load when a row is predicted,
so `greenmatrix predict --help` does not import XGBoost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenmatrix.batch.serving import (
    Observed,
    Predictions,
    Rows,
    load_or_explain,
    serving_cells,
    serving_predictions,
)


@dataclass(frozen=True)
class Dataset:
    """A reference dataset: its columns, its learner and how its rows are predicted."""

    name: str
    # Columns a row needs; "a|b" is either.
    required: tuple[str, ...]
    # Columns looked up by name: a header that differs only in case or surrounding spaces is read as them.
    known: tuple[str, ...]
    # Columns a prediction adds (then `reason`).
    outputs: tuple[str, ...]
    # The learned module with DATASET, DATA_FILE, train() and benchmark() for this dataset.
    learner: str
    predict_rows: Callable[[Rows], Predictions]
    # Measured columns a deployment's rows add, and the rows predicted corrected by such rows
    # (`--observed`, the outputs then a `correction` column); None where the dataset cannot learn so.
    measured: tuple[str, ...] = ()
    predict_observed: Callable[[Rows, Observed], Predictions] | None = None


def _serving_rows(rows: Rows) -> Predictions:
    """TTFT/TPOT per row, each the value with the least expected relative error (see the serving model
    card, "Point prediction") with the 80% interval around the median."""
    predictions, _scenarios, reasons = serving_predictions(rows)
    cells: list[list[str] | None] = [None] * len(rows)
    for i, pred in predictions.items():
        cells[i] = serving_cells(pred)
    return cells, reasons


def _serving_observed(rows: Rows, observed: Observed) -> Predictions:
    from greenmatrix.batch.observed import serving_rows

    return serving_rows(rows, observed)


def _mlperf_inference_rows(rows: Rows) -> Predictions:
    """Offline/Server rows get a throughput (samples/s, queries/s, or tokens/s for llama2-70b Offline),
    SingleStream/MultiStream rows a latency in ms per query (the weaker model, models/mlperf_latency.md),
    in the row's Units for the whole system; power rows, CPU-only systems and accelerators without
    catalog specs get a reason instead."""
    from greenmatrix.learned import mlperf_inference

    predictor = load_or_explain(mlperf_inference.predictor, "MLPerf inference")
    return _intervals([(p.result, p.reason) for p in predictor.predict_rows(rows)])


def _mlperf_training_rows(rows: Rows) -> Predictions:
    """Minutes to train per row."""
    from greenmatrix.learned import training_time as training

    predictor = load_or_explain(training.predictor, "training time")
    return _intervals([(p.minutes, p.reason) for p in predictor.predict_rows(rows)])


def _intervals(predictions: Sequence[tuple[Any, str]]) -> Predictions:
    """Each (interval or None, reason) as cells p50, p10, p90."""
    cells = [None if iv is None else [f"{v:.6g}" for v in (iv.p50, iv.p10, iv.p90)] for iv, _ in predictions]
    return cells, [reason for _, reason in predictions]


# In this order a file's columns are matched to suggest the dataset it looks like.
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "llm-serving",
            required=("model_path|model", "system|gpu", "backend", "isl", "osl"),
            known=(
                "model_path", "system", "backend", "backend_version", "precision", "mode", "isl", "osl",
                "gemm_quant_mode", "moe_quant_mode", "batch_size", "tp_size", "pp_size",
                "attention_dp_size", "moe_tp_size", "moe_ep_size", "prefill_batch_size",
                "prefill_num_workers", "prefill_tp_size", "prefill_pp_size", "prefill_attention_dp_size",
                "prefill_moe_tp_size", "prefill_moe_ep_size", "decode_batch_size", "decode_num_workers",
                "decode_tp_size", "decode_pp_size", "decode_attention_dp_size", "decode_moe_tp_size",
                "decode_moe_ep_size", "silicon_data_source", "concurrency", "model", "gpu",
            ),
            outputs=(
                "predicted_ttft_ms", "predicted_ttft_ms_p10", "predicted_ttft_ms_p90",
                "predicted_tpot_ms", "predicted_tpot_ms_p10", "predicted_tpot_ms_p90",
            ),
            learner="greenmatrix.learned.fitting.serving",
            predict_rows=_serving_rows,
            measured=("silicon_ttft_ms", "silicon_tpot_ms"),
            predict_observed=_serving_observed,
        ),
        Dataset(
            "mlperf-inference",
            required=("Model", "Scenario", "accelerator_model_name", "accelerators_per_node"),
            known=(
                "version", "SystemName", "Model", "Scenario", "Units", "accelerator_model_name",
                "accelerators_per_node", "number_of_nodes", "framework", "has_power",
            ),
            outputs=("predicted_result", "predicted_result_p10", "predicted_result_p90"),
            learner="greenmatrix.learned.fitting.mlperf_inference",
            predict_rows=_mlperf_inference_rows,
        ),
        Dataset(
            "mlperf-training",
            required=("Model_ID|Benchmark", "accelerator_model_name", "accelerators_count"),
            known=(
                "Benchmark", "Model_ID", "accelerator_model_name", "accelerators_count", "framework",
                "version",
            ),
            outputs=("predicted_minutes", "predicted_minutes_p10", "predicted_minutes_p90"),
            learner="greenmatrix.learned.fitting.training_time",
            predict_rows=_mlperf_training_rows,
        ),
    )
}  # fmt: skip
