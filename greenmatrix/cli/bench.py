"""`greenmatrix bench`: benchmarks of the engine (held-out accuracy against a plain roofline)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from greenmatrix.cli import reference


@click.group()
def bench() -> None:
    """Benchmarks of the engine."""


@bench.command()
@reference.data_option
@reference.dataset_option
def accuracy(data_dir: Path, datasets: tuple[str, ...]) -> None:
    """MAPE and 80%-interval coverage per held-out group, beside a plain roofline."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="Held-out accuracy (whole groups never seen in training)",
        caption=(
            "MAPE profiled: the same model with rows split at random, so the held-out group's GPU and "
            "model were seen in training (what profiling the hardware would buy). The serving row 'random "
            "rows' is that case itself, with the interval a GPU and model measured together get."
        ),
    )
    columns = ("dataset", "target", "held out", "n", "MAPE model", "MAPE roofline", "MAPE profiled")
    for column in (*columns, "80% coverage"):
        table.add_column(
            column, justify="right" if column not in ("dataset", "target", "held out") else "left"
        )
    yardsticks: list[str] = []
    for module in reference.learned_modules(data_dir, datasets):
        for row in module.benchmark(data_dir):
            if row.mape_last_round is not None:
                yardsticks.append(
                    f"{row.dataset} {row.target} {row.holdout}: each row read off its GPU type's latest "
                    f"earlier result on the same benchmark and scenario is off by {row.mape_last_round:.1f}%."
                )
            table.add_row(
                row.dataset,
                row.target,
                row.holdout,
                str(row.n),
                f"{row.mape_model:.1f}%",
                f"{row.mape_roofline:.1f}%",
                "" if row.mape_profiled is None else f"{row.mape_profiled:.1f}%",
                f"{row.coverage80:.0%}",
            )
    if yardsticks:
        table.caption = "\n".join([str(table.caption), *yardsticks])
    Console(width=None if sys.stdout.isatty() else 160).print(table)
