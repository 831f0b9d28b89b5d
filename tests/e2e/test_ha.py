"""Two operator replicas, the leader killed mid-work, and mass deletion: nothing duplicated, nothing left behind."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from tests.harness.cluster import Cluster, Operator, release_hold, start_operator, wait_for

from .test_operator import HAND_WRITTEN, HOLD, tiny

# Sized for a loaded 2-core runner: these are upper bounds, waits return as soon as the condition holds.
SLOW = 180


def _ids(cluster: Cluster, ns: str) -> list[str]:
    return sorted(m["model_id"] for m in cluster.chatos_models(ns))


def test_leader_killed_mid_download_and_mid_registration(
    cluster: Cluster, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    ns = f"solo-ha-{secrets.token_hex(2)}"
    lease = f"ha-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", ns)
    ops: list[Operator] = []
    try:
        cluster.chatos_configmap(ns, [HAND_WRITTEN])
        a = start_operator(operator_kubeconfig, tmp_path / "a.log", [ns], lease=lease)
        b = start_operator(operator_kubeconfig, tmp_path / "b.log", [ns], lease=lease, leader=False)
        ops += [a, b]
        assert b.healthy() and not b.leading()  # a follower serves health and metrics, reconciles nothing

        # Mid-download: the leader dies while three downloads run.
        for i in range(3):
            cluster.create_mmd(ns, f"d{i}", tiny(f"d{i}", download={"podAnnotations": HOLD}))
        for i in range(3):
            cluster.wait_phase(ns, f"d{i}", "Downloading", timeout=SLOW)
        a.kill()
        killed = time.monotonic()
        wait_for(b.leading, 30, what="the follower takes the Lease")
        assert time.monotonic() - killed < 25
        release_hold(cluster, ns)
        for i in range(3):
            cluster.wait_phase(ns, f"d{i}", "Ready", timeout=SLOW)

        # Mid-registration: the new leader dies while ten models register.
        c = start_operator(operator_kubeconfig, tmp_path / "c.log", [ns], lease=lease, leader=False)
        ops.append(c)
        for i in range(10):
            cluster.create_mmd(ns, f"r{i}", tiny(f"r{i}"))
        wait_for(lambda: len(cluster.chatos_models(ns)) >= 6, SLOW, what="some of the ten registered")
        b.kill()
        wait_for(c.leading, 30, what="the third replica takes the Lease")
        for i in range(10):
            cluster.wait_phase(ns, f"r{i}", "Ready", timeout=SLOW)

        names = [f"d{i}" for i in range(3)] + [f"r{i}" for i in range(10)]
        assert _ids(cluster, ns) == sorted(["gpt-x", *(f"tiny-{n}" for n in names)])  # each exactly once
        assert len(cluster.batch.list_namespaced_job(ns).items) == 13
        assert len(cluster.apps.list_namespaced_deployment(ns).items) == 13
        assert len(cluster.core.list_namespaced_service(ns).items) == 13
        assert len(cluster.core.list_namespaced_persistent_volume_claim(ns).items) == 13
        cluster.kubectl("delete", "mmd", "--all", "-n", ns, "--wait=false")
        wait_for(lambda: cluster.chatos_models(ns) == [HAND_WRITTEN], SLOW, what="entries removed")
        wait_for(lambda: not cluster.kubectl("get", "mmd", "-n", ns, "-o", "name").strip(), SLOW, what="finalized")
    finally:
        for op in ops:
            op.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_twenty_deleted_at_once_five_times_leave_no_entry(cluster: Cluster, ns: str, operator: Operator) -> None:
    """`kubectl delete mmd --all` while some are still registering: every entry goes, hand-written ones stay."""
    other = {**HAND_WRITTEN, "model_id": "by-hand-2", "name": "Also by hand"}
    cluster.chatos_configmap(ns, [HAND_WRITTEN, other])
    for round_ in range(5):
        for i in range(20):
            cluster.create_mmd(ns, f"m{round_}-{i}", tiny(f"{round_}-{i}"))
        wait_for(lambda: len(cluster.chatos_models(ns)) >= 12, SLOW, what=f"round {round_}: ten registered")
        cluster.kubectl("delete", "mmd", "--all", "-n", ns, "--wait=false")
        wait_for(lambda: not cluster.kubectl("get", "mmd", "-n", ns, "-o", "name").strip(), SLOW, what="all deleted")
        assert cluster.chatos_models(ns) == [HAND_WRITTEN, other], f"round {round_}"
