"""`greenmatrix lab ...`: a local control plane with fake GPU nodes and Prometheus.

Registered as the `lab` plugin of the `greenmatrix` CLI (entry point `greenmatrix.commands`);
also runs alone as `python -m greenmatrix_lab`.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from greenmatrix_lab.errors import LabError
from greenmatrix_lab.lab import Lab
from greenmatrix_lab.nodes import LAB_NODE_LABEL, NodeFileError
from greenmatrix_lab.state import LabState


def _say(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


@click.group(name="lab")
def command() -> None:
    """Run a local Kubernetes 1.34 control plane, kwok fake GPU nodes and Prometheus.

    Everything listens on 127.0.0.1; state, logs and builds live under
    $GREENMATRIX_LAB_CACHE (default ~/.cache/greenmatrix/lab). Typical use:

        eval "$(greenmatrix lab up)"
    """


@command.command()
@click.option(
    "--nodes",
    "nodes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file of fake node groups (default: the bundled nodes/default.yaml).",
)
def up(nodes_file: Path | None) -> None:
    """Build (first time only) and start the lab; print shell `export` lines on stdout."""
    lab = Lab(nodes_file=nodes_file, say=_say)
    state = LabState.load(lab.layout.state_file)
    if state is not None and nodes_file is not None and Path(state.nodes_file) != lab.nodes_file:
        _say(f"already up with nodes from {state.nodes_file}; --nodes ignored (run `lab down` first)")
    try:
        lab.up()
        lines = lab.export_lines()
    except NodeFileError as error:
        raise click.BadParameter(str(error), param_hint="--nodes") from error
    except LabError as error:
        raise click.ClickException(str(error)) from error
    click.echo("\n".join(lines))


@command.command()
def env() -> None:
    """Print the shell `export` lines of the running lab."""
    lab = Lab()
    if not lab.is_up():
        raise click.ClickException(f"no healthy lab in {lab.layout.run_dir}; run `greenmatrix lab up`")
    click.echo("\n".join(lab.export_lines()))


@command.command()
def down() -> None:
    """Stop every process of the lab and remove its run directory (builds are kept)."""
    lab = Lab(say=_say)
    _say("stopped" if lab.down() else f"no lab in {lab.layout.run_dir}")


@command.command()
def status() -> None:
    """Show each component's pid, ports and health; exit 1 unless all are healthy."""
    lab = Lab()
    statuses = lab.status()
    if not statuses:
        raise click.ClickException(f"no lab in {lab.layout.run_dir}")
    click.echo(f"{'component':<25} {'pid':>7}  {'ports':<28} state")
    for s in statuses:
        ports = " ".join(f"{k}={v}" for k, v in s.ports.items())
        state = "healthy" if s.healthy else ("unhealthy" if s.running else f"not running (log {s.log})")
        click.echo(f"{s.name:<25} {s.pid:>7}  {ports:<28} {state}")
    healthy = all(s.healthy for s in statuses) and lab.is_up()
    if healthy:
        click.echo(_node_summary(lab))
        click.echo(f"prometheus: {lab.prometheus_url}")
    click.echo(f"kubeconfig: {lab.kubeconfig}")
    state = LabState.load(lab.layout.state_file)
    if state is not None and state.borrowed:
        click.echo("started by a test session: it stops when the last session using it ends")
    if not healthy:
        raise SystemExit(1)


@command.command()
@click.option("--target", required=True, help="NAMESPACE/DEPLOYMENT whose Ready pods serve the trace.")
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV with columns timestamp (ISO 8601 or epoch seconds) and value (requests/s).",
)
@click.option("--speedup", type=float, default=1.0, show_default=True, help="Trace seconds per wall second.")
@click.option(
    "--backfill",
    default=None,
    help="Write the trace's first DURATION (trace time, e.g. 1d, 6h) into Prometheus as history first.",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV of what each pod served at each step (demand, served, latencies, GPU).",
)
@click.option(
    "--capacity-cut-on-scale-in",
    "capacity_cut",
    type=click.FloatRange(0.05, 1.0),
    default=None,
    help="An emulated fault: once the Deployment is scaled in, every replica serves only this share of"
    " its capacity (what an auto-apply's verification should catch and roll back).",
)
def replay(
    target: str,
    trace_path: Path,
    speedup: float,
    backfill: str | None,
    record: Path | None,
    capacity_cut: float | None,
) -> None:
    """Serve a demand trace as the vLLM and DCGM metrics of a Deployment's pods until it ends.

    Each Ready pod of the target gets a /metrics endpoint that the lab's Prometheus scrapes
    (labels namespace and pod as the pod's); the trace's requests/s are split over the Ready
    pods, each behaving as the engine predicts for its GPU (queueing when overloaded). Latency
    follows the WorkloadProfile that targets the Deployment, else an 8B chat model. Prints one
    summary line; bad input is one `error:` line and exit code 2."""
    from greenmatrix_lab.replay import Replay
    from greenmatrix_lab.trace import TraceError, parse_duration
    from greenmatrix_lab.workload import Target, TargetError

    try:
        backfill_s = parse_duration(backfill) if backfill else 0.0
        lab = Lab()
        if not lab.is_up():
            raise click.ClickException(f"no healthy lab in {lab.layout.run_dir}; run `greenmatrix lab up`")
        job = Replay(
            lab,
            Target.parse(target),
            trace_path,
            speedup,
            backfill_s,
            record=record,
            say=_say_replay,
            capacity_cut=capacity_cut,
        )
        signal.signal(signal.SIGTERM, lambda *_: job.stop())
        summary = job.run()
    except (TargetError, TraceError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except LabError as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:  # before serving began: nothing to clean up, nothing served
        sys.exit(130)
    click.echo(summary.line(job.target))


def _say_replay(message: str) -> None:
    click.echo(f"replay: {message}", err=True)


def _node_summary(lab: Lab) -> str:
    result = lab.kubectl("get", "nodes", "-l", f"{LAB_NODE_LABEL}=true", "-o", "json", check=False)
    if result.returncode != 0:
        return f"nodes: unknown ({result.stderr.strip()})"
    nodes = json.loads(result.stdout)["items"]
    ready = sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        for n in nodes
    )
    return f"nodes: {ready}/{len(nodes)} Ready"
