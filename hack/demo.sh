#!/usr/bin/env bash
# `make run`: the operator's whole job on the local cluster, end to end.
#
# Starts the local cluster (a real API server, scheduler and controllers; kwok
# simulates the two 8-GPU nodes, so no GPU and no vLLM process is involved),
# installs the CRD, runs the operator, applies the MiniMax-M2.5 example next to a
# ChatOS ConfigMap and shows the resource reaching Ready and the ConfigMap patched.
# The operator then keeps running in the foreground (Ctrl-C stops it);
# DEMO_EXIT=1 stops it and exits instead. `make cluster-down` deletes the cluster.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-python3}
ns=${DEMO_NAMESPACE:-demo}

kubeconfig=$("$here/cluster.sh" up)
export KUBECONFIG=$kubeconfig PATH="$("$here/tools.sh"):$PATH"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing the CRDs"
kubectl apply --server-side -f "$root/crds" >/dev/null
kubectl wait --for=condition=Established crd/minimaxdeployments.minimax.chatos.io \
  crd/minimaxmodelcaches.minimax.chatos.io >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$ns" -f "$root/docs/examples/chatos-configmap.yaml" >/dev/null

say "Starting the operator (log: $(dirname "$kubeconfig")/operator-demo.log)"
log="$(dirname "$kubeconfig")/operator-demo.log"
"$python" -m minimax_operator run --kubeconfig "$kubeconfig" --namespace "$ns" --resync-seconds 5 \
  --leader-election-namespace "$ns" \
  --metrics-port 0 --health-port 0 --log-format plain >"$log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null || true' EXIT

say "Applying docs/examples/minimax-m2.5.yaml (simulated GPU nodes: pods run nowhere)"
kubectl apply -n "$ns" -f "$root/docs/examples/minimax-m2.5.yaml"
if ! kubectl wait -n "$ns" --for=jsonpath='{.status.phase}'=Ready mmd/m25 --timeout=120s >/dev/null; then
  kubectl get mmd -n "$ns" m25 -o yaml >&2
  echo "demo: m25 did not become Ready; operator log: $log" >&2
  exit 1
fi
kubectl get mmd -n "$ns"
say "What it created: the model cache (claim and download Job) and the server"
cache=$(kubectl get mmd -n "$ns" m25 -o jsonpath='{.status.cache}')
kubectl get mmc -n "$ns" -o wide
kubectl get pvc,job,pods -n "$ns" -l "minimax.chatos.io/cache=$cache"
kubectl get deployment,service,pods -n "$ns" -l app.kubernetes.io/instance=m25
say "ChatOS ConfigMap $ns/chatos-models, key models.json"
kubectl get configmap chatos-models -n "$ns" -o jsonpath='{.data.models\.json}'
say "Events"
kubectl get events -n "$ns" --field-selector involvedObject.name=m25 --sort-by=.lastTimestamp \
  -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message
echo
echo "KUBECONFIG=$kubeconfig"
if [[ "${DEMO_EXIT:-}" == 1 ]]; then
  kubectl delete -n "$ns" mmd/m25 --timeout=60s >/dev/null
  echo "demo: deleted m25; the entry is gone from ChatOS again:"
  kubectl get configmap chatos-models -n "$ns" -o jsonpath='{.data.models\.json}'
  echo
  echo "demo: the weights stay in their cache for the next resource of the model:"
  kubectl wait -n "$ns" --for=jsonpath='{.status.userCount}'=0 "mmc/$cache" --timeout=60s >/dev/null
  kubectl get mmc -n "$ns"
  exit 0
fi
say "The operator keeps running (Ctrl-C to stop; make cluster-down deletes the cluster)"
wait $op
