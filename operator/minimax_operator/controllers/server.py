"""When to create, stop or leave a server, and what its state is: pure decisions over what was observed.

Why apart from the reconciler: "is it serving?" is what Ready means to users and Argo CD,
and "may it start?" must wait for verified weights and quota. As pure functions, each
state is a table row in a unit test (tests/unit/test_server_decision.py).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ..api.names import LWS_GROUP_INDEX_LABEL
from ..render import status as st

Obj = dict[str, Any]


class Action(Enum):
    """What to do with the server's Deployment (and Service)."""

    #: Apply the Deployment and the Service (created, or brought back in line).
    APPLY = "apply"
    #: Scale to 0: a ReadWriteOncePod claim admits one pod, and the cache's download needs it.
    STOP_FOR_DOWNLOAD = "stop-for-download"
    #: Leave it as it is (no weights yet, or nothing to change).
    NONE = "none"
    #: Wait: the namespace's quota is used up for now.
    WAIT_FOR_QUOTA = "wait-for-quota"


def action(weights_ready: bool, claim_busy: bool, deployment: Obj | None, replicas: int, quota_full: bool) -> Action:
    """The next step for the server.

    `claim_busy`: the server's ReadWriteOncePod claim is needed by the cache's download now.
    `quota_full`: the quota has no room for the server now (read only when it matters).
    """
    may_serve = weights_ready and not claim_busy
    if may_serve and deployment is None and replicas and quota_full:
        return Action.WAIT_FOR_QUOTA
    if may_serve:
        return Action.APPLY
    if claim_busy and deployment is not None and (deployment.get("spec") or {}).get("replicas"):
        return Action.STOP_FOR_DOWNLOAD
    return Action.NONE


def needs_quota_check(weights_ready: bool, claim_busy: bool, deployment: Obj | None, replicas: int) -> bool:
    """Whether `action` depends on the quota (only before the first server is created)."""
    return weights_ready and not claim_busy and deployment is None and bool(replicas)


def condition(deployment: Obj | None, replicas: int, served_model_name: str, pods: list[Obj]) -> st.Cond:
    """ServerReady from the Deployment and, when it is not all available, its pods."""
    if deployment is None:
        return st.false("ServerReady", "WaitingForWeights", "the server starts once the weights are verified")
    if replicas == 0:
        return st.false("ServerReady", "Stopped", "spec.replicas is 0")
    s = deployment.get("status") or {}
    current = s.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    updated, available = s.get("updatedReplicas", 0), s.get("availableReplicas", 0)
    if current and updated >= replicas and available >= replicas and s.get("replicas", 0) == replicas:
        return st.true("ServerReady", "Available", f"{available}/{replicas} replicas serving {served_model_name}")
    for c in s.get("conditions") or []:
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            reason, text = st.creation_failure(str(c.get("message", "")))
            return st.false("ServerReady", reason, f"server pods cannot be created: {text}")
    problem = st.pod_problem(pods)
    if problem and problem[0] == "Unschedulable" and available and updated < replicas:
        # A rollout: the new server waits for GPUs while the old ones still serve.
        return st.false(
            "ServerReady",
            "RolloutWaitingForGPUs",
            f"{available}/{replicas} replicas serving the old spec; the new server waits for GPUs: {problem[1]}",
        )
    if problem:
        return st.false("ServerReady", problem[0], problem[1])
    return st.false("ServerReady", "Starting", f"{available}/{replicas} replicas ready (loading weights)")


def needs_pods(deployment: Obj | None, replicas: int) -> bool:
    """Whether `condition` reads the pods: only for a Deployment that is not all available."""
    if deployment is None or replicas == 0:
        return False
    return condition(deployment, replicas, "", []).reason == "Starting"


def group_condition(group: Obj | None, replicas: int, nodes: int, served_model_name: str, pods: list[Obj]) -> st.Cond:
    """ServerReady of a replica over several nodes: every group's leader serves and its workers run.

    LWS counts a group ready when all its pods are; a pod lost makes LWS recreate the whole group
    (RecreateGroupOnPodRestart), and until it is back the resource says which group is short.
    """
    if group is None:
        return st.false("ServerReady", "WaitingForWeights", "the server starts once the weights are verified")
    if replicas == 0:
        return st.false("ServerReady", "Stopped", "spec.replicas is 0")
    s = group.get("status") or {}
    current = s.get("observedGeneration", 0) >= group["metadata"].get("generation", 0)
    ready, updated = s.get("readyReplicas", 0), s.get("updatedReplicas", 0)
    if current and ready >= replicas and updated >= replicas and s.get("replicas", 0) == replicas:
        return st.true(
            "ServerReady", "Available", f"{ready}/{replicas} groups of {nodes} pods serving {served_model_name}"
        )
    problem = st.pod_problem(pods)
    if problem:
        return st.false("ServerReady", problem[0], problem[1])
    members: dict[str, int] = {}
    for p in pods:
        if not p["metadata"].get("deletionTimestamp"):
            index = (p["metadata"].get("labels") or {}).get(LWS_GROUP_INDEX_LABEL)
            if index is not None:
                members[index] = members.get(index, 0) + 1
    short = sorted((g, n) for g, n in members.items() if n < nodes)
    if short:
        g, n = short[0]
        return st.false(
            "ServerReady",
            "GroupIncomplete",
            f"group {g} has {n} of its {nodes} pods: a pod was lost and LeaderWorkerSet recreates the group",
        )
    return st.false("ServerReady", "Starting", f"{ready}/{replicas} groups ready (loading weights)")


def needs_group_pods(group: Obj | None, replicas: int) -> bool:
    """Whether `group_condition` reads the pods: only for a group set that is not all ready."""
    if group is None or replicas == 0:
        return False
    return group_condition(group, replicas, 1, "", []).reason == "Starting"
