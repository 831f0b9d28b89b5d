"""The thinking split and the thinking sent back, proven on the server as the preset renders it.

Runs on a GPU machine beside check.py (same server start: the rendered container's command,
args and env on one GPU), on the tiny checkpoint whose tokenizer is like the family's
(`<think>`, `</think>` and the tool-call tags are added tokens that are not special) and
whose chat template takes earlier thinking as MiniMax's M2.x templates do.

1. **The split, exactly.** A random model writes what it likes, so the output is forced:
   a regex (vLLM's structured outputs, with `enable_in_reasoning` so the regex also holds
   the thinking) and a logit bias on the tag tokens (otherwise the grammar spells
   `</think>` as bytes, which the streaming parser, matching token ids, would not see).
   Forced `Let me think.</think>` + an answer, and + a tool call; each asked without and
   with streaming. The reasoning, content and tool calls must be what was forced, the same
   both ways.
2. **The thinking sent back.** A conversation as a client sends it after a tool call (the
   assistant's message with its thinking, then the tool's result), and one where the user
   speaks again, with the thinking in each field a client might use (`reasoning`,
   `reasoning_content`, `<think>` inline in `content`): the prompt vLLM builds (its
   /tokenize with the messages, then /detokenize) must hold the thinking, or not.

The only flag added to the rendered command is `--structured-outputs-config` (for the
forcing); it changes neither parser. Writes one JSON report.

Usage: python3 thinking.py --preset MiniMax-M2.5 --report out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from check import BASE, TOOLS, call, one_gpu, rendered, stop, wait_health

THOUGHT = "Let me think."
ANSWER = "The answer is 4."
CALL = (
    '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
    "</invoke>\n</minimax:tool_call>"
)
FORCED = {"answer": f"{THOUGHT}</think>\n\n{ANSWER}", "tool_call": f"{THOUGHT}</think>\n\n{CALL}"}
SECRET = "SECRET-THOUGHT-7f3a"
TAGS = ["<think>", "</think>", "<minimax:tool_call>", "</minimax:tool_call>"]

# MiniMax-M3 (vLLM 0.24.0's minimax_m3 parsers): thinking opens with `<mm:think>` in the output unless the
# template opened it (`thinking_mode: enabled`), and every tool-call tag carries the `]<]minimax[>[`
# namespace, arguments as one tag per parameter (vLLM's tests/tool_parsers/test_minimax_m3_tool_parser.py).
M3_NS = "]<]minimax[>["
M3_CALL = (
    f'{M3_NS}<tool_call>\n{M3_NS}<invoke name="get_weather">{M3_NS}<city>Paris{M3_NS}</city>{M3_NS}</invoke>\n'
    f"{M3_NS}</tool_call>"
)
M3_FORCED = {
    "answer": f"<mm:think>{THOUGHT}</mm:think>\n\n{ANSWER}",
    "tool_call": f"<mm:think>{THOUGHT}</mm:think>\n\n{M3_CALL}",
}
M3_TAGS = ["<mm:think>", "</mm:think>", M3_NS]


def regex(text: str) -> str:
    """A regex matching exactly `text`: punctuation in character classes, newlines as \\n."""
    out = []
    for c in text:
        if c.isalnum() or c == " ":
            out.append(c)
        elif c == "\n":
            out.append("\\n")
        elif c in "[]\\^":
            out.append("\\" + c)
        else:
            out.append(f"[{c}]")
    return "".join(out)


def stream_message(body: dict[str, Any]) -> dict[str, Any]:
    """A streamed chat put together as a client does: strings concatenated, tool calls by index."""
    req = urllib.request.Request(
        BASE + "/v1/chat/completions",
        data=json.dumps({**body, "stream": True}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    msg: dict[str, Any] = {}
    calls: dict[int, dict[str, str]] = {}
    with urllib.request.urlopen(req, timeout=120) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                for k, v in (choice.get("delta") or {}).items():
                    if k == "tool_calls":
                        for tc in v or []:
                            c = calls.setdefault(tc.get("index", 0), {"name": "", "arguments": ""})
                            fn = tc.get("function") or {}
                            c["name"] += fn.get("name") or ""
                            c["arguments"] += fn.get("arguments") or ""
                    elif isinstance(v, str) and k != "role":
                        msg[k] = msg.get(k, "") + v
    msg = {k: v for k, v in msg.items() if v != ""}
    if calls:
        msg["tool_calls"] = [calls[i] for i in sorted(calls)]
    return msg


def plain(msg: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed message in the same shape: string fields, and tool calls as name and arguments."""
    out = {k: v for k, v in msg.items() if isinstance(v, str) and v != "" and k != "role"}
    calls = [
        {"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in msg.get("tool_calls") or []
    ]
    if calls:
        out["tool_calls"] = calls
    return out


def split_checks(model: str, forced_outputs: dict[str, str], tags: list[str]) -> dict[str, Any]:
    ids = {}
    for tag in tags:
        code, resp = call("POST", "/tokenize", {"model": model, "prompt": tag, "add_special_tokens": False})
        ids[tag] = resp["tokens"] if code == 200 else resp
    bias = {str(t[0]): 100 for t in ids.values() if isinstance(t, list) and len(t) == 1}
    out: dict[str, Any] = {"tag_token_ids": ids}
    for name, forced in forced_outputs.items():
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": "What is 2 + 2? Or the weather in Paris?"}],
            "max_tokens": 400,
            "temperature": 0,
            "structured_outputs": {"regex": regex(forced)},
            "logit_bias": bias,
        }
        for tools in (False, True):
            b = {**body, "tools": TOOLS, "tool_choice": "auto"} if tools else body
            code, resp = call("POST", "/v1/chat/completions", b)
            non_stream = plain(resp["choices"][0]["message"]) if code == 200 else {"error": resp}
            streamed = stream_message(b) if code == 200 else {}
            if name == "answer":
                expected_content = ANSWER
                calls_ok = "tool_calls" not in non_stream
            else:
                expected_content = None
                want = [{"name": "get_weather", "city": "Paris"}]
                got = [
                    {"name": c["name"], **json.loads(c["arguments"] or "{}")}
                    for c in non_stream.get("tool_calls") or []
                ]
                calls_ok = got == want if tools else "tool_calls" not in non_stream
            content = (non_stream.get("content") or "").strip() or None
            key = f"{name}{'_with_tools' if tools else ''}"
            out[key] = {
                "status": code,
                "non_stream": non_stream,
                "stream": streamed,
                "reasoning_exact": non_stream.get("reasoning") == THOUGHT,
                "content_exact": content == expected_content if (name == "answer" or tools) else None,
                "tool_calls_ok": calls_ok,
                "stream_equals_non_stream": streamed == non_stream,
            }
    return out


def history_checks(model: str) -> dict[str, Any]:
    call_msg = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
    }
    styles = {
        "reasoning": {"content": "", "reasoning": SECRET},
        "reasoning_content": {"content": "", "reasoning_content": SECRET},
        "inline_think_in_content": {"content": f"<think>\n{SECRET}\n</think>\n\n"},
        "none": {"content": ""},
    }
    out: dict[str, Any] = {}
    for style, fields in styles.items():
        turns = {
            "after_tool_call": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", **fields, "tool_calls": [call_msg]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 18}'},
            ],
            "next_user_turn": [
                {"role": "user", "content": "What is 2 + 2?"},
                {"role": "assistant", **{**fields, "content": (fields.get("content") or "") + ANSWER}},
                {"role": "user", "content": "And 3 + 3?"},
            ],
        }
        for turn, messages in turns.items():
            ask = {"model": model, "messages": messages, "add_generation_prompt": True, "tools": TOOLS}
            code, resp = call("POST", "/tokenize", ask)
            prompt = ""
            if code == 200:
                d_code, d_resp = call("POST", "/detokenize", {"model": model, "tokens": resp["tokens"]})
                prompt = d_resp.get("prompt", "") if d_code == 200 else ""
            chat_code, _ = call(
                "POST", "/v1/chat/completions", {"model": model, "messages": messages, "tools": TOOLS, "max_tokens": 8}
            )
            out[f"{style}/{turn}"] = {
                "tokenize_status": code,
                "chat_status": chat_code,
                "thinking_in_prompt": SECRET in prompt,
                "prompt_tail": prompt[-400:],
            }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="MiniMax-M2.5")
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--log", type=Path)
    p.add_argument("--timeout", type=float, default=540)
    p.add_argument("--dummy-weights", action="store_true", help="add --load-format dummy (M1, M3: no weights)")
    args = p.parse_args()
    m3 = args.preset.startswith("MiniMax-M3")
    container, entry = rendered(args.preset)
    argv = [*container["command"], *one_gpu(container["args"])]
    argv += ["--load-format", "dummy"] if args.dummy_weights else []
    argv += ["--structured-outputs-config", json.dumps({"enable_in_reasoning": True})]
    env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}}
    report: dict[str, Any] = {"preset": args.preset, "argv": argv}
    log_path = args.log or args.report.with_suffix(".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.monotonic()
    try:
        report["health"] = wait_health(proc, args.timeout)
        if report["health"].get("ready"):
            forced, tags = (M3_FORCED, M3_TAGS) if m3 else (FORCED, TAGS)
            report["split"] = split_checks(entry["model_id"], forced, tags)
            if not m3:  # the tiny M3 template is ours, not the family's: what it keeps proves nothing
                report["history"] = history_checks(entry["model_id"])
    finally:
        stop(proc)
        report["wall_seconds"] = round(time.monotonic() - t0, 1)
        args.report.write_text(json.dumps(report, indent=2))
    summary = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("non_stream", "stream")}
        for k, v in (report.get("split") or {}).items()
        if k != "tag_token_ids"
    }
    history = {k: v["thinking_in_prompt"] for k, v in (report.get("history") or {}).items()}
    print(json.dumps({"health": report.get("health"), "split": summary, "history": history}, indent=1))
    return 0 if report["health"].get("ready") else 1


if __name__ == "__main__":
    raise SystemExit(main())
