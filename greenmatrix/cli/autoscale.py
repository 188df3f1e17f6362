"""`greenmatrix autoscale replay`: what GreenMatrix, the Kubernetes HPA and a static allocation would
have asked for on a demand trace, and what each cost and missed."""

from __future__ import annotations

from pathlib import Path

import click

from greenmatrix.cli.options import DURATION, csv_option, out_option


@click.group()
def autoscale() -> None:
    """Replica decisions replayed offline."""


@autoscale.command()
@csv_option(
    "--trace",
    "in_path",
    "CSV with columns timestamp (ISO 8601 or epoch seconds) and value (demand in requests/s).",
)
@click.option(
    "--capacity",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Requests/s one replica serves within the SLO.",
)
@click.option(
    "--startup", type=DURATION, required=True, help="How long a replica asked for takes to serve (3m)."
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="OptimizationPolicy YAML whose scaling guardrails apply (default: the defaults).",
)
@click.option(
    "--hpa-target",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.7,
    show_default=True,
    help="The HPA's target utilisation.",
)
@click.option("--gpus-per-replica", type=click.IntRange(min=1), default=1, show_default=True)
@out_option
def replay(
    in_path: Path,
    capacity: float,
    startup: float,
    policy_path: Path | None,
    hpa_target: float,
    gpus_per_replica: int,
    out_path: Path,
) -> None:
    """Replay a demand trace: OUT repeats its rows and adds replicas (GreenMatrix, decided from the rows
    before each), hpa_replicas and static_replicas (the highest demand so far at full use); GPU-hours,
    minutes of demand above ready capacity and actions of each are printed."""
    from greenmatrix.batch.series import replay_file

    result = replay_file(
        in_path,
        out_path,
        capacity=capacity,
        startup_s=startup,
        policy_path=policy_path,
        hpa_target=hpa_target,
        gpus_per_replica=gpus_per_replica,
    )
    click.echo(f"{'strategy':<12} {'GPU-hours':>10} {'overload min':>13} {'actions':>8}")
    for o in (result.greenmatrix, result.hpa, result.static):
        click.echo(f"{o.name:<12} {o.gpu_hours:>10.1f} {o.overload_minutes:>13.1f} {o.actions:>8d}")
