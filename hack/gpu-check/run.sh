#!/usr/bin/env bash
# On the GPU machine, from the repository root:
#   hack/gpu-check/run.sh stash            keep the carried .gpu/part-* outside the work tree
#   hack/gpu-check/run.sh bf16|fp8 [PRESET] install once, then a cold and a warm start of the
#                                          preset's rendered server on a tiny checkpoint
#   hack/gpu-check/run.sh users-cold|users-warm  the default server, then the restricted one (uid 1000),
#                                          on one claim's cache folder: cold, then (a second call) warm
#   hack/gpu-check/run.sh load RUN...      the load benchmark (load_bench.py) on a synthetic 24 GB checkpoint of
#                                          M2's shapes: RUN is LOADER[:warm][:tpN] (default, eager, prefetch,
#                                          runai); the first call also generates it and measures the disk
#   hack/gpu-check/run.sh thinking [PRESET]   the reasoning/answer split with forced output (streaming or not, tools
#                                          or not) and earlier thinking sent back in each field (thinking.py)
#   VLLM=0.23.0 hack/gpu-check/run.sh m1    MiniMax-M1 (config and tokenizer, vLLM's dummy weights), cold and warm
#   VLLM=0.24.0 [TP=2] hack/gpu-check/run.sh m3 [MiniMax-M3|MiniMax-M3-MXFP8]   MiniMax-M3 the same way
#   hack/gpu-check/run.sh multinode [PRESET] on two GPUs: one node TP 2 (the Deployment), then two
#                                          "nodes" of one GPU each, TP and PP (the LeaderWorkerSet's
#                                          leader and worker containers as two processes)
# Reports (JSON) and vLLM's logs go to $OUT (or ./gpu-check-out).
# VLLM=0.23.0 (any version prepare.sh cut into .gpu/VERSION/): that vLLM instead of 0.20.2.
set -euo pipefail
vllm=${VLLM:-0.20.2}
store=/root/gpu-check site=/tmp/site
[[ $vllm == 0.20.2 ]] || store=/root/gpu-check-$vllm site=/tmp/site-$vllm
out=${OUT:-$PWD/gpu-check-out}
mkdir -p "$store" "$out"
if compgen -G ".gpu/part-*" >/dev/null; then mkdir -p /root/gpu-check && mv .gpu/part-* /root/gpu-check/; fi
for d in .gpu/*/; do
  [[ $d == .gpu/loaders/ ]] && continue
  if compgen -G "${d}part-*" >/dev/null; then v=$(basename "$d"); mkdir -p "/root/gpu-check-$v" && mv "$d"part-* "/root/gpu-check-$v/"; fi
done
if [[ -d .gpu/loaders ]]; then mkdir -p "$store/loaders" && mv .gpu/loaders/* "$store/loaders/"; fi
variant=${1:?stash, bf16, fp8, multinode, users-cold or users-warm}
preset=${2:-MiniMax-M2.5}
if [[ $variant == stash ]]; then ls -la /root/gpu-check*; df -h /root | tail -1; exit 0; fi

if [[ ! -f $site/.installed ]]; then
  t0=$(date +%s)
  cat "$store"/part-* | tar -x -C "$store"
  mkdir -p "$site/bin"
  tar -xJf "$store/vllm.tar.xz" -C "$site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$store"/deps/*.whl
  touch "$site/.installed"
  echo "installed vLLM and $(ls "$store"/deps | wc -l) wheels in $(( $(date +%s) - t0 )) s"
fi
for whl in "$store"/loaders/*.whl; do  # extra wheels carried in .gpu/loaders, each installed once,
  # and only where this vLLM's parts lack the package (0.24.0's carry a newer humming-kernels)
  [[ -f $whl && ! -f $site/.installed-$(basename "$whl") ]] || continue
  whl_name=$(basename "$whl"); compgen -G "$site/${whl_name%%-*}-*.dist-info" >/dev/null && continue
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" --upgrade "$whl"
  touch "$site/.installed-$(basename "$whl")"
done
# The image's `vllm` entry point (after the wheels: pip --target replaces bin/); the engine process is
# spawned, hence the __main__ guard.
mkdir -p "$site/bin"
cat > "$site/bin/vllm" <<'PY'
#!/usr/bin/env python3
import sys
from vllm.entrypoints.cli.main import main
if __name__ == "__main__":
    sys.exit(main())
PY
chmod +x "$site/bin/vllm"
export PYTHONPATH=$site:$PWD/operator PATH=$site/bin:$PATH PYTHONUNBUFFERED=1
echo "ulimit -n soft $(ulimit -Sn) hard $(ulimit -Hn)"
python3 -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__, torch.cuda.get_device_name())'

if [[ $variant == load ]]; then
  # The load benchmark: a synthetic checkpoint of M2's real shapes (made once), the disk's floor, then each
  # run: LOADER[:warm][:tpN]. The compile cache is one folder for all runs: the first is cold, the rest warm.
  shift
  synth=/models/MiniMaxAI/synthetic-m2
  if [[ ! -f $synth/.minimax-complete.json ]]; then
    t0=$(date +%s)
    python3 hack/gpu-check/load_bench.py gen "$synth" --layers "${LAYERS:-6}" | tee "$out/load-gen.json"
    echo "generated in $(( $(date +%s) - t0 )) s"; df -h /models | tail -1
    python3 hack/gpu-check/load_bench.py floor "$synth" | tee "$out/load-floor.json"
  fi
  for spec in "$@"; do
    IFS=: read -r loader opt1 opt2 <<< "$spec"
    flags=(); tp=1
    for o in $opt1 $opt2; do [[ $o == warm ]] && flags+=(--warm); [[ $o == tp* ]] && tp=${o#tp}; done
    label="load-${spec//:/-}"
    [[ ${#flags[@]} -gt 0 ]] && python3 -c "import pathlib; [p.read_bytes() for p in pathlib.Path('$synth').glob('*.safetensors')]"
    python3 hack/gpu-check/load_bench.py run "$synth" --loader "$loader" --tp "$tp" "${flags[@]}" --label "$label" \
      --report "$out/$label.json" --log "$out/$label.log" || true
  done
  python3 hack/gpu-check/load_bench.py summary "$out"
  exit 0
fi
model=/models/MiniMaxAI/$preset
[[ $variant == users-warm ]] || rm -rf "$model"
flag=(); [[ $variant == fp8 ]] && flag=(--fp8)
if [[ $variant == users-cold || $variant == users-warm ]]; then
  # One claim, two users: the default server (the image's root) first, then the restricted one
  # (uid 1000), each on the folder the rendered pod mounts; cold (an empty claim) or warm (again).
  [[ $variant == users-cold ]] && rm -rf /var/cache/minimax-claim
  [[ -f $model/config.json ]] || python3 hack/gpu-check/tiny_checkpoint.py "$model"
  chmod -R a+rX /models
  for security in baseline restricted; do
    python3 hack/gpu-check/check.py --preset "$preset" --pod-security "$security" --claim \
      --label "$variant-$security" --report "$out/$variant-$security.json" --log "$out/$variant-$security.log" || true
  done
  find /var/cache/minimax-claim -maxdepth 3 -printf '%u %m %p\n' | sort | tee "$out/$variant-tree.txt"
  exit 0
fi
if [[ $variant == m1 ]]; then
  # MiniMax-M1 on this vLLM (VLLM=0.23.0: the last release that serves it): config and tokenizer only,
  # vLLM's dummy weights; the preset's rendered command otherwise.
  model=/models/MiniMaxAI/MiniMax-M1-40k
  rm -rf "$model" && python3 hack/gpu-check/tiny_checkpoint.py "$model" --family m1
  mkdir -p /var/cache/minimax
  python3 -c 'import transformers; print("transformers", transformers.__version__)'
  for start in cold warm; do
    python3 hack/gpu-check/check.py --preset MiniMax-M1-40k --dummy-weights --label "m1-$vllm-$start" \
      --report "$out/m1-$vllm-$start.json" --log "$out/m1-$vllm-$start.log" || true
  done
  exit 0
fi
if [[ $variant == m3 ]]; then
  # MiniMax-M3 on this vLLM (VLLM=0.24.0: the first release with M3): config and tokenizer only, vLLM's
  # dummy weights, the preset's rendered command (PRESET: MiniMax-M3, or MiniMax-M3-MXFP8 with its flags
  # and an MXFP8 quantization_config). FlashInfer compiles its Gemma RMSNorm with the machine's nvcc
  # (the image carries nvidia-cutlass-dsl and runs the CuTe DSL kernel instead).
  model=/models/MiniMaxAI/$preset
  rm -rf "$model" && python3 hack/gpu-check/tiny_checkpoint.py "$model" --family m3 \
    $([[ $preset == *MXFP8 ]] && echo --mxfp8)
  export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
  echo "nvcc $(nvcc --version | tail -1), CUDA_HOME=$CUDA_HOME"
  mkdir -p /var/cache/minimax
  tp=${TP:-1}  # TP=2 on two GPUs: the preset's expert parallelism over both
  for start in cold warm; do
    label="$preset-$vllm-tp$tp-$start"
    python3 hack/gpu-check/check.py --preset "$preset" --dummy-weights --tp "$tp" --label "$label" \
      --report "$out/$label.json" --log "$out/$label.log" || true
  done
  exit 0
fi
if [[ $variant == pod-mounts ]]; then
  # The pod's mounts (check.py as_pod_mounts: /dev/shm a tmpfs of the rendered size, the weights read-only)
  # at TP 1 and, on two GPUs, TP 2 on one node (NCCL's shared memory in that /dev/shm).
  python3 hack/gpu-check/tiny_checkpoint.py "$model" --kv-heads 2
  rm -rf /var/cache/minimax /var/cache/minimax-claim && mkdir -p /var/cache/minimax
  python3 hack/gpu-check/check.py --preset "$preset" --label pod-mounts-tp1 \
    --report "$out/pod-mounts-tp1.json" --log "$out/pod-mounts-tp1.log" || true
  if [[ $(nvidia-smi -L | wc -l) -ge 2 ]]; then
    python3 hack/gpu-check/check.py --preset "$preset" --layout one-node-tp2 --label pod-mounts-tp2 \
      --report "$out/pod-mounts-tp2.json" --log "$out/pod-mounts-tp2.log" || true
  fi
  exit 0
fi
if [[ $variant == thinking ]]; then
  mkdir -p /var/cache/minimax
  if [[ $preset == MiniMax-M3* ]]; then  # VLLM=0.24.0: M3's tags and parsers, dummy weights
    rm -rf "$model" && python3 hack/gpu-check/tiny_checkpoint.py "$model" --family m3
    export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
    python3 hack/gpu-check/thinking.py --preset "$preset" --dummy-weights --report "$out/thinking-$preset.json" \
      --log "$out/thinking-$preset.log" || true
    exit 0
  fi
  python3 hack/gpu-check/tiny_checkpoint.py "$model"
  python3 hack/gpu-check/thinking.py --preset "$preset" --report "$out/thinking.json" --log "$out/thinking.log" || true
  exit 0
fi
if [[ $variant == multinode ]]; then
  python3 hack/gpu-check/tiny_checkpoint.py "$model" --kv-heads 2  # qk-norm needs a KV head per TP rank
  rm -rf /var/cache/minimax-claim
  for layout in one-node-tp2 two-nodes-tp two-nodes-pp; do
    python3 hack/gpu-check/check.py --preset "$preset" --layout "$layout" --label "$layout" \
      --report "$out/$layout.json" --log "$out/$layout.log" || true
  done
  du -sh /var/cache/minimax-claim/.server-cache/* 2>/dev/null | tee "$out/multinode-cache-du.txt" || true
  exit 0
fi
python3 hack/gpu-check/tiny_checkpoint.py "$model" "${flag[@]}"
# The server's cache folder (on the claim in a cluster): empty for the cold start, kept for the warm one.
rm -rf /var/cache/minimax && mkdir -p /var/cache/minimax
for start in cold warm; do
  python3 hack/gpu-check/check.py --preset "$preset" --label "$variant-$start" \
    --report "$out/$variant-$start.json" --log "$out/$variant-$start.log" || true
done
if [[ $variant == bf16 ]]; then  # the flag the presets had before: does streaming agree with it?
  python3 hack/gpu-check/check.py --preset "$preset" --label "$variant-append-think" \
    --reasoning-parser minimax_m2_append_think --report "$out/$variant-append-think.json" \
    --log "$out/$variant-append-think.log" || true
fi
du -sh /var/cache/minimax/* 2>/dev/null | tee "$out/$variant-cache-du.txt" || true
