"""`greenmatrix simulate` and `greenmatrix models` as a user runs them: output, formats, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from simulate_cli import run, write

from greenmatrix.catalog import hardware

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


CHAT = """
apiVersion: greenmatrix.io/v1alpha1
kind: WorkloadProfile
metadata: {name: chat}
spec:
  task: inference
  model: {name: meta-llama/Llama-3.1-8B-Instruct, precision: bf16}
  inference: {inputTokens: 1024, outputTokens: 256, concurrency: 8%s}
"""


def test_table_shows_the_top_choice_and_why() -> None:
    result = run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--region", "us-east-1")
    assert result.exit_code == 0, result.output
    plan = json.loads(
        run(
            "simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--region", "us-east-1", "-o", "json"
        ).output
    )
    top = plan["recommendation"]
    label = f"{top['gpu']} x{top['gpusPerReplica']}"
    assert "Hardware options" in result.output
    first_row = next(line for line in result.output.splitlines() if line.startswith("│  1 "))
    assert label in first_row
    assert f"Recommended: {label}" in result.output
    assert f"why these numbers: {top['basis'][:40]}" in " ".join(result.output.split())
    for column in ("TTFT ms", "TPOT ms", "$/h", "$/1M tok", "gCO2/1M tok", "feasible"):
        assert column in result.output


def test_json_is_the_plan_on_the_wire() -> None:
    result = run("simulate", "-f", str(EXAMPLES / "llama-70b-fp8.yaml"), "-o", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["task"] == "inference"
    rec = plan["recommendation"]
    assert {"gpu", "gpusPerReplica", "replicas", "predicted", "explanation", "basis", "resources"} <= set(rec)
    # A 70B model's decode is bound by the recommended GPU's own memory bandwidth.
    tb_s = hardware.gpu(rec["gpu"]).memory_bandwidth_gbs / 1e3
    assert "memory-bound" in rec["basis"] and f"{tb_s:.2f} TB/s" in rec["basis"]
    assert (
        rec["predicted"]["tpotMs"]["p10"]
        <= rec["predicted"]["tpotMs"]["p50"]
        <= rec["predicted"]["tpotMs"]["p90"]
    )
    # The example asks for 2 to 8 GPUs per replica.
    assert all(2 <= o["gpusPerReplica"] <= 8 for o in plan["options"] if o["gpusPerReplica"])
    assert pytest.approx(sum(plan["weights"].values())) == 1.0


def test_yaml_output_parses() -> None:
    result = run("simulate", "-f", str(EXAMPLES / "llama-8b-finetune.yaml"), "-o", "yaml")
    assert result.exit_code == 0, result.output
    plan = yaml.safe_load(result.output)
    assert plan["task"] == "training" and plan["recommendation"]["latency"].startswith("run ")


def test_gpus_and_policy_restrict_the_options() -> None:
    result = run(
        "simulate",
        "-f",
        str(EXAMPLES / "llama-8b-chat.yaml"),
        "--gpus",
        "H100-SXM-80GB,NVIDIA-L4",
        "--policy",
        str(EXAMPLES / "policy-green-default.yaml"),
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert {o["gpu"] for o in plan["options"]} <= {"H100-SXM-80GB", "L4"}
    assert plan["weights"]["carbon"] == pytest.approx(0.25)


def test_a_policy_in_the_workloads_file_applies_unless_policy_names_another(tmp_path: Path) -> None:
    # `kubectl apply -f` of such a file creates both; simulate used to drop the policy silently.
    policy = (EXAMPLES / "policy-green-default.yaml").read_text()
    both = write(tmp_path, policy + "\n---\n" + (EXAMPLES / "llama-8b-chat.yaml").read_text())
    alone = json.loads(run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "-o", "json").stdout)
    result = run("simulate", "-f", both, "-o", "json")
    assert result.exit_code == 0, result.output
    assert "applying OptimizationPolicy 'green-default'" in result.stderr
    assert json.loads(result.stdout)["weights"]["carbon"] == pytest.approx(0.25)
    assert alone["weights"]["carbon"] != pytest.approx(0.25)
    other = run("simulate", "-f", both, "--policy", str(EXAMPLES / "policy-chat-cost.yaml"), "-o", "json")
    assert json.loads(other.stdout)["weights"]["carbon"] != pytest.approx(0.25)


def test_policies_in_the_workloads_file_apply_as_the_operator_applies_them(tmp_path: Path) -> None:
    # Only a policy whose selector matches the workload's labels applies; of several, the highest priority.
    chat = (EXAMPLES / "llama-8b-chat.yaml").read_text()
    labels = yaml.safe_load(chat)["metadata"].get("labels", {})
    assert labels, "the example needs labels for this test"

    def policy(name: str, selector: str, priority: int, carbon: int) -> str:
        return (
            f"apiVersion: greenmatrix.io/v1alpha1\nkind: OptimizationPolicy\nmetadata: {{name: {name}}}\n"
            f"spec: {{selector: {selector}, priority: {priority},"
            f" objectives: {{latency: 1, carbon: {carbon}}}}}\n"
        )

    key, value = next(iter(labels.items()))
    nobody = policy("nobody", "{matchLabels: {team: nobody-here}}", 100, 3)
    low = policy("low", f"{{matchLabels: {{{key}: {value}}}}}", 1, 1)
    high = policy("high", "{}", 5, 4)
    both = write(tmp_path, "---\n".join([nobody, low, high, chat]))
    result = run("simulate", "-f", both, "-o", "json")
    assert result.exit_code == 0, result.output
    assert "applying OptimizationPolicy 'high'" in result.stderr

    def weights(*args: str) -> dict[str, float]:
        return json.loads(
            run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), *args, "-o", "json").stdout
        )["weights"]

    assert json.loads(result.stdout)["weights"] == weights("--policy", write(tmp_path, high, "h.yaml"))
    assert weights("--policy", write(tmp_path, low, "l.yaml")) != weights(
        "--policy", write(tmp_path, high, "h.yaml")
    )
    only_nobody = write(tmp_path, nobody + "---\n" + chat, "n.yaml")
    result = run("simulate", "-f", only_nobody, "-o", "json")
    assert "selects this workload's labels; none applied" in result.stderr
    assert json.loads(result.stdout)["weights"] == weights()
    # Named with --policy it applies, with a note that the operator would not apply it.
    result = run(
        "simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--policy", only_nobody, "-o", "json"
    )
    assert "in a cluster it would not apply" in result.stderr
    assert json.loads(result.stdout)["weights"] != weights()


def test_a_policy_file_problem_names_the_policy_option(tmp_path: Path) -> None:
    result = run(
        "simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--policy", str(tmp_path / "no.yaml")
    )
    expect_error(result, "--policy")


def test_a_selector_requirement_whose_values_do_not_fit_its_operator_is_refused(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "kind: OptimizationPolicy\n"
        "spec: {selector: {matchExpressions: [{key: team, operator: In, values: []}]}}\n",
        "p.yaml",
    )
    message = expect_error(
        run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--policy", bad), "policy.selector"
    )
    assert "values must be non-empty for In" in message


def test_a_policy_field_error_names_the_policy_not_the_workloads_spec(tmp_path: Path) -> None:
    # `spec.hardware` would read as the workload's own (valid) field; the planner says policy.constraints.
    policy = "kind: OptimizationPolicy\nmetadata: {name: p}\nspec: {hardware: {maxGpus: 2}}\n"
    chat = (EXAMPLES / "llama-8b-chat.yaml").read_text()
    for args in (
        ("-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--policy", write(tmp_path, policy, "p.yaml")),
        ("-f", write(tmp_path, policy + "---\n" + chat, "both.yaml")),
    ):
        message = expect_error(run("simulate", *args), "policy.hardware")
        assert "unknown field" in message


def test_gpus_naming_no_gpu_is_an_error_not_every_gpu() -> None:
    result = run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--gpus", ",")
    message = expect_error(result, "--gpus")
    assert "names no GPU" in message


def expect_error(result, field: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = result.stderr
    assert message.startswith("error: ") and field in message, message
    return message


def test_unknown_model_names_the_field(tmp_path: Path) -> None:
    text = CHAT.replace("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-9-8B") % ""
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.model.name")
    assert "allowed:" in message


def test_unknown_gpu_names_the_option() -> None:
    message = expect_error(
        run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--gpus", "H100,Z9000"), "--gpus[1]"
    )
    assert "Z9000" in message


def test_unmeetable_slo_exits_2_and_names_the_slo(tmp_path: Path) -> None:
    text = CHAT % ", slo: {tpotMs: 0.001}"
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.inference.slo.tpotMs")
    assert "closest is" in message


def test_a_model_too_large_for_every_option(tmp_path: Path) -> None:
    text = (CHAT % "").replace("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-405B-Instruct")
    message = expect_error(
        run("simulate", "-f", write(tmp_path, text), "--gpus", "L4,T4"), "spec.model.precision"
    )
    assert "weights alone need" in message


def test_not_a_workload_profile(tmp_path: Path) -> None:
    expect_error(run("simulate", "-f", str(EXAMPLES / "policy-chat-cost.yaml")), "kind")
    expect_error(run("simulate", "-f", write(tmp_path, "a: [1, 2\n")), "-f")
    expect_error(run("simulate", "-f", str(tmp_path / "missing.yaml")), "-f")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x00\xff\xfe weights")
    assert "not UTF-8 text" in expect_error(run("simulate", "-f", str(binary)), "-f")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("{}\n", "(found a mapping without kind)"),
        ("metadata: {name: w}\nspec: {task: inference}\n", "(found a mapping without kind)"),
        ("[1, 2]\n", "(found a list instead of a mapping)"),
        ("just text\n", "(found text instead of a mapping)"),
        ("", "(found nothing)"),
    ],
)
def test_a_file_without_a_workload_says_what_it_holds(tmp_path: Path, text: str, found: str) -> None:
    # A mapping without kind used to be reported as "found None", a list or text as "found nothing".
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "kind")
    assert found in message, message


def test_schema_violation_names_the_camel_case_field(tmp_path: Path) -> None:
    text = CHAT.replace("concurrency: 8", "concurrency: 0") % ""
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.inference.concurrency")
    assert "greater than or equal to 1" in message
    typo = CHAT.replace("inputTokens", "inputTokenz") % ""
    expect_error(run("simulate", "-f", write(tmp_path, typo)), "spec.inference.inputTokenz")
    bad_policy = write(
        tmp_path, "kind: OptimizationPolicy\nspec: {objectives: {latency: 0, cost: 0}}\n", "p.yaml"
    )
    expect_error(
        run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--policy", bad_policy),
        "policy.objectives",
    )


@pytest.mark.parametrize(
    ("value", "read"), [('"8"', "got '8'; write numbers without quotes"), ("true", "got true")]
)
def test_a_quoted_number_or_a_boolean_is_refused_not_coerced(tmp_path: Path, value: str, read: str) -> None:
    # As the API server's schema refuses them at admission: `concurrency: "8"` must not plan for 8.
    text = CHAT.replace("concurrency: 8", f"concurrency: {value}") % ""
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.inference.concurrency")
    assert read in message


def test_a_string_field_given_a_yaml_boolean_says_to_quote_it(tmp_path: Path) -> None:
    text = CHAT % "}\n  hardware: {allowedGpus: [on]"
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.hardware.allowedGpus[0]")
    assert "got true; quote it" in message


def test_exponent_numbers_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    # PyYAML alone reads `8.03e9` (no sign in the exponent) as a string; kubectl reads a number.
    arch = "{architecture: {parameters: 8.03e9, layers: 32, hiddenSize: 4096, attentionHeads: 32}}"
    text = CHAT.replace("{name: meta-llama/Llama-3.1-8B-Instruct, precision: bf16}", arch) % ""
    result = run("simulate", "-f", write(tmp_path, text), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recommendation"]


def test_kv_heads_that_do_not_divide_the_heads_are_refused(tmp_path: Path) -> None:
    arch = "{architecture: {parameters: 8e9, layers: 32, hiddenSize: 4096, attentionHeads: 32, kvHeads: 6}}"
    text = CHAT.replace("{name: meta-llama/Llama-3.1-8B-Instruct, precision: bf16}", arch) % ""
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.model.architecture")
    assert "kvHeads must divide attentionHeads" in message


def test_a_region_without_carbon_data_is_an_error_naming_the_closest() -> None:
    result = run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--region", "us-eas-1")
    message = expect_error(result, "--region")
    assert "(allowed: us-east-1," in message
    listed = run("models", "--kind", "regions")
    assert listed.exit_code == 0 and "us-east-1" in listed.output and "eastus" in listed.output


def test_models_lists_catalog_models_and_gpus() -> None:
    result = run("models")
    assert result.exit_code == 0, result.output
    assert "meta-llama/Llama-3.1-70B-Instruct" in result.output
    assert "H100-SXM-80GB" in result.output and "L4" in result.output


def test_a_load_past_the_default_replica_limit_says_where_the_limit_comes_from(tmp_path: Path) -> None:
    text = CHAT % ", requestsPerSecond: 5000"
    message = expect_error(run("simulate", "-f", write(tmp_path, text)), "spec.inference.requestsPerSecond")
    assert "the default limit is 10" in message and "spec.scaling.maxReplicas" in message


def test_a_family_name_restricts_every_variant_of_the_family(tmp_path: Path) -> None:
    # "a100" names four parts (SXM4/PCIe, 40/80 GB): excluding it must exclude all four.
    text = CHAT % "}\n  hardware: {excludedGpus: [a100, h100, h200, l40s, v100]"
    result = run("simulate", "-f", write(tmp_path, text), "-o", "json", "--all")
    assert result.exit_code == 0, result.output
    gpus = {o["gpu"] for o in json.loads(result.stdout)["options"]}
    assert gpus and not any(g.startswith(("A100", "H100", "V100")) for g in gpus), gpus
    # As --gpus it offers every variant, not one picked silently.
    result = run("simulate", "-f", str(EXAMPLES / "llama-8b-chat.yaml"), "--gpus", "a100", "-o", "json")
    offered = {o["gpu"] for o in json.loads(result.stdout)["options"]}
    assert offered == {"A100-SXM4-80GB", "A100-SXM4-40GB", "A100-PCIe-80GB", "A100-PCIe-40GB"} & offered
    assert len(offered) > 1, offered
