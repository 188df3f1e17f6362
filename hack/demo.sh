#!/usr/bin/env bash
# The quick start: a local cluster with fake GPU nodes, GreenMatrix's CRDs and operator, the
# examples applied, ending in `kubectl get wp -A`. The lab stays up for you to explore;
# `.venv/bin/greenmatrix lab down` stops it. Runs on a fresh machine (it installs what it needs).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/setup.sh

echo "== starting the lab (the first run builds the control plane from Go modules) ==" >&2
eval "$(greenmatrix lab up)"
kubectl apply --server-side -f crds/ >/dev/null
# `kubectl wait` fails at once on a CRD whose status is not written yet, so retry it for a minute.
for _ in $(seq 60); do
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null 2>&1 && break
  sleep 1
done
kubectl wait --for=condition=Established crd --all --timeout=5s >/dev/null
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n demo -f examples/ >/dev/null

log="$(mktemp -t greenmatrix-operator.XXXXXX.log)"
greenmatrix operator --namespace demo >"$log" 2>&1 &
operator=$!
trap 'kill "$operator" 2>/dev/null; wait "$operator" 2>/dev/null || true' EXIT
echo "== operator running (log: $log); waiting for recommendations ==" >&2
if ! kubectl wait --for=condition=Ready wp --all -n demo --timeout=180s >/dev/null; then
  echo "some WorkloadProfiles are not Ready; their conditions say why:" >&2
fi
kubectl get wp -A
echo
kubectl get op -A
echo
echo "The lab is still up: eval \"\$(.venv/bin/greenmatrix lab env)\" to use it, .venv/bin/greenmatrix lab down to stop it." >&2
