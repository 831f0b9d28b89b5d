"""Facts about MiniMax's open-weight models, one preset each.

Why here and not in the CRD: these numbers decide the default layout, the vLLM
flags and the PVC size, and the layout checks read them too. Keeping them in one
table means the docs, the checks and the builders can never disagree.
Sources: MiniMax's deploy guides and vLLM's recipes (see docs/models/*.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """One MiniMax model as the operator serves it by default."""

    name: str
    repo: str
    family: str
    vllm_image: str
    #: vLLM versions that can serve it, for docs and error messages.
    vllm_versions: str
    tensor_parallel_size: int
    #: Size of the checkpoint on disk, in GB (10^9 bytes).
    disk_gb: int
    #: GPU memory the weights take once loaded (after any quantization), in GB.
    weights_vram_gb: int
    max_model_len: int
    #: Flags every deployment of this model needs; the operator owns them.
    flags: tuple[str, ...]
    #: MoE expert MLP width; with an FP8 block size it limits tensor parallelism.
    moe_intermediate_size: int | None = None
    fp8_block_size: int | None = None
    expert_parallel: bool = False
    startup_timeout_seconds: int = 3600
    notes: tuple[str, ...] = field(default_factory=tuple)


_M2_FLAGS = (
    "--trust-remote-code",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "minimax_m2",
    # Thinking in `reasoning`, the answer in `content`, the same streamed or not. With the
    # minimax_m2 tool parser, vLLM >= 0.19 streams through its unified minimax_m2 parser and
    # ignores minimax_m2_append_think, so that flag made streaming and non-streaming disagree
    # (hack/gpu-check showed it; docs/chatos.md says which fields ChatOS reads).
    "--reasoning-parser",
    "minimax_m2",
)
_M2_IMAGE = "vllm/vllm-openai:v0.20.2"
_M1_FLAGS = ("--trust-remote-code", "--quantization", "experts_int8", "--dtype", "bfloat16")
_M3_FLAGS = (
    "--trust-remote-code",
    "--block-size",
    "128",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "minimax_m3",
    "--reasoning-parser",
    "minimax_m3",
    "--language-model-only",
)


def _m1(name: str, max_len: int) -> Preset:
    return Preset(
        name=name,
        repo=f"MiniMaxAI/{name}",
        family="MiniMax-M1",
        # The last vLLM that serves M1 (0.24.0 removed it); on torch 2.11, run by hack/gpu-check (`m1`).
        vllm_image="vllm/vllm-openai:v0.23.0",
        vllm_versions=">=0.9.2, <=0.23.0 (later vLLM removed M1)",
        tensor_parallel_size=8,
        disk_gb=920,
        weights_vram_gb=480,
        max_model_len=max_len,
        flags=_M1_FLAGS,
        startup_timeout_seconds=7200,
        notes=("BF16 checkpoint (456B total, 45.9B active) served with experts_int8",),
    )


def _m2(name: str, image: str, versions: str) -> Preset:
    return Preset(
        name=name,
        repo=f"MiniMaxAI/{name}",
        family="MiniMax-M2",
        vllm_image=image,
        vllm_versions=versions,
        tensor_parallel_size=4,
        disk_gb=230,
        weights_vram_gb=230,
        max_model_len=196608,
        flags=_M2_FLAGS,
        moe_intermediate_size=1536,
        fp8_block_size=128,
        startup_timeout_seconds=3600,
        notes=("FP8 (block 128) checkpoint, 230B total / 10B active",),
    )


#: vLLM's recipe for the MXFP8 checkpoint adds an FP8 K cache for the sparse-attention indexer
#: (`--attention-config.indexer_kv_dtype fp8`). The preset leaves it out: vLLM 0.24.0 has that cache
#: only in its Blackwell (SM100) indexer, and on any other GPU (the H100/H200 this preset is sized
#: for) the server dies at start (`indexer_kv_dtype='fp8' is not supported by the Triton indexer
#: impl`, hack/gpu-check `m3`). On Blackwell, spec.vllm.extraArgs can add it (docs/models/minimax-m3.md).


def _m3(
    name: str, disk_gb: int, startup: int, note: str, flags: tuple[str, ...] = _M3_FLAGS, max_len: int = 196608
) -> Preset:
    return Preset(
        name=name,
        repo=f"MiniMaxAI/{name}",
        family="MiniMax-M3",
        vllm_image="vllm/vllm-openai:v0.24.0",
        vllm_versions=">=0.24.0 (hack/gpu-check: a tiny config; real weights not run)",
        tensor_parallel_size=8,
        disk_gb=disk_gb,
        weights_vram_gb=disk_gb,
        max_model_len=max_len,
        flags=flags,
        expert_parallel=True,
        startup_timeout_seconds=startup,
        notes=(note,),
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _m1("MiniMax-M1-40k", 40960),
        _m1("MiniMax-M1-80k", 81920),
        # One vLLM for the family: v0.20.2 has the fix of garbled M2 output (Dec 2025) that v0.11.2
        # lacks, is what vLLM's recipe asks for M2.5, and is what hack/gpu-check ran.
        _m2("MiniMax-M2", _M2_IMAGE, ">=0.20.2"),
        _m2("MiniMax-M2.1", _M2_IMAGE, ">=0.20.2"),
        _m2("MiniMax-M2.5", _M2_IMAGE, ">=0.20.2"),
        _m2("MiniMax-M2.7", _M2_IMAGE, ">=0.20.2"),
        _m3("MiniMax-M3", disk_gb=860, startup=7200, note="BF16 vision-language checkpoint, 427B total / 26B active"),
        _m3(
            "MiniMax-M3-MXFP8",
            disk_gb=450,
            startup=5400,
            note="MXFP8 checkpoint (size unverified)",
            max_len=131072,
        ),
    )
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
