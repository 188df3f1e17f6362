"""Serving rows as the learned serving model predicts them: each CSV row a scenario, one batch call,
a row that breaks the physics costing only itself. Shared by plain and `--observed` prediction."""

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


def load_or_explain(loader: Callable[[], Any], what: str) -> Any:
    try:
        return loader()
    except FileNotFoundError as err:
        raise GreenMatrixError("models", f"the {what} model is missing: {err}") from err


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
    predictor = load_or_explain(ServingPredictor.load, "serving")
    predictions = _serving_batch(predictor, list(scenarios), list(scenarios.values()), reasons)
    return predictions, {i: scenarios[i] for i in predictions}, reasons


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


def serving_cells(pred: Any) -> list[str]:
    # The single number is the least-relative-error point (Interval.estimate), not the median.
    t, p = pred.ttft_ms, pred.tpot_ms
    return [f"{v:.4g}" for v in (t.estimate, t.p10, t.p90, p.estimate, p.p10, p.p90)]
