"""`greenmatrix forecast`: each row's demand forecast with its 80% interval, made `--horizon` earlier."""

from __future__ import annotations

from pathlib import Path

import click

from greenmatrix.cli.options import horizon_option, out_option, series_option


@click.command()
@series_option
@horizon_option
@out_option
def forecast(in_path: Path, horizon: float, out_path: Path) -> None:
    """Forecast every row of a series from the rows at or before `--horizon` before it.

    OUT repeats the rows and adds forecast_p10, forecast_p50 and forecast_p90 (empty, with a
    reason, while the forecaster is warming up)."""
    from greenmatrix.batch.series import forecast_file

    count = forecast_file(in_path, out_path, horizon)
    click.echo(f"forecast {count} rows into {out_path}", err=True)
