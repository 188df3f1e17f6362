"""`greenmatrix predict` on corrupted rows: every row comes back, predicted or with a reason."""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from greenmatrix.cli import main

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GREENMATRIX_DATA", REPO.parent / "shared" / "data"))
CASES = {
    "llm-serving": ("llm_serving/measured_ttft_tpot.csv", ("predicted_ttft_ms", "predicted_tpot_ms")),
    "mlperf-inference": ("mlperf/inference_closed.csv", ("predicted_result",)),
    "mlperf-training": ("mlperf/training.csv", ("predicted_minutes",)),
}
# What spreadsheets and hand edits put in numeric and name columns.
GARBAGE = ("", " ", "abc", "-1", "0", "nan", "inf", "-inf", "1e400", "9" * 20, "None", "\u00e9\u2603")


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_every_corrupted_row_comes_back_predicted_or_explained(tmp_path: Path, dataset: str) -> None:
    relative, columns = CASES[dataset]
    source = DATA / relative
    if not source.exists():
        pytest.skip(f"reference data not found at {source}")
    with source.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(itertools.islice(reader, 300))
    rng = random.Random(7)
    for row in rows:
        for key in rng.sample(fields, k=rng.randint(1, 3)):
            row[key] = rng.choice(GARBAGE)
        row["marker"] = str(id(row))
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with src.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, [*fields, "marker"])
        writer.writeheader()
        writer.writerows(rows)

    args = ["predict", "--dataset", dataset, "--data", str(src), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output

    with out.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert [g["marker"] for g in got] == [r["marker"] for r in rows]
    predicted = 0
    for g in got:
        if not g[columns[0]]:
            assert g["reason"], g
            continue
        predicted += 1
        for column in columns:
            lo, mid, hi = (float(g[f"{column}{s}"]) for s in ("_p10", "", "_p90"))
            assert all(math.isfinite(v) and v > 0 for v in (lo, mid, hi)), g
            assert lo <= mid <= hi, g
    # Most corruptions hit columns that do not matter; the rest are explained, not fatal.
    assert 0 < predicted < len(rows)
