#!/usr/bin/env bash
# `make run`: the operator's whole job on the local cluster, end to end.
#
# As root (the CI and development machines), with a real node: the local cluster gets a
# real worker node (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS, local-path volumes;
# hack/node.sh), the operator's image is built here and installed with helm, and a stand-in
# for the Hugging Face Hub runs as a pod. The download Job then runs for real, as the image's
# non-root user, into a real volume, with its progress in `kubectl get mmd`. Simulated: the
# GPU nodes and the vLLM servers on them (kwok), and the weights (256 MiB of generated shards
# served under MiniMax-M2.5's name, not the model).
# Without root, or with REAL_NODE=0: every node is simulated and the operator runs here as a
# process (the previous demo).
# The operator then keeps running; DEMO_EXIT=1 deletes the resource and exits instead.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-python3}
ns=${DEMO_NAMESPACE:-demo}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
real=${REAL_NODE:-auto}
if [[ "$real" == auto ]]; then real=0; [[ $(id -u) == 0 ]] && real=1; fi
if [[ "$real" == 1 ]]; then exec "$here/demo-real.sh"; fi
say "Simulated demo (REAL_NODE=0 or not root): no container runs, the operator runs here"

kubeconfig=$("$here/cluster.sh" up)
export KUBECONFIG=$kubeconfig PATH="$("$here/tools.sh"):$PATH"

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
