"""`greenmatrix predict --dataset llm-serving`: predict TTFT/TPOT for every row of a CSV.

Input columns are those of the measured serving CSV (`model_path`, `system`, `backend`,
`precision`, `mode`, `isl`, `osl`, `batch_size`, `tp_size`, ... see
`greenmatrix.learned.serving.scenario_from_row`); measured columns may be absent. The output
repeats every input row in order with all its columns and adds the predictions and a `reason`
(empty when predicted, a sentence saying why not otherwise). `predicted_ttft_ms` and
`predicted_tpot_ms` are the values with the least expected relative error (see the serving model
card, "Point prediction"); `_p10`/`_p90` bound the 80% interval around the median.
"""

from __future__ import annotations

from pathlib import Path

from greenmatrix.batch.table import load_or_explain, read_table, write_predictions
from greenmatrix.catalog import hardware, llms
from greenmatrix.errors import GreenMatrixError
from greenmatrix.learned.serving import ServingPrediction, ServingPredictor, scenario_from_row
from greenmatrix.scenarios import ServingScenario

PREDICTION_COLUMNS = (
    "predicted_ttft_ms",
    "predicted_ttft_ms_p10",
    "predicted_ttft_ms_p90",
    "predicted_tpot_ms",
    "predicted_tpot_ms_p10",
    "predicted_tpot_ms_p90",
)


def _scenario(row: dict[str, str]) -> ServingScenario:
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


def predict_file(in_path: Path, out_path: Path) -> int:
    """Write predictions for every row of ``in_path`` to ``out_path``; return how many were predicted."""
    table = read_table(in_path, "llm-serving", PREDICTION_COLUMNS)
    rows = table.rows
    scenarios: list[ServingScenario] = []
    positions: list[int] = []
    reasons = [""] * len(rows)
    for i, row in enumerate(rows):
        try:
            scenarios.append(_scenario(row))
            positions.append(i)
        except (GreenMatrixError, ValueError) as exc:
            reasons[i] = f"not predicted: {exc}"
    predictions: dict[int, list[str]] = {}
    if scenarios:
        predictor = load_or_explain(ServingPredictor.load, "serving")
        predictions = _batch(predictor, positions, scenarios, reasons)
    cells = [predictions.get(i) for i in range(len(rows))]
    return write_predictions(out_path, table, PREDICTION_COLUMNS, cells, reasons)


def _batch(
    predictor: ServingPredictor, positions: list[int], scenarios: list[ServingScenario], reasons: list[str]
) -> dict[int, list[str]]:
    # One vectorised call; if a scenario breaks the physics, fall back to row by row so one bad
    # row costs only itself.
    try:
        preds = predictor.predict(scenarios, point=True)
        return {i: _cells(p) for i, p in zip(positions, preds, strict=True)}
    except (GreenMatrixError, ValueError):
        out: dict[int, list[str]] = {}
        for i, s in zip(positions, scenarios, strict=True):
            try:
                out[i] = _cells(predictor.predict([s], point=True)[0])
            except (GreenMatrixError, ValueError) as exc:
                reasons[i] = f"not predicted: {exc}"
        return out


def _cells(pred: ServingPrediction) -> list[str]:
    # The single number is the least-relative-error point (Interval.estimate), not the median.
    t, p = pred.ttft_ms, pred.tpot_ms
    return [f"{v:.4g}" for v in (t.estimate, t.p10, t.p90, p.estimate, p.p10, p.p90)]
