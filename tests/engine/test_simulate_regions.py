"""Regions in `simulate`: `--region` stays within the regions the workload and the policy allow, and a
region the carbon table lacks is named with the closest catalogued ones wherever it is accepted."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result
from simulate_cli import CHAT, POLICY, WORKLOAD, refused, run, write

from greenmatrix import economics
from greenmatrix.api import WorkloadProfileSpec
from greenmatrix.planning.planner import plan
from greenmatrix.predict.predictors import Predictors

ROOT = Path(__file__).resolve().parents[2]
COST_POLICY = ROOT / "examples" / "policy-chat-cost.yaml"  # constraints.regions: [us-east-1]


def regions_workload(regions: str) -> str:
    return WORKLOAD % f"{{regions: [{regions}]}}"


def regions_policy(regions: str) -> str:
    return POLICY % f"  constraints: {{regions: [{regions}]}}"


def refused_region(result: Result) -> str:
    return refused(result, "--region")


def test_a_region_the_policy_does_not_allow_is_refused_not_weighed() -> None:
    # Carbon weighed in eu-north-1 for a workload that may only run in us-east-1 was 118x too low.
    message = refused_region(
        run("simulate", "-f", str(CHAT), "--policy", str(COST_POLICY), "--region", "eu-north-1")
    )
    assert "policy.constraints.regions" in message and "(allowed: us-east-1)" in message


def test_a_region_the_workload_does_not_allow_is_refused(tmp_path: Path) -> None:
    message = refused_region(
        run("simulate", "-f", write(tmp_path, regions_workload("us-east-1")), "--region", "eu-north-1")
    )
    assert "spec.hardware.regions" in message and "(allowed: us-east-1)" in message


def test_the_allowed_list_is_what_both_lists_admit(tmp_path: Path) -> None:
    workload = write(tmp_path, regions_workload("us-east-1, eu-north-1, us-west-2"))
    policy = write(tmp_path, regions_policy("us-west-2, eu-north-1"), "p.yaml")
    message = refused_region(run("simulate", "-f", workload, "--policy", policy, "--region", "us-east-1"))
    assert "policy.constraints.regions" in message and "(allowed: us-west-2, eu-north-1)" in message


def test_an_allowed_region_weighs_carbon_there(tmp_path: Path) -> None:
    workload = write(tmp_path, regions_workload("us-east-1, eu-north-1"))
    grams = {}
    for region in ("us-east-1", "eu-north-1"):
        result = run("simulate", "-f", workload, "--region", region.upper(), "-o", "json")
        assert result.exit_code == 0, result.output
        grams[region] = json.loads(result.stdout)["recommendation"]["predicted"]["gramsCo2PerMillionTokens"]
    assert grams["eu-north-1"] < grams["us-east-1"] / 10


def test_closest_regions_are_the_ones_region_errors_offer() -> None:
    assert "us-east-1" in economics.closest_regions("us-est-1")
    assert "us-east-1" in economics.unknown_region_hint("us-est-1")
    # An on-premises name resembles nothing: no hint rather than a wrong guess.
    assert economics.unknown_region_hint("datacenter-frankfurt-7") == ""


def test_an_unknown_region_in_the_manifests_is_noted_with_the_closest_names() -> None:
    # Accepted (it may be an on-premises region), but the note offers what --region would offer.
    spec = WorkloadProfileSpec.model_validate(
        {
            "task": "inference",
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "inference": {},
            "hardware": {"regions": ["us-est-1"]},
        }
    )
    result = plan(spec, None, predictors=Predictors.roofline(), advise=False)
    assert result.feasible
    note = next(n for n in result.notes if "us-est-1" in n)
    assert "(closest catalogued: " in note and "us-east-1" in note and "world-average" in note


def test_an_unknown_policy_region_is_noted_in_simulate(tmp_path: Path) -> None:
    policy = write(tmp_path, regions_policy("us-eest-2"), "p.yaml")
    result = run("simulate", "-f", str(CHAT), "--policy", policy)
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stdout.splitlines() if "us-eest-2" in line)
    assert "has no grid intensity (closest catalogued: " in note and "us-east-2" in note
