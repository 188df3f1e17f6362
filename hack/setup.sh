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
# Reinstall only when the dependency list changed: a warm run stays fast.
stamp="$VENV/.greenmatrix-deps"
want="$(sha1sum "$ROOT/pyproject.toml" | cut -c1-40)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing GreenMatrix and its test tools into $VENV" >&2
  log="$VENV/pip-install.log"
  # The build backend's deprecation chatter is noise here; the log keeps it for a failure.
  "$VENV/bin/pip" install --quiet -e "$ROOT[test]" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
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
