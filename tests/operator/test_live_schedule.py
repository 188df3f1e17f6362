"""The live loop's schedule: a random phase per workload within its interval, then one evaluation per
interval; an interval shorter than a scrape is raised to one; a workload whose interval changes starts
its state over."""

from __future__ import annotations

import random

import pytest
from greenmatrix_operator.control.live import LiveLoop
from greenmatrix_operator.records import WORKLOAD_PROFILE, ObjectKey, parse_policies
from greenmatrix_operator.settings import LiveSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def loop(clock: Clock, seed: int = 1) -> LiveLoop:
    settings = LiveSettings(prometheus_url="http://prometheus", scrape_interval=15.0)
    return LiveLoop(None, None, settings, clock=clock, rng=random.Random(seed))  # type: ignore[arg-type]


def policy(interval: str):
    return parse_policies([("p", {"evaluationInterval": interval})])[0]


def test_first_evaluations_spread_over_the_interval() -> None:
    clock = Clock()
    live = loop(clock)
    keys = [ObjectKey(WORKLOAD_PROFILE, "ns", f"wp-{i}") for i in range(1000)]
    every = policy("5m")
    for key in keys:
        live.due(key, every)
    delays = sorted(live.delay(key) for key in keys)
    assert delays[0] >= 0.0 and delays[-1] <= 300.0
    # Spread, not a storm: every minute of the interval gets about a fifth of them.
    per_minute = [sum(60 * m <= d < 60 * (m + 1) for d in delays) for m in range(5)]
    assert min(per_minute) > 150, per_minute


def test_one_evaluation_per_interval_after_the_first() -> None:
    clock = Clock()
    live = loop(clock)
    key = ObjectKey(WORKLOAD_PROFILE, "ns", "wp")
    every = policy("2m")
    live.due(key, every)
    clock.now += live.delay(key)
    assert live.due(key, every)
    live._memory[key].next_at = clock.now + live.interval_of(every)  # what read() does when it runs
    assert not live.due(key, every) and live.delay(key) == pytest.approx(120.0)


def test_an_interval_shorter_than_a_scrape_is_one_scrape() -> None:
    live = loop(Clock())
    assert live.interval_of(policy("1s")) == 15.0 and live.interval_of(None) == 300.0


def test_a_changed_interval_starts_the_state_over() -> None:
    clock = Clock()
    live = loop(clock)
    key = ObjectKey(WORKLOAD_PROFILE, "ns", "wp")
    live.due(key, policy("2m"))
    first = live._memory[key].state
    live.due(key, policy("5m"))
    assert live._memory[key].state is not first and live._memory[key].state.step == 300.0
