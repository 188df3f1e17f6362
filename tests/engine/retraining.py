"""Checks shared by the tests of the trainers: a retrain is deterministic, and the held-out scores
are recomputed from the reference data (or the test is skipped without it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def trains_twice_alike(trainer: Any, data: Path, out: Path) -> list[str]:
    """Trains from `data` into out/a and out/b; the results and every file written must agree.
    Returns the names of the files written."""
    first = trainer.train(data, out / "a")
    second = trainer.train(data, out / "b")
    assert first == second
    names = sorted(p.name for p in (out / "a").iterdir())
    for name in names:
        assert (out / "a" / name).read_bytes() == (out / "b" / name).read_bytes(), name
    return names


def holdout_or_skip(trainer: Any, source: Path, data: Path, *args: str) -> list[dict]:
    """`trainer.holdout_results(data, *args)`, or a skip when `source` (the reference data) is absent."""
    if not source.exists():
        pytest.skip(f"reference data not found at {source}")
    return trainer.holdout_results(data, *args)
