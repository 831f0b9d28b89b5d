#!/usr/bin/env bash
# Start or stop the local cluster: a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) run by kwokctl's binary runtime, with
# kwok simulating two 8-GPU nodes and one CPU node (no kubelet, no containers).
# With REAL_NODE=1 (on create; needs root) the CPU node is a real one instead: kubelet,
# containerd, runc, CNI bridge, kube-proxy and local-path-provisioner (hack/node.sh), with
# the operator's image built and imported (hack/image.sh). GPU nodes stay simulated.
#
#   hack/cluster.sh up   [NAME]   create or restart; prints the kubeconfig path
#   hack/cluster.sh down [NAME]   delete the cluster, its node and its provisioner
#   hack/cluster.sh kubeconfig [NAME]
#   hack/cluster.sh real-node-owner   the cluster that has this machine's real node, if one runs
#   hack/cluster.sh restart [NAME]    stop and start the control plane (the fault tests' API server restart)
# NAME defaults to $CLUSTER_NAME or "minimax". Several clusters can run at once.
# LWS=0 leaves LeaderWorkerSet out (hack/lws.py runs its controller, webhooks included, by default).
# AUTOSCALING=1 (a real-node cluster) also runs Prometheus, KEDA and its HTTP add-on (hack/autoscaling.py);
# point the operator at them with the JSON line it prints (the chart's autoscaling.* values).
# SERVICE_CIDR (on create) widens the Service IP range, e.g. 10.96.0.0/16 (the default
# range holds about 250 Services; bench/scale.py needs thousands).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-up}
name=${2:-${CLUSTER_NAME:-minimax}}
cache=${MINIMAX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/minimax-operator}
export KWOK_WORKDIR="$cache/kwok"
dir="$KWOK_WORKDIR/clusters/$name"
kubeconfig="$cache/kubeconfig-$name"
python=${PYTHON:-python3}

bin=$("$here/tools.sh")
export PATH="$bin:$PATH"
log() { echo "cluster: $*" >&2; }

provisioner_stop() {
  if [[ -f "$dir/provisioner.pid" ]]; then
    kill "$(cat "$dir/provisioner.pid")" 2>/dev/null || true
    rm -f "$dir/provisioner.pid"
  fi
}
# Not `kwokctl get clusters | grep -q`: grep may quit at the first match before kwokctl has written
# the names after it, kwokctl then dies of SIGPIPE and pipefail turns the match into a failure (as
# node.sh notes; a benchmark's `down` once left its cluster running, found still there afterwards).
known() { local all; all=$(kwokctl get clusters 2>/dev/null || true); grep -qx "$1" <<< "$all"; }

case "$cmd" in
  up)
    if known "$name"; then
      log "starting existing cluster $name"
      [[ -f "$dir/real-node" ]] && "$here/node.sh" prepare
      kwokctl start cluster --name "$name" >&2
    else
      log "creating cluster $name (kube-apiserver $(kube-apiserver --version | awk '{print $2}'))"
      extra=()
      if [[ "${REAL_NODE:-}" == 1 ]]; then
        "$here/node.sh" prepare  # the bridge's address goes into the API server's certificate
        extra+=(--config "$here/kwok/real-node.yaml")
      fi
      if [[ -n "${SERVICE_CIDR:-}" ]]; then
        extra+=(--extra-args "kube-apiserver=service-cluster-ip-range=$SERVICE_CIDR")
        extra+=(--extra-args "kube-controller-manager=service-cluster-ip-range=$SERVICE_CIDR")
      fi
      kwokctl create cluster --name "$name" --runtime binary \
        --kube-apiserver-binary "$bin/kube-apiserver" \
        --kube-controller-manager-binary "$bin/kube-controller-manager" \
        --kube-scheduler-binary "$bin/kube-scheduler" \
        --etcd-binary "$bin/etcd" \
        --kwok-controller-binary "$bin/kwok" \
        --kube-admission --kube-authorization \
        --kube-audit-policy "$here/kwok/audit-policy.yaml" \
        --config "$here/kwok/stages.yaml" \
        --kubeconfig "$kubeconfig" \
        --wait 120s ${extra[@]+"${extra[@]}"} >&2
      [[ "${REAL_NODE:-}" == 1 ]] && touch "$dir/real-node"
    fi
    kwokctl get kubeconfig --name "$name" > "$kubeconfig.tmp" && mv "$kubeconfig.tmp" "$kubeconfig"
    k() { kubectl --kubeconfig "$kubeconfig" "$@"; }
    for _ in $(seq 60); do k get --raw /readyz >/dev/null 2>&1 && break; sleep 1; done
    if [[ -f "$dir/real-node" ]]; then
      k apply --server-side -f "$here/kwok/nodes.yaml" -l nvidia.com/gpu.present=true >&2
      "$here/node.sh" start "$name" "$kubeconfig"
    else
      k apply --server-side -f "$here/kwok/nodes.yaml" -f "$here/kwok/storage.yaml" >&2
      provisioner_stop
      nohup "$python" "$here/fake_provisioner.py" --kubeconfig "$kubeconfig" > "$dir/provisioner.log" 2>&1 &
      echo $! > "$dir/provisioner.pid"
    fi
    k wait --for=condition=Ready node --all --timeout=60s >&2
    # LeaderWorkerSet, for models served over several nodes (LWS=0: a cluster without it).
    if [[ "${LWS:-1}" != 0 ]]; then
      "$python" "$here/lws.py" start --kubeconfig "$kubeconfig" --dir "$dir" >&2
    fi
    if [[ "${AUTOSCALING:-0}" == 1 ]]; then
      [[ -f "$dir/real-node" ]] || { log "AUTOSCALING=1 needs a real-node cluster (REAL_NODE=1 on create)"; exit 2; }
      "$python" "$here/autoscaling.py" start --kubeconfig "$kubeconfig" --dir "$dir/autoscaling" >&2
    fi
    log "ready: export KUBECONFIG=$kubeconfig"
    echo "$kubeconfig"
    ;;
  down)
    provisioner_stop
    "$python" "$here/lws.py" stop --dir "$dir" >&2 || true
    [[ -d "$dir/autoscaling" ]] && { "$python" "$here/autoscaling.py" stop --dir "$dir/autoscaling" >&2 || true; }
    if [[ -f "$dir/real-node" ]]; then
      "$here/node.sh" stop "$name" || log "stopping the real node failed; deleting the cluster anyway"
    fi
    if known "$name"; then
      kwokctl delete cluster --name "$name" --kubeconfig "$kubeconfig" >&2
    fi
    rm -f "$kubeconfig"
    log "cluster $name is down"
    ;;
  kubeconfig) echo "$kubeconfig" ;;
  restart)
    kwokctl stop cluster --name "$name" >&2
    exec "$0" up "$name"
    ;;
  real-node-owner)
    # One real node per machine (hack/node.sh refuses a second): `make run` leaves the demo's
    # cluster up, and the real-node tests use it rather than fail.
    for pid in "$KWOK_WORKDIR"/clusters/*/node/kubelet.pid; do
      [[ -f "$pid" ]] && kill -0 "$(cat "$pid")" 2>/dev/null && basename "$(dirname "$(dirname "$pid")")"
    done
    true
    ;;
  audit-log) echo "$dir/logs/audit.log" ;;
  *) echo "usage: $0 up|down|restart|kubeconfig|audit-log|real-node-owner [NAME]" >&2; exit 2 ;;
esac
