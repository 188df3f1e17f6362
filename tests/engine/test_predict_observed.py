"""`greenmatrix predict --dataset llm-serving --observed OBS.csv`: the batch contract of capacity learned
from a deployment, end to end on tiny files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from greenmatrix.batch.datasets import DATASETS
from greenmatrix.cli import main
from greenmatrix.learned.core import models_dir

pytestmark = pytest.mark.skipif(
    not (models_dir() / "serving_ttft.ubj").exists(), reason="serving models not trained (greenmatrix train)"
)

HEADER = "id,backend,backend_version,model_path,system,precision,mode,isl,osl,batch_size,tp_size"
IN_ROW = "r{c},vllm,0.10,meta-llama/Llama-3.1-70B,h100_sxm,fp8,agg,1024,256,{c},4"
OTHER_GPU = "b{c},vllm,0.10,meta-llama/Llama-3.1-70B,b200_sxm,fp8,agg,1024,256,{c},4"
MEASURED = ",silicon_ttft_ms,silicon_tpot_ms"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(tmp_path: Path, lines: list[str], observed: list[str] | None, dataset: str = "llm-serving"):
    src = _write(tmp_path / "in.csv", lines)
    out = tmp_path / ("observed.csv" if observed is not None else "plain.csv")
    args = ["predict", "--dataset", dataset, "--data", str(src), "--out", str(out)]
    if observed is not None:
        args += ["--observed", str(_write(tmp_path / "obs.csv", observed))]
    result = CliRunner().invoke(main, args)
    rows = list(csv.DictReader(io.StringIO(out.read_text()))) if result.exit_code == 0 else []
    return result, out, rows


def _inputs() -> list[str]:
    return [HEADER, *(IN_ROW.format(c=c) for c in (8, 32, 128)), OTHER_GPU.format(c=32)]


def _observations(tpot_ms: float, ttft_ms: float = 400.0) -> list[str]:
    return [HEADER + MEASURED, *(IN_ROW.format(c=c) + f",{ttft_ms},{tpot_ms}" for c in (4, 16, 64))]


def test_observations_pull_the_predictions_of_their_configuration_toward_them(tmp_path: Path) -> None:
    _, _, plain = _run(tmp_path, _inputs(), None)
    result, _, learned = _run(tmp_path, _inputs(), _observations(tpot_ms=80.0))
    assert result.exit_code == 0, result.output
    for before, after in zip(plain[:3], learned[:3], strict=True):
        assert float(after["predicted_tpot_ms"]) > float(before["predicted_tpot_ms"])
        assert after["correction"].startswith("TTFT corrected by 3 observations of this configuration: x")
        assert "TPOT corrected by 3 observations of this configuration: x" in after["correction"]
        low, high = float(after["predicted_tpot_ms_p10"]), float(after["predicted_tpot_ms_p90"])
        assert low <= float(after["predicted_tpot_ms"]) <= high
    # Another GPU's row learns nothing from them: its cells are the plain prediction's.
    outputs = DATASETS["llm-serving"].outputs
    assert [learned[3][c] for c in outputs] == [plain[3][c] for c in outputs]
    assert learned[3]["correction"] == "not corrected: no observation of this GPU and model"


def test_without_observed_the_output_is_the_plain_contract(tmp_path: Path) -> None:
    result, out, rows = _run(tmp_path, _inputs(), None)
    assert result.exit_code == 0, result.output
    header = out.read_text().splitlines()[0].split(",")
    assert header == [*HEADER.split(","), *DATASETS["llm-serving"].outputs, "reason"]
    assert len(rows) == 4


@pytest.mark.parametrize(
    ("cell", "column"),
    [("silicon_tpot_ms", "silicon_tpot_ms"), ("model_path", "model_path"), ("backend", "backend")],
)
def test_a_bad_observed_row_is_refused_naming_its_line_and_column(
    tmp_path: Path, cell: str, column: str
) -> None:
    observed = _observations(tpot_ms=20.0)
    bad = dict(zip((HEADER + MEASURED).split(","), observed[2].split(","), strict=True))
    bad[cell] = {"silicon_tpot_ms": "abc", "model_path": "no-such/model", "backend": "teapot"}[cell]
    observed[2] = ",".join(bad.values())
    result, out, _ = _run(tmp_path, _inputs(), observed)
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.count("\n") == 0, message
    assert "obs.csv line 3, column " + column in message, message
    assert not out.exists()


def test_observed_rows_without_the_measured_columns_are_refused(tmp_path: Path) -> None:
    result, _, _ = _run(tmp_path, _inputs(), [HEADER, IN_ROW.format(c=4)])
    assert result.exit_code == 2
    assert "--observed" in result.output and "silicon_ttft_ms, silicon_tpot_ms" in result.output


def test_observed_with_a_dataset_that_does_not_learn_from_them_is_refused(tmp_path: Path) -> None:
    lines = ["Benchmark,accelerator_model_name,accelerators_count", "bert,NVIDIA H100-SXM5-80GB,8"]
    result, _, _ = _run(tmp_path, lines, _observations(tpot_ms=20.0), dataset="mlperf-training")
    assert result.exit_code == 2
    assert "mlperf-training dataset does not learn from observed rows (llm-serving does)" in result.output
