#!/usr/bin/env bash
# Build (or reuse) the pinned control-plane tools and print the bin directory.
#
# Why: this machine has no Docker engine or registry, so kind cannot run; the
# tests use the real kube-apiserver, etcd, controller-manager and scheduler with
# kwok simulating nodes. Everything is compiled from the Go module proxy and
# cached outside the repository, keyed by version, so a second run builds nothing.
#
# Usage: hack/tools.sh            build what is missing, print the bin dir
#        hack/tools.sh --check    print the bin dir if complete, else exit 1
#        hack/tools.sh --node     also build the real worker node's tools (kubelet,
#                                 kube-proxy, containerd, runc, CNI plugins, CoreDNS,
#                                 local-path-provisioner)
#                                 and print their bin dir instead
#        hack/tools.sh --lws      also build the LeaderWorkerSet controller (LWS_VERSION) and
#                                 print its folder (bin/lws-controller, crds/, webhooks.yaml)
#        hack/tools.sh --autoscaling  also build KEDA (operator, metrics adapter), its HTTP add-on
#                                 (interceptor, scaler) and Prometheus, and print their folder
#                                 (bin/, crds/)
# A tool already on PATH at the pinned version is not honoured blindly; set
# MINIMAX_TOOLS_BIN to a directory holding all of them to skip building.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/tools.env
source "$here/tools.env"

tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm)

if [[ -n "${MINIMAX_TOOLS_BIN:-}" ]]; then
  for t in "${tools[@]}"; do
    [[ -x "$MINIMAX_TOOLS_BIN/$t" ]] || { echo "MINIMAX_TOOLS_BIN=$MINIMAX_TOOLS_BIN lacks $t" >&2; exit 1; }
  done
  echo "$MINIMAX_TOOLS_BIN"; exit 0
fi

cache=${MINIMAX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/minimax-operator}
key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
bin="$cache/$key/bin"
mkdir -p "$bin"

node_tools=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr runc bridge host-local loopback portmap coredns local-path-provisioner)
node_key="node-k8s-${KUBERNETES_VERSION}_containerd-${CONTAINERD_VERSION}_runc-${RUNC_VERSION}_cni-${CNI_PLUGINS_VERSION}_coredns-${COREDNS_VERSION}_lpp-${LOCAL_PATH_PROVISIONER_VERSION}"
node_bin="$cache/$node_key/bin"
want_node=0; [[ "${1:-}" == "--node" ]] && want_node=1
lws_dir="$cache/lws-${LWS_VERSION}"
want_lws=0; [[ "${1:-}" == "--lws" ]] && want_lws=1
lws_complete() { [[ -x "$lws_dir/bin/lws-controller" && -f "$lws_dir/webhooks.yaml" ]]; }
scale_dir="$cache/autoscaling-keda-${KEDA_VERSION}_http-${KEDA_HTTP_VERSION}_prometheus-${PROMETHEUS_VERSION}"
want_scale=0; [[ "${1:-}" == "--autoscaling" ]] && want_scale=1
scale_tools=(keda keda-adapter keda-http-interceptor keda-http-scaler prometheus)
scale_complete() {
  for t in "${scale_tools[@]}"; do [[ -x "$scale_dir/bin/$t" ]] || return 1; done
  [[ -f "$scale_dir/crds/keda.sh_scaledobjects.yaml" && -f "$scale_dir/crds/http.keda.sh_httpscaledobjects.yaml" ]]
}

complete() { for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || return 1; done; }
node_complete() { for t in "${node_tools[@]}"; do [[ -x "$node_bin/$t" ]] || return 1; done; }
if complete && { ((want_node == 0)) || node_complete; } && { ((want_lws == 0)) || lws_complete; } &&
   { ((want_scale == 0)) || scale_complete; }; then
  if ((want_node)); then echo "$node_bin"; elif ((want_lws)); then echo "$lws_dir";
  elif ((want_scale)); then echo "$scale_dir"; else echo "$bin"; fi
  exit 0
fi
[[ "${1:-}" == "--check" ]] && exit 1

command -v go >/dev/null || { echo "error: Go is not installed; install Go >= 1.26 (https://go.dev/dl) to build the local cluster" >&2; exit 2; }
log() { echo "tools: $*" >&2; }
# Build into a temp name and rename, so an interrupted build never leaves a half binary.
work="$cache/$key/build"; mkdir -p "$work"
export GOFLAGS="-trimpath" CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

build_kubernetes() { # BIN TOOL...: the Kubernetes commands missing from BIN
  local out=$1; shift
  local missing=()
  for t in "$@"; do [[ -x "$out/$t" ]] || missing+=("$t"); done
  ((${#missing[@]})) || return 0
  local v=$KUBERNETES_VERSION staging="v0.${KUBERNETES_VERSION#v1.}"
  local dir="$work/kubernetes"; mkdir -p "$dir"
  log "building ${missing[*]} $v (cold: about 15-30 min on 2 cores)"
  {
    echo "module minimax-operator.local/k8s-tools"; echo; echo "go 1.26.0"; echo
    echo "require k8s.io/kubernetes $v"; echo
    echo "replace ("
    # Every staging module that k8s.io/kubernetes points at ./staging gets its published twin.
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
      cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt \
      kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
      mount-utils pod-security-admission sample-apiserver sample-controller streaming; do
      echo "  k8s.io/$m => k8s.io/$m $staging"
    done
    echo ")"
  } > "$dir/go.mod"
  cat > "$dir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  local minor=${v#v1.}; minor=${minor%%.*}
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v"
  (cd "$dir" && go mod tidy -e >/dev/null 2>&1 || true; cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod -tags=tools" go mod download k8s.io/kubernetes)
  for t in "${missing[@]}"; do
    (cd "$dir" && go build -mod=mod -ldflags "$ld" -o "$out/.$t.tmp" "k8s.io/kubernetes/cmd/$t") && mv "$out/.$t.tmp" "$out/$t"
    log "built $t"
  done
}

build_etcd() {
  [[ -x "$bin/etcd" ]] && return 0
  local dir="$work/etcd"; mkdir -p "$dir"
  log "building etcd $ETCD_VERSION"
  printf 'module minimax-operator.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$dir/go.mod"
  cat > "$dir/main.go" <<'GO'
// Command etcd is the upstream etcd server, built from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy >/dev/null && go build -ldflags "-s -w" -o "$bin/.etcd.tmp" .) && mv "$bin/.etcd.tmp" "$bin/etcd"
  log "built etcd"
}

build_install() { # name module@version [ldflags] [BIN]
  local out=${4:-$bin}
  [[ -x "$out/$1" ]] && return 0
  log "building $1 from $2"
  GOBIN="$work/gobin" go install -ldflags "-s -w ${3:-}" "$2"
  if [[ ! -x "$work/gobin/$1" ]]; then  # seen once on a cold build: go install returned 0, no binary
    log "no $1 binary after go install; trying once more"
    GOBIN="$work/gobin" go install -ldflags "-s -w ${3:-}" "$2"
  fi
  mv "$work/gobin/$1" "$out/$1"
}

build_node() {
  mkdir -p "$node_bin"
  build_kubernetes "$node_bin" kubelet kube-proxy
  local cv=${CONTAINERD_VERSION#v}
  for t in containerd containerd-shim-runc-v2 ctr; do
    build_install "$t" "github.com/containerd/containerd/v2/cmd/$t@$CONTAINERD_VERSION" \
      "-X github.com/containerd/containerd/v2/version.Version=$cv" "$node_bin"
  done
  # runc needs cgo and libseccomp (seccomp profiles are how restricted pods run); hack/node.sh
  # installs libseccomp-dev before it builds.
  if [[ ! -x "$node_bin/runc" ]]; then
    CGO_ENABLED=1 GOFLAGS="$GOFLAGS -tags=seccomp" build_install runc "github.com/opencontainers/runc@$RUNC_VERSION" "-X main.version=${RUNC_VERSION#v}" "$node_bin"
  fi
  for p in main/bridge main/loopback ipam/host-local meta/portmap; do
    build_install "${p#*/}" "github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION" "" "$node_bin"
  done
  build_install coredns "github.com/coredns/coredns@$COREDNS_VERSION" "" "$node_bin"
  build_install local-path-provisioner "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION" "" "$node_bin"
}

build_lws() {
  # The controller, its CRDs and its webhook configuration, from the module at LWS_VERSION. Built in
  # a module of our own that requires it at that exact version: `go install pkg@version` asks the
  # proxy for the version list (to check deprecation), which the proxy refuses for this module.
  lws_complete && return 0
  local dir="$work/lws"; mkdir -p "$dir" "$lws_dir/bin" "$lws_dir/crds"
  log "building the LeaderWorkerSet controller $LWS_VERSION (about 1.5 min on 2 cores)"
  printf 'module minimax-operator.local/lws\n\ngo 1.26.0\n\nrequire sigs.k8s.io/lws %s\n' "$LWS_VERSION" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/lws/cmd"\n' > "$dir/tools.go"
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod -tags=tools" go mod tidy -e >/dev/null 2>&1 || true
   cd "$dir" && go build -mod=mod -ldflags "-s -w" -o "$lws_dir/bin/.lws-controller.tmp" sigs.k8s.io/lws/cmd) &&
    mv "$lws_dir/bin/.lws-controller.tmp" "$lws_dir/bin/lws-controller"
  local src; src=$(cd "$dir" && go list -mod=mod -m -f '{{.Dir}}' sigs.k8s.io/lws)
  # (install -m: the module cache's files are read-only; a rebuild must be able to replace them)
  install -m 0644 "$src"/config/crd/bases/*.yaml "$lws_dir/crds/"
  cat "$src/config/webhook/manifests.yaml" > "$lws_dir/webhooks.yaml.tmp"
  # The pod webhooks select LWS's pods only (config/webhook/*-patch.yaml, kustomize's job upstream).
  install -m 0644 "$src/config/webhook/mutating-patch.yaml" "$src/config/webhook/validating-patch.yaml" "$lws_dir/"
  mv "$lws_dir/webhooks.yaml.tmp" "$lws_dir/webhooks.yaml"
  log "built lws-controller"
}

build_module() { # DIR MODULE VERSION OUT PACKAGE...: build packages of MODULE@VERSION into OUT/<name>
  # A module of our own requiring it at that exact version (see build_lws); names as given after '='.
  local dir=$1 module=$2 version=$3 out=$4; shift 4
  mkdir -p "$dir" "$out"
  printf 'module minimax-operator.local/%s\n\ngo 1.26.0\n\nrequire %s %s\n' "$(basename "$dir")" "$module" "$version" > "$dir/go.mod"
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for p in "$@"; do printf '\t_ "%s"\n' "${p#*=}"; done; printf ')\n'; } > "$dir/tools.go"
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod -tags=tools" go mod tidy -e >/dev/null 2>&1 || true)
  for p in "$@"; do
    local name=${p%%=*} pkg=${p#*=}
    [[ -x "$out/$name" ]] && continue
    (cd "$dir" && go build -mod=mod -ldflags "-s -w" -o "$out/.$name.tmp" "$pkg") && mv "$out/.$name.tmp" "$out/$name"
  done
  (cd "$dir" && go list -mod=mod -m -f '{{.Dir}}' "$module")
}

build_autoscaling() {
  scale_complete && return 0
  mkdir -p "$scale_dir/crds"
  log "building KEDA $KEDA_VERSION, its HTTP add-on $KEDA_HTTP_VERSION and Prometheus $PROMETHEUS_VERSION (cold: about 12 min on 2 cores)"
  local src
  src=$(build_module "$work/keda" github.com/kedacore/keda/v2 "$KEDA_VERSION" "$scale_dir/bin" \
    keda=github.com/kedacore/keda/v2/cmd/operator keda-adapter=github.com/kedacore/keda/v2/cmd/adapter)
  install -m 0644 "$src"/config/crd/bases/*.yaml "$scale_dir/crds/"
  src=$(build_module "$work/keda-http" github.com/kedacore/http-add-on "$KEDA_HTTP_VERSION" "$scale_dir/bin" \
    keda-http-interceptor=github.com/kedacore/http-add-on/interceptor keda-http-scaler=github.com/kedacore/http-add-on/scaler)
  install -m 0644 "$src"/config/crd/bases/*.yaml "$scale_dir/crds/"
  build_module "$work/prometheus" github.com/prometheus/prometheus "$PROMETHEUS_VERSION" "$scale_dir/bin" \
    prometheus=github.com/prometheus/prometheus/cmd/prometheus >/dev/null
  log "built the autoscaling tools under $scale_dir"
}

build_kubernetes "$bin" kube-apiserver kube-controller-manager kube-scheduler kubectl
build_etcd
build_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build_install kwokctl "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
complete || { echo "error: some tools failed to build under $bin" >&2; exit 1; }
if ((want_node)); then
  build_node
  node_complete || { echo "error: some node tools failed to build under $node_bin" >&2; exit 1; }
  echo "$node_bin"
elif ((want_lws)); then
  build_lws
  lws_complete || { echo "error: the LeaderWorkerSet controller failed to build under $lws_dir" >&2; exit 1; }
  echo "$lws_dir"
elif ((want_scale)); then
  build_autoscaling
  scale_complete || { echo "error: the autoscaling tools failed to build under $scale_dir" >&2; exit 1; }
  echo "$scale_dir"
else
  echo "$bin"
fi
