"""When a server is created, stopped or left alone, and what ServerReady says (controllers/server.py),
and who shares a ReadWriteOnce claim (controllers/claims.py)."""

from __future__ import annotations

from typing import Any

import pytest

from minimax_operator.controllers import claims, server
from minimax_operator.controllers.server import Action
from minimax_operator.model.errors import LayoutError


def dep(want: int = 1, generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "m", "generation": generation}, "spec": {"replicas": want}, "status": status}


ACTIONS = [
    # weights_ready, claim_busy, deployment, replicas, quota_full -> action
    ("weights not verified: nothing yet", (False, False, None, 1, False), Action.NONE),
    ("weights verified: create", (True, False, None, 1, False), Action.APPLY),
    ("weights verified, quota full: wait", (True, False, None, 1, True), Action.WAIT_FOR_QUOTA),
    ("parked (replicas 0): created without GPUs, quota not asked", (True, False, None, 0, True), Action.APPLY),
    ("running server: kept in line, quota not asked again", (True, False, dep(), 1, True), Action.APPLY),
    ("ReadWriteOncePod claim needed by the download: stop", (True, True, dep(), 1, False), Action.STOP_FOR_DOWNLOAD),
    ("ReadWriteOncePod claim busy, server already stopped", (True, True, dep(want=0), 1, False), Action.NONE),
    ("ReadWriteOncePod claim busy, no server yet", (False, True, None, 1, False), Action.NONE),
]


@pytest.mark.parametrize(("case", "args", "want"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_server_action(case: str, args: tuple[Any, ...], want: Action) -> None:
    assert server.action(*args) is want
    weights_ready, claim_busy, deployment, replicas, _ = args
    if not server.needs_quota_check(weights_ready, claim_busy, deployment, replicas):
        assert server.action(weights_ready, claim_busy, deployment, replicas, True) is want  # quota not read


def pod_waiting(reason: str) -> dict[str, Any]:
    status = {"containerStatuses": [{"state": {"waiting": {"reason": reason, "message": "back-off"}}}]}
    return {"metadata": {"name": "p"}, "status": status}


UNSCHEDULABLE = {
    "metadata": {"name": "new"},
    "status": {
        "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/3 nodes: Insufficient nvidia.com/gpu"}]
    },
}
CONDITIONS = [
    ("no Deployment: waiting for weights", None, 1, [], ("False", "WaitingForWeights")),
    ("parked", dep(want=0), 0, [], ("False", "Stopped")),
    (
        "all replicas available",
        dep(2, 3, observedGeneration=3, updatedReplicas=2, availableReplicas=2, replicas=2),
        2,
        [],
        ("True", "Available"),
    ),
    (
        "available, but the controller has not seen the new template",
        dep(1, 4, observedGeneration=3, updatedReplicas=1, availableReplicas=1, replicas=1),
        1,
        [],
        ("False", "Starting"),
    ),
    (
        "rolling: an old pod is left",
        dep(1, 2, observedGeneration=2, updatedReplicas=1, availableReplicas=1, replicas=2),
        1,
        [],
        ("False", "Starting"),
    ),
    (
        "pods refused by quota (ReplicaFailure)",
        dep(conditions=[{"type": "ReplicaFailure", "status": "True", "message": "exceeded quota: gpu"}]),
        1,
        [],
        ("False", "QuotaExceeded"),
    ),
    ("a crashing server", dep(), 1, [pod_waiting("CrashLoopBackOff")], ("False", "CrashLoopBackOff")),
    ("loading weights", dep(), 1, [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}], ("False", "Starting")),
    (
        "a rollout whose new server waits for GPUs while the old one serves",
        dep(2, 2, observedGeneration=2, updatedReplicas=1, availableReplicas=1, replicas=3),
        2,
        [UNSCHEDULABLE],
        ("False", "RolloutWaitingForGPUs"),
    ),
    ("nothing serves and no GPUs", dep(), 1, [UNSCHEDULABLE], ("False", "Unschedulable")),
]


@pytest.mark.parametrize(("case", "deployment", "replicas", "pods", "want"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_server_condition(
    case: str, deployment: dict[str, Any] | None, replicas: int, pods: list[dict[str, Any]], want: tuple[str, str]
) -> None:
    c = server.condition(deployment, replicas, "MiniMax-M2.5", pods)
    assert (c.status, c.reason) == want, c.message
    if not server.needs_pods(deployment, replicas):
        assert server.condition(deployment, replicas, "MiniMax-M2.5", []) == c  # pods are read only when they matter


def mmd(name: str, created: str, cache: str = "c", tp: int = 4, replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"replicas": replicas},
        "status": {"cache": cache, "tensorParallelSize": tp},
    }


def test_claim_neighbours_are_the_earlier_users_and_must_fit_one_node() -> None:
    me = mmd("b", "2026-01-02T00:00:00Z")
    users = [
        me,
        mmd("a", "2026-01-01T00:00:00Z"),
        mmd("c", "2026-01-03T00:00:00Z"),
        mmd("z", "2025-01-01T00:00:00Z", "d"),
    ]
    assert claims.neighbours(me, users, "c", 4, 8, "storage.accessMode") == ("a",)  # later ones and other caches: no
    assert claims.neighbours(mmd("a", "2026-01-01T00:00:00Z"), users, "c", 4, 8, "storage.accessMode") == ()
    with pytest.raises(LayoutError, match="already take 4 GPUs; 8 more do not fit a node of 8") as e:
        claims.neighbours(me, users, "c", 8, 8, "storage.accessMode")
    assert e.value.field == "spec.storage.accessMode"


def test_cache_pods_join_the_servers_only_on_a_readwriteonce_claim() -> None:
    servers = [dep(want=1) | {"metadata": {"name": "b"}}, dep(want=0) | {"metadata": {"name": "parked"}}]
    assert claims.servers_beside("ReadWriteOnce", servers) == ("b",)
    assert claims.servers_beside("ReadWriteMany", servers) == ()


def group(want: int = 1, generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"kind": "LeaderWorkerSet", "metadata": {"generation": generation}, "spec": {"replicas": want},
            "status": {"observedGeneration": generation, **status}}  # fmt: skip


def member(group_index: str, worker: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"m-group-{group_index}" + (f"-{worker}" if worker != "0" else ""),
        "labels": {"leaderworkerset.sigs.k8s.io/group-index": group_index,
                   "leaderworkerset.sigs.k8s.io/worker-index": worker},
    }  # fmt: skip
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running"}}


GROUP_CONDITIONS = [
    ("no group yet", None, 1, [], ("False", "WaitingForWeights")),
    ("parked", group(0), 0, [], ("False", "Stopped")),
    ("every group ready", group(1, readyReplicas=1, updatedReplicas=1, replicas=1), 1, [], ("True", "Available")),
    ("spec changed, not yet seen", group(1, generation=2, readyReplicas=1, updatedReplicas=1, replicas=1) | {
        "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1, "replicas": 1}},
     1, [member("0", "0"), member("0", "1")], ("False", "Starting")),
    ("a worker lost: its group is short", group(1, replicas=1), 1, [member("0", "0"), member("0", "1", deleting=True)],
     ("False", "GroupIncomplete")),
    ("all pods there, loading", group(1, replicas=1), 1, [member("0", "0"), member("0", "1")], ("False", "Starting")),
    ("a crash in one pod", group(1, replicas=1), 1, [member("0", "0"), pod_waiting("CrashLoopBackOff")],
     ("False", "CrashLoopBackOff")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "lws", "replicas", "pods", "want"), GROUP_CONDITIONS, ids=[c[0] for c in GROUP_CONDITIONS]
)
def test_group_condition(
    case: str, lws: dict[str, Any] | None, replicas: int, pods: list[dict[str, Any]], want: tuple[str, str]
) -> None:
    cond = server.group_condition(lws, replicas, 2, "MiniMax-M3", pods)
    assert (cond.status, cond.reason) == want, cond.message
    assert server.needs_group_pods(lws, replicas) == (want[1] not in ("WaitingForWeights", "Stopped", "Available"))
