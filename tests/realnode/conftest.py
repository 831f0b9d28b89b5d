"""Fixtures of the real-node tests: nothing here is simulated but the GPU nodes.

A local cluster whose CPU node is real (`REAL_NODE=1 hack/cluster.sh up`: kubelet, containerd,
runc, CNI bridge, kube-proxy, CoreDNS, local-path-provisioner), the operator installed by
`helm install` from its image built on this machine, and the fake Hub running as a pod behind
a Service. Needs root (the node is this machine).

REAL_CLUSTER=existing uses $KUBECONFIG as it is (a real-node cluster started by hand, with
the chart and the Hub already installed or not: both are upgraded in place). A machine has
one real node: when another cluster has it (`make run` leaves the demo's cluster up), the
tests use that cluster the same way and leave it up, so that `make run` then `make test`
passes.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest

from tests.harness.cluster import Cluster, local_cluster, wait_for
from tests.harness.realnode import Hub, deploy_hub, install_operator, real_node_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/realnode/" in str(item.fspath):
            item.add_marker(pytest.mark.realnode)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[Cluster]:
    given = os.environ["KUBECONFIG"] if os.environ.get("REAL_CLUSTER") == "existing" else real_node_cluster()
    with local_cluster(given, "mmreal", REAL_NODE="1") as kubeconfig:
        yield Cluster(kubeconfig, audit_log=None)


@pytest.fixture(scope="session")
def operator(real_cluster: Cluster) -> str:
    return install_operator(real_cluster)


@pytest.fixture(scope="session")
def hub(real_cluster: Cluster) -> Hub:
    return deploy_hub(real_cluster)


@pytest.fixture
def ns(real_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (the chart's operator watches all), deleted after the test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")
    name = f"real-{slug}-{secrets.token_hex(2)}"
    real_cluster.kubectl("create", "namespace", name)
    wait_for(lambda: real_cluster.core.read_namespaced_service_account("default", name), what="default SA")
    yield name
    real_cluster.kubectl("delete", "mmd", "--all", "-n", name, "--timeout=60s", check=False)
    real_cluster.kubectl("delete", "mmc", "--all", "-n", name, "--timeout=60s", check=False)
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
