"""Figures of the real node: start time, download throughput and memory, resume, component memory.

    .venv/bin/python -m bench.real_node                # starts a REAL_NODE=1 cluster, deletes it after
    .venv/bin/python -m bench.real_node --kubeconfig ~/.cache/minimax-operator/kubeconfig-NAME

Needs root (the node is this machine). The operator is installed by its chart and the fake
Hub runs as a pod (tests/realnode/support.py), so every byte goes through a real download
pod, a real Service, CNI bridge and a local-path volume. Prints one figure a line and ends
with a single key=value summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from tests.harness.cluster import Cluster, local_cluster, wait_for
from tests.harness.realnode import SHARD_MIB, SHARDS, deploy_hub, install_operator

ROOT = Path(__file__).resolve().parents[1]

MODEL_BYTES = SHARDS * (SHARD_MIB << 20)
CACHE = Path(os.environ.get("MINIMAX_CACHE_DIR", Path.home() / ".cache" / "minimax-operator"))
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "local-path-provisioner")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def node_memory(cluster_name: str) -> dict[str, float]:
    """Resident memory of the node's daemons, and of containerd's shims (one per pod)."""
    out: dict[str, float] = {}
    node = CACHE / "kwok" / "clusters" / cluster_name / "node"
    for name in COMPONENTS:
        pid = int((node / f"{name}.pid").read_text())
        out[name] = rss_mib(pid)
    shims = [
        int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(int(p.name)) == "containerd-shim"
    ]
    out["shims"] = sum(rss_mib(p) for p in shims)
    out["shim_count"] = len(shims)
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def pod_memory_peak(uid: str) -> int | None:
    """The pod cgroup's peak memory (cgroup v1, cgroupfs driver), while the pod exists."""
    for qos in ("", "burstable/", "besteffort/"):
        f = Path(f"/sys/fs/cgroup/memory/kubepods/{qos}pod{uid}/memory.max_usage_in_bytes")
        if f.exists():
            try:
                return int(f.read_text())
            except OSError:
                return None
    return None


def download_pod(c: Cluster, ns: str) -> Any:
    pods = c.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=weights-download").items
    return max(pods, key=lambda p: p.metadata.creation_timestamp) if pods else None


def cache(c: Cluster, ns: str, name: str, repo: str, endpoint: str) -> None:
    c.kubectl("create", "namespace", ns)
    c.create_mmc(ns, name, {"repo": repo, "storage": {"size": "1Gi"}, "download": {"endpoint": endpoint}})


def throughput(c: Cluster, hub: Any) -> dict[str, float]:
    """An unthrottled download of one repository; the downloader's own seconds (fetch and verify)."""
    hub.rate(0)
    cache(c, "bench-throughput", "fast", "MiniMaxAI/Real-Tiny", hub.url)
    ready = wait_for(lambda: (c.mmc("bench-throughput", "fast").get("status") or {}).get("commit"), 300, what="ready")
    assert ready
    pod = download_pod(c, "bench-throughput")
    term = pod.status.container_statuses[0].state.terminated
    result = json.loads(term.message)
    seconds = float(result["seconds"])
    return {"download_mib_per_s": MODEL_BYTES / (1 << 20) / seconds, "download_seconds": seconds}


def resume(c: Cluster, hub: Any) -> dict[str, float]:
    """A throttled download whose pod is deleted at 30 %: bytes fetched twice, and peak pod memory."""
    ns = "bench-resume"
    before = hub.served()
    hub.rate(2 << 20)
    cache(c, ns, "resume", "MiniMaxAI/Real-Resume", hub.url)
    peak = 0

    def at(fraction: float) -> bool:
        nonlocal peak
        pod = download_pod(c, ns)
        if pod is not None:
            peak = max(peak, pod_memory_peak(pod.metadata.uid) or 0)
        done = ((c.mmc(ns, "resume").get("status") or {}).get("download") or {}).get("bytesDone") or 0
        return bool(done >= MODEL_BYTES * fraction)

    wait_for(lambda: at(0.3), 300, what="30 %", interval=0.5)
    first = download_pod(c, ns)
    t0 = time.monotonic()
    c.kubectl("delete", "pod", "-n", ns, first.metadata.name, "--wait=false")
    wait_for(lambda: (p := download_pod(c, ns)) is not None and p.metadata.name != first.metadata.name, 120)
    next_pod_s = time.monotonic() - t0
    hub.rate(0)
    wait_for(lambda: (c.mmc(ns, "resume").get("status") or {}).get("commit"), 300, what="verified", interval=0.5)
    refetched = hub.served() - before - MODEL_BYTES
    return {
        "resume_refetched_pct": 100 * refetched / MODEL_BYTES,
        "resume_next_pod_s": next_pod_s,
        "download_pod_peak_mib": peak / (1 << 20),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", help="an existing REAL_NODE=1 cluster (default: start one)")
    args = p.parse_args()
    t0 = time.monotonic()
    with local_cluster(args.kubeconfig, "mmbench", REAL_NODE="1") as kubeconfig:
        start_s = time.monotonic() - t0
        name = Path(kubeconfig).name.removeprefix("kubeconfig-")
        c = Cluster(kubeconfig, audit_log=None)
        t1 = time.monotonic()
        install_operator(c)
        helm_s = time.monotonic() - t1
        hub = deploy_hub(c)
        figures: dict[str, float] = {"cluster_start_s": start_s, "helm_install_s": helm_s}
        try:
            figures |= throughput(c, hub)
            figures |= resume(c, hub)
            mem = node_memory(name)
            figures |= {f"rss_{k.replace('-', '_')}_mib": v for k, v in mem.items() if k != "shim_count"}
            figures["shim_count"] = mem["shim_count"]
            figures["node_components_rss_mib"] = sum(v for k, v in mem.items() if k != "shim_count")
        finally:
            for ns in ("bench-throughput", "bench-resume"):
                c.kubectl("delete", "mmc", "--all", "-n", ns, "--timeout=60s", check=False)
                c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for k, v in figures.items():
            print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")
        keys = ("download_mib_per_s", "resume_refetched_pct", "download_pod_peak_mib", "node_components_rss_mib")
        print(" ".join(f"{k}={figures[k]:.1f}" for k in keys))


if __name__ == "__main__":
    main()
