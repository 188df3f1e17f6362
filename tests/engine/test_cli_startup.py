"""`greenmatrix --help` and every engine command's `--help` start like a CLI: no model, numerics,
schema or cluster library is imported before a command runs (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

HEAVY = ("xgboost", "numpy", "pydantic", "yaml", "rich", "kopf", "kubernetes", "greenmatrix_operator")
PROBE = """
import json, sys
sys.argv = ["greenmatrix", *sys.argv[1:]]
from greenmatrix.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def _imported(*args: str) -> tuple[set[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1])), result.stdout


def test_help_imports_no_heavy_module_and_lists_the_plugins() -> None:
    imported, output = _imported("--help")
    assert not imported.intersection(HEAVY), sorted(imported.intersection(HEAVY))
    # The plugins are listed with their help without importing them.
    assert re.search(r"\n  operator +Run the GreenMatrix operator", output)
    assert re.search(r"\n  lab +Run a local Kubernetes", output)


COMMANDS = [
    "simulate",
    "predict",
    "train",
    "bench",
    "bench accuracy",
    "bench forecast",
    "bench autoscale",
    "models",
    "crds",
    "forecast",
    "anomalies",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_imports_no_heavy_module(command: str) -> None:
    imported, output = _imported(*command.split(), "--help")
    assert output.startswith(f"Usage: greenmatrix {command} ")
    assert not imported.intersection(HEAVY), sorted(imported.intersection(HEAVY))


def test_operator_help_loads_neither_kopf_nor_the_models() -> None:
    imported, output = _imported("operator", "--help")
    assert output.startswith("Usage: greenmatrix operator ")
    assert "--workers" in output
    assert not imported.intersection({"xgboost", "numpy", "kopf", "kubernetes"}), sorted(imported)
