"""`greenmatrix simulate`: predict, price and rank hardware options for a workload, without a cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from greenmatrix.errors import GreenMatrixError

if TYPE_CHECKING:
    from greenmatrix import OptimizationPolicySpec, Plan, WorkloadProfileSpec
    from greenmatrix.cli.manifests import Manifest


@click.command()
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
    from greenmatrix import WorkloadProfileSpec, economics, plan
    from greenmatrix.cli import manifests

    workload = manifests.load_manifest(workload_path, "WorkloadProfile", WorkloadProfileSpec)
    spec = workload.spec
    policy = _policy_for(workload, workload_path, policy_path)
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
    _note_unpriced(result)
    _print(result, output, show_all)
    result.raise_if_infeasible()


def _policy_for(
    workload: Manifest, workload_path: Path, policy_path: Path | None
) -> OptimizationPolicySpec | None:
    """The policy --policy names, else the one of those beside the workload that the operator would apply."""
    from greenmatrix import OptimizationPolicySpec, applied_policy
    from greenmatrix.cli import manifests

    policy = None
    if policy_path is not None:
        named = manifests.load_manifest(policy_path, "OptimizationPolicy", OptimizationPolicySpec, "--policy")
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
        embedded = manifests.load_objects(workload_path, "OptimizationPolicy", OptimizationPolicySpec)
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
    return policy


def _note_unpriced(result: Plan) -> None:
    from greenmatrix import economics

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


def _print(result: Plan, output: str, show_all: bool) -> None:
    import json

    import yaml
    from rich.console import Console

    from greenmatrix.cli import tables

    if output == "json":
        click.echo(json.dumps(result.to_wire(), indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(result.to_wire(), sort_keys=False))
    else:
        console = Console(width=None if sys.stdout.isatty() else 220)
        console.print(tables.plan_table(result, limit=None if show_all else 30))
        hidden = len(result.options) - 30
        if hidden > 0 and not show_all:
            console.print(f"({hidden} more options: --all shows them)")
        for line in tables.summary_lines(result):
            console.print(line, highlight=False, markup=False)


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
