"""The autoscaling parts on the real-node cluster (hack/autoscaling.py), load against the stand-in vLLM, and
Prometheus queries: shared by tests/realnode/test_autoscaling.py and bench/autoscale.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.cluster import ROOT, Cluster, wait_for
from tests.harness.realnode import OPERATOR_NAMESPACE, Hub, helm

REAL_NODE_LABEL = "minimax.chatos.io/real-node=true"
GPU = "nvidia.com/gpu"


@dataclass
class Stack:
    """Where the running parts are (hack/autoscaling.py start's answer)."""

    prometheus_url: str
    keda_http_scaler: str
    keda_http_interceptor: str
    interceptor_address: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def start_stack(cluster: Cluster, folder: Path) -> Stack:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack" / "autoscaling.py"),
            "start",
            "--kubeconfig",
            cluster.kubeconfig,
            "--dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise AssertionError(f"hack/autoscaling.py start failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    s = json.loads(out.stdout.strip().splitlines()[-1])
    return Stack(s["prometheusUrl"], s["kedaHttpScaler"], s["kedaHttpInterceptor"], s["interceptorAddress"])


def stop_stack(cluster: Cluster, folder: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack" / "autoscaling.py"),
            "stop",
            "--kubeconfig",
            cluster.kubeconfig,
            "--dir",
            str(folder),
        ],
        check=False,
    )


def point_operator_at(cluster: Cluster, stack: Stack) -> None:
    """The chart's operator, told where Prometheus and the HTTP add-on are (a helm upgrade, as a user would)."""
    chart = str(ROOT / "charts" / "minimax-operator")
    helm(cluster, "upgrade", "minimax-operator", chart, "-n", OPERATOR_NAMESPACE, "--reuse-values",
         "--set", f"autoscaling.prometheusUrl={stack.prometheus_url}",
         "--set", f"autoscaling.kedaHttpScaler={stack.keda_http_scaler}",
         "--set", f"autoscaling.kedaHttpInterceptor={stack.keda_http_interceptor}",
         "--wait", "--timeout", "180s")  # fmt: skip


def real_node(cluster: Cluster) -> str:
    return str(cluster.core.list_node(label_selector=REAL_NODE_LABEL).items[0].metadata.name)


def advertise_gpus(cluster: Cluster, count: int) -> None:
    """Extended-resource capacity on the real node, so that the stand-in servers (which ask for GPUs as the
    rendered pods do) run there; no device plugin owns the name, so the kubelet admits them as they are."""
    node = real_node(cluster)
    if count:
        patch = [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(count)}]
    else:
        patch = [{"op": "remove", "path": "/status/capacity/nvidia.com~1gpu"}]
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=json", "-p", json.dumps(patch),
                    check=bool(count))  # fmt: skip
    if count:
        wait_for(lambda: (cluster.core.read_node(node).status.allocatable or {}).get(GPU) == str(count), 30,
                 what="GPUs on the real node")  # fmt: skip


def standin_image() -> str:
    out = subprocess.run([str(ROOT / "hack" / "image.sh"), "standin-image"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def standin_spec(hub: Hub, repo: str, **autoscaling: Any) -> dict[str, Any]:
    """A resource whose servers are the stand-in vLLM on the real node: 2 requests at once, 50 ms a token."""
    return {
        "repo": repo,
        "servedModelName": "tiny",
        "tensorParallelSize": 1,
        "storage": {"size": "1Gi"},
        "download": {"endpoint": hub.url},
        "vllm": {
            "image": standin_image(),
            "extraArgs": ["--max-num-seqs", "2"],
            "env": [{"name": "STANDIN_TOKEN_SECONDS", "value": "0.05"}],
            "nodeSelector": {"minimax.chatos.io/real-node": "true"},
        },
        "autoscaling": autoscaling,
    }


@dataclass
class Load:
    """Concurrent chat requests in a loop, against one address (host:port), until stopped."""

    address: str
    model: str
    concurrency: int
    max_tokens: int = 200
    host: str | None = None
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def one(self, timeout: float = 120) -> tuple[int, bytes]:
        body = json.dumps({"model": self.model, "max_tokens": self.max_tokens,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
        req = urllib.request.Request(f"http://{self.address}/v1/chat/completions", data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self.host:
            req.add_header("Host", self.host)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                status, text = self.one()
            except OSError as e:
                self.failed.append(str(e))
                time.sleep(0.5)
                continue
            if status == 200:
                self.ok += 1
            else:
                self.failed.append(f"{status}: {text[:200]!r}")
                time.sleep(0.5)

    def stop(self) -> None:
        """No new requests from now on (those running finish)."""
        self._stop.set()

    def __enter__(self) -> Load:
        for _ in range(self.concurrency):
            t = threading.Thread(target=self._loop, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def service_address(cluster: Cluster, ns: str, name: str) -> str:
    svc = cluster.core.read_namespaced_service(name, ns)
    return f"{svc.spec.cluster_ip}:8000"
