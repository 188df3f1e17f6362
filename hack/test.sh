#!/usr/bin/env bash
# The test command (README, CI): set up a fresh machine, lint, then run every test, lab tests included.
# Extra arguments go to pytest, e.g. `hack/test.sh tests/engine -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh
# Idle XGBoost threads yield the cores instead of spinning: the lab's processes share them.
export OMP_WAIT_POLICY=PASSIVE
ruff check .
ruff format --check .
exec python -m pytest "$@"
