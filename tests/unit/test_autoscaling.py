"""Autoscaling: the bounds KEDA gets (quota caps, parking without the HTTP add-on), the objects it gets, the
start timing a parked model's first request sees, and the reconcile flow over the in-memory client."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from minimax_operator.api.v1alpha1 import AutoscalingSpec, MiniMaxDeploymentSpec
from minimax_operator.controllers import autoscale
from minimax_operator.model.deployment import resolve
from minimax_operator.model.errors import LayoutError
from minimax_operator.render import autoscaling as scaling
from minimax_operator.render.meta import OperatorSettings, Owner
from tests.unit.test_reconcilers import COMMIT, conditions, deployment_scene, reconcile_mmd

OWNER = Owner(name="m25", uid="u-1")


def quota(hard: int, used: int, name: str = "gpus") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"hard": {"requests.nvidia.com/gpu": str(hard)}},
        "status": {"hard": {"requests.nvidia.com/gpu": str(hard)}, "used": {"requests.nvidia.com/gpu": str(used)}},
    }


def test_min_above_max_is_refused_by_the_schema() -> None:
    with pytest.raises(ValidationError):
        AutoscalingSpec(minReplicas=3, maxReplicas=2)  # the CRD's CEL rule says the same at kubectl apply


def test_keda_missing_keeps_spec_replicas_and_says_what_to_install() -> None:
    p = autoscale.plan(AutoscalingSpec(maxReplicas=4), keda=False, http_addon=False, cap=None, replicas=2)
    assert not p.scale
    assert (p.condition.status, p.condition.reason) == ("False", "KEDANotInstalled")
    assert "install KEDA v2.21.0" in p.condition.message and "spec.replicas (2)" in p.condition.message


def test_parking_without_the_http_addon_keeps_one_replica() -> None:
    p = autoscale.plan(AutoscalingSpec(minReplicas=0, maxReplicas=4), keda=True, http_addon=False, cap=None, replicas=1)
    assert p.scale and p.min_replicas == 1 and not p.wake
    assert p.condition.reason == "WakeUnavailable" and "HTTP add-on" in p.condition.message


def test_parking_with_the_http_addon_wakes() -> None:
    p = autoscale.plan(AutoscalingSpec(minReplicas=0, maxReplicas=4), keda=True, http_addon=True, cap=None, replicas=0)
    assert p.scale and p.wake and (p.min_replicas, p.max_replicas) == (0, 4)
    assert p.condition.reason == "Active"


def test_a_gpu_quota_lowers_max_replicas_and_the_status_says_so() -> None:
    # 24 GPUs, 8 used by another model, 4 by this one's running replica: room for 16 GPUs, 4 replicas of 4.
    cap = autoscale.quota_cap([quota(24, 12)], "nvidia.com/gpu", gpus_per_replica=4, replicas_now=1)
    assert cap is not None and cap[0] == 4 and "ResourceQuota gpus" in cap[1]
    p = autoscale.plan(AutoscalingSpec(maxReplicas=8), keda=True, http_addon=False, cap=cap, replicas=1)
    assert p.max_replicas == 4 and p.condition.reason == "LimitedByQuota"
    assert "maxReplicas 8 lowered to 4" in p.condition.message
    # A quota with room for more than maxReplicas changes nothing.
    roomy = autoscale.quota_cap([quota(100, 0)], "nvidia.com/gpu", 4, 0)
    assert autoscale.plan(AutoscalingSpec(maxReplicas=8), True, False, roomy, 1).max_replicas == 8


def test_the_tightest_quota_wins_and_scoped_quotas_are_not_judged() -> None:
    scoped = {**quota(4, 0, "scoped"), "spec": {"hard": {"requests.nvidia.com/gpu": "4"}, "scopes": ["BestEffort"]}}
    cap = autoscale.quota_cap([quota(40, 0, "wide"), quota(16, 0, "tight"), scoped], "nvidia.com/gpu", 8, 0)
    assert cap is not None and cap[0] == 2 and "tight" in cap[1]


def test_scaler_not_ready_overrides_active() -> None:
    p = autoscale.plan(AutoscalingSpec(maxReplicas=2), True, False, None, 1)
    so = {"status": {"conditions": [{"type": "Ready", "status": "False", "message": "prometheus: connection refused"}]}}
    c = autoscale.scaler_condition(p, so)
    assert (c.status, c.reason) == ("False", "ScalerNotReady") and "connection refused" in c.message


def test_start_times_from_parked_to_ready() -> None:
    t0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    waking = autoscale.start_times({"phase": "Parked"}, "Waking", t0)
    assert waking.started_at == "2026-11-30T12:00:00Z" and waking.expected_ready_at is None
    old = {"phase": "Waking", "autoscaling": {"startedAt": waking.started_at}}
    ready = autoscale.start_times(old, "Ready", t0 + dt.timedelta(seconds=190))
    assert ready.last_start_seconds == 190 and ready.started_at is None
    # The next wake says when it should be ready, from the last start.
    again = autoscale.start_times({"phase": "Parked", "autoscaling": {"lastStartSeconds": 190}}, "Waking", t0)
    assert again.expected_ready_at == "2026-11-30T12:03:10Z"


def resolved(**autoscaling: Any) -> Any:
    spec = MiniMaxDeploymentSpec.model_validate(
        {"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadWriteMany"}, "autoscaling": autoscaling}
    )
    return resolve("m25", "team-a", spec, {})


def test_the_scaled_object_targets_the_resource_on_vllm_signals() -> None:
    r = resolved(maxReplicas=4, target={"waitingRequests": 3, "kvCacheUsage": 0.8}, scaleDownDelaySeconds=900)
    assert r.spec.autoscaling is not None
    so = scaling.scaled_object(r, OWNER, OperatorSettings(), r.spec.autoscaling, 1, 4)
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment",
                                      "name": "m25"}  # fmt: skip
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4) and "cooldownPeriod" not in spec
    by_name = {t["name"]: t for t in spec["triggers"]}
    assert set(by_name) == {"waiting", "kv-cache"}
    assert by_name["waiting"]["metadata"]["threshold"] == "3"
    assert (
        'vllm:num_requests_waiting{namespace="team-a",model_name="MiniMax-M2.5"}'
        in by_name["waiting"]["metadata"]["query"]
    )
    assert by_name["kv-cache"]["metadata"]["threshold"] == "0.8"
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert so["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_no_target_means_four_waiting_requests_per_replica() -> None:
    r = resolved(maxReplicas=2)
    so = scaling.scaled_object(r, OWNER, OperatorSettings(), r.spec.autoscaling, 1, 2)
    assert [(t["name"], t["metadata"]["threshold"]) for t in so["spec"]["triggers"]] == [("waiting", "4")]


def test_a_model_that_parks_is_woken_by_held_requests() -> None:
    r = resolved(minReplicas=0, maxReplicas=2, idleSeconds=1200, wakeTimeoutSeconds=600)
    a = r.spec.autoscaling
    settings = OperatorSettings()
    so = scaling.scaled_object(r, OWNER, settings, a, 0, 2)
    assert so["spec"]["cooldownPeriod"] == 1200 and so["spec"]["minReplicaCount"] == 0
    push = next(t for t in so["spec"]["triggers"] if t["type"] == "external-push")
    assert push["metadata"] == {"scalerAddress": settings.keda_http_scaler, "httpScaledObject": "m25"}
    hso = scaling.http_scaled_object(r, OWNER, a, 2)
    assert hso["metadata"]["annotations"]["httpscaledobject.keda.sh/skip-scaledobject-creation"] == "true"
    assert hso["spec"]["hosts"] == ["m25-wake.team-a.svc.cluster.local"]
    assert hso["spec"]["scaleTargetRef"]["service"] == "m25" and hso["spec"]["scaleTargetRef"]["port"] == 8000
    assert hso["spec"]["timeouts"]["conditionWait"] == "600s"
    wake = scaling.wake_service(r, OWNER, settings)
    assert wake["spec"] == {
        "type": "ExternalName",
        "externalName": "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local",
    }
    assert scaling.wake_root(r, settings) == "http://m25-wake.team-a.svc.cluster.local:8080"


def test_max_replicas_must_fit_a_read_write_once_claim_before_any_download() -> None:
    spec = MiniMaxDeploymentSpec.model_validate(
        {"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadWriteOnce"}, "autoscaling": {"maxReplicas": 3}}
    )
    with pytest.raises(LayoutError) as e:
        resolve("m25", "ns", spec, {})
    assert "all 3 replicas x 4 GPUs must fit on one node" in str(e.value)


def verified(kube: Any, deployments: Any) -> None:
    reconcile_mmd(kube, deployments)
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    cache_name = mmd["status"]["cache"]
    cache = kube.object("MiniMaxModelCache", cache_name)
    kube.put({**cache, "status": {
        "claimName": f"{cache_name}-weights", "accessMode": "ReadWriteMany", "commit": COMMIT,
        "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Downloaded"}]}})  # fmt: skip


def with_spec(kube: Any, spec: dict[str, Any]) -> None:
    body = kube.object("MiniMaxDeployment", "m25")
    kube.put({**body, "spec": spec})


def test_without_keda_the_model_serves_its_replicas_and_warns() -> None:
    kube, deployments = deployment_scene()
    installed: dict[str, bool] = {}
    deployments.watch_kind = lambda kind: installed.get(kind, False)
    with_spec(kube, {"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadWriteMany"},
                     "autoscaling": {"maxReplicas": 3}})  # fmt: skip
    verified(kube, deployments)
    result = reconcile_mmd(kube, deployments)
    assert conditions(kube.object("MiniMaxDeployment", "m25"))["Autoscaling"] == ("False", "KEDANotInstalled")
    assert kube.object("ScaledObject", "m25") is None and kube.object("Deployment", "m25") is not None
    assert ("Warning", "KEDANotInstalled") in [(t, r) for t, r, _ in kube.events]
    assert result.requeue_after == 60  # installing KEDA sends no event

    installed["ScaledObject"] = True
    reconcile_mmd(kube, deployments)
    so = kube.object("ScaledObject", "m25")
    assert so is not None and so["spec"]["maxReplicaCount"] == 3
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert conditions(mmd)["Autoscaling"] == ("True", "Active")
    assert mmd["status"]["autoscaling"] == {"scaledObject": "m25", "minReplicas": 1, "maxReplicas": 3}

    kube.writes.clear()
    kube.events.clear()
    reconcile_mmd(kube, deployments)
    assert kube.writes == [] and kube.events == [], "steady state writes nothing"

    # Autoscaling taken out of the spec: the ScaledObject goes (ours), replicas stay as they are.
    with_spec(kube, {"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadWriteMany"}})
    reconcile_mmd(kube, deployments)
    assert kube.object("ScaledObject", "m25") is None
    assert "Autoscaling" not in conditions(kube.object("MiniMaxDeployment", "m25"))


def test_a_parked_model_stays_in_chatos_through_the_interceptor_and_wakes() -> None:
    kube, deployments = deployment_scene()
    deployments.watch_kind = lambda kind: kind in ("ScaledObject", "HTTPScaledObject")
    spec = {"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadWriteMany"},
            "autoscaling": {"minReplicas": 0, "maxReplicas": 2}}  # fmt: skip
    with_spec(kube, spec)
    verified(kube, deployments)
    reconcile_mmd(kube, deployments)
    assert kube.object("HTTPScaledObject", "m25") is not None and kube.object("Service", "m25-wake") is not None
    entries = json.loads(kube.object("ConfigMap", "chatos-models")["data"]["models.json"])
    assert entries[0]["base_url"] == "http://m25-wake.ns.svc.cluster.local:8080", "registered before a server"

    with_spec(kube, {**spec, "replicas": 0})  # KEDA parks it
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd["status"]["phase"] == "Parked"
    assert conditions(mmd)["ServerReady"] == ("False", "Parked")
    assert json.loads(kube.object("ConfigMap", "chatos-models")["data"]["models.json"]), "still in ChatOS"

    with_spec(kube, {**spec, "replicas": 1})  # a request woke it
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd["status"]["phase"] == "Waking" and mmd["status"]["autoscaling"]["startedAt"]


def test_a_name_taken_by_someone_elses_service_stops_autoscaling_before_a_download() -> None:
    kube, deployments = deployment_scene()
    kube.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m25-wake"}, "spec": {}})
    with_spec(kube, {"model": "MiniMax-M2.5", "autoscaling": {"minReplicas": 0, "maxReplicas": 1}})
    reconcile_mmd(kube, deployments)
    reconcile_mmd(kube, deployments)
    assert conditions(kube.object("MiniMaxDeployment", "m25"))["WeightsReady"] == ("False", "NameConflict")
    assert not [w for w in kube.writes if w[1] == "MiniMaxModelCache"]


def test_scaling_never_changes_the_pod_template() -> None:
    """KEDA moving replicas between 1 and its bound must not restart the serving replica (on a ReadWriteOnce
    claim the servers' pod affinity once depended on the current count: found by the stand-in's metrics)."""
    from minimax_operator.render import server as render_server

    templates = []
    for replicas in (0, 1, 2, 3):
        spec = MiniMaxDeploymentSpec.model_validate(
            {"model": "MiniMax-M2.5", "tensorParallelSize": 2, "replicas": replicas, "gpu": {"memoryGiB": 141},
             "storage": {"accessMode": "ReadWriteOnce"}, "autoscaling": {"minReplicas": 0, "maxReplicas": 3}}
        )  # fmt: skip
        dep = render_server.deployment(resolve("m25", "ns", spec, {}), OWNER)
        templates.append(dep["spec"]["template"])
        assert dep["spec"]["replicas"] == replicas
    assert all(t == templates[0] for t in templates)
    assert "podAffinity" in templates[0]["spec"]["affinity"]
