"""The power model's one fitted coefficient, checked against MLPerf Inference power rows.

Model: system W = LOAD x n_accelerators x TDP + sockets x CPU TDP. The test refits LOAD from the
data, checks the shipped constant agrees, and measures held-out error by round and by submitter
(each group's rows predicted with LOAD fitted on the other groups).
"""

from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path

import pytest

from greenmatrix import economics as ec

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data not found at {DATA}")

# Stated tolerances: the shipped constant within 0.03 of the refit; held-out mean absolute
# percentage error under 20% by round and 25% by submitter (measured: ~14.5% and ~17%).
CONSTANT_TOLERANCE = 0.03
MAPE_BY_ROUND = 0.20
MAPE_BY_SUBMITTER = 0.25


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    if not DATA.is_dir():
        pytest.skip(f"reference data not found at {DATA}")
    with (DATA / "mlperf" / "inference_closed.csv").open(newline="", encoding="utf-8") as fh:
        return ec.mlperf_power_rows(list(csv.DictReader(fh)))


def _triples(rs: list[dict]) -> list[tuple[float, float, float]]:
    return [(r["accel_tdp_total"], r["host_watts"], r["measured_watts"]) for r in rs]


def _held_out_errors(rows: list[dict], group: str) -> tuple[list[float], dict[str, float]]:
    errors: list[float] = []
    loads: dict[str, float] = {}
    for g in sorted({r[group] for r in rows}):
        train = [r for r in rows if r[group] != g]
        test = [r for r in rows if r[group] == g]
        load = ec.fit_load_factor(_triples(train))
        loads[g] = load
        for r in test:
            pred = ec.system_watts(1, r["accel_tdp_total"], r["host_watts"], load_factor=load)
            errors.append(abs(pred - r["measured_watts"]) / r["measured_watts"])
    return errors, loads


def test_enough_power_rows(rows: list[dict]) -> None:
    assert len(rows) >= 200
    assert len({r["gpu_key"] for r in rows}) >= 6


def test_shipped_constant_matches_the_refit(rows: list[dict]) -> None:
    load = ec.fit_load_factor(_triples(rows))
    assert abs(load - ec.MLPERF_LOAD_FACTOR) <= CONSTANT_TOLERANCE
    assert ec.GPU_IDLE_FRACTION < load <= 1.0  # busy draws more than idle, not more than TDP


def test_held_out_by_round(rows: list[dict]) -> None:
    errors, loads = _held_out_errors(rows, "version")
    assert len(loads) >= 3
    assert statistics.mean(errors) < MAPE_BY_ROUND
    assert all(0.6 < v < 0.9 for v in loads.values())  # the coefficient is stable across rounds


def test_held_out_by_submitter(rows: list[dict]) -> None:
    for r in rows:
        r["submitter_group"] = r["submitter"].lower()  # "CTuning" and "cTuning" are one submitter
    errors, loads = _held_out_errors(rows, "submitter_group")
    assert len(loads) >= 4
    assert statistics.mean(errors) < MAPE_BY_SUBMITTER


def test_model_beats_tdp_times_count(rows: list[dict]) -> None:
    # the naive "system draws n x TDP" is much worse than the fitted model, so the fit earns its place
    fitted = [abs(ec.system_watts(1, a, h) - w) / w for a, h, w in _triples(rows)]
    naive = [abs(a - w) / w for a, _h, w in _triples(rows)]
    assert statistics.mean(fitted) < 0.6 * statistics.mean(naive)


def test_fit_recovers_a_known_coefficient() -> None:
    synthetic = [(n * 400.0, 300.0, 0.65 * n * 400.0 + 300.0) for n in (1, 2, 4, 8)]
    assert ec.fit_load_factor(synthetic) == pytest.approx(0.65)
