"""`greenmatrix crds`: the CustomResourceDefinitions and their reference page, from the API models."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
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
