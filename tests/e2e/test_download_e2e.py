"""The real downloader doing a download Job's work on the local cluster.

kwok simulates the pod (held Running by the Hold annotation); a small executor
(support.Executor) plays the kubelet: it runs `minimax-operator download` with the pod's own args and
env against a Hub on loopback, into a folder standing for the PVC, and then sets
the pod's phase and termination message from the process's result.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness.cluster import Cluster, Executor, Operator, wait_for
from tests.harness.fakehub import FakeHub

HOLD = {"sim.minimax.chatos.io/behavior": "Hold"}


def spec(hub: FakeHub, repo: str = "MiniMaxAI/Tiny", **download: object) -> dict:
    return {
        "repo": repo,
        "servedModelName": "tiny",
        "tensorParallelSize": 1,
        "storage": {"size": "1Gi"},
        "vllm": {"image": "vllm/vllm-openai:v0.20.0"},
        "download": {"endpoint": hub.url, "podAnnotations": HOLD, **download},
    }


def test_real_download_reaches_ready_with_the_resolved_revision(
    cluster: Cluster, ns: str, operator: Operator, hub: FakeHub, executor: Executor, tmp_path: Path
) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "real", spec(hub))
    obj = cluster.wait_phase(ns, "real", "Ready")
    repo = hub.repos["MiniMaxAI/Tiny"]
    dl = obj["status"]["download"]
    assert dl["revision"] == repo.commit
    assert dl["filesTotal"] == 3 and dl["bytesTotal"] == sum(f.size for f in repo.files.values())
    assert dl["progress"] == "100%"
    assert obj["status"]["commit"] == repo.commit
    assert repo.commit[:12] in cluster.condition(ns, "real", "WeightsReady")["message"]
    claim = cluster.claim_of(ns, "real")
    weights = tmp_path / "volumes" / claim / "revisions" / "MiniMaxAI" / "Tiny" / repo.commit
    assert json.loads((weights / ".minimax-complete.json").read_text())["revision"] == repo.commit
    args = cluster.apps.read_namespaced_deployment("real", ns).spec.template.spec.containers[0].args
    assert args[0] == f"/models/revisions/MiniMaxAI/Tiny/{repo.commit}"


def test_gated_repo_fails_with_a_readable_reason_and_works_with_a_token(
    cluster: Cluster, ns: str, operator: Operator, hub: FakeHub, executor: Executor
) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "gated", spec(hub, repo="MiniMaxAI/Gated"))
    cond = cluster.wait_condition(ns, "gated", "WeightsReady", "False", "DownloadFailed", timeout=90)
    assert "Unauthorized" in cond["message"] and "tokenSecretRef" in cond["message"]

    cluster.core.create_namespaced_secret(ns, {"metadata": {"name": "hf"}, "stringData": {"token": "hf_good"}})
    cluster.patch_mmd(ns, "gated", {"download": {"tokenSecretRef": {"name": "hf"}}})
    obj = cluster.wait_phase(ns, "gated", "Ready", timeout=90)
    assert "hf_good" not in json.dumps(obj)
    assert not any("hf_good" in (e["message"] or "") for e in cluster.events(ns, "gated"))
    wait_for(lambda: executor.done, what="executed pods")
