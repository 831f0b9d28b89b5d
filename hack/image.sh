#!/usr/bin/env bash
# Build the operator's image without a registry, and import it into the real node.
#
#   hack/image.sh build          build what is missing; print the operator image archive
#   hack/image.sh import SOCKET  build, then import every image into containerd at SOCKET
#
# Three images, each cached as an archive under ~/.cache/minimax-operator/images:
#  - localhost/minimax-base:bookworm: Debian bookworm with Python 3.11 and pip, made by
#    mmdebstrap from this machine's Debian sources (the stand-in for python:3.11-slim,
#    which no registry serves here). Also the local-path helper and the test Hub's image.
#  - ghcr.io/chatos/minimax-operator:<chart appVersion>: images/operator/Dockerfile, built
#    by buildah with BASE=localhost/minimax-base:bookworm; rebuilt when the Dockerfile,
#    pyproject.toml, README.md or anything under operator/ changes.
#  - localhost/minimax-pause:catatonit: the pod sandbox image (Debian's static catatonit).
#  - localhost/vllm-standin:<hash of hack/standin/vllm.py>: the base with hack/standin/vllm.py as
#    /usr/local/bin/vllm, for servers on the real node (autoscaling, server caches); no GPU, no model.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cache=${MINIMAX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/minimax-operator}
out="$cache/images"
mkdir -p "$out"
log() { echo "image: $*" >&2; }

version=$(awk '/^appVersion:/ {gsub(/"/, "", $2); print $2}' "$root/charts/minimax-operator/Chart.yaml")
operator_image="ghcr.io/chatos/minimax-operator:$version"
base_image=localhost/minimax-base:bookworm
pause_image=localhost/minimax-pause:catatonit
standin_key=$(sha256sum "$here/standin/vllm.py" | cut -c1-12)
standin_image=localhost/vllm-standin:$standin_key
base_packages=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd

# Debian's sources as this machine has them, so the base comes from the same mirror apt uses.
sources() {
  local f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [[ -s "$f" ]] && { echo "$f"; return; }
  done
  echo "error: no Debian sources list found for mmdebstrap" >&2; exit 2
}

save() { # image archive: docker-archive keeps the full name for ctr import
  rm -f "$2.tmp"
  buildah push -q "$1" "docker-archive:$2.tmp:$1" >/dev/null && mv "$2.tmp" "$2"
}

build_base() {
  local archive="$out/base-bookworm-$(echo "$base_packages" | sha256sum | cut -c1-12).tar"
  if [[ ! -f "$archive" ]]; then
    local t0=$SECONDS rootfs="$out/rootfs.tar"
    log "building $base_image with mmdebstrap ($base_packages)"
    mmdebstrap --quiet --variant=minbase --include="$base_packages" --format=tar bookworm "$rootfs" "$(sources)" >&2
    local c; c=$(buildah from scratch)
    buildah add -q "$c" "$rootfs" / >/dev/null
    # Debian marks its Python externally managed; the image installs the operator with pip.
    buildah config --env PIP_BREAK_SYSTEM_PACKAGES=1 --env LANG=C.UTF-8 --cmd python3 "$c"
    buildah commit -q "$c" "$base_image" >/dev/null && buildah rm "$c" >/dev/null
    rm -f "$rootfs"
    save "$base_image" "$archive"
    log "built $base_image in $((SECONDS - t0)) s"
  elif ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
    buildah pull -q "docker-archive:$archive" >/dev/null
  fi
  echo "$archive"
}

build_pause() {
  local archive="$out/pause-catatonit.tar"
  if [[ ! -f "$archive" ]]; then
    local c; c=$(buildah from scratch)
    buildah copy -q "$c" "$(command -v catatonit)" /catatonit >/dev/null
    buildah config --entrypoint '["/catatonit", "-P"]' "$c"
    buildah commit -q "$c" "$pause_image" >/dev/null && buildah rm "$c" >/dev/null
    save "$pause_image" "$archive"
  fi
  echo "$archive"
}

build_standin() {
  local archive="$out/vllm-standin-$standin_key.tar"
  if [[ ! -f "$archive" ]]; then
    build_base >/dev/null
    local c; c=$(buildah from "$base_image")
    buildah copy -q --chmod 0755 "$c" "$here/standin/vllm.py" /usr/local/bin/vllm >/dev/null
    # root, as the vllm-openai image runs (a restricted pod's securityContext sets its own user)
    buildah commit -q "$c" "$standin_image" >/dev/null && buildah rm "$c" >/dev/null
    find "$out" -name "vllm-standin-*.tar" ! -name "$(basename "$archive")" -delete
    save "$standin_image" "$archive"
  fi
  echo "$archive"
}

operator_key() { # content of everything the Dockerfile copies
  (cd "$root" && { git ls-files -s images/operator/Dockerfile pyproject.toml README.md operator
                   git diff --no-ext-diff HEAD -- images/operator/Dockerfile pyproject.toml README.md operator
                   git ls-files --others --exclude-standard operator | xargs -r sha256sum; } | sha256sum | cut -c1-12)
}

build_operator() {
  build_base >/dev/null
  local archive; archive="$out/operator-$version-$(operator_key).tar"
  if [[ ! -f "$archive" ]]; then
    local t0=$SECONDS
    log "building $operator_image from images/operator/Dockerfile"
    # Host network and the host's CA bundle only for the build's pip (PyPI through this
    # machine's TLS set-up); neither ends up in the image.
    buildah bud --quiet --isolation chroot --network host --layers=false \
      --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
      --build-arg "BASE=$base_image" -f "$root/images/operator/Dockerfile" -t "$operator_image" "$root" >&2
    find "$out" -name "operator-$version-*.tar" ! -name "$(basename "$archive")" -delete
    save "$operator_image" "$archive"
    buildah rmi --prune >/dev/null 2>&1 || true  # the previous build, now untagged (about 200 MB each)
    log "built $operator_image in $((SECONDS - t0)) s, $(du -m "$archive" | cut -f1) MB"
  fi
  echo "$archive"
}

case "${1:-build}" in
  build) build_pause >/dev/null; build_operator ;;
  import)
    sock=${2:?containerd socket}
    bin=$("$here/tools.sh" --node)
    for a in "$(build_pause)" "$(build_base)" "$(build_operator)" "$(build_standin)"; do
      "$bin/ctr" --address "$sock" -n k8s.io images import --no-unpack=false "$a" >/dev/null
    done
    log "imported $operator_image, $base_image, $standin_image and $pause_image into the node"
    ;;
  standin-image) echo "$standin_image" ;;
  *) echo "usage: $0 build|import SOCKET|standin-image" >&2; exit 2 ;;
esac
