"""`greenmatrix forecast` and `greenmatrix anomalies` as a user runs them: every row repeated, the answers
causal (cutting IN after any row leaves every earlier row's answer unchanged), bad rows named."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from greenmatrix.cli import main


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)
    return path


def _demand(n: int = 900, seed: int = 3) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000 + 600 * np.arange(n)
    daily = 50 + 30 * np.sin(2 * math.pi * (t % 86400) / 86400)
    v = daily * rng.lognormal(0, 0.1, n)
    v[500] *= 6  # one spike
    return [(str(int(a)), f"{b:.3f}") for a, b in zip(t, v, strict=True)]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("command", ["forecast", "anomalies"])
def test_every_row_is_repeated_and_cutting_the_input_changes_no_earlier_answer(
    tmp_path: Path, command: str
) -> None:
    rows = _demand()
    extra = ["--horizon", "1h"] if command == "forecast" else []
    full_in, full_out = _write(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    assert _run(command, "--series", str(full_in), *extra, "--out", str(full_out))[0] == 0
    full = _read(full_out)
    assert [(r["timestamp"], r["value"]) for r in full] == rows
    for cut in (150, 501, 700):
        part_in, part_out = _write(tmp_path / f"in{cut}.csv", rows[:cut]), tmp_path / f"out{cut}.csv"
        assert _run(command, "--series", str(part_in), *extra, "--out", str(part_out))[0] == 0
        assert _read(part_out) == full[:cut]


def test_forecast_warms_up_with_a_reason_then_brackets_the_demand(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    code, _ = _run(
        "forecast",
        "--series",
        str(_write(tmp_path / "in.csv", _demand())),
        "--horizon",
        "1h",
        "--out",
        str(out),
    )
    assert code == 0
    rows = _read(out)
    assert rows[0]["forecast_p50"] == "" and rows[0]["reason"].startswith("warming up")
    scored = [r for r in rows[300:] if r["forecast_p50"]]
    assert len(scored) == len(rows[300:])
    inside = [float(r["forecast_p10"]) <= float(r["value"]) <= float(r["forecast_p90"]) for r in scored]
    assert 0.65 < sum(inside) / len(inside) < 0.95  # an 80% interval, on noisy demand


def test_anomalies_flag_the_spike_and_score_in_the_unit_interval(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert (
        _run("anomalies", "--series", str(_write(tmp_path / "in.csv", _demand())), "--out", str(out))[0] == 0
    )
    rows = _read(out)
    assert rows[500]["anomaly"] == "true" and rows[500]["anomaly_kind"] == "spike"
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    assert sum(r["anomaly"] == "true" for r in rows) < 20


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("1", "2"), ("2", "-1"), ("3", "4")], "row 3, column value"),
        ([("1", "2"), ("2", "abc"), ("3", "4")], "row 3, column value"),
        ([("1", "2"), ("2", "nan"), ("3", "4")], "row 3, column value"),
        ([("1", "2"), ("3", "1"), ("2", "4")], "row 4, column timestamp"),
        ([("1", "2"), ("1", "1"), ("2", "4")], "row 3, column timestamp"),
        ([("1", "2"), ("yesterday", "1"), ("3", "4")], "row 3, column timestamp"),
        ([("1", "2")], "at least"),
    ],
)
@pytest.mark.parametrize("command", ["forecast", "anomalies"])
def test_bad_rows_are_one_line_naming_the_row_and_column(
    tmp_path: Path, command: str, rows: list[tuple[str, str]], expected: str
) -> None:
    extra = ["--horizon", "1h"] if command == "forecast" else []
    out = tmp_path / "out.csv"
    code, output = _run(
        command, "--series", str(_write(tmp_path / "in.csv", rows)), *extra, "--out", str(out)
    )
    assert code == 2
    assert expected in output and len(output.strip().splitlines()) == 1
    assert not out.exists()


def test_autoscale_replay_adds_three_causal_columns_and_prints_each_strategy(tmp_path: Path) -> None:
    rows = _demand(600)
    args = ["--capacity", "5", "--startup", "3m"]
    full_in, full_out = _write(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    code, output = _run("autoscale", "replay", "--trace", str(full_in), *args, "--out", str(full_out))
    assert code == 0
    for name in ("GreenMatrix", "HPA", "static"):
        assert name in output
    full = _read(full_out)
    assert [(r["timestamp"], r["value"]) for r in full] == rows
    assert all(1 <= int(r["replicas"]) <= 10 for r in full)  # the default policy's bounds
    assert all(int(r["static_replicas"]) >= int(full[0]["static_replicas"]) for r in full)
    cut = 333
    part_in, part_out = _write(tmp_path / "part.csv", rows[:cut]), tmp_path / "part_out.csv"
    assert _run("autoscale", "replay", "--trace", str(part_in), *args, "--out", str(part_out))[0] == 0
    assert _read(part_out) == full[:cut]


def test_autoscale_replay_names_a_bad_row_and_a_bad_policy(tmp_path: Path) -> None:
    bad = _write(tmp_path / "in.csv", [("1", "2"), ("2", "-3"), ("3", "4")])
    code, output = _run(
        "autoscale",
        "replay",
        "--trace",
        str(bad),
        "--capacity",
        "5",
        "--startup",
        "3m",
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert code == 2 and "row 3, column value" in output
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: greenmatrix.io/v1alpha1\nkind: OptimizationPolicy\nmetadata: {name: p}\n"
        "spec: {scaling: {minReplicas: 5, maxReplicas: 2}}\n"
    )
    good = _write(tmp_path / "good.csv", _demand(600))
    code, output = _run(
        "autoscale",
        "replay",
        "--trace",
        str(good),
        "--capacity",
        "5",
        "--startup",
        "3m",
        "--policy",
        str(policy),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert code == 2 and "minReplicas" in output


def test_a_bad_row_after_a_blank_line_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("timestamp,value\n1,2\n\n2,3\n3,-1\n")
    code, output = _run("anomalies", "--series", str(path), "--out", str(tmp_path / "out.csv"))
    assert code == 2 and "row 5, column value" in output
