"""The `greenmatrix` command line.

Engine commands (simulate, predict, train, bench, crds) live here. Commands that talk to a
cluster (`operator`, `lab`) are plugins found through the `greenmatrix.commands` entry-point
group, so this engine package never imports Kubernetes clients.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import click

from greenmatrix import __version__
from greenmatrix.errors import GreenMatrixError

if TYPE_CHECKING:
    from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec

DEFAULT_DATA = Path("../shared/data")


class _Group(click.Group):
    """A click group that turns domain errors into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GreenMatrixError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="greenmatrix")
@click.option(
    "--models",
    "models_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="GREENMATRIX_MODELS",
    help="Trained models to predict with (what `greenmatrix train --out` wrote); default: the shipped ones.",
)
def main(models_path: Path | None) -> None:
    """GreenMatrix: which hardware should this model run on, how many replicas, at what cost and energy."""
    if models_path is not None:
        # Every loader resolves the directory through greenmatrix.learned.core.models_dir().
        os.environ["GREENMATRIX_MODELS"] = str(models_path)


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("crds"),
    show_default=True,
    help="Directory to write the CustomResourceDefinitions into.",
)
@click.option(
    "--check", is_flag=True, help="Exit 1 if the files on disk differ from what would be generated."
)
def crds(out_dir: Path, check: bool) -> None:
    """Generate the CustomResourceDefinitions (and docs/crd-reference.md) from the API models."""
    from greenmatrix.api.crd import render_all, render_reference

    stale = []
    files = {out_dir / name: text for name, text in render_all().items()}
    files[Path("docs") / "crd-reference.md"] = render_reference()
    for path, text in files.items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"wrote {path}")
    if stale:
        click.echo(f"out of date (run `greenmatrix crds`): {', '.join(stale)}", err=True)
        sys.exit(1)


def _data_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=DEFAULT_DATA,
        show_default=True,
        help="The reference data folder (shared/data).",
    )(func)


_DATASETS = {
    "llm-serving": "greenmatrix.batch.llm_serving",
    "mlperf-inference": "greenmatrix.batch.mlperf_inference",
    "mlperf-training": "greenmatrix.batch.mlperf_training",
}
_LEARNED = {
    "llm-serving": "greenmatrix.learned.fitting.serving",
    "mlperf-inference": "greenmatrix.learned.fitting.mlperf_inference",
    "mlperf-training": "greenmatrix.learned.fitting.training_time",
}


def _dataset_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--dataset",
        "datasets",
        type=click.Choice(sorted(_LEARNED)),
        multiple=True,
        help="Only these datasets (repeatable); default: every one whose file is in --data.",
    )(func)


def _learned_modules(data_dir: Path, datasets: tuple[str, ...]) -> list:  # type: ignore[type-arg]
    """The learned modules to run: the named datasets (their files must exist) or every present one."""
    import importlib

    modules = {name: importlib.import_module(path) for name, path in _LEARNED.items()}
    # A directory in a data file's place is taken as present, so that reading it says what it is.
    missing = {
        name: data_dir / m.DATA_FILE for name, m in modules.items() if not (data_dir / m.DATA_FILE).exists()
    }
    for name in datasets:
        if name in missing:
            raise click.UsageError(f"--dataset {name}: {missing[name]} does not exist")
    chosen = list(datasets) or [name for name in _LEARNED if name not in missing]
    if not chosen:
        expected = ", ".join(str(m.DATA_FILE) for m in modules.values())
        raise click.UsageError(
            f"--data {data_dir}: none of the reference files is there (expected {expected})"
        )
    for name in sorted(missing) if not datasets else ():
        click.echo(f"skipping {name}: {missing[name]} does not exist", err=True)
    return [modules[name] for name in _LEARNED if name in chosen]


@main.command()
@click.option(
    "--dataset", type=click.Choice(sorted(_DATASETS)), required=True, help="Which kind of rows IN holds."
)
@click.option(
    "--data",
    "in_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Input CSV with the columns of the matching reference file (measured columns may be absent).",
)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output CSV."
)
def predict(dataset: str, in_path: Path, out_path: Path) -> None:
    """Predict every row of a CSV; OUT repeats the rows and adds predictions with p10/p90 bounds."""
    import importlib

    module = importlib.import_module(_DATASETS[dataset])
    count = module.predict_file(in_path, out_path)
    click.echo(f"predicted {count} rows into {out_path}", err=True)


@main.command()
@_data_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Where the model files and model cards go.",
)
@_dataset_option
def train(data_dir: Path, out_dir: Path, datasets: tuple[str, ...]) -> None:
    """Retrain every model deterministically from the reference data."""
    from greenmatrix.learned.fitting.cards import out_directory

    modules = _learned_modules(data_dir, datasets)
    with out_directory(out_dir):
        for module in modules:
            click.echo(f"training {module.DATASET} ...", err=True)
            summary = module.train(data_dir, out_dir)
            click.echo(f"  {summary}", err=True)


@main.group()
def bench() -> None:
    """Benchmarks of the engine."""


@bench.command()
@_data_option
@_dataset_option
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
    for module in _learned_modules(data_dir, datasets):
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


@main.command()
@click.option(
    "-f",
    "--file",
    "workload_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A WorkloadProfile manifest (YAML).",
)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An OptimizationPolicy manifest whose objectives and constraints apply.",
)
@click.option(
    "--region",
    help="Cloud region for grid carbon (e.g. us-east-1), one the workload's and the policy's regions allow;"
    " default: the first region they list, else the world average.",
)
@click.option(
    "--gpus",
    help="Comma-separated catalog GPUs to compare (names or aliases), priced or not (unpriced ones at unknown"
    " cost); default: the GPUs with a list price, plus unpriced ones allowedGpus names"
    " (`greenmatrix models --kind gpus` shows prices).",
)
@click.option("--all", "show_all", is_flag=True, help="Show every option, not only the first 30.")
def simulate(
    workload_path: Path,
    output: str,
    policy_path: Path | None,
    region: str | None,
    gpus: str | None,
    show_all: bool,
) -> None:
    """Predict, price and rank hardware options for a workload, without a cluster."""
    import json

    import yaml
    from rich.console import Console

    from greenmatrix import economics, report
    from greenmatrix.api import OptimizationPolicySpec, WorkloadProfileSpec
    from greenmatrix.planner import plan
    from greenmatrix.policy import applied_policy

    workload = report.load_manifest(workload_path, "WorkloadProfile", WorkloadProfileSpec)
    spec = workload.spec
    policy = None
    if policy_path is not None:
        named = report.load_manifest(policy_path, "OptimizationPolicy", OptimizationPolicySpec, "--policy")
        policy = named.spec
        if not policy.selector.matches(workload.labels):
            click.echo(
                f"Note: applying OptimizationPolicy {named.name!r} because --policy names it; its selector"
                " does not select this workload's labels, so in a cluster it would not apply",
                err=True,
            )
    else:
        # As `kubectl apply -f` would create them beside the workload, policies in the same file apply
        # as the operator would apply them: the highest priority of those selecting the workload.
        embedded = report.load_objects(workload_path, "OptimizationPolicy", OptimizationPolicySpec)
        chosen = applied_policy(embedded, workload.labels)
        if chosen is not None:
            policy = chosen.spec
            click.echo(f"Note: applying OptimizationPolicy {chosen.name!r} from {workload_path}", err=True)
        elif embedded:
            click.echo(
                f"Note: no OptimizationPolicy in {workload_path} selects this workload's labels;"
                " none applied",
                err=True,
            )
    if policy is not None:
        _note_what_simulate_ignores(policy)
    names = [g.strip() for g in gpus.split(",") if g.strip()] if gpus is not None else None
    if names == []:
        raise GreenMatrixError("--gpus", f"{gpus!r} names no GPU; give catalog names or aliases, or omit it")
    if region is not None:
        region = _allowed_region(economics.catalogued_region(region, "--region"), spec, policy)
    if _models_named():
        _require_learned_model(spec.task)
    result = plan(spec, None, policy, region=region, gpus=names)
    if output == "table" and not result.options:
        # Nothing was compared: an empty table would only push the error out of sight.
        result.raise_if_infeasible()
    unpriced = sorted(
        {
            o.gpu
            for o in result.options
            if o.gpus_per_replica > 0 and economics.price_per_gpu_hour(o.gpu) is None
        }
    )
    if unpriced:
        click.echo(
            f"Note: {', '.join(unpriced)} {'has' if len(unpriced) == 1 else 'have'} no list price:"
            " compared at unknown cost, which ranks as the highest known cost",
            err=True,
        )
    if output == "json":
        click.echo(json.dumps(result.to_wire(), indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(result.to_wire(), sort_keys=False))
    else:
        console = Console(width=None if sys.stdout.isatty() else 220)
        console.print(report.plan_table(result, limit=None if show_all else 30))
        hidden = len(result.options) - 30
        if hidden > 0 and not show_all:
            console.print(f"({hidden} more options: --all shows them)")
        for line in report.summary_lines(result):
            console.print(line, highlight=False, markup=False)
    result.raise_if_infeasible()


def _note_what_simulate_ignores(policy: OptimizationPolicySpec) -> None:
    if policy.mode == "Auto":
        click.echo(
            "Note: the policy's mode: Auto has no effect here; simulate only recommends (in a cluster, Auto"
            " also scales targetRef where auto-apply is enabled)",
            err=True,
        )
    if policy.paused:
        click.echo(
            "Note: the policy's paused: true has no effect here; simulate only recommends, as a paused"
            " policy still does in a cluster",
            err=True,
        )


def _allowed_region(region: str, spec: WorkloadProfileSpec, policy: OptimizationPolicySpec | None) -> str:
    """`region`, if the workload's and the policy's region lists admit it (the lists stand for where
    the workload may run, so weighing carbon elsewhere would answer a question nobody asked)."""
    lists = [
        ("spec.hardware.regions", spec.hardware.regions if spec.hardware else None),
        ("policy.constraints.regions", policy.constraints.regions if policy and policy.constraints else None),
    ]
    given = [(field, [r.strip().lower() for r in regions]) for field, regions in lists if regions is not None]
    for field, regions in given:
        if region not in regions:
            both = [r for r in regions if all(r in other for _, other in given)]
            raise GreenMatrixError("--region", f"{region!r} is not a region {field} allows", both or regions)
    return region


def _models_named() -> bool:
    """Whether the user chose the models directory (--models or GREENMATRIX_MODELS), not the default."""
    ctx = click.get_current_context().find_root()
    source = ctx.get_parameter_source("models_path")
    return source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def _require_learned_model(task: str) -> None:
    """Load the learned model `task` needs from the models directory the user named, or exit 2: a
    silent fall back to the roofline would answer with other models than the ones asked for."""
    from greenmatrix.learned import core, serving
    from greenmatrix.learned import training_time as training

    directory = core.models_dir()
    if task == "training":
        what, files = "training", [training.MODEL_NAME]
        load = training.TrainingPredictor.load
    else:
        what, files = "serving", sorted(serving.MODEL_NAMES.values())
        load = serving.ServingPredictor.load
    expected = ", ".join(f"{f}{core.MODEL_SUFFIX} with {f}{core.SIDECAR_SUFFIX}" for f in files)
    try:
        load(directory)
    except FileNotFoundError:
        raise GreenMatrixError(
            "--models",
            f"{directory} has no {what} model: expected {expected},"
            " as `greenmatrix train --out DIR` writes them",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GreenMatrixError(
            "--models",
            f"the {what} model in {directory} cannot be read ({type(err).__name__}: {err}); expected"
            f" {expected}, as `greenmatrix train --out DIR` writes them",
        ) from None


@main.command()
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

    from greenmatrix import report

    console = Console(width=None if sys.stdout.isatty() else 160)
    if kind in ("all", "models"):
        console.print(report.models_table())
    if kind in ("all", "gpus"):
        console.print(report.gpus_table())
    if kind in ("all", "regions"):
        console.print(report.regions_table())


def _load_plugins() -> None:
    for entry in metadata.entry_points(group="greenmatrix.commands"):
        try:
            command = entry.load()
        except ImportError as err:  # a slim install may leave a plugin's dependencies out
            click.echo(f"warning: command '{entry.name}' unavailable: {err}", err=True)
            continue
        main.add_command(command, entry.name)


_load_plugins()
