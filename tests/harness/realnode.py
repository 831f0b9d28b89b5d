"""The real-node cluster's parts that tests and bench/real_node.py share: the chart, the Hub pod."""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.harness.cluster import ROOT, TOOLS_BIN, Cluster, wait_for

HUB_NAMESPACE = "hub"
#: What hack/hub/hub.yaml serves: generated repositories of 4 shards of 64 MiB (256 MiB each).
SHARDS, SHARD_MIB = 4, 64
GATED_REPO = "MiniMaxAI/Real-Gated"
OPERATOR_NAMESPACE = "minimax-system"


@dataclass
class Hub:
    """The fake Hub's pod: its in-cluster address, and its control endpoints from this machine."""

    url: str  # what pods use: the Service's DNS name
    pod_ip: str  # what this machine uses: the pod's address on the node's bridge
    token: str

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(f"http://{self.pod_ip}:8080{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            data: dict = json.loads(resp.read())
            return data

    def rate(self, bytes_per_second: int) -> None:
        """Limit each connection of the Hub to this many bytes a second (0: no limit)."""
        self._call("PUT", f"/_rate?bytes_per_second={bytes_per_second}")

    def served(self, repo_files_prefix: str = "") -> int:
        """Bytes the Hub has served, of files whose path starts with the prefix."""
        stats = self._call("GET", "/_stats")["bytes_served"]
        return sum(v for k, v in stats.items() if k.startswith(repo_files_prefix))


def helm(cluster: Cluster, *args: str) -> str:
    proc = subprocess.run(
        [f"{TOOLS_BIN}/helm", "--kubeconfig", cluster.kubeconfig, *args], capture_output=True, text=True
    )
    if proc.returncode:
        raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def install_operator(cluster: Cluster) -> str:
    """The operator as a user installs it: the chart, the image built here, its ServiceAccount."""
    chart = str(ROOT / "charts" / "minimax-operator")
    # Helm installs a chart's CRDs once and never upgrades them: a cluster left by an older run would
    # prune the fields this one adds. What the chart README tells users to do on upgrade.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    helm(cluster, "upgrade", "--install", "minimax-operator", chart, "-n", OPERATOR_NAMESPACE, "--create-namespace",
         "--set", "replicas=1", "--wait", "--timeout", "180s")  # fmt: skip
    return OPERATOR_NAMESPACE


def deploy_hub(cluster: Cluster) -> Hub:
    """tests/harness/fakehub.py as a Deployment and Service (hack/hub/hub.yaml), with a fresh token."""
    c = cluster
    token = "hf_" + secrets.token_hex(16)
    c.kubectl("create", "namespace", HUB_NAMESPACE, check=False)
    script = (ROOT / "tests" / "harness" / "fakehub.py").read_text()
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fakehub"}, "data": {"fakehub.py": script}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hub-token"}, "stringData": {"token": token}},
        *yaml.safe_load_all((ROOT / "hack" / "hub" / "hub.yaml").read_text()),
    ]
    c.apply_docs(docs, namespace=HUB_NAMESPACE)
    c.kubectl("rollout", "restart", "deployment/hub", "-n", HUB_NAMESPACE)  # the new token and script
    c.kubectl("rollout", "status", "deployment/hub", "-n", HUB_NAMESPACE, "--timeout=180s")

    def ready_pod() -> str | None:
        for pod in c.core.list_namespaced_pod(HUB_NAMESPACE, label_selector="app=hub").items:
            ready = any(s.ready for s in pod.status.container_statuses or [])
            if pod.metadata.deletion_timestamp is None and ready and pod.status.pod_ip:
                return str(pod.status.pod_ip)
        return None

    pod_ip = wait_for(ready_pod, 180, what="the Hub's pod")
    return Hub(url=f"http://hub.{HUB_NAMESPACE}.svc.cluster.local", pod_ip=pod_ip, token=token)


def volume_path(cluster: Cluster, claim: str, ns: str) -> Path:
    """The folder on this machine behind a claim (local-path's hostPath volume)."""
    pvc = cluster.core.read_namespaced_persistent_volume_claim(claim, ns)
    pv = cluster.core.read_persistent_volume(pvc.spec.volume_name)
    return Path(pv.spec.host_path.path)


def real_node_cluster() -> str | None:
    """The kubeconfig of the local cluster that has this machine's real node, if one runs (the demo's)."""
    script = str(ROOT / "hack" / "cluster.sh")
    owners = subprocess.run([script, "real-node-owner"], capture_output=True, text=True, check=True).stdout.split()
    if not owners:
        return None
    return subprocess.run([script, "kubeconfig", owners[0]], capture_output=True, text=True, check=True).stdout.strip()
