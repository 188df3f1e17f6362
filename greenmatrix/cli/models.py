"""`greenmatrix models`: the catalog's models, GPUs and regions."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option(
    "--kind",
    type=click.Choice(["all", "models", "gpus", "regions"]),
    default="all",
    show_default=True,
    help="What to list",
)
def models(kind: str) -> None:
    """List the catalog's models, GPUs and regions with a grid carbon intensity."""
    from rich.console import Console

    from greenmatrix.cli import tables

    console = Console(width=None if sys.stdout.isatty() else 160)
    if kind in ("all", "models"):
        console.print(tables.models_table())
    if kind in ("all", "gpus"):
        console.print(tables.gpus_table())
    if kind in ("all", "regions"):
        console.print(tables.regions_table())
