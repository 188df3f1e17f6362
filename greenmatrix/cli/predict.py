"""`greenmatrix predict`: predictions for every row of a CSV of one of the reference datasets."""

from __future__ import annotations

from pathlib import Path

import click

from greenmatrix.batch.datasets import DATASETS
from greenmatrix.cli.options import csv_option, out_option


@click.command()
@click.option(
    "--dataset", type=click.Choice(sorted(DATASETS)), required=True, help="Which kind of rows IN holds."
)
@csv_option(
    "--data",
    "in_path",
    "Input CSV with the columns of the matching reference file (measured columns may be absent).",
)
@out_option
@csv_option(
    "--observed",
    "observed_path",
    "Rows a running deployment produced, with the measured columns (llm-serving: silicon_ttft_ms, "
    "silicon_tpot_ms): the predictions are corrected by them, and a `correction` column says how.",
    required=False,
)
def predict(dataset: str, in_path: Path, out_path: Path, observed_path: Path | None) -> None:
    """Predict every row of a CSV; OUT repeats the rows and adds predictions with p10/p90 bounds."""
    from greenmatrix import batch

    count = batch.predict_file(dataset, in_path, out_path, observed_path)
    click.echo(f"predicted {count} rows into {out_path}", err=True)
