"""The local cluster itself: real scheduling of GPU pods, Jobs, garbage collection, validation."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import Cluster, wait_for


def _deployment(name: str, gpus: int, annotations: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
                },
            },
        },
    }


def _pods(cluster: Cluster, ns: str, app: str) -> list:
    return cluster.core.list_namespaced_pod(ns, label_selector=f"app={app}").items


def test_eight_gpu_deployment_becomes_ready_on_a_gpu_node(cluster: Cluster, ns: str) -> None:
    cluster.apply_docs([_deployment("gpu8", 8)], ns)
    cluster.kubectl("wait", "-n", ns, "--for=condition=Available", "deploy/gpu8", "--timeout=30s")
    (pod,) = _pods(cluster, ns, "gpu8")
    node = cluster.core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert pod.status.phase == "Running"


def test_sixteen_gpus_stay_pending_for_lack_of_gpus(cluster: Cluster, ns: str) -> None:
    cluster.apply_docs([_deployment("gpu16", 16)], ns)

    def unschedulable() -> str | None:
        (pod,) = _pods(cluster, ns, "gpu16")
        for c in pod.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return str(c.message)
        return None

    message = wait_for(unschedulable, 30, what="Unschedulable pod")
    assert "Insufficient nvidia.com/gpu" in message
    (pod,) = _pods(cluster, ns, "gpu16")
    assert pod.status.phase == "Pending"


def test_job_completes(cluster: Cluster, ns: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "ok"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }
    cluster.apply_docs([job], ns)
    cluster.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/ok", "--timeout=30s")


@pytest.mark.parametrize(
    ("behavior", "phase", "ready"),
    [
        ("Unready", "Running", False),
        ("CrashLoop", "Running", False),
        ("Fail", "Failed", False),
        ("Hold", "Running", True),
    ],
)
def test_pods_can_be_told_to_misbehave(cluster: Cluster, ns: str, behavior: str, phase: str, ready: bool) -> None:
    annotations = {"sim.minimax.chatos.io/behavior": behavior, "sim.minimax.chatos.io/message": "boom"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]},
    }
    cluster.apply_docs([pod], ns)

    def settled():
        p = cluster.core.read_namespaced_pod("p", ns)
        return p if p.status.phase == phase and p.status.container_statuses else None

    p = wait_for(settled, 30, what=f"pod phase {phase}")
    assert p.status.container_statuses[0].ready is ready
    if behavior == "CrashLoop":
        assert p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    if behavior == "Fail":
        assert p.status.container_statuses[0].state.terminated.message == "boom"


def test_garbage_collection_removes_owned_objects(cluster: Cluster, ns: str) -> None:
    owner = cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "owned", "ownerReferences": [ref]}})
    cluster.core.delete_namespaced_config_map("owner", ns)

    def gone() -> bool:
        try:
            cluster.core.read_namespaced_config_map("owned", ns)
            return False
        except ApiException as e:
            return e.status == 404

    wait_for(gone, 30, what="owned ConfigMap collected")


def test_api_server_rejects_invalid_objects(cluster: Cluster, ns: str) -> None:
    with pytest.raises(ApiException) as err:
        cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "Not_A_Valid_Name"}})
    assert err.value.status == 422


def test_claims_are_bound_by_the_local_provisioner(cluster: Cluster, ns: str) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "w"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "300Gi"}}},
    }
    cluster.apply_docs([pvc], ns)
    bound = wait_for(
        lambda: (c := cluster.core.read_namespaced_persistent_volume_claim("w", ns)).status.phase == "Bound" and c,
        30,
        what="PVC bound",
    )
    assert bound.status.capacity["storage"] == "300Gi"
