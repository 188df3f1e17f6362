"""`greenmatrix bench forecast` and `bench autoscale`: a table and JSON on a small data folder laid out
like the shared one, finite numbers, and the matched-HPA rule."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from greenmatrix.cli import main
from greenmatrix.cli.bench_autoscale import matched_hpa
from greenmatrix.live.replay import Outcome

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
DAY = 86_400


def _write_rate(path: Path, step: float, days: float, seed: int, zeros: int = 0) -> None:
    """A daily cycle with noise, `zeros` of it the exact 0 ServeGen writes for a gap."""
    rng = np.random.default_rng(seed)
    times = np.arange(0, days * DAY, step)
    values = 50 + 30 * np.sin(2 * np.pi * times / DAY) + rng.normal(0, 3, len(times))
    values[len(values) // 2 : len(values) // 2 + zeros] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value", *(f"{t:.0f},{v:.3f}" for t, v in zip(times, values, strict=True))]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    _write_rate(root / "timeseries/crane/input0.csv", 300, 3, 1)
    _write_rate(root / "timeseries/nab/nyc_taxi.csv", 1800, 4, 2)
    _write_rate(root / "timeseries/crane/input6.csv", 300, 2, 3)
    _write_rate(root / "traces/servegen_m-large_requests_per_s.csv", 600, 2, 4, zeros=5)
    rng = np.random.default_rng(5)
    stamps = np.sort(rng.uniform(0, 6 * 3600, 3000)) + datetime(2023, 11, 16, tzinfo=UTC).timestamp()
    rows = [datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S.%f0") + ",100,10" for s in stamps]
    azure = root / "traces/azure_llm_inference_2023_code.csv"
    azure.write_text("\n".join(["TIMESTAMP,ContextTokens,GeneratedTokens", *rows]) + "\n")
    return root


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["bench", *args], catch_exceptions=False)


def _finite(value: object) -> bool:
    return value is None or isinstance(value, (bool, str)) or math.isfinite(float(value))  # type: ignore[arg-type]


def test_forecast_prints_a_table_and_the_same_rows_as_json(data: Path) -> None:
    table = _run("forecast", "--data", str(data))
    assert table.exit_code == 0, table.output
    for text in ("GreenMatrix", "seasonal", "Prophet", "cov80", "crane/input0", "tune", "report"):
        assert text in table.stdout
    assert "skipping nab/twitter_AAPL" in table.stderr
    rows = json.loads(_run("forecast", "--data", str(data), "-o", "json").stdout)
    assert [row["series"] for row in rows["rows"]] == [
        "crane/input0",
        "servegen/m-large",
        "crane/input6",
        "nab/nyc_taxi",
    ]
    assert [row["role"] for row in rows["rows"]] == ["tune", "report", "report", "report"]
    for row in rows["rows"]:
        assert {"greenmatrix", "last", "seasonal", "prophet", "vs_naive", "coverage", "rows"} <= set(row)
        assert all(_finite(value) for value in row.values())
        assert row["greenmatrix"] is not None and 0 <= row["coverage"] <= 1
    assert {line["role"] for line in rows["summary"]} == {"tune", "report"}
    # Prophet is a baseline the CLI never runs (hack/bench_forecast.py does, in its own virtualenv).
    assert rows["prophet"].startswith("not run")
    assert "not run" in table.stdout
    assert all(row["prophet"] is None for row in rows["rows"])


def test_autoscale_prints_a_table_and_the_same_rows_as_json(data: Path) -> None:
    args = ("autoscale", "--data", str(data), "--only", "servegen/m-large", "--only", "azure-code")
    table = _run(*args)
    assert table.exit_code == 0, table.output
    for text in ("GreenMatrix@0.7", "HPA@0.3", "HPA@0.9", "static peak", "oracle", "matched HPA", "Headline"):
        assert text in table.stdout
    results = json.loads(_run(*args, "-o", "json").stdout)
    assert list(results) == ["servegen/m-large", "azure-code"]
    for result in results.values():
        strategies = [row["strategy"] for row in result["rows"]]
        assert strategies[:2] == ["GreenMatrix@0.6", "GreenMatrix@0.7"] and strategies[-1] == "oracle"
        for row in result["rows"]:
            assert row["gpu_hours"] > 0 and row["overload_minutes"] >= 0 and row["actions"] >= 0
        assert result["headline"]["strategy"] == "GreenMatrix@0.7"
        assert math.isfinite(result["headline"]["saving"]) and result["headline"]["matched_hpa"].startswith(
            "HPA@"
        )


def test_only_names_a_known_series_and_an_existing_file(data: Path) -> None:
    unknown = CliRunner().invoke(main, ["bench", "forecast", "--data", str(data), "--only", "nope"])
    assert unknown.exit_code == 2 and "not one of" in unknown.output
    absent = CliRunner().invoke(main, ["bench", "autoscale", "--data", str(data), "--only", "crane/input7"])
    assert absent.exit_code == 2 and "does not exist" in absent.output


def _outcome(name: str, gpu_hours: float, overload: float) -> Outcome:
    return Outcome(name, np.array([1]), gpu_hours, overload, 0)


def test_matched_hpa_is_the_cheapest_target_overloading_no_more() -> None:
    hpa = [_outcome("HPA@0.3", 100, 0), _outcome("HPA@0.5", 80, 10), _outcome("HPA@0.7", 60, 30)]
    match = matched_hpa(_outcome("GreenMatrix@0.7", 60, 10), hpa)
    assert match == {
        "strategy": "GreenMatrix@0.7",
        "matched_hpa": "HPA@0.5",
        "fewer_overloads": False,
        "saving": 0.25,
    }
    # Exactly as much overload as a target counts as matched; more lets cheaper targets in.
    assert matched_hpa(_outcome("g", 60, 30), hpa)["matched_hpa"] == "HPA@0.7"
    # Less overload than every target: the least-overloading one stands in, flagged.
    tight = [_outcome("HPA@0.3", 100, 5), _outcome("HPA@0.35", 90, 5), _outcome("HPA@0.5", 80, 10)]
    fewer = matched_hpa(_outcome("g", 45, 0), tight)
    assert fewer["matched_hpa"] == "HPA@0.35" and fewer["fewer_overloads"] and fewer["saving"] == 0.5


@pytest.mark.skipif(not (DATA / "traces").is_dir(), reason="the shared data folder is not here")
def test_on_the_shared_traces() -> None:
    forecast = json.loads(
        _run("forecast", "--data", str(DATA), "--only", "servegen/m-large", "-o", "json").stdout
    )
    assert forecast["rows"][0]["role"] == "report" and forecast["rows"][0]["vs_naive"] < 1.2
    autoscale = json.loads(
        _run("autoscale", "--data", str(DATA), "--only", "servegen/m-large", "-o", "json").stdout
    )
    oracle = next(row for row in autoscale["servegen/m-large"]["rows"] if row["strategy"] == "oracle")
    assert oracle["overload_minutes"] == 0
