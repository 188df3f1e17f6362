"""What `greenmatrix train` writes into `--out`: the folder itself, model files and their model cards.

One writer for the three learners: a card is a mapping of section to body, rendered as markdown;
the held-out results go both into the card's table and, rounded, into the model's sidecar, so tests
can recompute them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from greenmatrix.errors import GreenMatrixError
from greenmatrix.learned.core import CorrectionModel
from greenmatrix.learned.fitting import correction


@contextmanager
def out_directory(path: Path) -> Iterator[Path]:
    """`path` (a `--out` directory) created for the block; GreenMatrixError naming `--out` when it
    cannot be created or written.

    If the block fails, the directories it created are removed again while still empty: an empty
    `--out` would look like the result of a run.
    """
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty(created)
        raise _cannot_create(path, err) from None
    try:
        yield path
    except OSError as err:
        _remove_empty(created)
        # A write that fails mid-file (a full disk) carries no file name; one naming another path
        # is not about --out and shows as what it is.
        where = Path(err.filename) if isinstance(err.filename, str) else None
        if where is None or where == path:
            what = "write into it"
        elif where.is_relative_to(path):
            what = f"write {where.relative_to(path)}"
        else:
            raise
        raise GreenMatrixError("--out", f"{path}: cannot {what} ({err.strerror or err})") from None
    except BaseException:
        _remove_empty(created)
        raise


def _cannot_create(path: Path, err: OSError) -> GreenMatrixError:
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    reason = f"{blocker} is a file, not a directory" if blocker else err.strerror or str(err)
    return GreenMatrixError("--out", f"{path}: cannot create the directory ({reason})")


def _remove_empty(directories: Sequence[Path]) -> None:
    # Deepest first, so a parent made for `path` goes too once `path` is gone.
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def rounded(result: Mapping[str, Any]) -> dict[str, Any]:
    """A result with its floats to 4 decimals and its missing figures (None) left out, as sidecars keep it."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items() if v is not None}


def save_with_card(
    model: CorrectionModel,
    out_dir: Path,
    name: str,
    results: Sequence[Mapping[str, Any]],
    card: Mapping[str, Any],
) -> list[Path]:
    """Write `model` and its card into `out_dir`; the hold-out `results` ride in the sidecar too."""
    # The card's numbers, machine-readable, so tests can recompute and compare them.
    model.info["holdout"] = [rounded(r) for r in results]
    paths = correction.save(model, Path(out_dir), name)
    paths.append(write_model_card(Path(out_dir), name, card))
    return paths


def holdout_table(results: Sequence[Mapping[str, Any]], *, last_result: bool = False) -> list[dict[str, Any]]:
    """The card's held-out metrics table of the MLPerf models (with the last-result yardstick if asked)."""
    rows = []
    for r in results:
        row = {
            "held out": r["holdout"],
            "n": r["n"],
            "MAPE model %": round(r["mape_model"], 1),
            "MAPE roofline %": round(r["mape_roofline"], 1),
            "MAPE profiled %": round(r["mape_profiled"], 1),
            "80% coverage": round(r["coverage80"], 2),
        }
        if last_result:
            last = r.get("mape_last_round")
            row["MAPE last result %"] = round(last, 1) if last is not None else math.nan
        rows.append(row)
    return rows


def conformal_text(model: CorrectionModel) -> str:
    """The card's sentence on constant conformal intervals."""
    return (
        f"80% conformal offsets from out-of-GPU-type residuals: p10 {model.offset_lo:+.3f}, "
        f"p90 {model.offset_hi:+.3f} (log ratio)."
    )


def write_model_card(directory: Path, name: str, card: Mapping[str, Any]) -> Path:
    """Render a model card as markdown at ``directory/<name>.md``.

    ``card`` keys: ``title`` (str), then any sections in order; a section value may be a string
    (paragraph), a list of strings (bullets), a list of dicts (a table, columns from the first
    row) or a dict (``key: value`` bullets).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"# {card.get('title', name)}", ""]
    for heading, body in card.items():
        if heading == "title":
            continue
        lines += [f"## {heading}", ""]
        lines += _render(body)
        lines.append("")
    path = directory / f"{name}.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)


def _render(body: Any) -> list[str]:
    if isinstance(body, str):
        return [body]
    if isinstance(body, Mapping):
        return [f"- **{k}**: {_fmt(v)}" for k, v in body.items()]
    if isinstance(body, Sequence) and body and all(isinstance(r, Mapping) for r in body):
        cols = list(body[0].keys())
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in body]
        return out
    if isinstance(body, Sequence):
        return [f"- {_fmt(x)}" for x in body]
    return [_fmt(body)]
