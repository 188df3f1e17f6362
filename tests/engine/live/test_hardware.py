"""Hardware and precision decisions for a running deployment.

Most tests build plans by hand, so the saving of a move is known exactly (cost-only weights and no
latency interval: the saving is 1 - target price / current price at every quantile). One test runs
the real planner with the physics-only predictors, for the shape of a decision on a real plan.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import Advice, OptionPrediction
from greenmatrix.api.workloadprofile import Interval as WireInterval
from greenmatrix.interval import Interval
from greenmatrix.live.hardware import (
    HardwareDecision,
    HardwareRule,
    Layout,
    Load,
    decode_bound,
    hardware_decision,
    precision_decision,
)
from greenmatrix.planning.planner import plan as make_plan
from greenmatrix.planning.result import Plan
from greenmatrix.predict.predictors import Predictors

SETTINGS = {"derandomize": True, "deadline": None, "database": None}
LOAD = Load(requests_per_second=2.0, output_tokens=256, concurrency=8)
HERE = Layout("H100-SXM-80GB", 1, 2)
RULE = HardwareRule()


def option(gpu: str, usd: float, *, per: int = 1, replicas: int = 2, **kw: object) -> OptionPrediction:
    fields: dict = {"in_cluster": True, "feasible": True, "slo_margin": True, "watts": 700.0 * replicas}
    fields.update(kw)
    return OptionPrediction(gpu=gpu, gpus_per_replica=per, replicas=replicas, usd_per_hour=usd, **fields)


def plan_of(*options: OptionPrediction, advice: tuple[Advice, ...] = ()) -> Plan:
    return Plan(
        task="inference",
        options=options,
        recommendation=None,
        alternatives=(),
        better_outside_cluster=(),
        advice=advice,
        error=None,
        weights={},
    )


def with_saving(saving: float, *, current: OptionPrediction | None = None) -> Plan:
    """The current H100 option at $10/h beside an L4 one that saves `saving` of it."""
    return plan_of(current or option("H100-SXM-80GB", 10.0), option("L4", 10.0 * (1 - saving), per=2))


def decide(p: Plan, previous: HardwareDecision | None = None, **kw: object) -> HardwareDecision:
    return hardware_decision(p, HERE, LOAD, previous=previous, rule=RULE, **kw)


def test_a_clearly_cheaper_option_that_meets_the_objectives_is_a_downgrade():
    d = decide(with_saving(0.40))
    assert (d.action, d.gpu, d.gpus_per_replica, d.replicas) == ("Downgrade", "L4", 2, 2)
    assert d.saving == pytest.approx(0.40)
    assert d.effect is not None and d.effect.usd_per_hour is not None
    assert d.effect.usd_per_hour.p50 == pytest.approx(6.0)
    assert "L4 x2 instead of H100-SXM-80GB x1" in d.reason


def test_a_slightly_cheaper_option_is_not_worth_a_move():
    d = decide(with_saving(0.10))
    assert (d.action, d.gpu) == ("Maintain", "H100-SXM-80GB")
    assert "below the 15% margin" in d.reason


def test_an_option_without_the_p90_margin_is_no_target_when_the_rule_asks_for_it():
    p = plan_of(option("H100-SXM-80GB", 10.0), option("L4", 4.0, slo_margin=False))
    assert decide(p).action == "Maintain"
    loose = hardware_decision(p, HERE, LOAD, rule=HardwareRule(require_p90=False))
    assert loose.action == "Downgrade"


def test_an_infeasible_current_option_is_upgraded_to_the_plans_best_that_meets_the_objectives():
    missing = option("H100-SXM-80GB", 10.0, feasible=False, reason="TPOT 60 ms > 40 ms")
    p = plan_of(option("H200-SXM-141GB", 14.0), option("B200", 20.0), missing)
    d = decide(p)
    assert (d.action, d.gpu) == ("Upgrade", "H200-SXM-141GB")
    assert "TPOT 60 ms > 40 ms" in d.reason
    assert d.saving is not None and d.saving < 0  # it costs more, and is recommended anyway


def test_a_deployment_seen_missing_its_objectives_is_upgraded_even_when_the_plan_says_it_meets_them():
    p = plan_of(option("H200-SXM-141GB", 14.0), option("H100-SXM-80GB", 10.0))
    assert decide(p).action == "Maintain"
    assert decide(p, slo_missed=True).action == "Upgrade"


def test_no_option_meeting_the_objectives_keeps_the_current_one_and_says_so():
    p = plan_of(option("H100-SXM-80GB", 10.0, feasible=False), option("L4", 4.0, feasible=False))
    d = decide(p)
    assert d.action == "Maintain" and "no other GPU type meets the objectives" in d.reason


def test_a_standing_upgrade_holds_while_the_current_option_meets_the_objectives_only_at_p50():
    p = plan_of(option("H200-SXM-141GB", 14.0), option("H100-SXM-80GB", 10.0, slo_margin=False))
    upgraded = decide(p, slo_missed=True)
    assert upgraded.action == "Upgrade"
    assert decide(p, previous=upgraded).action == "Upgrade"
    assert decide(p).action == "Maintain"


def test_an_upgrade_goes_to_a_standing_target_that_still_meets_the_objectives():
    downgrade = decide(plan_of(option("H100-SXM-80GB", 10.0), option("L4", 6.0, per=2)))
    assert downgrade.gpu == "L4"
    missing = option("H100-SXM-80GB", 10.0, feasible=False, reason="TPOT 60 ms > 40 ms")
    p = plan_of(option("H200-SXM-141GB", 14.0), option("L4", 6.0, per=2), missing)
    assert decide(p).gpu == "H200-SXM-141GB"  # the plan's best
    assert (decide(p, downgrade).action, decide(p, downgrade).gpu) == ("Upgrade", "L4")


def test_gpu_names_are_matched_as_the_catalog_normalises_them():
    d = hardware_decision(with_saving(0.4), Layout("NVIDIA-H100-80GB-HBM3", 1, 2), LOAD)
    assert d.action == "Downgrade"


def test_a_layout_not_in_the_plan_is_maintained():
    d = hardware_decision(with_saving(0.4), Layout("A100-SXM4-80GB", 1, 2), LOAD)
    assert d.action == "Maintain" and "not among the plan's options" in d.reason


def test_hardware_outside_the_cluster_is_no_target_for_a_deployment_inside_it():
    p = plan_of(option("H100-SXM-80GB", 10.0), option("L4", 4.0, in_cluster=False))
    assert decide(p).action == "Maintain"


def test_a_greener_option_is_a_target_when_the_policy_weighs_only_carbon():
    here = option("H100-SXM-80GB", 10.0, grams_co2_per_million_tokens=100.0)
    greener = option("L4", 12.0, per=2, grams_co2_per_million_tokens=50.0)
    green = OptimizationPolicySpec.model_validate({"objectives": {"latency": 0, "cost": 0, "carbon": 1}})
    assert decide(plan_of(here, greener)).action == "Maintain"  # it costs more
    d = hardware_decision(plan_of(here, greener), HERE, LOAD, green)
    assert d.action == "Downgrade" and d.saving == pytest.approx(0.5)


def test_hysteresis_keeps_a_recommendation_through_an_advantage_alternating_around_the_threshold():
    previous = None
    actions = []
    for saving in [0.16, 0.14, 0.16, 0.14, 0.13, 0.16, 0.14]:
        previous = decide(with_saving(saving), previous)
        actions.append(previous.action)
    assert actions == ["Downgrade"] * 7
    # ...and drops it once the advantage falls below the keep margin.
    assert decide(with_saving(0.04), previous).action == "Maintain"


def test_a_standing_target_is_not_swapped_for_a_slightly_better_one():
    first = decide(with_saving(0.30))
    p = plan_of(option("H100-SXM-80GB", 10.0), option("L4", 7.0, per=2), option("L40S", 6.0))
    assert decide(p, first).gpu == "L4"
    p = plan_of(option("H100-SXM-80GB", 10.0), option("L4", 7.0, per=2), option("L40S", 3.0))
    assert decide(p, first).gpu == "L40S"


@settings(max_examples=200, **SETTINGS)
@given(st.lists(st.sampled_from([0.06, 0.10, 0.14, 0.149, 0.15, 0.16, 0.2, 0.3]), min_size=2, max_size=30))
def test_above_the_keep_margin_the_recommendation_changes_at_most_once(savings):
    previous = None
    actions = []
    for saving in savings:
        previous = decide(with_saving(saving), previous)
        actions.append(previous.action)
    changes = sum(a != b for a, b in pairwise(actions))
    assert changes <= 1


@settings(max_examples=200, **SETTINGS)
@given(st.lists(st.floats(-0.3, 0.5), min_size=1, max_size=30))
def test_a_move_starts_only_above_the_switch_margin_and_lasts_only_above_the_keep_margin(savings):
    previous = None
    for saving in savings:
        d = decide(with_saving(saving), previous)
        if d.action == "Downgrade":
            assert saving >= RULE.keep_margin - 1e-9
            if previous is None or previous.action != "Downgrade":
                assert saving >= RULE.switch_margin - 1e-9
        previous = d


def test_a_saving_only_at_the_median_is_not_enough():
    # The L4 needs 2 replicas at its median latency but more at its slow end: its p90 cost is higher.
    slow_tail = {
        "ttft_ms": WireInterval(p10=100, p50=200, p90=2000),
        "tpot_ms": WireInterval(p10=5, p50=10, p90=60),
    }
    p = plan_of(option("H100-SXM-80GB", 10.0, replicas=2), option("L4", 7.0, per=2, **slow_tail))
    d = hardware_decision(p, HERE, Load(requests_per_second=2.4, output_tokens=256, concurrency=8))
    assert d.action == "Maintain" and "not over the whole predicted interval" in d.reason
    # Maintain carries the current option's predicted effect at the load.
    assert d.effect is not None and d.effect.usd_per_hour == Interval(10.0, 10.0, 10.0)


QUANTIZE = Advice(action="Quantize", detail="serve at fp8 instead of bf16", predicted_gain="-30% $/1M tokens")


def test_quantize_when_decode_is_memory_bound_and_the_advice_says_it_pays():
    p = plan_of(option("H100-SXM-80GB", 10.0), advice=(QUANTIZE,))
    d = precision_decision(p, "memory")
    assert d.action == "Quantize" and d.advice == QUANTIZE and "-30%" in d.reason
    assert precision_decision(p, "compute").action == "Maintain"
    assert precision_decision(p, None).action == "Maintain"
    assert precision_decision(plan_of(option("H100-SXM-80GB", 10.0)), "memory").action == "Maintain"


def test_on_a_real_plan_a_cheaper_gpu_at_the_observed_load_is_a_downgrade():
    spec = WorkloadProfileSpec.model_validate(
        {
            "task": "inference",
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16"},
            "inference": {
                "inputTokens": 1024,
                "outputTokens": 256,
                "concurrency": 8,
                "requestsPerSecond": 2,
                "slo": {"tpotMs": 40},
            },
        }
    )
    # No cluster: the catalog's H100 and L4 options, all "outside" alike, so each may replace the other.
    gpus = ["H100-SXM-80GB", "L4"]
    p = make_plan(spec, None, region="us-east-1", gpus=gpus, predictors=Predictors.roofline())
    load = Load(requests_per_second=2, output_tokens=256, concurrency=8)
    here = next(o for o in p.options if o.gpu == "H100-SXM-80GB" and o.gpus_per_replica == 1)
    d = hardware_decision(p, Layout("H100-SXM-80GB", 1, here.replicas), load)
    assert d.action == "Downgrade" and d.gpu == "L4"
    assert d.effect is not None and d.effect.tpot_ms is not None and d.effect.tpot_ms.p90 <= 40
    assert d.saving is not None and d.saving >= RULE.switch_margin
    # One L4 per replica misses the 40 ms TPOT at this load: an Upgrade off it.
    up = hardware_decision(p, Layout("L4", 1, 6), load)
    assert up.action == "Upgrade" and "TPOT" in up.reason
    assert (up.gpu, up.gpus_per_replica) != ("L4", 1)
    assert decode_bound(spec, "L4", 1) == "memory"
    assert decode_bound(spec, "no-such-gpu", 1) is None
