"""Models bigger than a node: one replica as a LeaderWorkerSet group, run by the real LWS controller
(hack/lws.py: v0.9.0 from the Go module proxy, its webhooks answering the API server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.cluster import ROOT, Cluster, Operator, assert_quiet, local_cluster, start_operator, wait_for
from tests.harness.cluster import operator_identity_kubeconfig as identity

LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")
OPERATOR_USER = "system:serviceaccount:minimax-system:minimax-operator"
M3 = {"model": "MiniMax-M3", "chatos": {"displayName": "MiniMax M3"}}  # BF16: 801 GiB, two 8 x 80 GB nodes


def lws(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(*LWS[:2], ns, LWS[2], name)


def lws_names(cluster: Cluster, ns: str) -> list[str]:
    items = cluster.custom.list_namespaced_custom_object(*LWS[:2], ns, LWS[2])["items"]
    return sorted(i["metadata"]["name"] for i in items)


def group_pods(cluster: Cluster, ns: str) -> list:
    pods = cluster.core.list_namespaced_pod(ns, label_selector="leaderworkerset.sigs.k8s.io/name=m3-group").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def test_a_model_bigger_than_a_node_is_one_group_over_two_nodes(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "m3", M3)
    obj = cluster.wait_phase(ns, "m3", "Ready", timeout=120)
    assert obj["status"]["layout"] == "TP8xPP2 2 nodes" and obj["status"]["nodes"] == 2
    # One LeaderWorkerSet, its group of two pods on two nodes, 8 GPUs each; no Deployment.
    assert lws_names(cluster, ns) == ["m3-group"]
    assert cluster.apps.list_namespaced_deployment(ns).items == []
    pods = group_pods(cluster, ns)
    assert len(pods) == 2 and len({p.spec.node_name for p in pods}) == 2
    for p in pods:
        assert p.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8"
        env = {e.name for e in p.spec.containers[0].env}
        assert {"LWS_LEADER_ADDRESS", "LWS_WORKER_INDEX", "LWS_GROUP_SIZE"} <= env  # LWS's webhook set them
    # Every pod mounts the one verified commit, from a claim several nodes can mount.
    claim = cluster.core.read_namespaced_persistent_volume_claim(cluster.claim_of(ns, "m3"), ns)
    assert claim.spec.access_modes == ["ReadWriteMany"]
    assert {
        v.persistent_volume_claim.claim_name for p in pods for v in p.spec.volumes if v.persistent_volume_claim
    } == {claim.metadata.name}
    # The Service sends chat to the leader only; ChatOS has the model once.
    svc = cluster.core.read_namespaced_service("m3", ns)
    assert svc.spec.selector["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert [m["model_id"] for m in cluster.chatos_models(ns)] == ["MiniMax-M3"]

    # A worker lost: LWS recreates the group, and the resource says so until it is back.
    worker = next(p for p in pods if p.metadata.labels["leaderworkerset.sigs.k8s.io/worker-index"] == "1")
    cluster.core.delete_namespaced_pod(worker.metadata.name, ns, grace_period_seconds=0)
    # (kwok brings the group back within a second: the Event is what stays.)
    cluster.wait_events(ns, "m3", "GroupIncomplete")
    msg = next(e for e in cluster.events(ns, "m3") if e["reason"] == "GroupIncomplete")["message"]
    assert "group 0 has 1 of its 2 pods" in msg, msg
    cluster.wait_phase(ns, "m3", "Ready", timeout=90)
    assert [m["model_id"] for m in cluster.chatos_models(ns)] == ["MiniMax-M3"]

    # A spec change rolls the group: every pod gets the new arguments.
    cluster.patch_mmd(ns, "m3", {"maxModelLen": 65536})
    wait_for(
        lambda: (
            all("65536" in p.spec.containers[0].args for p in group_pods(cluster, ns))
            and len(group_pods(cluster, ns)) == 2
        ),
        90,
        what="the group rolled to the new spec",
    )
    cluster.wait_phase(ns, "m3", "Ready", timeout=90)

    # Deleted: the group, its Service and the ChatOS entry go; the weights stay.
    cache = cluster.cache_of(ns, "m3")
    cluster.delete_mmd(ns, "m3")
    wait_for(lambda: lws_names(cluster, ns) == [], 60, what="the LeaderWorkerSet deleted")
    assert cluster.chatos_models(ns) == []
    assert cluster.mmc(ns, cache)["status"]["path"]
    assert cluster.core.read_namespaced_persistent_volume_claim(claim.metadata.name, ns)


def test_a_users_leaderworkerset_under_the_groups_name_is_never_touched(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.chatos_configmap(ns, [])
    theirs = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "m3-group", "namespace": ns, "labels": {"team": "research"}},
        "spec": {
            "replicas": 0,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": {"spec": {"containers": [{"name": "x", "image": "busybox"}]}},
            },
        },
    }
    cluster.custom.create_namespaced_custom_object(*LWS[:2], ns, LWS[2], theirs)
    before = lws(cluster, ns, "m3-group")
    cluster.create_mmd(ns, "m3", M3)
    cond = cluster.wait_condition(ns, "m3", "Ready", "False", "NameConflict")
    assert f"LeaderWorkerSet {ns}/m3-group exists and is not controlled by this MiniMaxDeployment" in cond["message"]
    assert cluster.mmcs(ns) == []  # refused before any byte is downloaded
    after = lws(cluster, ns, "m3-group")
    # (The LWS controller writes its status: the resourceVersion moves, the user's fields do not.)
    assert after["spec"] == before["spec"] and after["metadata"].get("labels") == {"team": "research"}
    assert "ownerReferences" not in after["metadata"]
    assert not [m for m in after["metadata"]["managedFields"] if m["manager"] == "minimax-operator"]
    assert cluster.chatos_models(ns) == []


def test_without_leaderworkerset_a_multi_node_model_says_so_and_downloads_nothing(tmp_path: Path) -> None:
    """A cluster of its own, started without LWS; installing LWS later lets the resource go on."""
    env = {"LWS": "0"}
    with local_cluster(os.environ.get("NO_LWS_KUBECONFIG"), "mmnolws", **env) as kubeconfig:
        c = Cluster(kubeconfig, audit_log=None)
        c.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        c.kubectl("wait", "--for=condition=Established", "crd/minimaxdeployments.minimax.chatos.io")
        ns = "e2e-nolws"
        c.kubectl("create", "namespace", ns)
        wait_for(lambda: c.core.read_namespaced_service_account("default", ns), what="default ServiceAccount")
        op = start_operator(identity(c, tmp_path / "kubeconfig"), tmp_path / "operator.log", [ns])
        try:
            c.chatos_configmap(ns, [])
            c.create_mmd(ns, "m3", M3)
            cond = c.wait_condition(ns, "m3", "WeightsReady", "False", "MultiNodeUnavailable", timeout=60)
            assert (
                "install LeaderWorkerSet v0.9.0" in cond["message"] and "leaderworkerset.x-k8s.io/v1" in cond["message"]
            )
            assert c.mmd(ns, "m3")["status"]["phase"] == "Failed"
            assert c.mmcs(ns) == [] and c.batch.list_namespaced_job(ns).items == []  # nothing downloaded
            c.wait_events(ns, "m3", "MultiNodeUnavailable", type_="Warning")
            # The platform installs LWS: the resource goes on by itself.
            folder = Path(kubeconfig).parent / "kwok" / "clusters" / Path(kubeconfig).name.removeprefix("kubeconfig-")
            subprocess_run([sys.executable, str(ROOT / "hack" / "lws.py"), "start", "--kubeconfig", kubeconfig,
                            "--dir", str(folder)])  # fmt: skip
            c.wait_phase(ns, "m3", "Ready", timeout=150)
            assert len(c.custom.list_namespaced_custom_object(*LWS[:2], ns, LWS[2])["items"]) == 1
        finally:
            op.stop()
            c.kubectl("delete", "mmd", "--all", "-n", ns, "--timeout=30s", check=False)


def subprocess_run(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def test_a_layout_moving_to_two_nodes_replaces_the_server(cluster: Cluster, ns: str, operator: Operator) -> None:
    # On 141 GB GPUs MiniMax-M3 fits one node: a Deployment. On 80 GB GPUs it needs two: the group
    # replaces it (on a ReadWriteMany claim, so a cache of its own), and the Deployment goes.
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "m3", {**M3, "gpu": {"memoryGiB": 141}})
    cluster.wait_phase(ns, "m3", "Ready", timeout=120)
    assert [d.metadata.name for d in cluster.apps.list_namespaced_deployment(ns).items] == ["m3"]
    assert lws_names(cluster, ns) == []
    cluster.patch_mmd(ns, "m3", {"gpu": {"memoryGiB": 80}})
    wait_for(lambda: lws_names(cluster, ns) == ["m3-group"], 120, what="the LeaderWorkerSet")
    wait_for(lambda: cluster.apps.list_namespaced_deployment(ns).items == [], 60, what="the Deployment retired")
    obj = cluster.wait_phase(ns, "m3", "Ready", timeout=120)
    assert obj["status"]["nodes"] == 2
    assert [m["model_id"] for m in cluster.chatos_models(ns)] == ["MiniMax-M3"]
    assert len(cluster.mmcs(ns)) == 2  # the one-node cache is kept (its weights are never deleted by a move)


def test_a_group_in_steady_state_writes_and_reads_nothing(cluster: Cluster, ns: str, operator: Operator) -> None:
    """Ready groups resync from the stores (the LeaderWorkerSet informer's too): no write, no GET or LIST."""
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "m3", M3)
    cluster.wait_phase(ns, "m3", "Ready", timeout=120)
    assert_quiet(cluster, operator, OPERATOR_USER, ns)
    before = len(cluster.audit_requests(OPERATOR_USER, ns))
    start = operator.metric("minimax_operator_reconciles_total")
    wait_for(lambda: operator.metric("minimax_operator_reconciles_total") >= start + 5, what="five more resyncs")
    calls = [(e["verb"], e["objectRef"].get("resource")) for e in cluster.audit_requests(OPERATOR_USER, ns)[before:]]
    assert [c for c in calls if c[0] != "watch"] == []
