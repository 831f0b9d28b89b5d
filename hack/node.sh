#!/usr/bin/env bash
# A real worker node for the local cluster: kubelet, containerd 2 with runc, CNI bridge
# networking, kube-proxy, CoreDNS and local-path-provisioner, all on this machine as root.
# Pods that need no GPU run here for real; GPU pods still go to kwok's simulated nodes.
#
#   hack/node.sh prepare          host set-up before the cluster exists (packages, bridge)
#   hack/node.sh start NAME KUBECONFIG
#   hack/node.sh stop  NAME
#
# Called by `hack/cluster.sh up|down` when REAL_NODE=1. One real node per machine: it
# owns the bridge minimax0 (10.244.0.1/24), the kubelet port and kube-proxy's iptables
# chains. Its state lives under the cluster's folder (containerd images, volumes, logs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:?usage: $0 prepare|start|stop [NAME] [KUBECONFIG]}
name=${2:-${CLUSTER_NAME:-minimax}}
cache=${MINIMAX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/minimax-operator}
dir="$cache/kwok/clusters/$name/node"
run="/run/minimax-node/$name"
node=real-node
bridge=minimax0 gateway=10.244.0.1 subnet=10.244.0.0/24
# The pause image of every pod sandbox: Debian's static catatonit in pause mode
# (registry.k8s.io/pause cannot be pulled here; catatonit -P is what podman uses for it).
pause_image=localhost/minimax-pause:catatonit
log() { echo "node: $*" >&2; }

# Debian packages the node needs: iptables and conntrack for kube-proxy, libseccomp-dev and
# pkg-config to build runc; buildah, mmdebstrap and catatonit build the images (hack/image.sh).
packages=(iptables conntrack libseccomp-dev pkg-config catatonit buildah mmdebstrap)
need_packages() {
  local missing=()
  for p in "${packages[@]}"; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]]; then
    echo "error: the real node needs root and the Debian packages: ${missing[*]}" >&2; exit 2
  fi
  log "installing ${missing[*]}"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >&2
}

bridge_up() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  local addrs; addrs=$(ip -4 addr show dev "$bridge")  # not piped into grep -q: SIGPIPE and pipefail
  [[ "$addrs" == *" $gateway/"* ]] || ip addr add "$gateway/24" dev "$bridge"
  ip link set "$bridge" up
  # Pods reach Services through kube-proxy's NAT, also when both ends share the bridge.
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

stop_one() { # name: SIGTERM, then SIGKILL after 10 s
  local pidfile="$dir/$1.pid"
  [[ -f "$pidfile" ]] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

start_one() { # name command...: a daemon with its log and pid file under $dir
  local n=$1; shift
  stop_one "$n"
  nohup "$@" >"$dir/logs/$n.log" 2>&1 &
  echo $! >"$dir/$n.pid"
}

wait_for() { # what seconds command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "$what did not come up; see $dir/logs"; return 1
}

write_configs() {
  local bin=$1 kubeconfig=$2 ca=$3
  mkdir -p "$dir"/{logs,cni,containerd,kubelet,pod-logs,volumes} "$run"
  cat >"$dir/cni/10-minimax.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "minimax",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet", "gateway": "$gateway"}]],
              "dataDir": "$run/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$dir/containerd.toml" <<EOF
version = 3
root = "$dir/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd.sock"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$pause_image"
[plugins.'io.containerd.cri.v1.runtime']
  # This machine's root lacks CAP_SYS_RESOURCE: an oom_score_adj below containerd's own
  # (the pause container's -998, a Guaranteed pod's -997) fails, so it is clamped to it.
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["$bin"]
  conf_dir = "$dir/cni"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "$bin/runc"
  SystemdCgroup = false
EOF
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Kubernetes 1.35+ refuses cgroup v1 unless told; these machines mount v1 hierarchies.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$run/containerd.sock
address: $gateway
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# The API server reaches the kubelet (logs, exec) with no client certificate in this
# cluster; the port listens on the bridge only.
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}, x509: {clientCAFile: "$ca"}}
authorization: {mode: AlwaysAllow}
failSwapOn: false
podLogsDir: $dir/pod-logs
clusterDomain: cluster.local
clusterDNS: [$gateway]
# Images are imported, never pulled: image garbage collection would lose them for good.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
EOF
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$kubeconfig"}
hostnameOverride: $node
mode: iptables
clusterCIDR: $subnet
bindAddress: $gateway
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
EOF
  # Cluster DNS on the bridge (what kube-dns is on a real cluster): Services and pods of
  # cluster.local only, as nothing outside this machine can be reached.
  cat >"$dir/Corefile" <<EOF
.:53 {
    bind $gateway
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
EOF
  cat >"$dir/local-path.json" <<EOF
{"sharedFileSystemPath": "$dir/volumes"}
EOF
  # The provisioner's helper pods create and remove a volume's folder on this node
  # (the path is shared by the simulated nodes too, so volumes have no node affinity).
  cat >"$dir/local-path-helper.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: helper-pod}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  containers:
  - name: helper-pod
    image: localhost/minimax-base:bookworm
    imagePullPolicy: Never
EOF
}

case "$cmd" in
  prepare)
    need_packages
    bridge_up
    ;;
  start)
    kubeconfig=${3:?kubeconfig}
    for other in "$cache"/kwok/clusters/*/node/kubelet.pid; do
      [[ -f "$other" && "$other" != "$dir/kubelet.pid" ]] || continue
      if kill -0 "$(cat "$other")" 2>/dev/null; then
        owner=$(basename "$(dirname "$(dirname "$other")")")
        echo "error: cluster $owner already has this machine's real node; hack/cluster.sh down $owner first" >&2
        exit 1
      fi
    done
    need_packages
    bin=$("$here/tools.sh" --node)
    cpbin=$("$here/tools.sh")
    bridge_up
    ca="$cache/kwok/clusters/$name/pki/ca.crt"
    write_configs "$bin" "$kubeconfig" "$ca"
    export PATH="$bin:$cpbin:$PATH"
    log "starting containerd"
    start_one containerd containerd --config "$dir/containerd.toml"
    wait_for containerd 30 ctr --address "$run/containerd.sock" version
    "$here/image.sh" import "$run/containerd.sock" >&2
    log "starting kubelet and kube-proxy"
    start_one kubelet kubelet --config "$dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
      --hostname-override "$node" --node-ip "$gateway" --root-dir "$dir/kubelet" \
      --node-labels "minimax.chatos.io/real-node=true"
    start_one kube-proxy kube-proxy --config "$dir/kube-proxy.yaml"
    start_one coredns coredns -conf "$dir/Corefile"
    k() { kubectl --kubeconfig "$kubeconfig" "$@"; }
    wait_for "node $node" 60 k get node "$node"
    k wait --for=condition=Ready "node/$node" --timeout=120s >&2
    k apply --server-side -f "$here/kwok/local-path.yaml" >&2
    log "starting local-path-provisioner"
    start_one local-path-provisioner local-path-provisioner --debug start \
      --kubeconfig "$kubeconfig" --namespace local-path-storage --service-account-name default \
      --provisioner-name rancher.io/local-path --config "$dir/local-path.json" \
      --helper-pod-file "$dir/local-path-helper.yaml" --configmap-name local-path-config
    log "ready: node $node (pods on $subnet, state in $dir)"
    ;;
  stop)
    bin=$("$here/tools.sh" --node)
    stop_one local-path-provisioner
    stop_one kube-proxy
    stop_one coredns
    stop_one kubelet
    # The pods' containers outlive the kubelet: stop them through containerd's CRI, then containerd.
    if [[ -S "$run/containerd.sock" ]]; then
      PATH="$bin:$PATH" ctr --address "$run/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null | while read -r t; do
        PATH="$bin:$PATH" ctr --address "$run/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
      done
    fi
    stop_one containerd
    # Shims outlive containerd by design; those of this node's pods go with it.
    pkill -f -- "-address $run/containerd.sock" 2>/dev/null || true
    # Leftover mounts of the kubelet (volumes) and containerd (rootfs) under the node's folders.
    if [[ -d "$dir" ]]; then
      { grep -o " $dir[^ ]*\| $run[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    fi
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do ip netns delete "$ns" 2>/dev/null || true; done
    "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true  # its iptables chains
    rm -rf "$run"
    log "node of $name stopped"
    ;;
  *) echo "usage: $0 prepare|start|stop [NAME] [KUBECONFIG]" >&2; exit 2 ;;
esac
