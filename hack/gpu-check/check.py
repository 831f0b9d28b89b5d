"""Start the vLLM server exactly as `minimax-operator render` gives it for a preset, then use it as ChatOS does.

Runs on a GPU machine with vLLM importable (see README.md). The container's command,
args and env come from the rendered Deployment; the only changes are the ones a single
test GPU needs (`--tensor-parallel-size 1`, `--max-model-len 4096`). Then, as ChatOS:
/health from the first second (the port must stay closed, never 503, until ready),
/v1/models (its id must equal the ChatOS entry's model_id), a chat without and with
streaming (reasoning and answer must land in the same fields both ways), a request with
tools, a second turn carrying a tool call and its result, and an unknown model (404).
Writes one JSON report.

Usage: python3 check.py --preset MiniMax-M2.5 --label bf16-cold --report out.json [--cache DIR]
       python3 check.py --layout two-nodes-tp --label ... --report ...   (two GPUs)

`--layout`: the preset rendered with a layout of two GPUs instead, on a machine with two:
`one-node-tp2` (the Deployment's container, both GPUs), `two-nodes-tp` and `two-nodes-pp` (the
leader and worker containers of the rendered LeaderWorkerSet, run as two processes with one GPU
each and LWS's variables set as LWS sets them: LWS_LEADER_ADDRESS=localhost, LWS_GROUP_SIZE=2,
LWS_WORKER_INDEX 0 and 1). Only `--max-model-len 4096` is changed; each layout's compile cache
is its own folder, as the claim's subPath gives it. The report says whether the worker stayed up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from minimax_operator.api.v1alpha1 import MiniMaxDeployment
from minimax_operator.model.deployment import resolve
from minimax_operator.render import chatos
from minimax_operator.render import server as render_server

ROOT = Path(__file__).resolve().parents[2]
PORT = 8000
BASE = f"http://127.0.0.1:{PORT}"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def rendered(preset: str, pod_security: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The server container of the preset's Deployment, and the ChatOS entry, as the operator renders them."""
    doc = {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment", "metadata": {"name": "check"}}
    doc["spec"] = {"model": preset, **({"vllm": {"podSecurity": pod_security}} if pod_security else {})}
    mmd = MiniMaxDeployment.model_validate(doc)
    r = resolve("check", "default", mmd.spec, {})
    deployment = render_server.deployment(r, None)
    return deployment["spec"]["template"]["spec"]["containers"][0], chatos.chatos_entry(r)


H200 = {"memoryGiB": 141}
LAYOUTS: dict[str, dict[str, Any]] = {
    "one-node-tp2": {"tensorParallelSize": 2, "gpu": {"perNode": 2, **H200}},
    "two-nodes-tp": {"tensorParallelSize": 2, "nodes": 2, "gpu": {"perNode": 1, **H200}},
    "two-nodes-pp": {"tensorParallelSize": 1, "pipelineParallelSize": 2, "nodes": 2, "gpu": {"perNode": 1, **H200}},
}
CLAIM_CACHE = Path("/var/cache/minimax-claim")


def rendered_layout(
    preset: str, layout: str
) -> tuple[list[tuple[dict[str, Any], dict[str, str], dict[str, Any]]], dict[str, Any]]:
    """The processes of a two-GPU layout, as the operator renders them: (container, env LWS and the
    GPU plugin would add, pod spec) for each pod, and the ChatOS entry."""
    doc = {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment", "metadata": {"name": "check"}}
    doc["spec"] = {"model": preset, **LAYOUTS[layout]}
    r = resolve("check", "default", MiniMaxDeployment.model_validate(doc).spec, {})
    obj = render_server.server(r, None)
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]["spec"]
        return [(pod["containers"][0], {"CUDA_VISIBLE_DEVICES": "0,1"}, pod)], chatos.chatos_entry(r)
    group = obj["spec"]["leaderWorkerTemplate"]
    pods = []
    for rank, template in enumerate((group["leaderTemplate"], group["workerTemplate"])):
        lws = {"LWS_LEADER_ADDRESS": "localhost", "LWS_GROUP_SIZE": str(group["size"]), "LWS_WORKER_INDEX": str(rank)}
        pods.append((template["spec"]["containers"][0], {**lws, "CUDA_VISIBLE_DEVICES": str(rank)}, template["spec"]))
    return pods, chatos.chatos_entry(r)


def mounted_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env, with its compile-cache folder where the claim's subPath puts it."""
    sub = next(
        (m.get("subPath") for m in container["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR), None
    )
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    if sub:
        folder = CLAIM_CACHE / sub
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o1777)  # as the download Job prepares it (download/job.py prepare_compile_folder)
        env = {k: v.replace(render_server.COMPILE_DIR, str(folder)) for k, v in env.items()}
    return env


def as_pod_mounts(pod: dict[str, Any], argv: list[str]) -> list[str]:
    """The pod's mounts that a process on the host lacks: /dev/shm as a memory-backed folder of the
    rendered size (NCCL and the engine's shared memory live there), the weights read-only. In a
    mount namespace of the process's own (`unshare`), so the host's /dev/shm and /models stay as
    they are."""
    shm = next((v["emptyDir"].get("sizeLimit") for v in pod.get("volumes") or [] if v.get("name") == "dshm"), None)
    if not shm:
        return argv
    size = shm.replace("Gi", "g").replace("Mi", "m").replace("G", "g").replace("M", "m")
    script = (
        f"mount -t tmpfs -o size={size},mode=1777 tmpfs /dev/shm && "
        'mount --bind /models /models && mount -o remount,bind,ro /models && df -h /dev/shm /models && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]


def as_pod_user(pod: dict[str, Any], container: dict[str, Any], argv: list[str], env: dict[str, str]) -> list[str]:
    """The pod's user, as its securityContext says: uid and gid, no capabilities, no new privileges,
    HOME on an empty folder of its own (the pod's emptyDir)."""
    ctx = pod.get("securityContext") or {}
    if not ctx.get("runAsUser"):
        return argv
    uid, gid = int(ctx["runAsUser"]), int(ctx.get("runAsGroup", ctx["runAsUser"]))
    home = Path(env.get("HOME", "/home/vllm"))
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.chown(home, uid, gid)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all",
            "--bounding-set=-all", *argv]  # fmt: skip


def small_context(args: list[str]) -> list[str]:
    out = list(args)
    if "--max-model-len" in out:
        out[out.index("--max-model-len") + 1] = "4096"
    else:
        out[out.index("--headless") if "--headless" in out else len(out) : 0] = ["--max-model-len", "4096"]
    return out


def run_layout(args: argparse.Namespace) -> int:
    pods, entry = rendered_layout(args.preset, args.layout)
    log_path = args.log or args.report.with_suffix(".log")
    report: dict[str, Any] = {"preset": args.preset, "label": args.label, "layout": args.layout, "pods": []}
    procs = []
    t0 = time.monotonic()
    for i, (container, extra, pod) in enumerate(reversed(pods)):  # workers first, as LWS may start them
        argv = as_pod_mounts(pod, [*container["command"], *small_context(container["args"])])
        env = {**os.environ, **mounted_env(container), **extra}
        path = log_path.with_suffix(f".pod{len(pods) - 1 - i}.log")
        with path.open("wb") as log:
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        report["pods"].append({"argv": argv, "env": {k: env[k] for k in extra}, "log": path.name})
    leader = procs[-1]
    try:
        report["health"] = wait_health(leader, args.timeout)
        if report["health"].get("ready"):
            report.update(chat_checks(entry["model_id"]))
            report["models_id_is_chatos_model_id"] = report["models"]["ids"] == [entry["model_id"]]
        report["workers_up_after_checks"] = all(p.poll() is None for p in procs[:-1])
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        report["wall_seconds"] = round(time.monotonic() - t0, 1)
        args.report.write_text(json.dumps(report, indent=2))
    keys = ("label", "health", "stream_matches", "models_id_is_chatos_model_id", "workers_up_after_checks")
    print(json.dumps({k: report.get(k) for k in keys}))
    return 0 if report["health"].get("ready") else 1


def one_gpu(args: list[str], tp: int = 1) -> list[str]:
    """The rendered args on this machine's GPUs: TP `tp` (1 by default), no pipeline stages (M3's default
    layout has two), short context. The preset's other flags (expert parallelism) stay."""
    out = list(args)
    for flag, value in (("--tensor-parallel-size", str(tp)), ("--max-model-len", "4096")):
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    if "--pipeline-parallel-size" in out:
        out[out.index("--pipeline-parallel-size") + 1] = "1"
    return out


def call(method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, (e.read() or b"").decode(errors="replace")[:500]


def stream(body: dict[str, Any]) -> tuple[int, dict[str, str], list[str]]:
    """Concatenate a streamed chat's delta fields; also the field names seen."""
    req = urllib.request.Request(
        BASE + "/v1/chat/completions",
        data=json.dumps({**body, "stream": True}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    fields: dict[str, str] = {}
    seen: set[str] = set()
    try:
        r = urllib.request.urlopen(req, timeout=120)
    except urllib.error.HTTPError as e:  # refused (a preset without tool calling, say): the status tells
        return e.code, {"error": (e.read() or b"").decode(errors="replace")[:300]}, []
    with r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                delta = choice.get("delta") or {}
                for k, v in delta.items():
                    if isinstance(v, str):
                        fields[k] = fields.get(k, "") + v
                        seen.add(k)
                    elif v:
                        seen.add(k)
        return r.status, fields, sorted(seen)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL after 60 s); it may have exited by itself."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_health(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Seconds to /health 200, and what the port answered before (refused, or an HTTP status)."""
    t0 = time.monotonic()
    answers: dict[str, int] = {}
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return {"ready": False, "exited": proc.returncode, "before_ready": answers}
        try:
            with urllib.request.urlopen(BASE + "/health", timeout=2) as r:
                if r.status == 200:
                    return {"ready": True, "seconds": round(time.monotonic() - t0, 1), "before_ready": answers}
                answers[str(r.status)] = answers.get(str(r.status), 0) + 1
        except urllib.error.HTTPError as e:
            answers[str(e.code)] = answers.get(str(e.code), 0) + 1
        except OSError:
            answers["refused"] = answers.get("refused", 0) + 1
        time.sleep(1)
    return {"ready": False, "timeout": timeout, "before_ready": answers}


def chat_checks(model: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    code, models = call("GET", "/v1/models")
    out["models"] = {"status": code, "ids": [m["id"] for m in (models or {}).get("data", [])] if code == 200 else []}
    ask = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 48,
        "temperature": 0,
    }
    code, resp = call("POST", "/v1/chat/completions", ask)
    msg = resp["choices"][0]["message"] if code == 200 else {}
    plain = {k: v for k, v in msg.items() if isinstance(v, str)}
    out["chat"] = {"status": code, "fields": plain}
    s_code, s_fields, seen = stream(ask)
    out["chat_stream"] = {"status": s_code, "fields": s_fields, "delta_keys": seen}
    keys = sorted((set(plain) | set(s_fields)) - {"role"})
    out["stream_matches"] = all(plain.get(k, "") == s_fields.get(k, "") for k in keys)
    out["stream_diff"] = {k: [plain.get(k, ""), s_fields.get(k, "")] for k in keys if plain.get(k) != s_fields.get(k)}

    with_tools = {**ask, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS}
    code, resp = call("POST", "/v1/chat/completions", {**with_tools, "tool_choice": "auto"})
    choice = resp["choices"][0] if code == 200 else {}
    out["tools"] = {"status": code, "finish_reason": choice.get("finish_reason"), "message": choice.get("message")}
    s_code, s_fields, seen = stream({**with_tools, "tool_choice": "auto"})
    out["tools_stream"] = {"status": s_code, "delta_keys": seen}

    second = {
        **ask,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "reasoning": "The user wants the weather; call the tool.",  # what vLLM reads (docs/chatos.md)
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 18, "sky": "clear"}'},
        ],
    }
    code, resp = call("POST", "/v1/chat/completions", second)
    out["tool_result_turn"] = {"status": code, "detail": resp if code != 200 else "ok"}
    code, resp = call("POST", "/v1/chat/completions", {**ask, "model": "no-such-model"})
    out["unknown_model"] = {"status": code}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="MiniMax-M2.5")
    p.add_argument("--label", required=True, help="e.g. bf16-cold")
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--log", type=Path, help="vLLM's log (default: beside the report)")
    p.add_argument("--timeout", type=float, default=540)
    p.add_argument("--reasoning-parser", help="replace the preset's (to compare with an earlier choice)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), help="a two-GPU layout (see above)")
    p.add_argument("--pod-security", choices=["baseline", "restricted"], help="render with spec.vllm.podSecurity")
    p.add_argument("--claim", action="store_true", help="the cache folder of the claim's subPath (CLAIM_CACHE)")
    p.add_argument("--dummy-weights", action="store_true", help="add --load-format dummy (no weights on disk)")
    p.add_argument("--tp", type=int, default=1, help="tensor parallelism of the preset's command on one node")
    args = p.parse_args()
    if args.layout:
        return run_layout(args)

    container, entry = rendered(args.preset, args.pod_security)
    argv = [*container["command"], *one_gpu(container["args"], args.tp)]
    if args.reasoning_parser:
        argv[argv.index("--reasoning-parser") + 1] = args.reasoning_parser
    if args.dummy_weights:
        argv += ["--load-format", "dummy"]
    if args.claim:  # the cache folder where the claim's subPath puts it, as the pod mounts it
        env = {**os.environ, **mounted_env(container)}
    else:
        env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}}
    pod = render_server.deployment(
        resolve("check", "default", MiniMaxDeployment.model_validate({
            "apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment", "metadata": {"name": "check"},
            "spec": {"model": args.preset}}).spec, {}),
        None,
    )["spec"]["template"]["spec"]  # fmt: skip
    if args.pod_security:
        pod = render_server.deployment(
            resolve("check", "default", MiniMaxDeployment.model_validate({
                "apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment", "metadata": {"name": "check"},
                "spec": {"model": args.preset, "vllm": {"podSecurity": args.pod_security}}}).spec, {}),
            None,
        )["spec"]["template"]["spec"]  # fmt: skip
        argv = as_pod_user(pod, container, argv, env)
    argv = as_pod_mounts(pod, argv)  # outermost: mounts as root, then the pod's user
    log_path = args.log or args.report.with_suffix(".log")
    report: dict[str, Any] = {
        "preset": args.preset,
        "label": args.label,
        "image": container["image"],
        "argv": argv,
        "env": {e["name"]: e.get("value") for e in container.get("env") or []},
        "chatos_model_id": entry["model_id"],
    }
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        report["health"] = wait_health(proc, args.timeout)
        if report["health"].get("ready"):
            report.update(chat_checks(entry["model_id"]))
            report["models_id_is_chatos_model_id"] = report["models"]["ids"] == [entry["model_id"]]
    finally:
        stop(proc)
        report["wall_seconds"] = round(time.monotonic() - t0, 1)
        text = log_path.read_text(errors="replace")
        report["log_warnings"] = [
            line[-300:] for line in text.splitlines() if ("WARNING" in line or "ERROR" in line) and len(line) < 2000
        ][-40:]
        args.report.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report.get(k) for k in ("label", "health", "stream_matches", "models_id_is_chatos_model_id")}))
    return 0 if report["health"].get("ready") else 1


if __name__ == "__main__":
    raise SystemExit(main())
