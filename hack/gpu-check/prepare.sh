#!/usr/bin/env bash
# Here (with network): fetch vLLM and the packages the GPU machine lacks, and cut them into
# parts small enough to carry (the device tool moves at most 64 MiB per call).
#
#   hack/gpu-check/prepare.sh            -> .gpu/part-00 ... (ignored by git)
#   VLLM_VERSION=0.23.0 hack/gpu-check/prepare.sh  -> .gpu/0.23.0/part-00 ... (device-requirements-0.23.0.txt;
#                                        on the GPU machine: VLLM=0.23.0 hack/gpu-check/run.sh ...)
#
# vLLM's wheel loses _vllm_fa2_C.abi3.so (FlashAttention 2, for GPUs before Hopper: 191 MB);
# device-requirements.txt is `uv pip compile` of vllm==0.20.2 for Python 3.12, x86_64
# manylinux_2_35, packages no newer than the vLLM release (2026-05-10), minus what the GPU
# machine's image has (torch, triton, numpy, transformers, tokenizers, huggingface_hub, ...)
# and minus optional kernels vLLM imports only when used (flashinfer, cutlass-dsl, tilelang).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
vllm=${VLLM_VERSION:-0.20.2}
if [[ $vllm == 0.20.2 ]]; then
  work=${GPU_CHECK_WORK:-$HOME/.cache/minimax-operator/gpu-check} reqs=$here/device-requirements.txt parts=$root/.gpu
else
  work=${GPU_CHECK_WORK:-$HOME/.cache/minimax-operator/gpu-check-$vllm}
  reqs=$here/device-requirements-$vllm.txt parts=$root/.gpu/$vllm
fi
mkdir -p "$work/wheels" "$work/deps"
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
pip_dl() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform any "$@"
}
pip_dl -d "$work/wheels" "vllm==$vllm"
pip_dl -d "$work/deps" -r "$reqs"
if [[ ! -f "$work/vllm.tar.xz" ]]; then
  rm -rf "$work/vllm" && mkdir -p "$work/vllm"
  (cd "$work/vllm" && unzip -q "$work"/wheels/vllm-"$vllm"-*.whl && rm -f vllm/vllm_flash_attn/_vllm_fa2_C*.so)
  tar -C "$work/vllm" -cf - . | xz -T0 -6 > "$work/vllm.tar.xz.tmp" && mv "$work/vllm.tar.xz.tmp" "$work/vllm.tar.xz"
fi
grep -qx '/.gpu/' "$root/.git/info/exclude" 2>/dev/null || echo '/.gpu/' >> "$root/.git/info/exclude"
if [[ $vllm != 0.20.2 ]]; then
  rm -rf "$parts" && mkdir -p "$parts"
  tar -C "$work" -cf - vllm.tar.xz deps | split -b 56m -d - "$parts/part-"
  ls -la "$parts"
  exit 0
fi
rm -rf "$root/.gpu" && mkdir -p "$root/.gpu"
tar -C "$work" -cf - vllm.tar.xz deps | split -b 56m -d - "$root/.gpu/part-"
# The Run:ai model streamer, which the vllm-openai image installs (docker/Dockerfile: runai-model-streamer
# >=0.15.7) for `--load-format runai_streamer`: the load benchmark tries it (run.sh load). Carried with part-00.
mkdir -p "$root/.gpu/loaders"
(cd "$root/.gpu/loaders" && python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform any "runai-model-streamer==0.16.1" "humanize==4.17.0")
ls -la "$root/.gpu" "$root/.gpu/loaders"
