"""`greenmatrix train`: retrain the models from the reference data."""

from __future__ import annotations

from pathlib import Path

import click

from greenmatrix.cli import reference


@click.command()
@reference.data_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Where the model files and model cards go.",
)
@reference.dataset_option
def train(data_dir: Path, out_dir: Path, datasets: tuple[str, ...]) -> None:
    """Retrain every model deterministically from the reference data."""
    from greenmatrix.learned.fitting.cards import out_directory

    modules = reference.learned_modules(data_dir, datasets)
    with out_directory(out_dir):
        for module in modules:
            click.echo(f"training {module.DATASET} ...", err=True)
            summary = module.train(data_dir, out_dir)
            click.echo(f"  {summary}", err=True)
