"""`greenmatrix anomalies`: each row's anomaly score and flag, judged from the rows up to it."""

from __future__ import annotations

from pathlib import Path

import click

from greenmatrix.cli.options import out_option, series_option


@click.command()
@series_option
@out_option
@click.option(
    "--counter", is_flag=True, help="VALUE is a cumulative counter: judge its rate, flag its resets."
)
def anomalies(in_path: Path, out_path: Path, counter: bool) -> None:
    """Score every row of a series for anomalies (spikes, level shifts, counter resets).

    OUT repeats the rows and adds anomaly_score (0-1), anomaly (true/false) and anomaly_kind, each
    decided from the rows up to and including it."""
    from greenmatrix.batch.series import anomalies_file

    flagged = anomalies_file(in_path, out_path, counter=counter)
    click.echo(f"flagged {flagged} rows as anomalies in {out_path}", err=True)
