"""The reference datasets `greenmatrix predict`, `train` and `bench` know, and how each row is predicted.

Each dataset names the columns a row needs and the columns read by name (as in ../shared/data), the
columns a prediction adds, the learned module trained on it, and a row predictor. This is the one
place the CLI and batch prediction name the learned modules: they load when a row is predicted,
so `greenmatrix predict --help` does not import XGBoost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenmatrix.errors import GreenMatrixError

Rows = Sequence[dict[str, str]]
# Per row: the prediction's cells (None when not predicted) and a reason (read when there are no cells).
Predictions = tuple[list[list[str] | None], list[str]]


@dataclass(frozen=True)
class Observed:
    """Rows a running deployment produced (`--observed`): each with the file line it was read from."""

    path: Path
    lines: Sequence[int]
    rows: Rows


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


def _load_or_explain(loader: Callable[[], Any], what: str) -> Any:
    try:
        return loader()
    except FileNotFoundError as err:
        raise GreenMatrixError("models", f"the {what} model is missing: {err}") from err


def _serving_rows(rows: Rows) -> Predictions:
    """TTFT/TPOT per row, each the value with the least expected relative error (see the serving model
    card, "Point prediction") with the 80% interval around the median."""
    predictions, _scenarios, reasons = serving_predictions(rows)
    cells: list[list[str] | None] = [None] * len(rows)
    for i, pred in predictions.items():
        cells[i] = _serving_cells(pred)
    return cells, reasons


def serving_predictions(rows: Rows) -> tuple[dict[int, Any], dict[int, Any], list[str]]:
    """The ServingPrediction (with its point) and scenario of each row that has one, by position, and
    per row the reason it was not predicted."""
    from greenmatrix.learned.serving import ServingPredictor

    scenarios: dict[int, Any] = {}
    reasons = [""] * len(rows)
    for i, row in enumerate(rows):
        try:
            scenarios[i] = serving_scenario(row)
        except (GreenMatrixError, ValueError) as exc:
            reasons[i] = f"not predicted: {exc}"
    if not scenarios:
        return {}, scenarios, reasons
    predictor = _load_or_explain(ServingPredictor.load, "serving")
    predictions = _serving_batch(predictor, list(scenarios), list(scenarios.values()), reasons)
    return predictions, {i: scenarios[i] for i in predictions}, reasons


def _serving_observed(rows: Rows, observed: Observed) -> Predictions:
    from greenmatrix.batch import observed as learning

    return learning.serving_rows(rows, observed)


def serving_scenario(row: dict[str, str]) -> Any:
    """A llm-serving row as a ServingScenario; GreenMatrixError naming the column that makes it unusable."""
    from greenmatrix.catalog import hardware, llms
    from greenmatrix.learned.serving import scenario_from_row

    model_name = (row.get("model_path") or row.get("model") or "").strip()
    system = (row.get("system") or row.get("gpu") or "").strip()
    if not model_name:
        raise GreenMatrixError("model_path", "is empty")
    if not system:
        raise GreenMatrixError("system", "is empty")
    try:
        model = llms.model_arch(model_name)
    except GreenMatrixError as exc:
        raise GreenMatrixError("model_path", f"model {model_name!r} is not in the model catalog") from exc
    try:
        gpu = hardware.gpu(system)
    except (GreenMatrixError, ValueError) as exc:
        raise GreenMatrixError("system", f"accelerator {system!r} has no specs in the catalog") from exc
    return scenario_from_row(row, model, gpu)


def _serving_batch(
    predictor: Any, positions: list[int], scenarios: list[Any], reasons: list[str]
) -> dict[int, Any]:
    # One vectorised call; if a scenario breaks the physics, fall back to row by row so one bad
    # row costs only itself.
    try:
        preds = predictor.predict(scenarios, point=True)
        return dict(zip(positions, preds, strict=True))
    except (GreenMatrixError, ValueError):
        out: dict[int, Any] = {}
        for i, s in zip(positions, scenarios, strict=True):
            try:
                out[i] = predictor.predict([s], point=True)[0]
            except (GreenMatrixError, ValueError) as exc:
                reasons[i] = f"not predicted: {exc}"
        return out


def _serving_cells(pred: Any) -> list[str]:
    # The single number is the least-relative-error point (Interval.estimate), not the median.
    t, p = pred.ttft_ms, pred.tpot_ms
    return [f"{v:.4g}" for v in (t.estimate, t.p10, t.p90, p.estimate, p.p10, p.p90)]


def _mlperf_inference_rows(rows: Rows) -> Predictions:
    """Offline/Server rows get a throughput (samples/s, queries/s, or tokens/s for llama2-70b Offline),
    SingleStream/MultiStream rows a latency in ms per query (the weaker model, models/mlperf_latency.md),
    in the row's Units for the whole system; power rows, CPU-only systems and accelerators without
    catalog specs get a reason instead."""
    from greenmatrix.learned import mlperf_inference

    predictor = _load_or_explain(mlperf_inference.predictor, "MLPerf inference")
    return _intervals([(p.result, p.reason) for p in predictor.predict_rows(rows)])


def _mlperf_training_rows(rows: Rows) -> Predictions:
    """Minutes to train per row."""
    from greenmatrix.learned import training

    predictor = _load_or_explain(training.predictor, "training time")
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
            learner="greenmatrix.learned.serving",
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
            learner="greenmatrix.learned.mlperf_inference",
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
            learner="greenmatrix.learned.training",
            predict_rows=_mlperf_training_rows,
        ),
    )
}  # fmt: skip
