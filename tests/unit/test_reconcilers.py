"""The reconcilers over an in-memory client (tests/harness/fake_client.py): observe, decide, act, and
the status and Events a user sees, in milliseconds. The end-to-end tests run the same flows on a
real API server; these pin the steps between."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from minimax_operator.api.names import FINALIZER
from minimax_operator.api.v1alpha1 import MiniMaxModelCacheSpec
from minimax_operator.controllers.chatos import Registrar
from minimax_operator.controllers.deployment import Reconciler
from minimax_operator.controllers.model_cache import CacheReconciler
from minimax_operator.controllers.settings import Settings
from minimax_operator.model.model_cache import resolve_cache
from minimax_operator.protocol import progress_line
from minimax_operator.render.model_cache import download_job_name
from tests.harness.fake_client import FakeKube

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
COMMIT = "c" * 40


def clock() -> dt.datetime:
    return NOW


def conditions(obj: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    assert obj is not None
    return {c["type"]: (c["status"], c["reason"]) for c in (obj.get("status") or {}).get("conditions") or []}


def cache_scene() -> tuple[FakeKube, CacheReconciler]:
    kube = FakeKube()
    kube.put(
        {
            "apiVersion": "minimax.chatos.io/v1alpha1",
            "kind": "MiniMaxModelCache",
            "metadata": {"name": "m25", "finalizers": [FINALIZER]},
            "spec": {"model": "MiniMax-M2.5"},
        }
    )
    return kube, CacheReconciler(kube, Settings(), clock=clock)  # type: ignore[arg-type]


def reconcile_cache(kube: FakeKube, caches: CacheReconciler) -> Any:
    body = kube.object("MiniMaxModelCache", "m25")
    assert body is not None
    return caches.reconcile(body)


def test_a_cache_downloads_once_and_then_writes_nothing() -> None:
    kube, caches = cache_scene()
    first = reconcile_cache(kube, caches)
    assert kube.writes == [("status", "MiniMaxModelCache", "m25")] and first.requeue_after == 0
    assert conditions(kube.object("MiniMaxModelCache", "m25"))["Ready"] == ("Unknown", "Pending")

    kube.writes.clear()
    created = reconcile_cache(kube, caches)
    assert ("apply", "PersistentVolumeClaim", "m25-weights") in kube.writes
    job_name = next(name for verb, kind, name in kube.writes if kind == "Job")
    assert created.requeue_after == 5  # a refused pod leaves only an Event, which no watch carries
    assert conditions(kube.object("MiniMaxModelCache", "m25"))["Ready"] == ("False", "Pending")

    labels = {
        "app.kubernetes.io/instance": "m25",
        "minimax.chatos.io/cache": "m25",
        "app.kubernetes.io/component": "weights-download",
        "job-name": job_name,
    }
    pod = {"kind": "Pod", "metadata": {"name": "dl-1", "labels": labels}, "status": {"phase": "Running"}}
    kube.put(pod)
    kube.logs["dl-1"] = progress_line(bytesDone=25, bytesTotal=100, revision=COMMIT)
    running = reconcile_cache(kube, caches)
    cache = kube.object("MiniMaxModelCache", "m25")
    assert cache is not None and cache["status"]["download"]["progress"] == "25%"
    assert cache["status"]["phase"] == "Downloading" and running.requeue_after == 10.0

    result = {"revision": COMMIT, "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}", "bytesTotal": 100}
    message = {"containerStatuses": [{"state": {"terminated": {"message": json.dumps(result)}}}]}
    kube.put({**pod, "status": {"phase": "Succeeded", **message}})
    job = kube.object("Job", job_name)
    assert job is not None
    kube.put({**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    done = reconcile_cache(kube, caches)
    cache = kube.object("MiniMaxModelCache", "m25")
    assert cache is not None and cache["status"]["commit"] == COMMIT and cache["status"]["phase"] == "Ready"
    assert done.peers_changed, "the cache's users read the verified commit: they must be queued"
    assert ("Normal", "Downloaded") in [(t, r) for t, r, _ in kube.events]

    kube.writes.clear()
    kube.events.clear()
    again = reconcile_cache(kube, caches)
    assert kube.writes == [] and kube.events == [] and not again.peers_changed, "steady state writes nothing"


def test_a_job_of_that_name_that_the_cache_does_not_control_is_never_touched() -> None:
    kube, caches = cache_scene()
    reconcile_cache(kube, caches)
    name = download_job_name(resolve_cache("m25", "ns", MiniMaxModelCacheSpec(model="MiniMax-M2.5")), 0)
    kube.put({"kind": "Job", "metadata": {"name": name, "labels": {"app": "theirs"}}, "spec": {}})
    kube.writes.clear()
    result = reconcile_cache(kube, caches)
    assert conditions(kube.object("MiniMaxModelCache", "m25"))["Ready"] == ("False", "NameConflict")
    assert [w for w in kube.writes if w[1] == "Job"] == [] and result.requeue_after == 30


def deployment_scene() -> tuple[FakeKube, Reconciler]:
    kube = FakeKube()
    kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chatos-models"}, "data": {}})
    kube.put(
        {
            "apiVersion": "minimax.chatos.io/v1alpha1",
            "kind": "MiniMaxDeployment",
            "metadata": {"name": "m25", "finalizers": [FINALIZER], "creationTimestamp": "2026-11-30T11:00:00Z"},
            "spec": {"model": "MiniMax-M2.5"},
        }
    )
    registrar = Registrar(kube, frozenset(), False)  # type: ignore[arg-type]
    return kube, Reconciler(kube, Settings(), registrar, clock=clock)  # type: ignore[arg-type]


def reconcile_mmd(kube: FakeKube, deployments: Reconciler) -> Any:
    body = kube.object("MiniMaxDeployment", "m25")
    assert body is not None
    return deployments.reconcile(body)


def test_a_server_starts_only_on_verified_weights_and_registers_once_it_serves() -> None:
    kube, deployments = deployment_scene()
    reconcile_mmd(kube, deployments)
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd is not None
    cache_name = mmd["status"]["cache"]
    assert ("create", "MiniMaxModelCache", cache_name) in kube.writes
    assert conditions(mmd)["WeightsReady"][0] == "False" and kube.object("Deployment", "m25") is None

    cache = kube.object("MiniMaxModelCache", cache_name)
    assert cache is not None
    verified = {
        "claimName": f"{cache_name}-weights",
        "accessMode": "ReadWriteOnce",
        "commit": COMMIT,
        "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Downloaded"}],
    }
    kube.put({**cache, "status": verified})
    reconcile_mmd(kube, deployments)
    dep = kube.object("Deployment", "m25")
    assert dep is not None and kube.object("Service", "m25") is not None
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == f"/models/revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}"
    assert conditions(kube.object("MiniMaxDeployment", "m25"))["ServerReady"] == ("False", "Starting")
    assert conditions(kube.object("MiniMaxDeployment", "m25"))["Registered"] == ("Unknown", "WaitingForServer")

    kube.put({**dep, "status": {"observedGeneration": dep["metadata"]["generation"], "replicas": 1,
                                "updatedReplicas": 1, "availableReplicas": 1}})  # fmt: skip
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd is not None and mmd["status"]["phase"] == "Ready"
    configmap = kube.object("ConfigMap", "chatos-models")
    assert configmap is not None
    assert json.loads(configmap["data"]["models.json"])[0]["model_id"] == "MiniMax-M2.5"

    kube.writes.clear()
    kube.events.clear()
    reconcile_mmd(kube, deployments)
    assert kube.writes == [] and kube.events == [], "steady state writes nothing"


def test_a_service_someone_else_owns_stops_everything_before_a_cache_exists() -> None:
    kube, deployments = deployment_scene()
    kube.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m25"}, "spec": {}})
    reconcile_mmd(kube, deployments)
    result = reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert conditions(mmd)["WeightsReady"] == ("False", "NameConflict") and mmd is not None
    assert mmd["status"]["phase"] == "Failed" and result.requeue_after == 30
    assert not [w for w in kube.writes if w[1] in ("MiniMaxModelCache", "Service", "Deployment")]
    assert ("Warning", "NameConflict") in [(t, r) for t, r, _ in kube.events]


def test_in_a_restricted_namespace_the_server_is_restricted_and_baseline_is_refused_before_any_download() -> None:
    kube, deployments = deployment_scene()
    kube.put(
        {
            "kind": "Namespace",
            "metadata": {"name": "ns", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        }
    )
    body = kube.object("MiniMaxDeployment", "m25")
    assert body is not None
    kube.put({**body, "spec": {"model": "MiniMax-M2.5", "vllm": {"podSecurity": "baseline"}}})
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert conditions(mmd)["WeightsReady"] == ("False", "PodSecurityViolation") and mmd is not None
    assert "spec.vllm.podSecurity" in mmd["status"]["conditions"][0]["message"]
    assert mmd["status"]["phase"] == "Failed"
    assert not [w for w in kube.writes if w[1] in ("MiniMaxModelCache", "Job", "PersistentVolumeClaim")]

    kube.put({**body, "spec": {"model": "MiniMax-M2.5"}})  # left out: the namespace's level
    reconcile_mmd(kube, deployments)  # first sight (the status went with the object)
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd is not None
    cache = kube.object("MiniMaxModelCache", mmd["status"]["cache"])
    assert cache is not None
    kube.put({**cache, "status": {"claimName": "c-weights", "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}",
                                  "conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip
    reconcile_mmd(kube, deployments)
    dep = kube.object("Deployment", "m25")
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_multi_node_model_waits_for_lws_then_is_one_group_and_retires_its_deployment() -> None:
    kube, deployments = deployment_scene()
    installed = {"LeaderWorkerSet": False}
    deployments.watch_kind = lambda kind: installed.get(kind, False)
    body = kube.object("MiniMaxDeployment", "m25")
    assert body is not None
    # It served on one node before (141 GB GPUs): its Deployment exists.
    kube.put({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1}, "metadata": {
        "name": "m25", "ownerReferences": [{"uid": body["metadata"]["uid"], "controller": True}]}})  # fmt: skip
    kube.put({**body, "spec": {"model": "MiniMax-M3"}})  # 80 GB GPUs: two nodes
    reconcile_mmd(kube, deployments)
    result = reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert conditions(mmd)["WeightsReady"] == ("False", "MultiNodeUnavailable") and mmd is not None
    assert mmd["status"]["phase"] == "Failed" and mmd["status"]["layout"] == "TP8xPP2 2 nodes"
    assert not [w for w in kube.writes if w[1] in ("MiniMaxModelCache", "LeaderWorkerSet")]  # nothing downloaded
    assert ("Warning", "MultiNodeUnavailable") in [(t, r) for t, r, _ in kube.events]
    assert result.requeue_after == 60  # installing LWS sends the resource no event

    installed["LeaderWorkerSet"] = True  # the platform installed LWS
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd is not None
    cache = kube.object("MiniMaxModelCache", mmd["status"]["cache"])
    assert cache is not None and cache["spec"]["storage"]["accessMode"] == "ReadWriteMany"
    verified = {
        "claimName": f"{cache['metadata']['name']}-weights",
        "accessMode": "ReadWriteMany",
        "commit": COMMIT,
        "path": f"revisions/MiniMaxAI/MiniMax-M3/{COMMIT}",
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    kube.put({**cache, "status": verified})
    reconcile_mmd(kube, deployments)
    group = kube.object("LeaderWorkerSet", "m25-group")
    assert group is not None and group["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert kube.object("Deployment", "m25") is None and ("delete", "Deployment", "m25") in kube.writes
    assert conditions(kube.object("MiniMaxDeployment", "m25"))["ServerReady"][1] == "Starting"


def test_lws_uninstalled_after_its_watch_started_says_so() -> None:
    kube, deployments = deployment_scene()
    deployments.watch_kind = lambda kind: True  # watched since the operator started
    kube.uninstalled.add("LeaderWorkerSet")
    body = kube.object("MiniMaxDeployment", "m25")
    assert body is not None
    kube.put({**body, "spec": {"model": "MiniMax-M3"}})
    reconcile_mmd(kube, deployments)
    reconcile_mmd(kube, deployments)
    mmd = kube.object("MiniMaxDeployment", "m25")
    assert mmd is not None
    cache = kube.object("MiniMaxModelCache", mmd["status"]["cache"])
    assert cache is not None
    kube.put({**cache, "status": {"claimName": "w", "accessMode": "ReadWriteMany", "commit": COMMIT,
                                  "path": f"revisions/MiniMaxAI/MiniMax-M3/{COMMIT}"}})  # fmt: skip
    result = reconcile_mmd(kube, deployments)
    assert conditions(kube.object("MiniMaxDeployment", "m25"))["ServerReady"] == ("False", "MultiNodeUnavailable")
    assert result.requeue_after == 60


def test_a_models_whole_way_to_ready_costs_fourteen_writes_and_four_events() -> None:
    """Every write and Event counts at a thousand models (bench/scale.py): this pins the budget.

    Per model, from `kubectl apply` to Ready with an implicit cache: the finalizer, the
    cache, its claim and Job, two cache statuses, the server and its Service, the ChatOS
    entry, five statuses of the resource (first sight, cache asked for, download waiting,
    server starting, Ready). Events: Downloaded (cache and
    resource), Starting, and one Ready that names what turned True with it.
    """
    kube, deployments = deployment_scene()
    body = kube.object("MiniMaxDeployment", "m25")
    assert body is not None
    kube.put({**body, "metadata": {**body["metadata"], "finalizers": []}})  # as `kubectl apply` creates it
    caches = CacheReconciler(kube, Settings(), clock=clock)  # type: ignore[arg-type]
    kube.writes.clear()

    def mmd() -> Any:
        return reconcile_mmd(kube, deployments)

    def cache() -> Any:
        name = (kube.object("MiniMaxDeployment", "m25") or {})["status"]["cache"]
        return caches.reconcile(kube.object("MiniMaxModelCache", name) or {})

    mmd()
    mmd()
    cache()
    mmd()
    cache_name = (kube.object("MiniMaxDeployment", "m25") or {})["status"]["cache"]
    job = next(iter(kube.stores["Job"].list("ns", {})))
    labels = {**job["spec"]["template"]["metadata"]["labels"], "job-name": job["metadata"]["name"]}
    result = {"revision": COMMIT, "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}", "bytesTotal": 100}
    terminated = {"containerStatuses": [{"state": {"terminated": {"message": json.dumps(result)}}}]}
    kube.put(
        {"kind": "Pod", "metadata": {"name": "dl-1", "labels": labels}, "status": {"phase": "Succeeded", **terminated}}
    )
    kube.put({**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    cache()
    mmd()
    dep = kube.object("Deployment", "m25")
    assert dep is not None
    kube.put({**dep, "status": {"observedGeneration": dep["metadata"]["generation"], "replicas": 1,
                                "updatedReplicas": 1, "availableReplicas": 1}})  # fmt: skip
    cache()
    mmd()
    assert (kube.object("MiniMaxDeployment", "m25") or {})["status"]["phase"] == "Ready"
    assert sorted(kube.writes) == sorted(
        [
            ("patch", "MiniMaxDeployment", "m25"),  # the finalizer
            *[("status", "MiniMaxDeployment", "m25")] * 5,
            ("create", "MiniMaxModelCache", cache_name),
            ("apply", "PersistentVolumeClaim", f"{cache_name}-weights"),
            ("apply", "Job", job["metadata"]["name"]),
            *[("status", "MiniMaxModelCache", cache_name)] * 2,
            ("apply", "Deployment", "m25"),
            ("apply", "Service", "m25"),
            ("replace", "ConfigMap", "chatos-models"),
        ]
    )
    assert [(t, r) for t, r, _ in kube.events] == [
        ("Normal", "Downloaded"),
        ("Normal", "Downloaded"),
        ("Normal", "Starting"),
        ("Normal", "Ready"),
    ]
    ready = kube.events[-1][2]
    assert "ServerReady: 1/1 replicas serving" in ready and "Registered: model_id MiniMax-M2.5 registered" in ready


def test_events_are_news_only() -> None:
    """No Event for a condition's first appearance or for waiting on the step before; a fall from True is news."""
    from minimax_operator.controllers.base import Base
    from minimax_operator.render import status as st

    kube = FakeKube()
    base = Base(kube, Settings(), clock=clock)  # type: ignore[arg-type]
    body = {"metadata": {"name": "m", "namespace": "ns"}}

    def events(old: list[tuple[str, str, str]], new: list[st.Cond]) -> list[tuple[str, str]]:
        kube.events.clear()
        base._events(body, {"conditions": [{"type": t, "status": s, "reason": r} for t, s, r in old]}, new)
        return [(t, r) for t, r, _ in kube.events]

    assert events([], [st.true("InUse", "Serving"), st.false("Ready", "Pending")]) == []
    assert events([], [st.false("WeightsReady", "QuotaExceeded", "no room")]) == [("Warning", "QuotaExceeded")]
    waiting = [("ServerReady", "Unknown", "WaitingForWeights")]
    assert events(waiting, [st.false("ServerReady", "WaitingForWeights")]) == []
    assert events([("ServerReady", "True", "Available")], [st.false("ServerReady", "WaitingForWeights")]) == [
        ("Normal", "WaitingForWeights")
    ]
    assert events(waiting, [st.false("ServerReady", "Starting")]) == [("Normal", "Starting")]
