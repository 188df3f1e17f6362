"""Options commands share: input and output CSV files, durations, the forecast horizon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class DurationType(click.ParamType):
    """A duration as manifests write it (30s, 5m, 1h30m), in seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        from greenmatrix.api.meta import duration_seconds  # pydantic loads only when a duration is read

        try:
            seconds = duration_seconds(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than 0s", param, ctx)
        return seconds


DURATION = DurationType()


def csv_option(flag: str, dest: str, help: str, *, required: bool = True) -> Callable[[F], F]:
    """An input CSV file that must exist."""
    kind = click.Path(exists=True, dir_okay=False, path_type=Path)
    return click.option(flag, dest, type=kind, required=required, help=help)


series_option = csv_option(
    "--series", "in_path", "CSV with columns timestamp (ISO 8601 or epoch seconds) and value."
)


def horizon_option(func: F) -> F:
    return click.option(
        "--horizon", type=DURATION, required=True, help="How far ahead each forecast looks (e.g. 1h, 30m)."
    )(func)


def out_option(func: F) -> F:
    return click.option(
        "--out",
        "out_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="Output CSV.",
    )(func)
