"""What ships for Prometheus and Grafana, checked by the real tools where they exist here: the alert
rules by promtool (syntax, and each alert firing on its synthetic series and only then), every
dashboard query parsed by promtool, and every metric a dashboard or alert names one the operator
really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from greenmatrix_operator.metrics import OperatorMetrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    # Debian's prometheus package brings promtool; hack/setup.sh installs it for the lab.
    tool = shutil.which("promtool")
    assert tool, "promtool not found: hack/setup.sh installs Debian's prometheus, which has it"
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=REPO, check=False)


def exposed() -> set[str]:
    """Every series name the operator's /metrics can show (summaries as _sum and _count)."""
    names = set()
    for line in OperatorMetrics().render().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {f"{name}_sum", f"{name}_count"} if kind == "summary" else {name}
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(greenmatrix_[a-z0-9_]+)", expr))


def test_the_rules_pass_promtool() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "tests/monitoring/rules_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_and_names_real_metrics() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    cases = yaml.safe_load((REPO / "tests/monitoring/rules_test.yaml").read_text())["tests"]
    tested = {case["alertname"] for t in cases for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert {r["alert"] for r in rules} == tested
    for rule in rules:
        assert metric_names(rule["expr"]) <= exposed(), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_queries_parse_and_name_real_metrics(path: Path, tmp_path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] == path.stem and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    assert exprs
    for expr in exprs:
        assert metric_names(expr) and metric_names(expr) <= exposed(), expr

    # promtool parses PromQL in rule files: each query becomes a recording rule, Grafana's variables
    # replaced by what they expand to.
    def promql(expr: str) -> str:
        expr = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$name", ".*")
        match = re.fullmatch(r"label_values\((.*), *[a-z_]+\)", expr)
        return match.group(1) if match else expr

    rules = [{"record": f"check:panel_{i}", "expr": promql(e)} for i, e in enumerate(exprs)]
    file = tmp_path / "queries.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
    checked = promtool("check", "rules", str(file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
