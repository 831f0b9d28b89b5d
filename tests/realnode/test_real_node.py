"""What only a real node shows: the operator's image, its pod, and the download Job running for real.

The download pod runs the image built from images/operator/Dockerfile as its non-root user,
writes into a volume made by local-path-provisioner, fetches from the fake Hub's pod through
a Service and cluster DNS, and prints the progress lines the operator reads through the
kubelet. Only the vLLM servers (GPU nodes) are simulated.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from typing import Any

import pytest

from tests.harness.cluster import Cluster, wait_for
from tests.harness.realnode import GATED_REPO, SHARD_MIB, SHARDS, Hub, volume_path

MODEL_BYTES = SHARDS * (SHARD_MIB << 20)  # and a few bytes of config.json


def spec(hub: Hub, repo: str, **download: Any) -> dict[str, Any]:
    return {
        "repo": repo,
        "servedModelName": repo.split("/")[1].lower(),
        "tensorParallelSize": 1,
        "storage": {"size": "1Gi"},
        "vllm": {"image": "vllm/vllm-openai:v0.20.0"},
        "download": {"endpoint": hub.url, **download},
    }


def download_pods(cluster: Cluster, ns: str) -> list[Any]:
    pods = cluster.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=weights-download").items
    return sorted(pods, key=lambda p: p.metadata.creation_timestamp)


def download_column(cluster: Cluster, ns: str, name: str) -> str:
    """The DOWNLOAD column of `kubectl get mmd`, as a user reads it."""
    lines = cluster.kubectl("get", "mmd", name, "-n", ns).splitlines()
    header, row = lines[0], lines[1]
    start = header.index("DOWNLOAD")
    following = re.search(r"\s(\S)", header[start:])  # the next column's first letter
    end = start + following.start(1) if following else len(row)
    return row[start:end].strip()


def test_operator_runs_in_the_cluster_from_its_chart(real_cluster: Cluster, operator: str) -> None:
    c = real_cluster

    def ready_pod() -> Any:
        pods = c.core.list_namespaced_pod(operator, label_selector="app.kubernetes.io/name=minimax-operator").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        statuses = {p.metadata.name: p.status.container_statuses or [] for p in live}
        return next(
            (p for p in live if statuses[p.metadata.name] and all(s.ready for s in statuses[p.metadata.name])), None
        )

    pod = wait_for(ready_pod, 60, what="the operator's pod Ready (its readiness probe)")
    assert pod.spec.node_name == "real-node"
    assert pod.status.container_statuses[0].restart_count == 0, "the liveness probe restarted it"
    container = pod.spec.containers[0]
    assert container.liveness_probe and container.readiness_probe
    assert pod.spec.service_account_name == "minimax-operator"
    # Metrics from its Service, scraped as Prometheus would: at the endpoints the Service lists.
    port = next(p.container_port for p in container.ports if p.name == "metrics")
    address = c.kubectl(
        "get",
        "endpointslices",
        "-n",
        operator,
        "-l",
        "kubernetes.io/service-name=minimax-operator-metrics",
        "-o",
        "jsonpath={.items[0].endpoints[0].addresses[0]}",
    )
    assert address == pod.status.pod_ip
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert "minimax_operator" in metrics


def test_download_runs_as_a_pod_with_live_progress_and_the_token_stays_secret(
    real_cluster: Cluster, operator: str, hub: Hub, ns: str
) -> None:
    c = real_cluster
    hub.rate(1 << 20)  # 1 MiB/s a connection: about a minute, so progress has to show
    c.core.create_namespaced_secret(ns, {"metadata": {"name": "hf"}, "stringData": {"token": hub.token}})
    c.chatos_configmap(ns, [])
    c.create_mmd(ns, "gated", spec(hub, GATED_REPO, tokenSecretRef={"name": "hf"}))
    columns: list[str] = []
    statuses: list[dict[str, Any]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        obj = c.mmd(ns, "gated")
        status = obj.get("status") or {}
        if status.get("phase") == "Ready":
            break
        columns.append(download_column(c, ns, "gated"))
        if (status.get("download") or {}).get("bytesDone"):
            statuses.append(status["download"])
        time.sleep(1)
    hub.rate(0)
    assert (c.mmd(ns, "gated").get("status") or {}).get("phase") == "Ready", columns[-5:]
    moving = sorted({col for col in columns if col.endswith("%") and col not in ("0%", "100%")})
    assert len(moving) >= 2, f"the DOWNLOAD column did not move: {sorted(set(columns))}"
    assert any(s.get("bytesPerSecond") and s.get("etaSeconds") for s in statuses), statuses[-3:]

    pod = download_pods(c, ns)[-1]
    assert pod.spec.node_name == "real-node"
    assert pod.status.phase == "Succeeded"
    cache = c.cache_of(ns, "gated")
    claim = c.mmc(ns, cache)["status"]["claimName"]
    folder = volume_path(c, claim, ns) / c.mmc(ns, cache)["status"]["path"]
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) == SHARDS and all(s.stat().st_size == SHARD_MIB << 20 for s in shards)
    assert {s.stat().st_uid for s in shards} == {10001}, "written by the image's non-root user"

    # The server runs on a simulated GPU node, and ChatOS lists the model.
    server = c.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/instance=gated").items
    assert server and server[0].spec.node_name.startswith("gpu-")
    assert [m["model_id"] for m in c.chatos_models(ns)] == ["real-gated"]

    # The token is only in the Secret: not in logs, Events, statuses or pod specs.
    leaks = []
    for p in download_pods(c, ns):
        if hub.token in c.kubectl("logs", "-n", ns, p.metadata.name):
            leaks.append(f"log of {p.metadata.name}")
        spec_json = json.dumps(c.api.sanitize_for_serialization(p.spec))
        if hub.token in spec_json:
            leaks.append(f"spec of {p.metadata.name}")
        env = {e.name: e for e in p.spec.containers[0].env or []}
        assert any(e.value_from and e.value_from.secret_key_ref for e in env.values()), "token not from the Secret"
    if hub.token in c.kubectl("get", "events", "-n", ns, "-o", "json"):
        leaks.append("Events")
    if hub.token in json.dumps(c.mmd(ns, "gated")) + json.dumps(c.mmc(ns, cache)):
        leaks.append("status")
    if hub.token in c.kubectl("logs", "-n", operator, "deploy/minimax-operator", "--tail=-1"):
        leaks.append("operator log")
    assert not leaks


def test_a_deleted_download_pod_resumes_from_its_partial_files(
    real_cluster: Cluster, operator: str, hub: Hub, ns: str
) -> None:
    c = real_cluster
    repo = "MiniMaxAI/Real-Resume"
    before = hub.served()
    hub.rate(2 << 20)
    c.create_mmd(ns, "resume", {**spec(hub, repo), "chatos": {"enabled": False}})
    cache = c.cache_of(ns, "resume")

    def halfway() -> bool:
        done = ((c.mmc(ns, cache).get("status") or {}).get("download") or {}).get("bytesDone") or 0
        return done >= MODEL_BYTES * 0.3

    wait_for(halfway, 180, what="30% downloaded", interval=1)
    first = download_pods(c, ns)[-1]
    c.kubectl("delete", "pod", "-n", ns, first.metadata.name, "--wait=false")
    wait_for(
        lambda: [p for p in download_pods(c, ns) if p.metadata.name != first.metadata.name], 90, what="the next pod"
    )
    hub.rate(0)
    c.wait_phase(ns, "resume", "Ready", timeout=300)
    second = download_pods(c, ns)[-1]
    assert second.metadata.name != first.metadata.name and second.status.phase == "Succeeded"
    served = hub.served() - before
    refetched = served - MODEL_BYTES
    assert refetched < 0.05 * MODEL_BYTES, f"{refetched} bytes fetched twice of {MODEL_BYTES}"
    log = c.kubectl("logs", "-n", ns, second.metadata.name)
    assert "resum" in log.lower(), log[-2000:]


def test_a_gated_repo_without_a_token_fails_with_the_reason(
    real_cluster: Cluster, operator: str, hub: Hub, ns: str
) -> None:
    c = real_cluster
    c.create_mmd(ns, "notoken", {**spec(hub, GATED_REPO), "chatos": {"enabled": False}})
    # Said as soon as the first pod fails, while the Job still retries (not minutes later).
    cond = c.wait_condition(ns, "notoken", "WeightsReady", "False", "DownloadRetrying", timeout=60)
    assert "Unauthorized" in cond["message"] and "tokenSecretRef" in cond["message"]
    cache = c.cache_of(ns, "notoken")
    events = c.events(ns, cache) + c.events(ns, "notoken")
    assert any(e["type"] == "Warning" and "tokenSecretRef" in (e["message"] or "") for e in events), events
    pod = download_pods(c, ns)[-1]
    assert pod.spec.node_name == "real-node" and pod.status.phase == "Failed"


def test_a_claim_the_non_root_downloader_cannot_write_says_so(
    real_cluster: Cluster, operator: str, hub: Hub, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A hostPath volume ignores fsGroup: root-owned 0755 is read-only to uid 10001. Before any byte."""
    c = real_cluster
    folder = tmp_path_factory.mktemp("root-owned")
    folder.chmod(0o755)
    os.chown(folder, 0, 0)
    pv = f"{ns}-hostpath"
    c.apply_docs(
        [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "hostPath": {"path": str(folder), "type": "Directory"},
                    "claimRef": {"namespace": ns, "name": "mine"},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "mine", "namespace": ns},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        ]
    )
    try:
        body = spec(hub, "MiniMaxAI/Real-Tiny")
        body["storage"] = {"existingClaim": "mine"}
        c.create_mmd(ns, "readonly", {**body, "chatos": {"enabled": False}})
        cond = c.wait_condition(ns, "readonly", "WeightsReady", "False", "DownloadRetrying", timeout=60)
        assert "VolumeNotWritable" in cond["message"] and "uid 10001" in cond["message"], cond
        assert "owned by 0:0, mode 755" in cond["message"]
        assert list(folder.iterdir()) == [], "nothing written"
    finally:
        c.delete_mmd(ns, "readonly")
        c.kubectl("delete", "pvc", "mine", "-n", ns, "--wait=false", check=False)
        c.kubectl("delete", "pv", pv, "--wait=false", check=False)
