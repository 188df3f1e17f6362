#!/usr/bin/env bash
# The quick start: a local cluster with fake GPU nodes, GreenMatrix's CRDs and operator, the
# examples applied, the chat example's Deployment serving a replayed day of demand (vLLM and DCGM
# metrics in the lab's Prometheus), ending in `kubectl get wp -A`. The lab stays up for you to explore;
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
kubectl apply -n demo -f hack/demo/llama-8b-chat.yaml >/dev/null
kubectl rollout status -n demo deployment/llama-8b-chat --timeout=120s >/dev/null

log="$(mktemp -t greenmatrix-operator.XXXXXX.log)"
greenmatrix operator --namespace demo --prometheus-url "$GREENMATRIX_PROMETHEUS_URL" >"$log" 2>&1 &
operator=$!
# A day and a half of chat demand at 10x: the first 33 hours become Prometheus history at once, the
# rest is served live (18 minutes), so the forecaster is warm from the first evaluation.
trace="$(mktemp -t greenmatrix-trace.XXXXXX.csv)"
python hack/demo/trace.py >"$trace"
replay_log="$(mktemp -t greenmatrix-replay.XXXXXX.log)"
greenmatrix lab replay --target demo/llama-8b-chat --trace "$trace" --speedup 10 --backfill 33h \
  >"$replay_log" 2>&1 &
replay=$!
trap 'kill "$operator" "$replay" 2>/dev/null; wait "$operator" "$replay" 2>/dev/null || true' EXIT
echo "== operator running (log: $log), replay serving (log: $replay_log); waiting for recommendations ==" >&2
if ! kubectl wait --for=condition=Ready wp --all -n demo --timeout=180s >/dev/null; then
  echo "some WorkloadProfiles are not Ready; their conditions say why:" >&2
fi
echo "== waiting for the chat workload's first live evaluation (at most its policy's 2m interval) ==" >&2
for _ in $(seq 180); do
  [ -n "$(kubectl get wp -n demo llama-8b-chat -o jsonpath='{.status.scaling.desiredReplicas}')" ] && break
  sleep 1
done
kubectl get wp -A
echo
kubectl get op -A
echo
kubectl get wp -n demo llama-8b-chat -o jsonpath='{.status.scaling.reason}{"\n"}'
echo
echo "The lab is still up: eval \"\$(.venv/bin/greenmatrix lab env)\" to use it, .venv/bin/greenmatrix lab down to stop it." >&2
