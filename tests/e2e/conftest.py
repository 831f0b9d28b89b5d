"""End-to-end fixtures: a real control plane with kwok GPU nodes, the CRD, and the operator.

CLUSTER selects the cluster:
  kwok (default)  start a fresh local cluster for this run (hack/cluster.sh), delete it afterwards
  existing        use $KUBECONFIG as it is (for example `make cluster-up` and then iterate)
  kind            create a kind cluster (needs Docker; not available on the CI machines)
The operator runs as a subprocess under its own ServiceAccount, watching namespaces
e2e-*; each test gets its own namespace.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness.cluster import (
    ROOT,
    Cluster,
    Executor,
    Operator,
    operator_identity_kubeconfig,
    start_operator,
    wait_for,
)
from tests.harness.fakehub import FakeHub, make_files

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    mode = os.environ.get("CLUSTER", "kwok")
    name = f"mmtest-{secrets.token_hex(3)}"
    env = {**os.environ, "PYTHON": sys.executable}
    if mode == "existing":
        c = Cluster(os.environ["KUBECONFIG"], audit_log=os.environ.get("AUDIT_LOG"))
    elif mode == "kind":
        kubeconfig = str(tmp_path_factory.mktemp("kind") / "kubeconfig")
        subprocess.run(["kind", "create", "cluster", "--name", name, "--kubeconfig", kubeconfig], check=True)
        c = Cluster(kubeconfig, audit_log=None)
        c.kubectl("apply", "-f", str(ROOT / "hack" / "kwok" / "storage.yaml"))
    else:
        out = subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), "up", name], check=True, capture_output=True, text=True, env=env
        )
        audit = subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), "audit-log", name], check=True, capture_output=True, text=True
        ).stdout.strip()
        c = Cluster(out.stdout.strip().splitlines()[-1], audit_log=audit)
    c.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    c.kubectl("wait", "--for=condition=Established", "crd/minimaxdeployments.minimax.chatos.io")
    c.kubectl("wait", "--for=condition=Established", "crd/minimaxpolicies.minimax.chatos.io")
    c.kubectl("wait", "--for=condition=Established", "crd/minimaxmodelcaches.minimax.chatos.io")
    # Extra 8-GPU nodes, so that dozens of small models fit at once.
    extra = []
    for i in range(4):
        node = yaml.safe_load_all((ROOT / "hack" / "kwok" / "nodes.yaml").read_text())
        gpu = next(iter(node))
        gpu["metadata"]["name"] = gpu["metadata"]["labels"]["kubernetes.io/hostname"] = f"gpu-extra-{i}"
        extra.append(gpu)
    c.apply_docs(extra)
    yield c
    if mode == "kwok":
        subprocess.run([str(ROOT / "hack" / "cluster.sh"), "down", name], check=False, env=env)
    elif mode == "kind":
        subprocess.run(["kind", "delete", "cluster", "--name", name], check=False)


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return operator_identity_kubeconfig(cluster, tmp_path_factory.mktemp("operator") / "kubeconfig")


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """One operator for the session, watching e2e-* namespaces."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = start_operator(operator_kubeconfig, log, ["e2e-*"], "--allow-chatos-namespace", "e2e-shared-chatos")

    # Leading is not yet watching: kopf finds glob-matched namespaces through its own namespace
    # watch, and one created while it starts can wait for minutes. Start once a new one is seen.
    # Once leading; and a namespace kopf missed while it started is replaced by a new one (CI saw a warm-up
    # namespace created during the start wait past 180 s).
    def leading() -> bool:
        try:
            return op.healthy() and op.leading()
        except OSError:
            return False

    wait_for(leading, 120, what="operator leading")
    for attempt in range(3):
        warmup = f"e2e-warmup-{secrets.token_hex(2)}"
        cluster.kubectl("create", "namespace", warmup)
        cluster.create_mmd(warmup, "warmup", {"model": "MiniMax-M2.5", "tensorParallelSize": 8})  # never downloads
        try:
            wait_for(lambda ns=warmup: (cluster.mmd(ns, "warmup").get("status") or {}).get("phase"), 90,
                     what="operator watching")  # fmt: skip
            break
        except AssertionError:
            if attempt == 2:
                raise
        finally:
            cluster.delete_mmd(warmup, "warmup")
            cluster.kubectl("delete", "namespace", warmup, "--wait=false")
    yield op
    op.stop()


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace watched by the session operator, deleted after the test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")
    name = f"e2e-{slug}-{secrets.token_hex(2)}"
    cluster.kubectl("create", "namespace", name)
    wait_for(lambda: cluster.core.read_namespaced_service_account("default", name), what="default ServiceAccount")
    yield name
    # Resources first, while the operator still runs to finalize them; then the namespace.
    cluster.kubectl("delete", "mmd", "--all", "-n", name, "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


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
