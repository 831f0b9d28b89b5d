#!/usr/bin/env bash
# `make run` with a real node (see hack/demo.sh): a real download Job, a simulated GPU server.
#
# What is real: the control plane, the worker node "real-node" (kubelet, containerd, runc,
# CNI bridge, kube-proxy, CoreDNS), its volumes (local-path-provisioner), the operator's image
# (built here from images/operator/Dockerfile) installed by helm, the download Job's pod.
# What is simulated: the GPU nodes and the vLLM pods on them (kwok), the Hugging Face Hub (a
# pod serving 256 MiB of generated shards under MiniMax-M2.5's name; not the model).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
ns=${DEMO_NAMESPACE:-demo}
name=${DEMO_CLUSTER:-minimax-real}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the local cluster $name: a real node beside two simulated 8-GPU nodes"
echo "(first run on a machine: builds kubelet, containerd, runc, CoreDNS and the images, about 15 min)"
kubeconfig=$(REAL_NODE=1 "$here/cluster.sh" up "$name")
export KUBECONFIG=$kubeconfig PATH="$("$here/tools.sh"):$PATH"
kubectl get nodes -o wide

say "Installing the operator with helm (image $(awk '/^appVersion:/ {gsub(/"/, "", $2); print "ghcr.io/chatos/minimax-operator:" $2}' "$root/charts/minimax-operator/Chart.yaml"), built here)"
helm upgrade --install minimax-operator "$root/charts/minimax-operator" -n minimax-system --create-namespace \
  --set replicas=1 --wait --timeout 180s >/dev/null
kubectl get pods -n minimax-system -o wide

say "Starting the Hub stand-in in namespace hub (generated shards, not MiniMax's weights)"
kubectl create namespace hub --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create configmap fakehub -n hub --from-file="$root/tests/harness/fakehub.py" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create secret generic hub-token -n hub --from-literal=token="hf_demo_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n hub -f "$here/hub/hub.yaml" >/dev/null
kubectl rollout status -n hub deployment/hub --timeout=180s >/dev/null
hub_ip=$(kubectl get pods -n hub -l app=hub -o jsonpath='{.items[0].status.podIP}')
# 2 MiB/s a connection, so that the download takes about half a minute and its progress shows.
python3 -c "import urllib.request as u; u.urlopen(u.Request('http://$hub_ip:8080/_rate?bytes_per_second=$((2 << 20))', method='PUT'))"

say "Applying MiniMax-M2.5 (docs/examples/minimax-m2.5.yaml) with the stand-in as its Hub"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$ns" -f "$root/docs/examples/chatos-configmap.yaml" >/dev/null
kubectl delete mmd -n "$ns" m25 --ignore-not-found --timeout=60s >/dev/null
kubectl delete mmc -n "$ns" --all --timeout=60s >/dev/null  # a fresh download each run
kubectl apply -n "$ns" -f - <<'EOF'
apiVersion: minimax.chatos.io/v1alpha1
kind: MiniMaxDeployment
metadata:
  name: m25
spec:
  model: MiniMax-M2.5
  maxModelLen: 65536
  chatos:
    displayName: MiniMax M2.5
  download:
    endpoint: http://hub.hub.svc.cluster.local
EOF

say "The download Job runs on real-node; kubectl get mmd shows its progress"
printf '%s\n' "$(kubectl get mmd -n "$ns" m25 | head -1)"
for _ in $(seq 150); do
  phase=$(kubectl get mmd -n "$ns" m25 -o jsonpath='{.status.phase}')
  printf '%s\n' "$(kubectl get mmd -n "$ns" m25 --no-headers)"
  [[ "$phase" == Ready ]] && break
  sleep 3
done
if [[ "$phase" != Ready ]]; then
  kubectl get mmd -n "$ns" m25 -o yaml >&2
  echo "demo: m25 did not become Ready; kubectl logs -n minimax-system deploy/minimax-operator" >&2
  exit 1
fi
cache=$(kubectl get mmd -n "$ns" m25 -o jsonpath='{.status.cache}')
kubectl get mmc -n "$ns" -o wide
say "The download pod (real) and the last lines of its log"
kubectl get pods -n "$ns" -l "minimax.chatos.io/cache=$cache" -o wide
pod=$(kubectl get pods -n "$ns" -l "minimax.chatos.io/cache=$cache,app.kubernetes.io/component=weights-download" \
  -o jsonpath='{.items[-1:].metadata.name}')
kubectl logs -n "$ns" "$pod" | tail -3
say "The vLLM server (simulated on a kwok GPU node) and its Service"
kubectl get deployment,service,pods -n "$ns" -l app.kubernetes.io/instance=m25 -o wide
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
say "The operator keeps running in the cluster"
echo "kubectl logs -n minimax-system deploy/minimax-operator -f    # its log"
echo "hack/cluster.sh down $name                                   # delete the cluster and the node"
