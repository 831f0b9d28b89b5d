#!/usr/bin/env python3
"""Run the real LeaderWorkerSet controller against the local cluster, webhooks included.

Why outside the cluster: the local cluster has no registry to pull LWS's image from, and its GPU
nodes are simulated. The controller built by `hack/tools.sh --lws` runs as a process on this
machine, like the control plane (kwokctl's binary runtime), so the API server reaches its webhooks
at https://127.0.0.1:PORT. What upstream's kustomize does for a cluster install is done here:
- the CRDs (LeaderWorkerSet and DisaggregatedSet; the controller watches both);
- the webhook configurations from config/webhook/manifests.yaml with its patches applied (the pod
  webhooks select LWS's own pods only), each pointed at the local port with our CA;
- a serving certificate for 127.0.0.1 signed by a CA made here (upstream makes one in-cluster with
  its internal cert manager, which needs a Service and a Secret);
- leader election off (one process), metrics and health probes off.

Usage: hack/lws.py start --kubeconfig K --dir D      (idempotent: restarts a running one)
       hack/lws.py stop --dir D [--kubeconfig K]     (--kubeconfig also removes the webhooks)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import devkit  # hack/devkit.py, beside this script
import yaml
from devkit import free_port, kubectl, tools

HERE = Path(__file__).resolve().parent
WEBHOOK_NAMES = {
    "MutatingWebhookConfiguration": "minimax-dev-lws-mutating",
    "ValidatingWebhookConfiguration": "minimax-dev-lws-validating",
}


def lws_home() -> Path:
    return tools("--lws")


def certificates(folder: Path) -> bytes:
    """A CA and a serving certificate for 127.0.0.1."""
    return devkit.certificates(folder, "minimax-dev-lws-ca", "127.0.0.1", ["IP:127.0.0.1", "DNS:localhost"])


def webhook_configurations(home: Path, port: int, ca: bytes) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((home / "webhooks.yaml").read_text()) if d]
    patches = {
        "MutatingWebhookConfiguration": yaml.safe_load((home / "mutating-patch.yaml").read_text()),
        "ValidatingWebhookConfiguration": yaml.safe_load((home / "validating-patch.yaml").read_text()),
    }
    for doc in docs:
        for op in patches[doc["kind"]]:
            assert op["op"] == "replace" and op["path"].startswith("/webhooks/"), op
            doc["webhooks"][int(op["path"].rsplit("/", 1)[1])] = op["value"]
        doc["metadata"] = {"name": WEBHOOK_NAMES[doc["kind"]], "labels": {"app.kubernetes.io/part-of": "minimax-dev"}}
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca).decode()}
            hook["timeoutSeconds"] = 10
    return docs


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_tls(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"lws-controller exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, ctx.wrap_socket(raw):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"lws-controller's webhook did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(folder: Path, kubeconfig: str | None) -> None:
    pid_file = folder / "lws.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
    if kubeconfig:
        for kind, name in WEBHOOK_NAMES.items():
            kubectl(kubeconfig, "delete", kind, name, "--ignore-not-found")


def start(kubeconfig: str, folder: Path) -> None:
    home = lws_home()
    stop(folder, None)
    ca = certificates(folder / "lws-certs")
    # The port of the last start when it is free: the webhook configurations keep pointing at it
    # while the controller restarts (a new port would refuse LWS writes until they are re-applied).
    saved = folder / "lws-port"
    port = int(saved.read_text()) if saved.exists() and port_free(int(saved.read_text())) else free_port()
    saved.write_text(str(port))
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(home / "crds"))
    for attempt in range(30):  # a CRD just created may not be readable for a moment
        try:
            kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(home / "crds"))
            break
        except RuntimeError:
            if attempt == 29:
                raise
            time.sleep(1)
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"port": port, "host": "127.0.0.1", "certDir": str(folder / "lws-certs")},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": "0"},
    }
    (folder / "lws-config.yaml").write_text(json.dumps(config))
    log = folder / "lws.log"
    proc = subprocess.Popen(
        [str(home / "bin" / "lws-controller"), "--config", str(folder / "lws-config.yaml"), "--zap-log-level=info"],
        env={**os.environ, "KUBECONFIG": kubeconfig},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (folder / "lws.pid").write_text(str(proc.pid))
    wait_tls(port, 60, proc, log)
    docs = webhook_configurations(home, port, ca)
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": docs}))  # fmt: skip
    print(f"lws-controller {home.name.removeprefix('lws-')} pid {proc.pid}, webhooks on 127.0.0.1:{port}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["start", "stop"])
    p.add_argument("--kubeconfig")
    p.add_argument("--dir", required=True, type=Path, help="the cluster's folder (pid, log, certificates)")
    a = p.parse_args()
    if a.command == "start":
        if not a.kubeconfig:
            p.error("start needs --kubeconfig")
        start(a.kubeconfig, a.dir)
    else:
        stop(a.dir, a.kubeconfig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
