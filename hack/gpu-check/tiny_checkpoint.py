"""Write a tiny random-weight checkpoint of the MiniMax-M2 architecture, laid out as the downloader does.

Why random weights: the check proves the operator's server command (flags, parsers,
chat template, API shape), not the model's answers, and a real checkpoint is 230 GB.
What is real: the architecture (vLLM's MiniMaxM2ForCausalLM: qk-norm, partial rotary,
sigmoid routing with a correction bias, w1/w2/w3 experts), the FP8 format of the real
M2.x checkpoints (float8_e4m3fn weights with 128x128 block scales, `weight_scale_inv`),
and a tokenizer with the family's special tokens and a chat template in its format.

The output head favours a few tokens (letters, space, `</think>`), so greedy decoding
writes some thinking, closes it, and answers: the reasoning parser has something to split.

Usage (needs torch, safetensors, tokenizers): python3 tiny_checkpoint.py OUT_DIR [--fp8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, ROTARY_DIM = 512, 2, 4, 1, 128, 64
EXPERTS, TOP_K, EXPERT_DIM = 8, 2, 256
VOCAB = 256 + 7  # the byte tokens, SPECIAL and TAGS
BLOCK = 128
SPECIAL = [
    "]~!b[",  # begin of text
    "[e~[",  # end of a turn (eos)
    "]~b]",  # role marker
]
# As in the family's tokenizers: the thinking and tool-call tags are added tokens that are *not*
# special, so detokenization keeps them (skip_special_tokens drops special ones): the reasoning
# parser finds `</think>` both by token id (streaming) and in the text (non-streaming).
TAGS = ["<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>"]

# The family's prompt format: ]~!b[]~b]system ... [e~[ / ]~b]user / ]~b]ai / ]~b]tool, tools as
# JSON inside <tools>, tool calls as <invoke name=...><parameter name=...>, and the generation
# prompt opening <think> (the model writes only </think>). Earlier thinking as MiniMax's M2.x
# templates take it: `reasoning_content` when it is a string (vLLM fills it from a message's
# `reasoning`), else the `<think>...</think>` at the head of `content`; rendered for the assistant
# messages after the last user message (the turn in progress: tool calls and their results).
CHAT_TEMPLATE = r"""
{%- set ns = namespace(last_user=-1) -%}
{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{{- ']~!b[]~b]system\n' -}}
{%- if messages and messages[0].role == 'system' -%}{{- messages[0].content -}}
{%- else -%}{{- 'You are a helpful assistant.' -}}{%- endif -%}
{%- if tools -%}
{{- '\n\n# Tools\nYou may call one or more tools to assist with the user query.\n<tools>\n' -}}
{%- for tool in tools -%}
{{- '<tool>' + ((tool.function if tool.function is defined else tool) | tojson) + '</tool>\n' -}}
{%- endfor -%}
{{- '</tools>\nWhen making tool calls, use XML format to invoke tools and pass parameters:\n' -}}
{{- '<minimax:tool_call>\n<invoke name="tool-name">\n<parameter name="param-key">param-value</parameter>\n' -}}
{{- '</invoke>\n</minimax:tool_call>' -}}
{%- endif -%}
{{- '[e~[\n' -}}
{%- for m in messages -%}
{%- if m.role == 'user' -%}
{{- ']~b]user\n' + m.content + '[e~[\n' -}}
{%- elif m.role == 'assistant' -%}
{{- ']~b]ai\n' -}}
{%- set content = m.content if m.content is string else '' -%}
{%- set r = '' -%}
{%- if m.reasoning_content is string -%}{%- set r = m.reasoning_content -%}
{%- elif '</think>' in content -%}
{%- set r = content.split('</think>')[0].strip('\n').split('<think>')[-1].strip('\n') -%}
{%- set content = content.split('</think>')[-1].strip('\n') -%}
{%- endif -%}
{%- if r and loop.index0 > ns.last_user -%}{{- '<think>\n' + r + '\n</think>\n\n' -}}{%- endif -%}
{%- if content -%}{{- content -}}{%- endif -%}
{%- if m.tool_calls -%}
{{- '\n<minimax:tool_call>\n' -}}
{%- for call in m.tool_calls -%}
{%- set f = call.function if call.function is defined else call -%}
{{- '<invoke name="' + f.name + '">\n' -}}
{%- if f.arguments is mapping -%}
{%- for k, v in f.arguments.items() -%}
{{- '<parameter name="' + k + '">' + (v if v is string else v | tojson) + '</parameter>\n' -}}
{%- endfor -%}
{%- else -%}{{- f.arguments + '\n' -}}{%- endif -%}
{{- '</invoke>\n' -}}
{%- endfor -%}
{{- '</minimax:tool_call>' -}}
{%- endif -%}
{{- '[e~[\n' -}}
{%- elif m.role == 'tool' -%}
{{- ']~b]tool\n<response>' + m.content + '</response>[e~[\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- ']~b]ai\n<think>\n' -}}{%- endif -%}
"""


def byte_tokenizer(special: list[str], added: list[str]) -> Tokenizer:
    """256 byte tokens without merges, then the family's special tokens, then plain added tokens."""
    byte_vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special)
    tok.add_tokens(added)
    return tok


def tokenizer(out: Path) -> int:
    """Byte-level tokenizer: 256 byte tokens, the special tokens, then a few merges-free fillers."""
    tok = byte_tokenizer(SPECIAL, TAGS)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "]~!b[",
        "eos_token": "[e~[",
        "unk_token": None,
        "model_max_length": 196608,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": "]~!b[", "eos_token": "[e~["}))
    return int(tok.get_vocab_size())


def fp8_block(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float8_e4m3fn weight and its per-128x128-block inverse scale, as the M2.x checkpoints store them."""
    out_dim, in_dim = w.shape
    rows, cols = -(-out_dim // BLOCK), -(-in_dim // BLOCK)
    scale = torch.empty(rows, cols, dtype=torch.float32)
    q = torch.empty_like(w, dtype=torch.float8_e4m3fn)
    fmax = torch.finfo(torch.float8_e4m3fn).max
    for r in range(rows):
        for c in range(cols):
            block = w[r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK].float()
            s = block.abs().max().clamp(min=1e-12) / fmax
            scale[r, c] = s
            q[r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK] = (block / s).to(torch.float8_e4m3fn)
    return q, scale


def weights(vocab_tokens: dict[str, int], fp8: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * std).to(torch.bfloat16)

    t: dict[str, torch.Tensor] = {}

    def linear(name: str, out_dim: int, in_dim: int) -> None:
        w = rand(out_dim, in_dim)
        if fp8:
            t[f"{name}.weight"], t[f"{name}.weight_scale_inv"] = fp8_block(w)
        else:
            t[f"{name}.weight"] = w

    t["model.embed_tokens.weight"] = rand(VOCAB, HIDDEN, std=1.0)
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        t[f"{p}.input_layernorm.weight"] = torch.ones(HIDDEN, dtype=torch.bfloat16)
        t[f"{p}.post_attention_layernorm.weight"] = torch.ones(HIDDEN, dtype=torch.bfloat16)
        linear(f"{p}.self_attn.q_proj", HEADS * HEAD_DIM, HIDDEN)
        linear(f"{p}.self_attn.k_proj", KV_HEADS * HEAD_DIM, HIDDEN)
        linear(f"{p}.self_attn.v_proj", KV_HEADS * HEAD_DIM, HIDDEN)
        linear(f"{p}.self_attn.o_proj", HIDDEN, HEADS * HEAD_DIM)
        t[f"{p}.self_attn.q_norm.weight"] = torch.ones(HEADS * HEAD_DIM, dtype=torch.bfloat16)
        t[f"{p}.self_attn.k_norm.weight"] = torch.ones(KV_HEADS * HEAD_DIM, dtype=torch.bfloat16)
        t[f"{p}.block_sparse_moe.gate.weight"] = rand(EXPERTS, HIDDEN).float()
        t[f"{p}.block_sparse_moe.e_score_correction_bias"] = torch.zeros(EXPERTS, dtype=torch.float32)
        for e in range(EXPERTS):
            linear(f"{p}.block_sparse_moe.experts.{e}.w1", EXPERT_DIM, HIDDEN)
            linear(f"{p}.block_sparse_moe.experts.{e}.w3", EXPERT_DIM, HIDDEN)
            linear(f"{p}.block_sparse_moe.experts.{e}.w2", HIDDEN, EXPERT_DIM)
    t["model.norm.weight"] = torch.ones(HIDDEN, dtype=torch.bfloat16)
    head = rand(VOCAB, HIDDEN)
    favoured = [vocab_tokens[c] for c in "abcdefghijklmnopqrstuvwxyz"] + [vocab_tokens["Ġ"], vocab_tokens["</think>"]]
    head[favoured] *= 40  # greedy decoding lands on these: words, and a </think> now and then
    t["lm_head.weight"] = head
    return t


def config(fp8: bool, vocab: int) -> dict[str, object]:
    c: dict[str, object] = {
        "architectures": ["MiniMaxM2ForCausalLM"],
        "model_type": "minimax_m2",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": EXPERT_DIM,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "rotary_dim": ROTARY_DIM,
        "rope_theta": 5000000.0,
        "max_position_embeddings": 196608,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": TOP_K,
        "scoring_func": "sigmoid",
        "use_routing_bias": True,
        "use_qk_norm": True,
        "qk_norm_type": "per_layer",
        "tie_word_embeddings": False,
        "bos_token_id": 256,
        "eos_token_id": 257,
        "torch_dtype": "bfloat16",
    }
    assert vocab == VOCAB, vocab
    if fp8:
        c["quantization_config"] = {
            "quant_method": "fp8",
            "fmt": "float8_e4m3fn",
            "activation_scheme": "dynamic",
            "weight_block_size": [BLOCK, BLOCK],
            "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"],
        }
    return c


# MiniMax-M1 (MiniMaxText01: lightning attention layers, then a softmax-attention layer; MoE).
# Only its config and tokenizer are written: the server runs it with vLLM's `--load-format dummy`,
# which proves the preset's command, the image's support of the family, the template and the API,
# not the weight loader. transformers' own `minimax` config type gives every other field its default.
M1_SPECIAL = ["<begin_of_document>", "<beginning_of_sentence>", "<end_of_sentence>"]
M1_TEMPLATE = r"""
{{- '<begin_of_document>' -}}
{%- if messages and messages[0].role == 'system' -%}{%- set system = messages[0].content -%}
{%- else -%}{%- set system = 'You are a helpful assistant.' -%}{%- endif -%}
{{- '<beginning_of_sentence>system ai_setting=assistant\n' + system + '<end_of_sentence>\n' -}}
{%- for m in messages -%}
{%- if m.role == 'user' -%}{{- '<beginning_of_sentence>user name=user\n' + m.content + '<end_of_sentence>\n' -}}
{%- elif m.role == 'assistant' -%}
{{- '<beginning_of_sentence>ai name=assistant\n' + (m.content or '') + '<end_of_sentence>\n' -}}
{%- elif m.role == 'tool' -%}
{{- '<beginning_of_sentence>tool name=tools\n' + m.content + '<end_of_sentence>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<beginning_of_sentence>ai name=assistant\n' -}}{%- endif -%}
"""


def m1_files(out: Path) -> None:
    tok = byte_tokenizer(M1_SPECIAL, ["<think>", "</think>"])
    tok.save(str(out / "tokenizer.json"))
    vocab = int(tok.get_vocab_size())
    ids = tok.get_vocab()
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<beginning_of_sentence>",
        "eos_token": "<end_of_sentence>", "unk_token": None, "model_max_length": 40960,
        "clean_up_tokenization_spaces": False, "chat_template": M1_TEMPLATE,
    }, indent=2))  # fmt: skip
    config = {
        "architectures": ["MiniMaxM1ForCausalLM"],
        "model_type": "minimax",
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": EXPERT_DIM,
        "num_hidden_layers": 2,
        "layer_types": ["linear_attention", "full_attention"],
        "num_attention_heads": HEADS,
        "num_key_value_heads": 1,
        "head_dim": HEAD_DIM,
        "rotary_dim": ROTARY_DIM,
        "rope_theta": 10000000.0,
        "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": TOP_K,
        "postnorm": True,
        "tie_word_embeddings": False,
        "bos_token_id": ids["<beginning_of_sentence>"],
        "eos_token_id": ids["<end_of_sentence>"],
        "torch_dtype": "bfloat16",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": config["eos_token_id"]}))


# MiniMax-M3 (vLLM >= 0.24.0: MiniMaxM3SparseForConditionalGeneration, a vision-language model whose
# text backbone has Gemma-style RMSNorm, SwiGLU-OAI experts, shared experts, and a sparse-attention
# "lightning indexer" that picks 128-token KV blocks per query). Config and tokenizer only, served with
# `--load-format dummy` as M1 is: no weight file of this architecture is written. Layer 0 is dense with
# full attention, layer 1 MoE with the indexer (the real model: 3 dense, then 57 MoE + indexer). The
# vision tower's config is small: `--language-model-only` builds it as a skipped stage.
# Tags as vLLM 0.24.0's minimax_m3 parsers read them: `<mm:think>` / `</mm:think>` (reasoning) and the
# `]<]minimax[>[` namespace before each tool-call tag (tool calls). The chat template is ours, in M2's
# role format with M3's tags: M3's own template is not public here (the checkpoint is not reachable).
M3_NS = "]<]minimax[>["
M3_TAGS = ["<mm:think>", "</mm:think>", M3_NS]
M3_VISION = ["]<]image[>[", "]<]video[>[", "]<]start of image[>[", "]<]end of image[>["]
M3_TEMPLATE = r"""
{{- ']~!b[]~b]system\n' -}}
{%- if messages and messages[0].role == 'system' -%}{{- messages[0].content -}}
{%- else -%}{{- 'You are a helpful assistant.' -}}{%- endif -%}
{%- if tools -%}
{{- '\n\n# Tools\n<tools>\n' -}}
{%- for tool in tools -%}
{{- '<tool>' + ((tool.function if tool.function is defined else tool) | tojson) + '</tool>\n' -}}
{%- endfor -%}
{{- '</tools>\nCall tools as ]<]minimax[>[<tool_call>]<]minimax[>[<invoke name="NAME">...' -}}
{%- endif -%}
{{- '[e~[\n' -}}
{%- for m in messages -%}
{%- if m.role == 'user' -%}{{- ']~b]user\n' + m.content + '[e~[\n' -}}
{%- elif m.role == 'assistant' -%}
{{- ']~b]ai\n' + (m.content if m.content is string else '') -}}
{%- for call in (m.tool_calls or []) -%}
{%- set f = call.function if call.function is defined else call -%}
{{- '\n]<]minimax[>[<tool_call>]<]minimax[>[<invoke name="' + f.name + '">' -}}
{{- f.arguments if f.arguments is string else f.arguments | tojson -}}
{{- ']<]minimax[>[</invoke>]<]minimax[>[</tool_call>' -}}
{%- endfor -%}
{{- '[e~[\n' -}}
{%- elif m.role == 'tool' -%}{{- ']~b]tool\n<response>' + m.content + '</response>[e~[\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- ']~b]ai\n' -}}
{%- if thinking_mode == 'enabled' -%}{{- '<mm:think>' -}}{%- endif -%}
{%- endif -%}
"""


def m3_files(out: Path, mxfp8: bool) -> None:
    tok = byte_tokenizer(SPECIAL, M3_TAGS + M3_VISION)
    tok.save(str(out / "tokenizer.json"))
    vocab = int(tok.get_vocab_size())
    ids = tok.get_vocab()
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "]~!b[", "eos_token": "[e~[",
        "unk_token": None, "model_max_length": 196608, "clean_up_tokenization_spaces": False,
        "chat_template": M3_TEMPLATE,
    }, indent=2))  # fmt: skip
    text = {
        "model_type": "minimax_m3_text",
        "architectures": ["MiniMaxM3SparseForCausalLM"],
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": EXPERT_DIM,
        "dense_intermediate_size": 2 * EXPERT_DIM,
        "shared_intermediate_size": EXPERT_DIM,
        "num_hidden_layers": 2,
        "num_attention_heads": HEADS,
        "num_key_value_heads": 4,  # as the real model; vLLM wants as many index heads as KV heads
        "head_dim": HEAD_DIM,
        "rotary_dim": ROTARY_DIM,
        "partial_rotary_factor": 0.5,
        "rope_theta": 5000000.0,
        "max_position_embeddings": 196608,
        "rms_norm_eps": 1e-6,
        "use_gemma_norm": True,
        "hidden_act": "swigluoai",
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": TOP_K,
        "n_shared_experts": 1,
        "scoring_func": "sigmoid",
        "use_routing_bias": True,
        "routed_scaling_factor": 2.0,
        "use_qk_norm": True,
        "qk_norm_type": "per_head",
        "num_mtp_modules": 0,
        "moe_layer_freq": [0, 1],
        "sparse_attention_config": {
            "use_sparse_attention": True,
            "sparse_index_dim": 128,
            "sparse_num_index_heads": 4,
            "sparse_topk_blocks": 16,
            "sparse_block_size": 128,
            "sparse_disable_index_value": [0, 1],
            "sparse_score_type": "max",
            "sparse_init_block": 0,
            "sparse_local_block": 1,
            "sparse_attention_freq": [0, 1],
        },
        "tie_word_embeddings": False,
        "bos_token_id": ids["]~!b["],
        "eos_token_id": ids["[e~["],
    }
    config: dict[str, object] = {
        "architectures": ["MiniMaxM3SparseForConditionalGeneration"],
        "model_type": "minimax_m3_vl",
        "text_config": text,
        "vision_config": {
            "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 1,
            "patch_size": 14, "num_channels": 3, "layer_norm_eps": 1e-6,
            "img_token_compression_config": {"temporal_patch_size": 2, "spatial_merge_size": 2},
        },
        "projector_hidden_size": HIDDEN,
        "bos_token_id": text["bos_token_id"],
        "eos_token_id": text["eos_token_id"],
        "torch_dtype": "bfloat16",
    }  # fmt: skip
    if mxfp8:
        # The MXFP8 checkpoint's tag as vLLM 0.24.0 reads it (ModelOptMxFp8Config: `quant_method: mxfp8`,
        # `ignored_layers`); which layers the real checkpoint leaves in BF16 is not known here.
        config["quantization_config"] = {"quant_method": "mxfp8", "ignored_layers": ["lm_head"]}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": text["eos_token_id"]}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="model folder, e.g. /models/MiniMaxAI/MiniMax-M2.5")
    p.add_argument("--fp8", action="store_true", help="FP8 weights with 128x128 block scales (like M2.x)")
    p.add_argument(
        "--kv-heads", type=int, default=1, help="key/value heads; 2 for tensor parallelism 2 (qk-norm splits them)"
    )
    p.add_argument(
        "--family", choices=["m2", "m1", "m3"], default="m2", help="m1, m3: config and tokenizer only (dummy weights)"
    )
    p.add_argument("--mxfp8", action="store_true", help="m3: the MXFP8 checkpoint's quantization_config")
    args = p.parse_args()
    if args.family in ("m1", "m3"):
        args.out.mkdir(parents=True, exist_ok=True)
        m1_files(args.out) if args.family == "m1" else m3_files(args.out, args.mxfp8)
        (args.out / ".minimax-complete.json").write_text(json.dumps({"revision": "tiny-config", "files": []}))
        print(f"wrote {args.out} ({args.family} config and tokenizer; serve with --load-format dummy)")
        return
    global KV_HEADS
    KV_HEADS = args.kv_heads
    args.out.mkdir(parents=True, exist_ok=True)
    vocab = tokenizer(args.out)
    tok = Tokenizer.from_file(str(args.out / "tokenizer.json"))
    (args.out / "config.json").write_text(json.dumps(config(args.fp8, vocab), indent=2))
    (args.out / "generation_config.json").write_text(json.dumps({"bos_token_id": 256, "eos_token_id": 257}))
    save_file(weights(tok.get_vocab(), args.fp8), str(args.out / "model.safetensors"), metadata={"format": "pt"})
    # The downloader's marker: a verified, complete folder (what the server waits for).
    files = sorted(f.name for f in args.out.iterdir() if f.is_file())
    (args.out / ".minimax-complete.json").write_text(json.dumps({"revision": "tiny-random", "files": files}))
    print(f"wrote {args.out} ({'fp8' if args.fp8 else 'bf16'}, vocab {vocab})")


if __name__ == "__main__":
    main()
