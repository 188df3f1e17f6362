"""Properties of the TOPSIS ranking and the Pareto front that any reviewer would expect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from greenmatrix.planning.ranking import Criterion, dominates, pareto_front, topsis

values = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
weights = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@st.composite
def problems(draw, min_options: int = 2, max_options: int = 8):
    m = draw(st.integers(1, 5))
    n = draw(st.integers(min_options, max_options))
    matrix = [[draw(values) for _ in range(m)] for _ in range(n)]
    crits = [Criterion(f"c{j}", draw(weights), draw(st.booleans())) for j in range(m)]
    assume(any(c.weight > 0 for c in crits))
    return matrix, crits


@given(problems(), st.integers(0, 4), st.integers(-10, 10))
@settings(max_examples=200, deadline=None)
def test_scaling_a_criterion_keeps_the_order(problem, column, exponent) -> None:
    matrix, crits = problem
    j = column % len(crits)
    # Powers of two scale exactly in floating point, so the order must not move at all.
    scaled = [[*row[:j], row[j] * 2.0**exponent, *row[j + 1 :]] for row in matrix]
    assert topsis(scaled, crits).order == topsis(matrix, crits).order


@given(problems(), st.integers(0, 4), st.floats(min_value=1e-3, max_value=1e3))
@settings(max_examples=100, deadline=None)
def test_scaling_by_any_factor_keeps_the_scores(problem, column, factor) -> None:
    matrix, crits = problem
    j = column % len(crits)
    scaled = [[*row[:j], row[j] * factor, *row[j + 1 :]] for row in matrix]
    assert np.allclose(topsis(scaled, crits).scores, topsis(matrix, crits).scores, atol=1e-8)


@given(problems(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_dominated_option_never_ranks_above_its_dominator(problem, data) -> None:
    matrix, crits = problem
    # Build a dominator of row 0: at least as good everywhere, strictly better on one criterion.
    better_on = data.draw(st.integers(0, len(crits) - 1))
    dominator = []
    for j, (x, c) in enumerate(zip(matrix[0], crits, strict=True)):
        step = data.draw(st.floats(min_value=0.0, max_value=0.5)) * x
        if j == better_on:
            step = max(step, 0.1 * x)
        dominator.append(x + step if c.benefit else x - step * 0.9)
    rows = [*matrix, dominator]
    assert dominates(dominator, matrix[0], crits)
    ranking = topsis(rows, crits)
    position = {option: rank for rank, option in enumerate(ranking.order)}
    assert position[len(rows) - 1] < position[0]
    assert ranking.scores[len(rows) - 1] >= ranking.scores[0]
    strictly_better_where_weighed = any(
        c.weight > 0 and (d > x if c.benefit else d < x)
        for x, d, c in zip(matrix[0], dominator, crits, strict=True)
    )
    if strictly_better_where_weighed:
        assert not ranking.pareto[0]


@given(problems(), st.integers(0, 4), st.data())
@settings(max_examples=200, deadline=None)
def test_a_zero_weight_criterion_is_ignored(problem, column, data) -> None:
    matrix, crits = problem
    j = column % len(crits)
    zeroed = [Criterion(c.name, 0.0 if i == j else c.weight, c.benefit) for i, c in enumerate(crits)]
    assume(any(c.weight > 0 for c in zeroed))
    noise = [[data.draw(values) if i == j else x for i, x in enumerate(row)] for row in matrix]
    assert np.allclose(topsis(matrix, zeroed).scores, topsis(noise, zeroed).scores, atol=1e-9)


@given(problems())
@settings(max_examples=100, deadline=None)
def test_ties_are_broken_by_input_order(problem) -> None:
    matrix, crits = problem
    twice = [matrix[0], matrix[0], *matrix[1:]]
    order = topsis(twice, crits).order
    assert order.index(0) < order.index(1)
    assert topsis(twice, crits).order == order  # the same input always gives the same order


@given(problems())
@settings(max_examples=100, deadline=None)
def test_the_first_option_is_on_the_pareto_front(problem) -> None:
    matrix, crits = problem
    ranking = topsis(matrix, crits)
    # A dominated option scores below its dominator, so the winner is never dominated on the
    # criteria that carry weight.
    assert ranking.pareto[ranking.order[0]]


def test_cost_and_benefit_criteria_point_opposite_ways() -> None:
    crits = [Criterion("cost", 1.0, benefit=False), Criterion("throughput", 1.0, benefit=True)]
    # Option 1 is cheaper and faster: it wins; option 2 is in between.
    ranking = topsis([[10.0, 100.0], [1.0, 1000.0], [5.0, 500.0]], crits)
    assert ranking.order == (1, 2, 0)
    assert ranking.scores[1] == pytest.approx(1.0)
    assert ranking.scores[0] == pytest.approx(0.0)
    assert ranking.pareto == (False, True, False)


def test_weights_decide_between_a_fast_and_a_cheap_option() -> None:
    fast_expensive = [10.0, 5.0]  # latency ms, $/1M tokens
    slow_cheap = [40.0, 1.0]
    latency_first = [Criterion("latency", 0.9, False), Criterion("cost", 0.1, False)]
    cost_first = [Criterion("latency", 0.1, False), Criterion("cost", 0.9, False)]
    assert topsis([fast_expensive, slow_cheap], latency_first).order[0] == 0
    assert topsis([fast_expensive, slow_cheap], cost_first).order[0] == 1
    # Neither dominates the other: both are on the front.
    assert pareto_front([fast_expensive, slow_cheap], latency_first) == (True, True)


def test_an_unknown_value_ranks_as_the_worst_known() -> None:
    crits = [Criterion("cost", 1.0, benefit=False)]
    ranking = topsis([[math.nan], [2.0], [1.0]], crits)
    # The unknown is filled with the worst known cost (2.0): it ties with option 1, the tie goes
    # to input order, and the cheapest known option wins.
    assert ranking.scores[0] == ranking.scores[1]
    assert ranking.order == (2, 0, 1)


@given(problems(), st.floats(min_value=0.1, max_value=10.0))
@settings(max_examples=100, deadline=None)
def test_a_criterion_no_option_knows_changes_nothing(problem, weight) -> None:
    # E.g. cost when no option has a list price: it must drop out, not make every score 1.
    matrix, crits = problem
    unknown = [[*row, math.nan] for row in matrix]
    with_unknown = topsis(unknown, [*crits, Criterion("cost", weight, benefit=False)])
    alone = topsis(matrix, crits)
    assert with_unknown.scores == alone.scores and with_unknown.order == alone.order


def test_bad_input_is_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        topsis([[-1.0]], [Criterion("cost", 1.0, False)])
    with pytest.raises(ValueError, match="columns"):
        topsis([[1.0, 2.0]], [Criterion("cost", 1.0, False)])
    with pytest.raises(ValueError, match="weight"):
        topsis([[1.0]], [Criterion("cost", -1.0, False)])


@given(problems(min_options=3), st.data())
@settings(max_examples=150, deadline=None)
def test_ruling_options_out_into_the_reference_keeps_the_scores(problem, data) -> None:
    """What an objective rules out stays in the reference: the others keep their scores and order."""
    matrix, crits = problem
    kept = sorted(data.draw(st.sets(st.integers(0, len(matrix) - 1), min_size=1)))
    ruled_out = [row for i, row in enumerate(matrix) if i not in kept]
    whole = topsis(matrix, crits)
    part = topsis([matrix[i] for i in kept], crits, reference=ruled_out)
    assert part.scores == pytest.approx([whole.scores[i] for i in kept], abs=1e-9)
    by_score = [kept[i] for i in part.order]
    assert by_score == [i for i in whole.order if i in kept]
