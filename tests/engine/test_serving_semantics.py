"""What a serving option's numbers mean and how they hang together.

One output token has no time per output token; the throughput shown is the rate replicas are sized
by; the headline latency is the one the objectives bound; a tighter objective the winner already
meets does not change the winner. Thresholds come from the predictors' own outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
from greenmatrix.api.workloadprofile import SINGLE_TOKEN_TPOT_MESSAGE, GPUInventory, Inventory
from greenmatrix.planning.planner import plan
from greenmatrix.predict.predictors import Predictors

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REGION = "us-east-1"  # the chat policy allows only us-east-1


def example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())["spec"]


@pytest.fixture(scope="module")
def predictors() -> Predictors:
    return Predictors.load()


def chat(output_tokens: int = 256, slo: dict | None = None, **inference) -> WorkloadProfileSpec:
    body = {"inputTokens": 1024, "outputTokens": output_tokens, "concurrency": 32, **inference}
    if slo:
        body["slo"] = slo
    return WorkloadProfileSpec.model_validate(
        {"task": "inference", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}, "inference": body}
    )


def test_a_tpot_objective_with_one_output_token_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        chat(output_tokens=1, slo={"tpotMs": 40})
    assert SINGLE_TOKEN_TPOT_MESSAGE in str(err.value)
    chat(output_tokens=2, slo={"tpotMs": 40})  # two tokens have one gap to bound


def test_one_output_token_has_no_tpot_and_its_latency_is_the_ttft(predictors: Predictors) -> None:
    result = plan(chat(output_tokens=1, slo={"ttftMs": 2000}), None, predictors=predictors)
    assert result.recommendation is not None
    predicted = [o for o in result.options if o.ttft_ms is not None]
    assert predicted and all(o.tpot_ms is None for o in predicted)
    for o in predicted:
        assert o.request_latency_ms == o.ttft_ms
    assert result.recommendation.latency.startswith("TTFT ")
    assert all(not o.reason.startswith("TPOT") for o in result.options)


@pytest.mark.parametrize("output_tokens", [1, 2, 8, 256])
def test_throughput_is_the_rate_replicas_are_sized_by(predictors: Predictors, output_tokens: int) -> None:
    """tokens/s of a replica = concurrency x outputTokens / request latency, at every percentile."""
    result = plan(chat(output_tokens=output_tokens, requestsPerSecond=20), None, predictors=predictors)
    checked = 0
    for o in result.options:
        if o.throughput_tokens_per_second is None or o.request_latency_ms is None:
            continue
        thr, lat = o.throughput_tokens_per_second, o.request_latency_ms
        for rate, latency in ((thr.p50, lat.p50), (thr.p10, lat.p90), (thr.p90, lat.p10)):
            assert rate == pytest.approx(32 * output_tokens / (latency / 1e3), rel=2e-3)
        checked += 1
    assert checked >= 10


def test_the_headline_is_the_latency_the_objective_bounds(predictors: Predictors) -> None:
    cases = {"p95LatencyMs": "latency ", "ttftMs": "TTFT ", "tpotMs": "TPOT "}
    for field, prefix in cases.items():
        result = plan(chat(slo={field: 60000 if field != "tpotMs" else 1000}), None, predictors=predictors)
        assert result.recommendation is not None
        assert result.recommendation.latency.startswith(prefix), (field, result.recommendation.latency)
    # The headline number is the recommended option's own prediction of that latency.
    result = plan(chat(slo={"p95LatencyMs": 60000}), None, predictors=predictors)
    rec = result.recommendation
    assert rec is not None and rec.predicted.request_latency_ms is not None
    shown = float(rec.latency.removeprefix("latency ").removesuffix("ms").replace(",", ""))
    assert shown == pytest.approx(rec.predicted.request_latency_ms.p50, rel=0.01)


def test_a_memory_failure_says_how_much_is_usable(predictors: Predictors) -> None:
    """The text compares what is needed with what is usable: 'needs 23 GiB, has 24' read as a fit."""
    result = plan(chat(concurrency=512, inputTokens=8192), None, predictors=predictors)
    reasons = [o.reason for o in result.options if "are usable" in o.reason]
    assert reasons
    for reason in reasons:
        m = re.search(r"needs ([\d.,]+) GiB per GPU .*; ([\d.,]+) of its ([\d.,]+) GiB are usable", reason)
        assert m, reason
        needed, usable, total = (float(g.replace(",", "")) for g in m.groups())
        assert needed > usable and usable < total


def test_tightening_an_objective_the_winner_meets_keeps_the_winner(predictors: Predictors) -> None:
    loose = plan(chat(slo={"ttftMs": 60000}), None, predictors=predictors)
    rec = loose.recommendation
    assert rec is not None and rec.predicted.ttft_ms is not None
    winner_ttft = rec.predicted.ttft_ms.p50
    slower = sorted(
        o.ttft_ms.p50 for o in loose.options if o.feasible and o.ttft_ms and o.ttft_ms.p50 > winner_ttft
    )
    assert slower, "the test needs an option slower than the winner to rule out"
    # Rule out every option slower than the winner: the winner still meets the objective.
    tight = plan(chat(slo={"ttftMs": (winner_ttft + slower[0]) / 2}), None, predictors=predictors)
    assert tight.recommendation is not None
    assert tight.recommendation.predicted.gpu == rec.predicted.gpu
    assert tight.recommendation.predicted.gpus_per_replica == rec.predicted.gpus_per_replica
    assert tight.recommendation.predicted.score == rec.predicted.score
    assert sum(o.feasible for o in tight.options) < sum(o.feasible for o in loose.options)


def test_a_node_that_lifts_a_capacity_limit_does_not_reorder_the_others(predictors: Predictors) -> None:
    """One H200 node leaves an 8-GPU layout short of room; a second makes it fit. The options that
    fitted already keep their scores, so the recommendation does not flap as nodes come and go."""
    spec = WorkloadProfileSpec.model_validate(
        yaml.safe_load((EXAMPLES / "llama-8b-chat.yaml").read_text())["spec"]
    )
    policy = OptimizationPolicySpec.model_validate(
        yaml.safe_load((EXAMPLES / "policy-chat-cost.yaml").read_text())["spec"]
    )

    def with_h200(nodes: int) -> Inventory:
        entries = [("H100-SXM-80GB", "NVIDIA-H100-80GB-HBM3", 2), ("H200-SXM-141GB", "NVIDIA-H200", nodes)]
        return Inventory(
            gpus=[
                GPUInventory(
                    gpu=k,
                    product=p,
                    known=True,
                    nodes=n,
                    gpus_per_node=8,
                    total_gpus=8 * n,
                    regions=["us-east-1"],
                )
                for k, p, n in entries
            ],
            matched_nodes=2 + nodes,
            total_nodes=2 + nodes,
        )

    one, two = (plan(spec, with_h200(n), policy, region=REGION, predictors=predictors) for n in (1, 2))
    short = {e.option.label for e in one.evaluated if any(f == "cluster" for f, _ in e.failures)}
    assert short and not any(f == "cluster" for e in two.evaluated for f, _ in e.failures)
    assert one.recommendation is not None and two.recommendation is not None
    assert one.recommendation.predicted == two.recommendation.predicted
    scores = {e.option.label: e.prediction.score for e in two.evaluated if e.feasible}
    assert {e.option.label: e.prediction.score for e in one.evaluated if e.feasible} == {
        label: score for label, score in scores.items() if label not in short
    }


def test_cost_and_energy_per_token_count_every_token_served_however_few(predictors: Predictors) -> None:
    # A throughput objective far beyond the load sizes millions of replicas: each serves under 1e-9
    # tokens/s, which used to be floored there, so $/1M tokens and J/token came out 16-52x too low.
    spec = chat(output_tokens=1, requestsPerSecond=0.001, slo={"minThroughputTokensPerSecond": 1e9})
    result = plan(spec, None, predictors=predictors, gpus=["L4"], advise=False)
    served = 0.001 * 1  # requestsPerSecond x outputTokens, over all replicas
    for o in result.options:
        assert o.replicas > 1e6
        assert o.usd_per_hour is not None and o.watts is not None and o.joules_per_token is not None
        assert o.usd_per_million_tokens == pytest.approx(o.usd_per_hour / (served * 3600) * 1e6, rel=1e-3)
        assert o.joules_per_token == pytest.approx(o.watts / served, rel=1e-3)
