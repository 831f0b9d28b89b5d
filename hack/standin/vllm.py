#!/usr/bin/env python3
"""A stand-in for `vllm serve` on the local cluster's real node: vLLM's HTTP surface and metric names,
driven by the requests it receives, with no GPU and no model.

Why: the autoscaling tests need servers whose /metrics move with load (KEDA reads them through
Prometheus), whose /health turns ready after a start, and whose OpenAI endpoints answer, on a
machine without GPUs; the servers on the simulated GPU nodes never run. The image built by
hack/image.sh puts this file at /usr/local/bin/vllm, so the operator's rendered command
(`vllm serve MODEL_DIR --served-model-name NAME --port 8000 ...`) runs it unchanged.

What it models: `--max-num-seqs` requests run at once (default 2 here), the rest wait (vLLM's
scheduler queue: vllm:num_requests_waiting); a running request produces max_tokens tokens at
STANDIN_TOKEN_SECONDS each after STANDIN_TTFT_SECONDS; KV-cache use is the running share of the
slots. It refuses to start when the weights folder is missing, as vLLM would. Standard library only
(the image is Debian's Python).

Environment: STANDIN_START_SECONDS (before /health is ready, default 1), STANDIN_TOKEN_SECONDS
(default 0.05), STANDIN_TTFT_SECONDS (default 0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1
        self.sum += v
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = [f"# TYPE {name} histogram"]
        for b, c in zip(self.buckets, self.counts, strict=True):
            out.append(f'{name}_bucket{{{labels},le="{b}"}} {c}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.sum}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class Engine:
    """The scheduler's view: slots, a queue, counters and histograms."""

    def __init__(self, model: str, slots: int, token_seconds: float, ttft_seconds: float):
        self.model = model
        self.slots = slots
        self.token_seconds = token_seconds
        self.ttft_seconds = ttft_seconds
        self.cond = threading.Condition()
        self.running = 0
        self.waiting = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.ready = False

    def run(self, prompt_tokens: int, max_tokens: int, emit: Any) -> int:
        start = time.monotonic()
        with self.cond:
            self.waiting += 1
            while self.running >= self.slots:
                self.cond.wait()
            self.waiting -= 1
            self.running += 1
        try:
            time.sleep(self.ttft_seconds)
            with self.cond:
                self.ttft.observe(time.monotonic() - start)
                self.prompt_tokens += prompt_tokens
            last = time.monotonic()
            for i in range(max_tokens):
                if i:
                    time.sleep(self.token_seconds)
                    now = time.monotonic()
                    with self.cond:
                        self.itl.observe(now - last)
                    last = now
                emit(i)
                with self.cond:
                    self.generation_tokens += 1
            return max_tokens
        finally:
            with self.cond:
                self.running -= 1
                self.success += 1
                self.e2e.observe(time.monotonic() - start)
                self.cond.notify()

    def metrics(self) -> str:
        labels = f'model_name="{self.model}",engine="0"'
        with self.cond:
            lines = [
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{labels}}} {self.running}",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{labels}}} {self.waiting}",
                "# TYPE vllm:kv_cache_usage_perc gauge",
                f"vllm:kv_cache_usage_perc{{{labels}}} {self.running / self.slots}",
                "# TYPE vllm:prompt_tokens_total counter",
                f"vllm:prompt_tokens_total{{{labels}}} {self.prompt_tokens}",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{labels}}} {self.generation_tokens}",
                "# TYPE vllm:request_success_total counter",
                f'vllm:request_success_total{{{labels},finished_reason="length"}} {self.success}',
                *self.ttft.lines("vllm:time_to_first_token_seconds", labels),
                *self.itl.lines("vllm:inter_token_latency_seconds", labels),
                *self.e2e.lines("vllm:e2e_request_latency_seconds", labels),
            ]
        return "\n".join(lines) + "\n"


def handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200 if engine.ready else 503, b"")
            elif self.path == "/metrics":
                self._send(200, engine.metrics().encode(), "text/plain; version=0.0.4")
            elif self.path == "/v1/models":
                self._send(
                    200, json.dumps({"object": "list", "data": [{"id": engine.model, "object": "model"}]}).encode()
                )
            else:
                self._send(404, b'{"error": "not found"}')

        def do_POST(self) -> None:
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self._send(404, b'{"error": "not found"}')
                return
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except ValueError:
                self._send(400, b'{"error": "invalid JSON"}')
                return
            if req.get("model") not in (None, engine.model):
                self._send(404, json.dumps({"error": f"model {req.get('model')} does not exist"}).encode())
                return
            max_tokens = max(1, min(int(req.get("max_tokens") or 16), 4096))
            prompt = json.dumps(req.get("messages") or req.get("prompt") or "")
            chat = self.path.endswith("chat/completions")
            if req.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

                def emit(i: int) -> None:
                    delta = {"delta": {"content": "x"}} if chat else {"text": "x"}
                    self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, **delta}]})}\n\n".encode())
                    self.wfile.flush()

                engine.run(len(prompt) // 4, max_tokens, emit)
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True
                return
            n = engine.run(len(prompt) // 4, max_tokens, lambda i: None)
            text = "x" * n
            choice = {"index": 0, "finish_reason": "length"}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            body = {
                "object": "chat.completion" if chat else "text_completion",
                "model": engine.model,
                "choices": [choice],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": n},
            }
            self._send(200, json.dumps(body).encode())

    return Handler


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "serve":
        print(
            "usage: vllm serve MODEL [--served-model-name NAME] [--port PORT] [--max-num-seqs N] ...", file=sys.stderr
        )
        return 2
    p = argparse.ArgumentParser(prog="vllm serve")
    p.add_argument("model")
    p.add_argument("--served-model-name")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-num-seqs", type=int, default=2)
    args, _ = p.parse_known_args(argv[1:])  # every other flag of vllm serve is accepted and ignored
    if not os.path.isdir(args.model):
        print(f"ValueError: the model folder {args.model} does not exist", file=sys.stderr)
        return 1
    # vLLM writes its compile cache under XDG_CACHE_HOME at start; a folder it cannot write is a crash there.
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache:
        os.makedirs(os.path.join(cache, "vllm", "torch_compile_cache"), exist_ok=True)
        with open(os.path.join(cache, "vllm", "torch_compile_cache", "standin"), "w") as f:
            f.write(f"written by uid {os.getuid()}\n")
    engine = Engine(
        args.served_model_name or args.model,
        args.max_num_seqs,
        float(os.environ.get("STANDIN_TOKEN_SECONDS", "0.05")),
        float(os.environ.get("STANDIN_TTFT_SECONDS", "0.1")),
    )
    server = ThreadingHTTPServer((args.host, args.port), handler(engine))
    server.daemon_threads = True
    start = float(os.environ.get("STANDIN_START_SECONDS", "1"))
    threading.Timer(start, lambda: setattr(engine, "ready", True)).start()
    # As PID 1 a process gets no default action for SIGTERM: without a handler the kubelet waited out
    # the grace period and killed it. vLLM stops on SIGTERM; so does this. (shutdown() waits for the
    # serving loop, which the handler interrupts: another thread calls it.)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"INFO stand-in vllm serving {engine.model} on {args.host}:{args.port}", flush=True)
    server.serve_forever()
    print("INFO stand-in vllm stopped (SIGTERM)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
