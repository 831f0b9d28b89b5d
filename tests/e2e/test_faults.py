"""The operator under faults on a cluster of its own: SIGKILLed at 20 random points and the API server
restarted once while 30 resources download, serve and are deleted (tests/harness/faults.py; the
same scenario with any seed: `python -m bench.faults --seed N`)."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.harness import faults
from tests.harness.cluster import Cluster, local_cluster, operator_identity_kubeconfig

SEED = 20261130


def test_the_operator_converges_after_twenty_kills_and_an_apiserver_restart(tmp_path: Path) -> None:
    name = f"mmfault-{secrets.token_hex(3)}"
    with local_cluster(None, "mmfault", name=name) as kubeconfig:
        cluster = Cluster(kubeconfig, audit_log=None)
        faults.prepare(cluster)
        identity = operator_identity_kubeconfig(cluster, tmp_path / "operator-kubeconfig")
        report = faults.run(cluster, name, identity, tmp_path, SEED)
    assert (report.kills, report.apiserver_restarts) == (20, 1), report.line()
    assert report.problems == [], report.line()
