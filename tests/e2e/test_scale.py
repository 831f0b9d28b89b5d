"""`kubectl scale` and a HorizontalPodAutoscaler act on the MiniMaxDeployment itself (its scale subresource)."""

from __future__ import annotations

import json

from tests.harness.cluster import Cluster, Operator, wait_for

M25 = {"model": "MiniMax-M2.5"}
CPU_80 = {"type": "Utilization", "averageUtilization": 80}


def scale(cluster: Cluster, ns: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "mmd", name, "-n", ns, "--subresource=scale", "-o", "json"))


def test_kubectl_scale_moves_the_servers_and_the_status_follows(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "m25", M25)
    cluster.wait_phase(ns, "m25", "Ready", timeout=90)
    s = scale(cluster, ns, "m25")
    assert s["spec"]["replicas"] == 1 and s["status"]["replicas"] == 1
    assert s["status"]["selector"] == "app.kubernetes.io/component=server,app.kubernetes.io/instance=m25"

    cluster.kubectl("scale", "mmd", "m25", "-n", ns, "--replicas=2")
    wait_for(lambda: cluster.apps.read_namespaced_deployment("m25", ns).spec.replicas == 2, what="2 server replicas")
    wait_for(lambda: scale(cluster, ns, "m25")["status"]["replicas"] == 2, what="status.replicas 2")
    obj = cluster.wait_phase(ns, "m25", "Ready", timeout=60)
    assert "2/2 replicas" in next(c for c in obj["status"]["conditions"] if c["type"] == "ServerReady")["message"]
    pods = cluster.core.list_namespaced_pod(ns, label_selector=s["status"]["selector"]).items
    assert len([p for p in pods if p.metadata.deletion_timestamp is None]) == 2

    # Parked by scale: the entry stays registered (as with replicas: 0 in the spec).
    cluster.kubectl("scale", "mmd", "m25", "-n", ns, "--replicas=0")
    cluster.wait_condition(ns, "m25", "ServerReady", "False", "Stopped")
    wait_for(lambda: scale(cluster, ns, "m25")["status"]["replicas"] == 0, what="status.replicas 0")


def test_a_horizontal_pod_autoscaler_can_target_the_resource(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "m25", M25)
    cluster.wait_phase(ns, "m25", "Ready", timeout=90)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "m25", "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment", "name": "m25"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": CPU_80}}],
        },
    }  # fmt: skip
    cluster.apply_docs([hpa], ns)

    def able_to_scale() -> dict | None:
        hpa = json.loads(cluster.kubectl("get", "hpa", "m25", "-n", ns, "-o", "json"))
        conds = {c["type"]: c for c in (hpa.get("status") or {}).get("conditions") or []}
        able = conds.get("AbleToScale")
        return able if able and able["status"] == "True" else None

    # (The controller manager learns a new CRD's kind on its next discovery refresh, within a minute.)
    cond = wait_for(able_to_scale, 150, what="the HPA read the resource's scale subresource")
    # The HPA controller got the scale (and its selector) from the resource; there are no CPU metrics
    # in this cluster, so it does not scale, but nothing it needs from the resource is missing.
    assert cond["status"] == "True" and cond["reason"] == "SucceededGetScale", cond


def test_autoscaling_without_keda_says_what_to_install_and_serves_its_replicas(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "m25", {**M25, "replicas": 2, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}})
    cond = cluster.wait_condition(ns, "m25", "Autoscaling", "False", "KEDANotInstalled", timeout=90)
    assert "install KEDA v2.21.0" in cond["message"] and "spec.replicas (2)" in cond["message"]
    cluster.wait_events(ns, "m25", "KEDANotInstalled", type_="Warning")
    obj = cluster.wait_phase(ns, "m25", "Ready", timeout=90)  # it still serves: Ready, not Failed
    assert obj["status"]["replicas"] == 2


def test_autoscaling_bounds_are_checked_at_apply(cluster: Cluster, ns: str) -> None:
    body = {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment",
            "metadata": {"name": "m25", "namespace": ns},
            "spec": {**M25, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}}}  # fmt: skip
    out = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body), check=False)
    assert "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas" in out
    body["spec"]["autoscaling"] = {"minReplicas": 1}  # maxReplicas is required
    out = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body), check=False)
    assert "spec.autoscaling.maxReplicas: Required value" in out
