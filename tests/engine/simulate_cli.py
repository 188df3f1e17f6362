"""`greenmatrix simulate` as a test drives it: the CLI run in-process, manifests written to a temporary
folder, and the one-line refusal a bad option gets."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from greenmatrix.cli import main

ROOT = Path(__file__).resolve().parents[2]
CHAT = ROOT / "examples" / "llama-8b-chat.yaml"

# A chat workload; %s is its spec.hardware.
WORKLOAD = """
apiVersion: greenmatrix.io/v1alpha1
kind: WorkloadProfile
metadata: {name: chat}
spec:
  task: inference
  model: {name: meta-llama/Llama-3.1-8B-Instruct}
  inference: {requestsPerSecond: 5}
  hardware: %s
"""
# A policy; %s is its spec's lines, indented.
POLICY = """
apiVersion: greenmatrix.io/v1alpha1
kind: OptimizationPolicy
metadata: {name: p}
spec:
%s
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write(tmp_path: Path, text: str, name: str = "w.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def refused(result: Result, option: str) -> str:
    """The error line of a run refused because of `option`: exit 2, one line, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {option}: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr
