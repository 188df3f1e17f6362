"""The `greenmatrix` command line: the group in `main`, one module per command, each loaded when its
command runs (so `greenmatrix --help` imports neither XGBoost nor the operator)."""

from greenmatrix.cli.main import main

__all__ = ["main"]
