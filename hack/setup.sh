#!/usr/bin/env bash
# Prepare a fresh machine for GreenMatrix development: a virtualenv with the project and its test
# tools, and Debian's Prometheus for the lab. Idempotent; sourced by hack/test.sh and hack/demo.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GREENMATRIX_VENV:-$ROOT/.venv}"

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
# Reinstall only when a dependency list changed (the project's or the lab's): a warm run stays fast.
stamp="$VENV/.greenmatrix-deps"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/hack/pyproject.toml" | sha1sum | cut -c1-40)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing GreenMatrix, its lab and its test tools into $VENV" >&2
  log="$VENV/pip-install.log"
  # The build backend's deprecation chatter is noise here; the log keeps it for a failure.
  # The lab (hack/pyproject.toml) is its own distribution: it stays out of the operator's wheel.
  "$VENV/bin/pip" install --quiet -e "$ROOT[test]" -e "$ROOT/hack" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

if ! command -v prometheus >/dev/null 2>&1; then
  echo "setup: installing Debian's prometheus for the lab" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "setup: Go >= 1.24 is needed to build the lab's control plane" >&2; exit 1; }

export PATH="$VENV/bin:$PATH"
export GREENMATRIX_DATA="${GREENMATRIX_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}"
