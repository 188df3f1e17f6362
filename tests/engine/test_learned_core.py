"""Learned core: metrics, grouped splits, conformal coverage on data with known noise, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from greenmatrix.learned.core import CorrectionModel
from greenmatrix.learned.fitting import correction
from greenmatrix.learned.fitting.cards import write_model_card
from greenmatrix.learned.fitting.holdout import coverage, grouped_folds, leave_group_out, mape, profiled_folds


def test_mape_is_percent_of_actual() -> None:
    # 10% over on one, 10% under on the other: mean 10%.
    assert mape([110.0, 90.0], [100.0, 100.0]) == pytest.approx(10.0)


def test_coverage_counts_inclusive_bounds() -> None:
    assert coverage([0, 0, 0, 0], [1, 1, 1, 1], [0.5, 1.0, 2.0, -1.0]) == pytest.approx(0.5)


def test_leave_group_out_holds_out_whole_groups() -> None:
    groups = np.array(["b", "a", "b", "c", "a"])
    seen = []
    for name, train, test in leave_group_out(groups):
        seen.append(name)
        assert set(groups[test]) == {name}
        assert name not in set(groups[train])
        assert len(train) + len(test) == len(groups)
    assert seen == ["a", "b", "c"]


def test_grouped_folds_never_split_a_group() -> None:
    groups = np.repeat([f"g{i}" for i in range(9)], [5, 1, 7, 3, 3, 2, 8, 1, 4])
    folds = grouped_folds(groups, max_folds=4)
    assert len(folds) == 4
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    owner = {}
    for k, idx in enumerate(folds):
        for g in set(groups[idx]):
            assert owner.setdefault(g, k) == k


def _synthetic(rng: np.random.Generator, n_groups: int, per_group: int, noise: float):
    X = rng.uniform(-1, 1, size=(n_groups * per_group, 3))
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    y = 0.8 * X[:, 0] - 0.3 * X[:, 1] ** 2 + rng.normal(scale=noise, size=len(X))
    return X, y, groups


def test_profiled_folds_keep_repeated_configurations_together() -> None:
    rng = np.random.default_rng(3)
    configs = rng.normal(size=(40, 3)).astype(np.float32)
    # Every configuration measured 1-3 times (identical feature rows), shuffled.
    X = np.repeat(configs, rng.integers(1, 4, size=40), axis=0)
    X = X[rng.permutation(len(X))]
    folds = profiled_folds(X, k=5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(X)))
    assert 3 <= len(folds) <= 5
    fold_of = {}
    for f, rows in enumerate(folds):
        for i in rows:
            key = X[i].tobytes()
            assert fold_of.setdefault(key, f) == f, "a repeated configuration was split across folds"
    # Deterministic for a seed, different for another.
    again = profiled_folds(X, k=5, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    other = profiled_folds(X, k=5, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(folds, other, strict=False))


def test_conformal_interval_covers_about_80_percent_of_new_groups() -> None:
    rng = np.random.default_rng(7)
    noise = 0.2
    X, y, groups = _synthetic(rng, n_groups=8, per_group=150, noise=noise)
    model = correction.fit(X, y, groups, ["a", "b", "c"], seed=0, rounds=150)
    Xt, yt, _ = _synthetic(np.random.default_rng(8), n_groups=4, per_group=500, noise=noise)
    lo, mid, hi = model.predict(Xt)
    assert 0.74 <= coverage(lo, hi, yt) <= 0.88
    # Gaussian noise: the 80% half-width is 1.28 sigma; the fitted offsets must be near it.
    assert model.offset_hi - model.offset_lo == pytest.approx(2 * 1.2816 * noise, rel=0.25)
    assert np.all(lo <= mid) and np.all(mid <= hi)


def test_save_load_roundtrip_and_deterministic_bytes(tmp_path) -> None:
    X, y, groups = _synthetic(np.random.default_rng(1), n_groups=4, per_group=60, noise=0.1)
    first = correction.fit(X, y, groups, ["a", "b", "c"], seed=3, rounds=50)
    second = correction.fit(X, y, groups, ["a", "b", "c"], seed=3, rounds=50)
    paths_a = correction.save(first, tmp_path / "a", "m")
    paths_b = correction.save(second, tmp_path / "b", "m")
    for pa, pb in zip(paths_a, paths_b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    loaded = CorrectionModel.load(tmp_path / "a", "m")
    np.testing.assert_allclose(loaded.predict(X)[1], first.predict(X)[1], rtol=1e-6)
    assert loaded.offset_lo == pytest.approx(first.offset_lo)


def test_load_missing_model_names_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere"):
        CorrectionModel.load(tmp_path, "nothere")


def test_fit_rejects_wrong_feature_count() -> None:
    with pytest.raises(ValueError, match="2 columns"):
        correction.fit(np.zeros((4, 3)), np.zeros(4), np.array(list("abab")), ["a", "b"])


def test_model_card_renders_table(tmp_path) -> None:
    path = write_model_card(
        tmp_path, "demo", {"title": "Demo", "Held-out": [{"holdout": "gpu=x", "mape": 7.26}]}
    )
    text = path.read_text()
    assert text.startswith("# Demo")
    assert "| holdout | mape |" in text
    assert "| gpu=x | 7.3 |" in text


def test_pooled_calibration_sits_between_the_groupings_it_pools() -> None:
    # Rows are new either in "a" (harmless groups: noise only) or in "b" (each b-group shifts y, which
    # no feature explains). Widest-of keeps b's wide interval; pooling weighs both groupings the same.
    rng = np.random.default_rng(3)
    X, y, groups_a = _synthetic(rng, n_groups=6, per_group=100, noise=0.1)
    groups_b = np.array([f"b{i % 5}" for i in range(len(y))])
    y = y + np.array([0.5 * (i % 5 - 2) for i in range(len(y))])
    names = ["a", "b", "c"]
    only_a = correction.fit(X, y, groups_a, names, seed=0, rounds=80)
    widest = correction.fit(X, y, groups_a, names, seed=0, rounds=80, extra_groupings=(groups_b,))
    pooled = correction.fit(
        X, y, groups_a, names, seed=0, rounds=80, extra_groupings=(groups_b,), pool_groupings=True
    )

    def width(m: CorrectionModel) -> float:
        return m.offset_hi - m.offset_lo

    assert width(widest) > width(only_a)
    assert width(only_a) < width(pooled) < width(widest)
    assert pooled.offset_lo <= 0.0 <= pooled.offset_hi


def _skewed(rng: np.random.Generator, n: int, spread: np.ndarray | float):
    # log y = x0 + noise whose width depends on x1: narrow for x1 < 0, wide for x1 > 0.
    X = rng.uniform(-1, 1, size=(n, 3))
    sigma = np.where(X[:, 1] > 0, spread, 0.05)
    y = X[:, 0] + rng.normal(size=n) * sigma
    groups = np.array([f"g{i % 6}" for i in range(n)])
    return X, y, groups, sigma


def test_point_booster_minimises_relative_error_where_errors_are_wide() -> None:
    # For log-normal errors of width s the least-relative-error point is exp(-s^2) below the median:
    # the point must move down by about that on the wide side, stay put on the narrow side, and score
    # a lower MAPE than the median on fresh data.
    rng = np.random.default_rng(11)
    X, y, groups, _ = _skewed(rng, 3000, 0.6)
    model = correction.fit(
        X,
        y,
        groups,
        ["a", "b", "c"],
        seed=0,
        rounds=150,
        point=True,
        params={"objective": "reg:absoluteerror", "max_depth": 3},
    )
    Xt, yt, _, _ = _skewed(np.random.default_rng(12), 4000, 0.6)
    lo, mid, hi, point = model.predict_with_point(Xt)
    wide = Xt[:, 1] > 0
    assert np.median((point - mid)[wide]) == pytest.approx(-(0.6**2), abs=0.12)
    assert abs(np.median((point - mid)[~wide])) < 0.03
    assert np.all(lo <= point) and np.all(point <= hi)
    assert mape(np.exp(point), np.exp(yt)) < mape(np.exp(mid), np.exp(yt)) - 2.0


def test_point_booster_roundtrips_and_is_absent_by_default(tmp_path) -> None:
    X, y, groups, _ = _skewed(np.random.default_rng(5), 600, 0.5)
    plain = correction.fit(X, y, groups, ["a", "b", "c"], seed=1, rounds=40)
    np.testing.assert_array_equal(plain.predict_with_point(X)[3], plain.predict(X)[1])
    assert [p.name for p in correction.save(plain, tmp_path / "plain", "m")] == ["m.ubj", "m.meta.json"]
    first = correction.fit(X, y, groups, ["a", "b", "c"], seed=1, rounds=40, point=True)
    second = correction.fit(X, y, groups, ["a", "b", "c"], seed=1, rounds=40, point=True)
    paths_a, paths_b = (
        correction.save(first, tmp_path / "a", "m"),
        correction.save(second, tmp_path / "b", "m"),
    )
    assert [p.name for p in paths_a] == ["m.ubj", "m.point.ubj", "m.meta.json"]
    for pa, pb in zip(paths_a, paths_b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    loaded = CorrectionModel.load(tmp_path / "a", "m")
    np.testing.assert_allclose(loaded.predict_with_point(X)[3], first.predict_with_point(X)[3], rtol=1e-6)
    assert not np.allclose(loaded.predict_with_point(X)[3], loaded.predict(X)[1])


def _grouped(rng: np.random.Generator, biases: np.ndarray, per_group: int, noise: float):
    """Rows of groups that each shift y by their own bias, which no feature reveals."""
    X = rng.uniform(-1, 1, size=(len(biases) * per_group, 3))
    group = np.repeat(np.arange(len(biases)), per_group)
    y = 0.8 * X[:, 0] + biases[group] + rng.normal(scale=noise, size=len(X))
    return X, y, np.array([f"g{g}" for g in group])


def test_measured_groups_get_the_narrower_interval_and_both_cover_80_percent(tmp_path) -> None:
    # A group's own bias is learnable once its rows are in training, not for a new group: rows of a
    # measured group need the noise's width only, rows of a new group the bias spread on top.
    rng = np.random.default_rng(21)
    biases = rng.normal(scale=0.3, size=12)
    X, y, groups = _grouped(rng, biases, 150, 0.1)
    # The groups' identity must be visible to the trees for "measured" to mean anything.
    Xg = np.column_stack([X[:, :2], np.array([int(g[1:]) for g in groups], dtype=float)])
    model = correction.fit(Xg, y, groups, ["a", "b", "g"], seed=0, rounds=150, calibrate_known=True)
    assert model.known_lo is not None and model.known_hi is not None
    assert model.known_hi - model.known_lo < 0.6 * (model.offset_hi - model.offset_lo)
    # Fresh rows of the measured groups, flagged known: about 80% inside the narrow interval.
    Xs, ys, gs = _grouped(np.random.default_rng(22), biases, 200, 0.1)
    Xs = np.column_stack([Xs[:, :2], np.array([int(g[1:]) for g in gs], dtype=float)])
    lo, _mid, hi = model.predict(Xs, known=np.ones(len(ys), dtype=bool))
    assert 0.72 <= coverage(lo, hi, ys) <= 0.9
    # Unflagged rows keep the out-of-group interval.
    lo_new, _, hi_new = model.predict(Xs)
    np.testing.assert_allclose(hi_new - lo_new, model.offset_hi - model.offset_lo)
    # Both pairs survive a save and load.
    correction.save(model, tmp_path, "m")
    loaded = CorrectionModel.load(tmp_path, "m")
    assert (loaded.known_lo, loaded.known_hi) == pytest.approx((model.known_lo, model.known_hi))
    np.testing.assert_allclose(loaded.predict(Xs, known=np.ones(len(ys), dtype=bool))[2], hi, rtol=1e-6)


def test_known_flags_change_nothing_without_a_measured_calibration() -> None:
    X, y, groups = _synthetic(np.random.default_rng(2), n_groups=4, per_group=80, noise=0.1)
    model = correction.fit(X, y, groups, ["a", "b", "c"], seed=0, rounds=40)
    assert model.known_lo is None
    flagged = model.predict(X, known=np.ones(len(y), dtype=bool))
    for a, b in zip(flagged, model.predict(X), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one entry per row"):
        correction.fit(X, y, groups, ["a", "b", "c"], seed=0, rounds=20, calibrate_known=True).predict(
            X, known=np.ones(3, dtype=bool)
        )
