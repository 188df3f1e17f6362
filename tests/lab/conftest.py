"""The `lab` fixture: a real control plane, kwok fake GPU nodes and Prometheus (hack/greenmatrix_lab).

It is session-scoped and uses `Lab.borrowed()`: a lab that is already up (a developer ran
`greenmatrix lab up`) is reused and left running; otherwise one is started and stopped when the
last test session using it ends, on failures and Ctrl-C too (atexit covers an interpreter that
exits without running fixture finalizers). Concurrent sessions share one lab safely. The first
start builds the Go binaries (minutes), so lab tests get a longer timeout while nothing is built.

Every test collected from this directory is marked `lab`: skip them with `-m "not lab"`.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from greenmatrix_lab import Lab, LabError
from greenmatrix_lab.toolchain import Toolchain

_HERE = Path(__file__).resolve().parent
_COLD_BUILD_TIMEOUT = 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lab_items = [item for item in items if _HERE in Path(item.path).resolve().parents]
    if not lab_items:
        return
    try:
        first_build = bool(Toolchain(Lab().layout).missing())
    except LabError:
        first_build = False  # no Go: the fixture fails with the explanation
    for item in lab_items:
        item.add_marker(pytest.mark.lab)
        if first_build:
            item.add_marker(pytest.mark.timeout(_COLD_BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    lab = Lab(say=lambda message: print(f"lab: {message}", file=sys.stderr))
    borrowed = lab.borrowed()
    atexit.register(borrowed.__exit__, None, None, None)
    with borrowed:
        yield lab
    atexit.unregister(borrowed.__exit__)
