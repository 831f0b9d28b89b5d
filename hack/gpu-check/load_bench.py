"""How far a server's start is from the storage's read speed: a checkpoint of MiniMax-M2's real shapes,
the preset's rendered server, each weight loader the pinned vLLM image offers, phase by phase.

    python3 load_bench.py gen DIR [--layers 6]       a synthetic FP8 checkpoint, sharded as the repos are
    python3 load_bench.py floor DIR                  the disk's sequential read: direct I/O and buffered
    python3 load_bench.py run DIR --loader L --label X [--warm] [--tp 1] --report R --log LOG
    python3 load_bench.py summary OUT...             the runs' figures, ending with one key=value line

What is real in the checkpoint: MiniMax-M2.x's layer shapes and tensor names (hidden 3072, 48 query and
8 KV heads of 128, 256 experts of 1536, vocabulary 200064, FP8 weights with 128x128 block scales),
shards of about 2 GB with an index as the Hub repos have them, the downloader's layout; only the number
of layers is cut (6 of 62: about 24 GB) and the weights are random (FP8 bytes with no NaN pattern, so
that greedy decoding is the same for every loader that loads the same bytes).

`run` drops the page cache first (unless --warm), starts the preset's rendered `vllm serve` with the
loader's flags, timestamps every log line as it arrives, and reports seconds to each phase vLLM logs
(engine process up, weights loaded, torch.compile, CUDA graphs, KV cache, API up) and to /health,
the weight-load seconds vLLM reports, GB/s over the checkpoint's bytes, and 16 greedy tokens.
Loaders: default (safetensors, memory-mapped), eager and prefetch (--safetensors-load-strategy),
runai (--load-format runai_streamer, the Run:ai streamer the image installs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, ROTARY_DIM = 3072, 48, 8, 128, 64
EXPERTS, TOP_K, EXPERT_DIM, VOCAB = 256, 8, 1536, 200064
BLOCK = 128
SHARD_BYTES = 2 << 30
LOADERS: dict[str, list[str]] = {
    "default": [],
    "eager": ["--safetensors-load-strategy", "eager"],
    "prefetch": ["--safetensors-load-strategy", "prefetch"],
    "runai": ["--load-format", "runai_streamer", "--model-loader-extra-config", '{"concurrency": 16}'],
}
#: vLLM's log lines that end a phase, and the phase's name.
PHASES = [
    ("engine", re.compile(r"Initializing a V1 LLM engine|EngineCore.*pid|Waiting for init message")),
    ("weights_loaded", re.compile(r"Loading weights took|Model loading took")),
    ("compiled", re.compile(r"torch.compile takes|Compiling a graph for|Directly load the compiled graph")),
    ("kv_cache", re.compile(r"Available KV cache memory|GPU KV cache size")),
    ("graphs", re.compile(r"Graph capturing finished")),
    ("api_up", re.compile(r"Starting vLLM API server|Application startup complete")),
]


def gen(out: Path, layers: int) -> None:
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)

    def fp8(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Bytes 0..0x64 with a random sign: never 0x7f/0xff, the NaN patterns of float8_e4m3fn.
        mag = torch.randint(0, 0x65, (rows, cols), generator=g, device=dev, dtype=torch.int16)
        sign = torch.randint(0, 2, (rows, cols), generator=g, device=dev, dtype=torch.int16) << 7
        q = (mag | sign).to(torch.uint8).view(torch.float8_e4m3fn)
        scale = torch.full((-(-rows // BLOCK), -(-cols // BLOCK)), 2e-4, device=dev, dtype=torch.float32)
        return q.cpu(), scale.cpu()

    def bf16(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, device=dev) * std).to(torch.bfloat16).cpu()

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = [0]

    def put(name: str, t: torch.Tensor) -> None:
        nbytes = t.numel() * t.element_size()
        if size[0] + nbytes > SHARD_BYTES and shards[-1]:
            shards.append({})
            size[0] = 0
        shards[-1][name] = t.contiguous()
        size[0] += nbytes

    def linear(name: str, rows: int, cols: int) -> None:
        q, s = fp8(rows, cols)
        put(f"{name}.weight", q)
        put(f"{name}.weight_scale_inv", s)

    put("model.embed_tokens.weight", bf16(VOCAB, HIDDEN, std=1.0))
    for i in range(layers):
        p = f"model.layers.{i}"
        put(f"{p}.input_layernorm.weight", torch.ones(HIDDEN, dtype=torch.bfloat16))
        put(f"{p}.post_attention_layernorm.weight", torch.ones(HIDDEN, dtype=torch.bfloat16))
        linear(f"{p}.self_attn.q_proj", HEADS * HEAD_DIM, HIDDEN)
        linear(f"{p}.self_attn.k_proj", KV_HEADS * HEAD_DIM, HIDDEN)
        linear(f"{p}.self_attn.v_proj", KV_HEADS * HEAD_DIM, HIDDEN)
        linear(f"{p}.self_attn.o_proj", HIDDEN, HEADS * HEAD_DIM)
        put(f"{p}.self_attn.q_norm.weight", torch.ones(HEADS * HEAD_DIM, dtype=torch.bfloat16))
        put(f"{p}.self_attn.k_norm.weight", torch.ones(KV_HEADS * HEAD_DIM, dtype=torch.bfloat16))
        put(f"{p}.block_sparse_moe.gate.weight", bf16(EXPERTS, HIDDEN).float())
        put(f"{p}.block_sparse_moe.e_score_correction_bias", torch.zeros(EXPERTS, dtype=torch.float32))
        for e in range(EXPERTS):
            linear(f"{p}.block_sparse_moe.experts.{e}.w1", EXPERT_DIM, HIDDEN)
            linear(f"{p}.block_sparse_moe.experts.{e}.w3", EXPERT_DIM, HIDDEN)
            linear(f"{p}.block_sparse_moe.experts.{e}.w2", HIDDEN, EXPERT_DIM)
    put("model.norm.weight", torch.ones(HIDDEN, dtype=torch.bfloat16))
    head = bf16(VOCAB, HIDDEN)
    head[:256] *= 40  # greedy decoding picks byte tokens, which the small tokenizer decodes
    put("lm_head.weight", head)

    n = len(shards)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        name = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        for key, t in shard.items():
            weight_map[key] = name
            total += t.numel() * t.element_size()
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    config = {
        "architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2", "vocab_size": VOCAB,
        "hidden_size": HIDDEN, "intermediate_size": EXPERT_DIM, "num_hidden_layers": layers,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "rotary_dim": ROTARY_DIM, "rope_theta": 5000000.0, "max_position_embeddings": 196608,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "num_local_experts": EXPERTS, "num_experts_per_tok": TOP_K,
        "scoring_func": "sigmoid", "use_routing_bias": True, "use_qk_norm": True, "qk_norm_type": "per_layer",
        "tie_word_embeddings": False, "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "fmt": "float8_e4m3fn", "activation_scheme": "dynamic",
                                "weight_block_size": [BLOCK, BLOCK],
                                "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"]},
    }  # fmt: skip
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 256, "eos_token_id": 257}))
    # The tiny check's tokenizer and chat template (the family's special tokens and format).
    import tiny_checkpoint

    tiny_checkpoint.tokenizer(out)
    files = sorted(f.name for f in out.iterdir() if f.is_file())
    (out / ".minimax-complete.json").write_text(json.dumps({"revision": "synthetic", "files": files}))
    print(json.dumps({"dir": str(out), "shards": n, "bytes": total, "layers": layers}))


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def checkpoint_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.glob("*.safetensors"))


def floor(d: Path) -> dict[str, Any]:
    shards = sorted(str(f) for f in d.glob("*.safetensors"))
    total = checkpoint_bytes(d)
    out: dict[str, Any] = {"bytes": total}
    for mode, flags in (("direct", ["iflag=direct"]), ("buffered", [])):
        drop_caches()
        t0 = time.monotonic()
        for s in shards:
            subprocess.run(["dd", f"if={s}", "of=/dev/null", "bs=16M", *flags], check=True, capture_output=True)
        secs = time.monotonic() - t0
        out[f"{mode}_seconds"] = round(secs, 2)
        out[f"{mode}_gb_per_s"] = round(total / secs / 1e9, 3)
    # Four readers at once, as four ranks or a streamer's threads read: does the disk give more?
    drop_caches()
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(["dd", f"if={s}", "of=/dev/null", "bs=16M", "iflag=direct"], stderr=subprocess.DEVNULL)
        for s in shards[:4]
    ]
    first = sum(os.path.getsize(s) for s in shards[:4])
    for p in procs:
        p.wait()
    out["direct_4_readers_gb_per_s"] = round(first / (time.monotonic() - t0) / 1e9, 3)
    print(json.dumps(out))
    return out


def run(args: argparse.Namespace) -> int:
    import check  # the rendered server (same folder)

    container, entry = check.rendered(args.preset)
    argv = [*container["command"], *check.one_gpu(container["args"])]
    argv[2] = str(args.dir)  # the model folder
    if args.tp != 1:
        argv[argv.index("--tensor-parallel-size") + 1] = str(args.tp)
    argv += LOADERS[args.loader]
    env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    env = {k: v.replace("/var/cache/minimax", str(cache)) for k, v in env.items()}
    if args.tp > 1:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(args.tp))
    if not args.warm:
        drop_caches()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[tuple[float, str]] = []

    def reader() -> None:
        assert proc.stdout is not None
        with open(args.log, "w") as log:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                lines.append((time.monotonic() - t0, line))
                log.write(f"[{time.monotonic() - t0:8.2f}] {line}")
                log.flush()

    threading.Thread(target=reader, daemon=True).start()
    health = check.wait_health(proc, 900)
    report: dict[str, Any] = {"label": args.label, "loader": args.loader, "tp": args.tp, "warm_page_cache": args.warm,
                              "argv": argv, "health": health}  # fmt: skip
    phases: dict[str, float] = {}
    if lines:
        phases["first_log_line"] = round(lines[0][0], 1)
    for name, pattern in PHASES:
        hit = next((t for t, line in lines if pattern.search(line)), None)
        if hit is not None:
            phases[name] = round(hit, 1)
    report["phases_s"] = phases
    for _, line in lines:
        m = re.search(r"Loading weights took ([0-9.]+) seconds", line) or re.search(
            r"Model loading took [0-9.]+ Gi?B (?:memory )?and ([0-9.]+) seconds", line
        )
        if m:
            report["vllm_load_seconds"] = float(m.group(1))
            break
    total = checkpoint_bytes(args.dir)
    report["checkpoint_bytes"] = total
    if report.get("vllm_load_seconds"):
        report["load_gb_per_s"] = round(total / report["vllm_load_seconds"] / 1e9, 3)
    if health.get("ready"):
        status, body = check.call(
            "POST", "/v1/completions",
            {"model": entry["model_id"], "prompt": "The capital of France is", "max_tokens": 16, "temperature": 0},
        )  # fmt: skip
        report["completion"] = body["choices"][0]["text"] if status == 200 else f"{status}: {body}"
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    Path(args.report).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "argv"}))
    return 0


def summary(folders: list[Path]) -> None:
    """The reports of some runs as a table, and one key=value line (the benchmark's summary)."""
    floor_gbps = None
    rows = []
    for folder in folders:
        for f in sorted(folder.glob("load-*.json")):
            d = json.loads(f.read_text())
            if "buffered_gb_per_s" in d:
                floor_gbps = d["buffered_gb_per_s"]
            elif "loader" in d:
                rows.append(d)
    for d in rows:
        health = d["health"].get("seconds")
        print(f"{d['label']}: /health {health} s, load {d.get('vllm_load_seconds')} s, {d.get('load_gb_per_s')} GB/s")
    line = {}
    for tp in (1, 2):
        cold = [d for d in rows if d["loader"] == "default" and d["tp"] == tp and not d["warm_page_cache"]]
        if cold and cold[-1].get("load_gb_per_s"):
            line[f"load_gb_per_s_tp{tp}"] = cold[-1]["load_gb_per_s"]
            if floor_gbps:
                line[f"ratio_to_floor_tp{tp}"] = round(cold[-1]["load_gb_per_s"] / floor_gbps, 2)
    if floor_gbps:
        line["floor_gb_per_s"] = floor_gbps
    print(" ".join(f"{k}={v}" for k, v in line.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir", type=Path)
    g.add_argument("--layers", type=int, default=6)
    f = sub.add_parser("floor")
    f.add_argument("dir", type=Path)
    r = sub.add_parser("run")
    r.add_argument("dir", type=Path)
    r.add_argument("--loader", choices=sorted(LOADERS), default="default")
    r.add_argument("--label", required=True)
    r.add_argument("--preset", default="MiniMax-M2.5")
    r.add_argument("--tp", type=int, default=1)
    r.add_argument("--warm", action="store_true", help="keep the page cache (a restart on the same node)")
    r.add_argument("--cache", default="/var/cache/minimax-load", help="the server's compile-cache folder")
    r.add_argument("--report", required=True)
    r.add_argument("--log", required=True)
    sm = sub.add_parser("summary")
    sm.add_argument("dirs", type=Path, nargs="+")
    a = p.parse_args()
    if a.cmd == "gen":
        gen(a.dir, a.layers)
    elif a.cmd == "floor":
        floor(a.dir)
    elif a.cmd == "summary":
        summary(a.dirs)
    else:
        return run(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
