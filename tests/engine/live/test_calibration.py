"""Capacity learned from the deployment: the correction follows the evidence, the interval narrows with it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from greenmatrix.live.calibration import Calibration, Prior

CONFIG, FAMILY = ("b200", "llama-70b", "tp4", 1024, 256), ("b200", "llama-70b")
# The model's prediction for every row: median 10 ms, 80% interval 7-15 ms.
P10, P50, P90 = 7.0, 10.0, 15.0


def _fit(measured: list[float], config=CONFIG, family=FAMILY, load=None, prior=None) -> Calibration:
    n = len(measured)
    return Calibration.fit([config] * n, [family] * n, [P10] * n, [P50] * n, [P90] * n, measured, load, prior)


def _predict(calibration: Calibration, config=CONFIG, family=FAMILY, load=None):
    return calibration.apply([config], [family], [P10], [P50], [P90], [9.0], None if load is None else [load])


def test_without_observations_a_prediction_is_unchanged() -> None:
    calibration = Calibration.fit([], [], [], [], [], [])
    out = calibration.apply(
        [CONFIG, "other"], [FAMILY, "other"], [P10, 1.0], [P50, 2.0], [P90, 3.0], [9.0, 1.9]
    )
    assert out.p10.tolist() == [P10, 1.0] and out.p50.tolist() == [P50, 2.0]
    assert out.p90.tolist() == [P90, 3.0] and out.point.tolist() == [9.0, 1.9]
    assert out.basis == ["", ""]


def test_observations_of_another_gpu_or_model_change_nothing() -> None:
    out = _predict(_fit([20.0, 21.0, 19.0]), config="x", family=("h100", "llama-70b"))
    assert (out.p10[0], out.p50[0], out.p90[0], out.point[0]) == (P10, P50, P90, 9.0)
    assert out.basis == [""]


def test_more_evidence_moves_the_median_monotonically_toward_it_and_narrows_the_interval() -> None:
    medians, widths = [], []
    for n in (1, 2, 4, 8, 32, 256):
        out = _predict(_fit([20.0] * n))  # every observation twice the prediction
        medians.append(out.p50[0])
        widths.append(math.log(out.p90[0] / out.p10[0]))
        assert out.p10[0] <= out.point[0] <= out.p90[0]
    # The model says most of its error is a bias shared by a configuration's rows, so one observation
    # moves the median most of the way, never all of it.
    assert P50 < medians[0] < 0.9 * 20.0
    assert all(a < b for a, b in itertools.pairwise(medians))
    assert medians[-1] == pytest.approx(20.0, rel=0.02), "many move it fully"
    assert math.log(P90 / P10) > widths[0]
    assert all(a > b for a, b in itertools.pairwise(widths))


def test_scattered_observations_keep_the_interval_wider_than_consistent_ones() -> None:
    steady = _predict(_fit([20.0, 20.0, 20.0, 20.0]))
    scattered = _predict(_fit([10.0, 40.0, 12.0, 33.0]))
    assert math.log(scattered.p90[0] / scattered.p10[0]) > math.log(steady.p90[0] / steady.p10[0])


def test_other_configurations_of_the_gpu_and_model_move_less() -> None:
    calibration = _fit([20.0] * 6)
    own = _predict(calibration)
    sibling = _predict(calibration, config=("b200", "llama-70b", "tp8", 1024, 256))
    assert P50 < sibling.p50[0] < own.p50[0]
    assert math.log(own.p90[0] / own.p10[0]) < math.log(sibling.p90[0] / sibling.p10[0]) < math.log(P90 / P10)
    assert sibling.basis[0].startswith("corrected by 6 observations of other configurations of this GPU")


def test_basis_says_how_much_evidence_corrected_the_prediction() -> None:
    out = _predict(_fit([8.0, 8.4, 7.8]))
    factor = out.p50[0] / P50
    assert out.basis[0].startswith(f"corrected by 3 observations of this configuration: x{factor:.2f} [")
    low, high = (float(v) for v in out.basis[0].rsplit("[", 1)[1].rstrip("]").split("-"))
    assert low < factor < high


def test_a_trend_along_load_is_followed_and_grows_uncertain_away_from_what_was_seen() -> None:
    loads = [4.0, 16.0, 64.0]
    calibration = _fit([10.0, 14.0, 20.0], load=loads)  # the model misses a rise with concurrency
    low, mid, high = (_predict(calibration, load=c) for c in (4.0, 16.0, 64.0))
    assert low.p50[0] < mid.p50[0] < high.p50[0]
    width = {
        c: math.log(o.p90[0] / o.p10[0])
        for c, o in ((16.0, mid), (1024.0, _predict(calibration, load=1024.0)))
    }
    assert width[1024.0] > width[16.0]


def test_the_prior_is_checked_and_bad_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="scatter_share"):
        Prior(scatter_share=1.0)
    with pytest.raises(ValueError, match="positive"):
        _fit([0.0])
    with pytest.raises(ValueError, match="p10 <= p50"):
        Calibration.fit([CONFIG], [FAMILY], [12.0], [P50], [P90], [10.0])
    with pytest.raises(ValueError, match="two families"):
        Calibration.fit([CONFIG, CONFIG], [FAMILY, "x"], [P10] * 2, [P50] * 2, [P90] * 2, [10.0, 11.0])
    with pytest.raises(ValueError, match="load"):
        _fit([10.0], load=[np.nan])
