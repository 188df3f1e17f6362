"""`greenmatrix predict --dataset llm-serving --observed OBS.csv`: predictions corrected by what a deployment
was seen doing.

OBS holds rows a running deployment produced, with the measured TTFT and TPOT. Each is predicted as
IN's rows are; the ratio of measured to predicted teaches `live.calibration` a correction per
deployment configuration (and, shrunk further, per GPU and model), which the predictions for IN then
carry, with a `correction` column saying how much evidence moved each. An OBS row that cannot be
learned from is refused with the file, line and column, as a bad IN file is.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import fields
from typing import Any

from greenmatrix.batch.serving import Observed, Predictions, Rows, serving_predictions, serving_scenario
from greenmatrix.errors import GreenMatrixError
from greenmatrix.live.calibration import Calibration, Prior

TARGETS = {"ttft": "silicon_ttft_ms", "tpot": "silicon_tpot_ms"}
# TTFT's errors are shared less across configurations of a GPU and model (its queueing behind other
# requests' prefills depends on the engine and client) and bend more along concurrency.
PRIORS = {"ttft": Prior(family_share=0.15, load_slope=0.25), "tpot": Prior()}
# The axis a serving deployment moves along with its load; every other scenario field is its configuration.
LOAD_AXIS = "concurrency"


def configuration_key(scenario: Any, row: Mapping[str, str]) -> tuple[Hashable, ...]:
    """What stays fixed while a deployment serves: GPU system, model, engine and its version, serving
    mode, precisions, parallel layout (aggregated or prefill/decode) and request lengths; everything
    but concurrency. The version is not in the scenario (the physics cannot use it) but it is part
    of a deployment: the same layout measured on two engine releases differs by up to 2x in the data."""
    fixed = (_identity(getattr(scenario, f.name)) for f in fields(scenario) if f.name != LOAD_AXIS)
    return (*fixed, (row.get("backend_version") or "").strip())


def family_key(scenario: Any) -> tuple[str, str]:
    """The GPU type and model: configurations whose errors are largely shared (the roofline's for the GPU)."""
    return scenario.gpu.key, scenario.model.name


def _identity(value: Any) -> Hashable:
    # A GPU or model record is identified by its catalog key or name, not by every spec it carries.
    for attribute in ("key", "name"):
        if hasattr(value, attribute) and not isinstance(value, str):
            return getattr(value, attribute)
    return value


def serving_rows(rows: Rows, observed: Observed) -> Predictions:
    """IN's rows predicted and corrected by OBS's: the dataset's cells, then `correction`."""
    calibrations = learn(observed)
    predictions, scenarios, reasons = serving_predictions(rows)
    cells: list[list[str] | None] = [None] * len(rows)
    positions = list(predictions)
    if not positions:
        return cells, reasons
    keys, families, loads = _keys([scenarios[i] for i in positions], [rows[i] for i in positions])
    corrected = {}
    for target, calibration in calibrations.items():
        p10, p50, p90, point = _bands([predictions[i] for i in positions], target)
        corrected[target] = calibration.apply(keys, families, p10, p50, p90, point, loads)
    for j, i in enumerate(positions):
        values = []
        for target in TARGETS:
            c = corrected[target]
            values += [f"{v:.4g}" for v in (c.point[j], c.p10[j], c.p90[j])]
        notes = [f"{target.upper()} {c.basis[j]}" for target, c in corrected.items() if c.basis[j]]
        cells[i] = [*values, "; ".join(notes) or "not corrected: no observation of this GPU and model"]
    return cells, reasons


def learn(observed: Observed) -> dict[str, Calibration]:
    """One calibration per target from OBS's rows; GreenMatrixError naming the line and column of a row
    that cannot be learned from."""
    scenarios = []
    measured: dict[str, list[float]] = {target: [] for target in TARGETS}
    for line, row in zip(observed.lines, observed.rows, strict=True):
        scenarios.append(_scenario(observed, line, row))
        for target, column in TARGETS.items():
            measured[target].append(_milliseconds(observed, line, row, column))
    predictions, _scenarios, reasons = serving_predictions(observed.rows)
    for i, reason in enumerate(reasons):
        if i not in predictions:
            raise GreenMatrixError("--observed", f"{observed.path} line {observed.lines[i]}: {reason}")
    keys, families, loads = _keys(scenarios, observed.rows)
    out = {}
    for target in TARGETS:
        p10, p50, p90, _point = _bands([predictions[i] for i in range(len(scenarios))], target)
        out[target] = Calibration.fit(keys, families, p10, p50, p90, measured[target], loads, PRIORS[target])
    return out


def _keys(scenarios: list[Any], rows: Rows) -> tuple[list[Hashable], list[Hashable], list[int]]:
    """Per row: its configuration, its family and its load (concurrency)."""
    keys = [configuration_key(s, row) for s, row in zip(scenarios, rows, strict=True)]
    return keys, [family_key(s) for s in scenarios], [s.concurrency for s in scenarios]


def _bands(predictions: list[Any], target: str) -> tuple[list[float], ...]:
    """p10, p50, p90 and the single predicted value of `target` ("ttft" or "tpot") per prediction."""
    bands = [getattr(p, f"{target}_ms") for p in predictions]
    return [b.p10 for b in bands], [b.p50 for b in bands], [b.p90 for b in bands], [b.estimate for b in bands]


def _scenario(observed: Observed, line: int, row: Mapping[str, str]) -> Any:
    try:
        return serving_scenario(dict(row))
    except GreenMatrixError as exc:
        raise GreenMatrixError(
            "--observed", f"{observed.path} line {line}, column {exc.field}: {exc.message}"
        ) from exc
    except ValueError as exc:
        raise GreenMatrixError("--observed", f"{observed.path} line {line}: {exc}") from exc


def _milliseconds(observed: Observed, line: int, row: Mapping[str, str], column: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise GreenMatrixError(
            "--observed",
            f"{observed.path} line {line}, column {column}: {text!r} is not a positive number of "
            "milliseconds",
        )
    return value
