"""`greenmatrix bench`: benchmarks of the engine (held-out accuracy against a plain roofline; the
forecaster and the replica decisions on the shared traces against their baselines)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from greenmatrix.cli import reference
from greenmatrix.cli.options import DURATION


class _Entry(Protocol):
    """A benchmark's series or trace: its name and its file under the data folder."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str: ...


T = TypeVar("T", bound=_Entry)


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


def _output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="A rich table, or the same rows as JSON.",
    )(func)


def _only_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--only", multiple=True, metavar="NAME", help="Only this series (repeatable); default: every one."
    )(func)


def _chosen(entries: Sequence[T], only: tuple[str, ...], data_dir: Path) -> list[T]:
    """The entries named by --only (their files must exist), or every one whose file is in --data."""
    names = [entry.name for entry in entries]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise click.UsageError(f"--only {', '.join(unknown)}: not one of {', '.join(names)}")
    chosen = []
    for entry in entries:
        if only and entry.name not in only:
            continue
        path = data_dir / entry.path
        if path.exists():
            chosen.append(entry)
        elif only:
            raise click.UsageError(f"--only {entry.name}: {path} does not exist")
        else:
            click.echo(f"skipping {entry.name}: {path} does not exist", err=True)
    if not chosen:
        raise click.UsageError(f"--data {data_dir}: none of the benchmark's files is there")
    return chosen


def _with_progress(entries: list[T], what: str) -> Iterator[T]:
    """The entries, with a progress bar on stderr naming the one running (stdout stays the result's)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(what, total=len(entries))
        for entry in entries:
            progress.update(task, description=f"{what} {entry.name}")
            yield entry
            progress.advance(task)


def _print(renderables: Sequence[Any]) -> None:
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200)
    for renderable in renderables:
        console.print(renderable)


@bench.command()
@reference.data_option
@click.option(
    "--horizon", type=DURATION, default="1h", show_default=True, help="How far ahead each forecast looks."
)
@_output_option
@_only_option
def forecast(data_dir: Path, horizon: float, output: str, only: tuple[str, ...]) -> None:
    """The demand forecaster walk-forward on the shared series: MAE beside last-value and seasonal-naive,
    and 80%-interval coverage; each series marked tune or report (Prophet: hack/bench_forecast.py)."""
    from greenmatrix.cli import bench_forecast

    prophet = None  # a baseline only, never a dependency: hack/bench_forecast.py runs it in its own venv
    entries = _chosen(bench_forecast.SERIES, only, data_dir)
    results = [
        bench_forecast.score(entry, data_dir, horizon, prophet)
        for entry in _with_progress(entries, "forecasting")
    ]
    if output == "json":
        rows = {"horizon_s": horizon, "prophet": bench_forecast.NOT_INSTALLED}
        rows |= {"rows": results, "summary": bench_forecast.summary(results)}
        click.echo(json.dumps(rows, indent=1))
    else:
        _print([bench_forecast.table(results, horizon, prophet)])


@bench.command()
@reference.data_option
@click.option(
    "--startup", type=DURATION, default="3m", show_default=True, help="How long a replica takes to serve."
)
@click.option(
    "--peak-replicas",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Each trace's capacity is set so that its peak needs this many replicas.",
)
@click.option(
    "--stand-in",
    is_flag=True,
    help="GreenMatrix forecasts with the recent-peak stand-in alone instead of its forecaster.",
)
@click.option(
    "--anomalies", is_flag=True, help="Keep the rows the anomaly detector flags out of the forecast."
)
@_output_option
@_only_option
def autoscale(
    data_dir: Path,
    startup: float,
    peak_replicas: int,
    stand_in: bool,
    anomalies: bool,
    output: str,
    only: tuple[str, ...],
) -> None:
    """Replica decisions on the shared demand traces: GPU-hours, overload minutes and actions of
    GreenMatrix, the HPA at targets 0.3-0.9, a static peak and a perfect-foresight oracle, and
    GreenMatrix's saving against the cheapest HPA target overloading no more."""
    from greenmatrix.cli import bench_autoscale

    results = {}
    for source in _with_progress(_chosen(bench_autoscale.SOURCES, only, data_dir), "replaying"):
        trace = bench_autoscale.load(data_dir, source)
        results[source.name] = bench_autoscale.bench(
            trace, startup, peak_replicas, stand_in=stand_in, anomalies=anomalies
        )
    if output == "json":
        click.echo(json.dumps(results, indent=1))
    else:
        _print(bench_autoscale.tables(results, startup))
