"""The real downloader doing a download Job's work on the local cluster.

kwok simulates the pod (held Running by the Hold annotation); a small executor here
plays the kubelet: it runs `minimax-operator download` with the pod's own args and
env against a Hub on loopback, into a folder standing for the PVC, and then sets
the pod's phase and termination message from the process's result.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakehub import FakeHub, make_files

from .support import Cluster, Operator, wait_for

HOLD = {"sim.minimax.chatos.io/behavior": "Hold"}


class Executor(threading.Thread):
    """Run the download container of every Running download pod in a namespace, once."""

    def __init__(self, cluster: Cluster, ns: str, volumes: Path):
        super().__init__(daemon=True)
        self.cluster, self.ns, self.volumes = cluster, ns, volumes
        self.stop = threading.Event()
        self.done: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            pods = self.cluster.core.list_namespaced_pod(
                self.ns, label_selector="app.kubernetes.io/component=weights-download"
            ).items
            for pod in pods:
                if pod.status.phase == "Running" and pod.metadata.name not in self.done:
                    self.done.add(pod.metadata.name)
                    self.execute(pod)

    def env_of(self, container) -> dict[str, str]:  # type: ignore[no-untyped-def]
        env = {}
        for e in container.env or []:
            if e.value is not None:
                env[e.name] = e.value
            elif e.value_from and e.value_from.secret_key_ref:
                ref = e.value_from.secret_key_ref
                secret = self.cluster.core.read_namespaced_secret(ref.name, self.ns)
                env[e.name] = base64.b64decode(secret.data[ref.key]).decode()
        return env

    def execute(self, pod) -> None:  # type: ignore[no-untyped-def]
        container = pod.spec.containers[0]
        claim = pod.spec.volumes[0].persistent_volume_claim.claim_name
        mount = container.volume_mounts[0].mount_path
        root = self.volumes / claim
        root.mkdir(parents=True, exist_ok=True)
        args = [a.replace(mount, str(root), 1) if a.startswith(mount) else a for a in container.args]
        term = self.volumes / f"{pod.metadata.name}.termination"
        env = {
            "PATH": os.environ["PATH"],
            "HF_HOME": str(self.volumes / "hf-home"),
            "MINIMAX_TERMINATION_LOG": str(term),
            **self.env_of(container),
        }
        proc = subprocess.run([sys.executable, "-m", "minimax_operator", *args], env=env, capture_output=True)
        message = term.read_text() if term.exists() else proc.stderr.decode()[-1000:]
        state = {
            "terminated": {
                "exitCode": proc.returncode,
                "reason": "Completed" if proc.returncode == 0 else "Error",
                "message": message,
            }
        }
        status = {
            "phase": "Succeeded" if proc.returncode == 0 else "Failed",
            "containerStatuses": [
                {"name": container.name, "image": container.image, "ready": False, "restartCount": 0, "state": state}
            ],
        }
        self.cluster.core.patch_namespaced_pod_status(pod.metadata.name, self.ns, {"status": status})


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    files = make_files(tmp_path / "src", 2, 1 << 20)
    with FakeHub() as h:
        h.add_repo("MiniMaxAI/Tiny", files)
        h.add_repo("MiniMaxAI/Gated", files, token="hf_good", gated=True)
        yield h


@pytest.fixture
def executor(cluster: Cluster, ns: str, tmp_path: Path) -> Iterator[Executor]:
    ex = Executor(cluster, ns, tmp_path / "volumes")
    ex.start()
    yield ex
    ex.stop.set()
    ex.join()


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
    assert repo.commit in cluster.condition(ns, "real", "WeightsReady")["message"]
    weights = tmp_path / "volumes" / "real-weights" / "MiniMaxAI" / "Tiny"
    assert json.loads((weights / ".minimax-complete.json").read_text())["revision"] == repo.commit


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
