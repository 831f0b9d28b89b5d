"""MiniMaxModelCache: one download per model, revision switches without a gap in verified weights,
caches that outlive their users, and the upgrade from releases that kept weights per resource.

Downloads run for real where bytes are counted (the Executor of test_download_e2e plays the
kubelet for download pods, against a Hub on loopback); elsewhere kwok simulates the download
pod and reports a commit per repo and revision, as the downloader would.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from minimax_operator.api.names import MODEL_LABEL
from minimax_operator.api.v1alpha1 import MiniMaxDeploymentSpec
from minimax_operator.model.deployment import resolve
from minimax_operator.render import server as render_server
from minimax_operator.render.meta import Owner, model_label, owner_reference
from tests.harness.cluster import Cluster, Executor, Operator, release_hold, start_operator, wait_for
from tests.harness.fakehub import FakeHub

from .test_download_e2e import HOLD, spec
from .test_operator import HAND_WRITTEN, tiny

DOWNLOAD = "app.kubernetes.io/component=weights-download"


def _server_args(cluster: Cluster, ns: str, name: str) -> list[str]:
    return list(cluster.apps.read_namespaced_deployment(name, ns).spec.template.spec.containers[0].args)


def _jobs(cluster: Cluster, ns: str, selector: str = DOWNLOAD) -> list[Any]:
    return list(cluster.batch.list_namespaced_job(ns, label_selector=selector).items)


def test_two_resources_of_one_model_download_one_copy(
    cluster: Cluster, ns: str, operator: Operator, hub: FakeHub, executor: Executor
) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    cluster.create_mmd(ns, "a", spec(hub))
    cluster.create_mmd(ns, "b", {**spec(hub), "servedModelName": "tiny-canary", "vllm": {"image": "vllm/other:1"}})
    for name in ("a", "b"):
        cluster.wait_phase(ns, name, "Ready", timeout=90)
    repo = hub.repos["MiniMaxAI/Tiny"]
    one_copy = sum(f.size for f in repo.files.values())
    assert hub.total_served() == one_copy  # goal: one copy, whatever the number of resources
    assert len(_jobs(cluster, ns)) == 1
    assert len(cluster.core.list_namespaced_persistent_volume_claim(ns).items) == 1
    cache = cluster.cache_of(ns, "a")
    assert cluster.cache_of(ns, "b") == cache
    mmc = cluster.mmc(ns, cache)
    assert mmc["status"]["users"] == ["a", "b"] and mmc["status"]["userCount"] == 2
    assert mmc["status"]["commit"] == repo.commit and mmc["status"]["download"]["bytesTotal"] == one_copy
    folder = f"/models/revisions/MiniMaxAI/Tiny/{repo.commit}"
    assert _server_args(cluster, ns, "a")[0] == _server_args(cluster, ns, "b")[0] == folder
    assert sorted(m["model_id"] for m in cluster.chatos_models(ns)) == ["gpt-x", "tiny", "tiny-canary"]
    table = cluster.kubectl("get", "mmc", "-n", ns).splitlines()
    assert table[0].split() == ["NAME", "REPO", "REVISION", "SIZE", "PROGRESS", "USERS", "READY", "AGE"]
    assert table[1].split()[:7] == [cache, "MiniMaxAI/Tiny", "main", "1Gi", "100%", "2", "True"]


def test_revision_change_keeps_the_old_server_until_the_new_commit_is_verified(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.chatos_configmap(ns, [])
    repo = "test-org/tiny-rev"
    cluster.create_mmc(ns, "weights", {"repo": repo, "revision": "v1", "storage": {"size": "1Gi"}})
    server = {k: v for k, v in tiny("rev").items() if k != "storage"}
    cluster.create_mmd(ns, "srv", {**server, "repo": repo, "cacheRef": {"name": "weights"}})
    cluster.wait_phase(ns, "srv", "Ready")
    old = cluster.mmc(ns, "weights")["status"]
    old_folder = f"/models/{old['path']}"
    assert old["path"] == f"revisions/{repo}/{old['commit']}" and _server_args(cluster, ns, "srv")[0] == old_folder

    # v2 downloads (held running: a long download) beside v1, which the server keeps loading and serving.
    started = time.monotonic()
    cluster.patch_mmc(ns, "weights", {"revision": "v2", "download": {"podAnnotations": HOLD}})
    wait_for(
        lambda: any(
            p.status.phase == "Running"
            for p in cluster.core.list_namespaced_pod(ns, label_selector=DOWNLOAD).items
            if p.metadata.annotations.get("sim.minimax.chatos.io/behavior") == "Hold"
        ),
        what="v2 downloading",
    )
    wait_for(lambda: cluster.mmc(ns, "weights")["status"]["phase"] == "Downloading", what="cache Downloading")
    dep = cluster.apps.read_namespaced_deployment("srv", ns)
    start = operator.metric("minimax_operator_reconciles_total")
    while operator.metric("minimax_operator_reconciles_total") < start + 20:  # over many resyncs: nothing moves
        cache = cluster.mmc(ns, "weights")["status"]
        assert cache["commit"] == old["commit"] and cache["path"] == old["path"]
        now = cluster.apps.read_namespaced_deployment("srv", ns)
        assert now.metadata.generation == dep.metadata.generation and now.status.available_replicas == 1
        assert cluster.mmd(ns, "srv")["status"]["phase"] == "Ready"
    assert "getting revision v2" in cluster.condition(ns, "srv", "WeightsReady")["message"]

    # Verified: the server rolls to the new folder; the old commit is pruned once no pod loads it.
    release_hold(cluster, ns)
    new = wait_for(
        lambda: (s := cluster.mmc(ns, "weights")["status"])["commit"] != old["commit"] and s, what="v2 verified"
    )
    wait_for(lambda: _server_args(cluster, ns, "srv")[0] == f"/models/{new['path']}", what="server moved")
    cluster.wait_rolled_out(ns, "srv")
    cluster.wait_phase(ns, "srv", "Ready")
    switched = time.monotonic() - started
    prune = wait_for(lambda: _jobs(cluster, ns, "app.kubernetes.io/component=weights-prune"), what="prune Job")
    args = prune[0].spec.template.spec.containers[0].args
    assert args[args.index("--path") + 1] == old["path"] and args.count("--path") == 1
    wait_for(
        lambda: [c["path"] for c in cluster.mmc(ns, "weights")["status"]["commits"]] == [new["path"]],
        what="old commit collected",
    )
    assert cluster.mmd(ns, "srv")["status"]["commit"] == new["commit"]
    print(f"revision switch: old server kept serving through the download; new one ready {switched:.1f} s after")


def test_deleting_a_cache_in_use_is_held_until_no_server_uses_it(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmc(ns, "held", {"repo": "test-org/tiny-held", "storage": {"size": "1Gi"}})
    server = {k: v for k, v in tiny("held").items() if k not in ("storage", "repo")}
    cluster.create_mmd(ns, "user", {**server, "cacheRef": {"name": "held"}})  # repo from the cache
    cluster.wait_phase(ns, "user", "Ready")
    claim = cluster.claim_of(ns, "user")
    cluster.delete_mmc(ns, "held")
    cond = wait_for(
        lambda: (c := cluster.cache_condition(ns, "held", "InUse")).get("reason") == "DeletionBlocked" and c,
        what="deletion held",
    )
    assert "used by user" in cond["message"]
    warning = wait_for(
        lambda: [e for e in cluster.events(ns, "held") if e["type"] == "Warning" and e["reason"] == "DeletionBlocked"],
        what="Warning Event",
    )
    assert "user" in warning[0]["message"]
    assert cluster.mmc(ns, "held")["metadata"]["deletionTimestamp"]
    assert cluster.core.read_namespaced_persistent_volume_claim(claim, ns).metadata.deletion_timestamp is None
    assert cluster.mmd(ns, "user")["status"]["phase"] == "Ready"  # the server is not touched
    cluster.delete_mmd(ns, "user")
    wait_for(lambda: not cluster.mmcs(ns), timeout=60, what="cache deleted once unused")
    assert cluster.core.read_namespaced_persistent_volume_claim(claim, ns)  # retained: weights survive


def test_a_cache_that_does_not_exist_or_holds_another_model_is_named(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    server = {k: v for k, v in tiny("ref").items() if k != "storage"}
    cluster.create_mmd(ns, "ref", {**server, "cacheRef": {"name": "missing"}})
    cond = cluster.wait_condition(ns, "ref", "Ready", "False", "CacheNotFound")
    assert "spec.cacheRef: MiniMaxModelCache missing does not exist" in cond["message"]
    cluster.create_mmc(ns, "missing", {"repo": "test-org/other", "storage": {"size": "1Gi"}})
    cond = cluster.wait_condition(ns, "ref", "Ready", "False", "LayoutInvalid")
    assert "holds test-org/other, but this resource serves test-org/tiny-ref" in cond["message"]
    assert not cluster.apps.list_namespaced_deployment(ns).items


def test_spec_fields_the_cache_decides_are_refused_with_a_cache_ref(cluster: Cluster, ns: str) -> None:
    doc = {
        "apiVersion": "minimax.chatos.io/v1alpha1",
        "kind": "MiniMaxDeployment",
        "metadata": {"name": "x", "namespace": ns},
        "spec": {"model": "MiniMax-M2.5", "cacheRef": {"name": "c"}, "revision": "v2", "storage": {"size": "1Ti"}},
    }
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(doc), check=False)
    assert "spec.revision cannot be set with spec.cacheRef" in out
    assert "spec.storage cannot set size, storageClassName or existingClaim with spec.cacheRef" in out


# ---- upgrade ------------------------------------------------------------------------------


def _release_before_caches(name: str, ns: str, spec_: dict[str, Any], uid: str) -> list[dict[str, Any]]:
    """The claim, Deployment and Service the release before model caches (0.1.0) made for a resource.

    Its server template is what render.server.deployment gives without a cache (the unit test
    test_a_claim_of_a_release_before_caches_keeps_the_same_server_template pins that it is also
    what an adopted claim gives; it was compared with 0.1.0's `render` output when caches came).
    """
    r = resolve(name, ns, MiniMaxDeploymentSpec.model_validate(spec_))
    owner = Owner(name, uid)
    labels = {**render_server.labels(r, "weights"), MODEL_LABEL: model_label(r.repo)}
    claim_meta: dict[str, Any] = {"name": f"{name}-weights", "namespace": ns, "labels": labels}
    if not r.spec.storage.retainOnDelete:
        claim_meta["ownerReferences"] = [owner_reference(owner)]
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": claim_meta,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": r.storage_size}}},
    }
    return [claim, render_server.deployment(r, owner), render_server.service(r, owner)]


def test_upgrade_adopts_the_weights_of_the_previous_release_without_downloading(
    cluster: Cluster, operator_kubeconfig: Path, hub: FakeHub, tmp_path: Path
) -> None:
    ns = f"solo-upgrade-{secrets.token_hex(2)}"
    cluster.kubectl("create", "namespace", ns)
    executor = Executor(cluster, ns, tmp_path / "volumes")
    executor.start()
    op = None
    try:
        cluster.chatos_configmap(ns, [HAND_WRITTEN])
        # What the previous release left: weights verified by its download Job in NAME-weights ...
        old_spec = {**spec(hub), "storage": {"size": "1Gi", "retainOnDelete": False}}
        legacy = tmp_path / "volumes" / "old-weights" / "MiniMaxAI" / "Tiny"
        downloader = [sys.executable, "-m", "minimax_operator", "download", "--repo", "MiniMaxAI/Tiny"]
        subprocess.run([*downloader, "--dest", str(legacy), "--endpoint", hub.url], check=True, capture_output=True)
        downloaded_by_old = hub.total_served()
        # ... the resource with its status, its claim (owned: retainOnDelete false), server and entry.
        mmd = cluster.create_mmd(ns, "old", old_spec)
        objs = _release_before_caches("old", ns, old_spec, mmd["metadata"]["uid"])
        cluster.apply_docs(objs)
        cluster.kubectl(
            "patch",
            "mmd",
            "old",
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(
                {
                    "status": {
                        "phase": "Ready",
                        "observedGeneration": 1,
                        "model": "MiniMaxAI/Tiny",
                        "servedModelName": "tiny",
                        "tensorParallelSize": 1,
                        "endpoint": f"http://old.{ns}.svc.cluster.local:8000/v1",
                        "conditions": [
                            {"type": t, "status": "True", "reason": r, "message": "", "observedGeneration": 1}
                            for t, r in (
                                ("WeightsReady", "Downloaded"),
                                ("ServerReady", "Available"),
                                ("Registered", "Registered"),
                                ("Ready", "Ready"),
                            )
                        ],
                        "download": {"jobName": "old-weights-0123abcd", "attempt": 0, "progress": "100%"},
                    }
                }
            ),
        )
        cluster.wait_rolled_out(ns, "old")
        before = cluster.apps.read_namespaced_deployment("old", ns)
        pods = {
            p.metadata.uid
            for p in cluster.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=server").items
        }

        # The new operator takes over.
        op = start_operator(operator_kubeconfig, tmp_path / "op.log", [ns])
        cache = cluster.cache_of(ns, "old")
        wait_for(lambda: cluster.mmc(ns, cache)["status"].get("phase") == "Ready", 90, what="cache adopted the claim")
        mmc = cluster.mmc(ns, cache)
        assert mmc["spec"]["storage"]["existingClaim"] == "old-weights"
        assert (
            mmc["status"]["path"] == "MiniMaxAI/Tiny" and mmc["status"]["commit"] == hub.repos["MiniMaxAI/Tiny"].commit
        )
        assert hub.total_served() == downloaded_by_old, "not one byte downloaded again"
        wait_for(lambda: [m["model_id"] for m in cluster.chatos_models(ns)] == ["gpt-x", "tiny"], what="registered")
        cluster.wait_phase(ns, "old", "Ready")
        after = cluster.apps.read_namespaced_deployment("old", ns)
        assert after.spec.template == before.spec.template
        revision = "deployment.kubernetes.io/revision"  # the same ReplicaSet: not rolled
        assert after.metadata.annotations[revision] == before.metadata.annotations[revision] == "1"
        now = {
            p.metadata.uid
            for p in cluster.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=server").items
        }
        assert now == pods, "the server kept its pods: no restart across the upgrade"
        # The claim the resource owned now belongs to its cache, which outlives the resource.
        claim = cluster.core.read_namespaced_persistent_volume_claim("old-weights", ns)
        assert [(o.kind, o.name) for o in claim.metadata.owner_references] == [("MiniMaxModelCache", cache)]
        cluster.delete_mmd(ns, "old")
        wait_for(lambda: cluster.chatos_models(ns) == [HAND_WRITTEN], what="entry removed")
        wait_for(lambda: not cluster.apps.list_namespaced_deployment(ns).items, what="server collected")
        assert (
            cluster.core.read_namespaced_persistent_volume_claim("old-weights", ns).metadata.deletion_timestamp is None
        )
        print(f"upgrade: bytes downloaded again = {hub.total_served() - downloaded_by_old}")
    finally:
        executor.stop.set()
        cluster.kubectl("delete", "mmd", "--all", "-n", ns, "--timeout=60s", check=False)
        cluster.kubectl("delete", "mmc", "--all", "-n", ns, "--timeout=60s", check=False)
        if op:
            op.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_resources_sharing_a_read_write_once_cache_share_its_node(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.chatos_configmap(ns, [])
    shared = {**tiny("rwo"), "tensorParallelSize": 4}  # one ReadWriteOnce claim (the default) for all three
    cluster.create_mmd(ns, "first", {**shared, "servedModelName": "first"})
    cluster.wait_phase(ns, "first", "Ready")
    before = cluster.apps.read_namespaced_deployment("first", ns)
    cluster.create_mmd(ns, "second", {**shared, "servedModelName": "second"})
    cluster.wait_phase(ns, "second", "Ready")
    assert cluster.cache_of(ns, "first") == cluster.cache_of(ns, "second")
    pods = cluster.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=server").items
    assert len(pods) == 2 and len({p.spec.node_name for p in pods}) == 1, "a ReadWriteOnce claim is on one node"
    term = cluster.apps.read_namespaced_deployment("second", ns).spec.template.spec.affinity.pod_affinity
    expr = term.required_during_scheduling_ignored_during_execution[0].label_selector.match_expressions[0]
    assert expr.key == "app.kubernetes.io/instance" and expr.values == ["first", "second"]
    after = cluster.apps.read_namespaced_deployment("first", ns)
    assert after.spec.template == before.spec.template, "the first server is not restarted for a newcomer"
    # A third TP4 server cannot fit the claim's node (8 GPUs): refused before it asks for a GPU.
    cluster.create_mmd(ns, "third", {**shared, "servedModelName": "third"})
    cond = cluster.wait_condition(ns, "third", "Ready", "False", "LayoutInvalid")
    assert "spec.storage.accessMode" in cond["message"] and "first, second already take 8 GPUs" in cond["message"]
    assert "ReadWriteMany" in cond["message"]
    assert {d.metadata.name for d in cluster.apps.list_namespaced_deployment(ns).items} == {"first", "second"}
