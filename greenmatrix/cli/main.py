"""The `greenmatrix` command group: each command's module loads when that command runs.

Engine commands (simulate, predict, train, bench, models, crds) live beside this module, one module
each. Commands that talk to a cluster (`operator`, `lab`) are plugins found through the
`greenmatrix.commands` entry-point group, so this engine package never imports Kubernetes clients;
`greenmatrix --help` lists them with the help their source states, without importing them.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path

import click

from greenmatrix import __version__
from greenmatrix.errors import GreenMatrixError

# Command name -> "module:attribute" of the engine's own commands.
_COMMANDS = {
    "anomalies": "greenmatrix.cli.anomalies:anomalies",
    "autoscale": "greenmatrix.cli.autoscale:autoscale",
    "bench": "greenmatrix.cli.bench:bench",
    "crds": "greenmatrix.cli.crds:crds",
    "forecast": "greenmatrix.cli.forecast:forecast",
    "models": "greenmatrix.cli.models:models",
    "predict": "greenmatrix.cli.predict:predict",
    "simulate": "greenmatrix.cli.simulate:simulate",
    "train": "greenmatrix.cli.train:train",
}


@functools.cache
def _plugins() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group="greenmatrix.commands")}


class _Group(click.Group):
    """A click group whose commands import on first use, and that turns domain errors into a one-line
    message and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GreenMatrixError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_COMMANDS, *_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            command = _load(cmd_name)
            if command is None:
                return None
            self.add_command(command, cmd_name)
        return self.commands[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click's own, except that a plugin not loaded yet is listed with the help its source
        # states: importing the operator to print one line would load Kopf and the models.
        commands = [(name, _listed(self, ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in commands if command is not None and not command.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])


def _load(name: str) -> click.Command | None:
    if name in _COMMANDS:
        module, _, attribute = _COMMANDS[name].partition(":")
        return getattr(importlib.import_module(module), attribute)
    entry = _plugins().get(name)
    if entry is None:
        return None
    try:
        return entry.load()
    except ImportError as err:  # a slim install may leave a plugin's dependencies out
        click.echo(f"warning: command '{entry.name}' unavailable: {err}", err=True)
        return None


def _listed(group: _Group, ctx: click.Context, name: str) -> click.Command | None:
    """The command `name`, or for a plugin not loaded yet a stand-in carrying its help."""
    if name in _plugins() and name not in group.commands:
        text = _plugin_help(_plugins()[name])
        if text is not None:
            return click.Command(name, help=text)
    return group.get_command(ctx, name)


def _plugin_help(entry: metadata.EntryPoint) -> str | None:
    """The docstring of the function a plugin command is made from, read from its source file without
    importing it (nor its package); None when it cannot be found that way."""
    module, _, attribute = entry.value.partition(":")
    top, *inner = module.split(".")
    spec = importlib.util.find_spec(top)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder, *inner)
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if source.is_file():
            for node in ast.parse(source.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.FunctionDef) and node.name == attribute:
                    return ast.get_docstring(node)
    return None


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
