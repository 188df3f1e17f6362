"""What `greenmatrix train` and `greenmatrix bench` share: the reference data folder, the choice of
datasets, and the learned module of each dataset present there."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import click

from greenmatrix.batch.datasets import DATASETS

DEFAULT_DATA = Path("../shared/data")
F = TypeVar("F", bound=Callable[..., object])


def data_option(func: F) -> F:
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=DEFAULT_DATA,
        show_default=True,
        help="The reference data folder (shared/data).",
    )(func)


def dataset_option(func: F) -> F:
    return click.option(
        "--dataset",
        "datasets",
        type=click.Choice(sorted(DATASETS)),
        multiple=True,
        help="Only these datasets (repeatable); default: every one whose file is in --data.",
    )(func)


def learned_modules(data_dir: Path, datasets: tuple[str, ...]) -> list[ModuleType]:
    """The learned modules to run: the named datasets (their files must exist) or every present one."""
    modules = {name: importlib.import_module(d.learner) for name, d in DATASETS.items()}
    # A directory in a data file's place is taken as present, so that reading it says what it is.
    missing = {
        name: data_dir / m.DATA_FILE for name, m in modules.items() if not (data_dir / m.DATA_FILE).exists()
    }
    for name in datasets:
        if name in missing:
            raise click.UsageError(f"--dataset {name}: {missing[name]} does not exist")
    chosen = list(datasets) or [name for name in DATASETS if name not in missing]
    if not chosen:
        expected = ", ".join(str(m.DATA_FILE) for m in modules.values())
        raise click.UsageError(
            f"--data {data_dir}: none of the reference files is there (expected {expected})"
        )
    for name in sorted(missing) if not datasets else ():
        click.echo(f"skipping {name}: {missing[name]} does not exist", err=True)
    return [modules[name] for name in DATASETS if name in chosen]
