"""Adversarial cases: names, users' own objects, storage layouts, hand edits, flag spellings.

Each test asserts what a user sees (conditions, Events, `kubectl apply` errors) and,
where a foreign object is involved, that it is exactly as it was (content and
resourceVersion): the operator never patches, adopts or deletes what it does not control.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from minimax_operator.api.v1alpha1 import MiniMaxDeploymentSpec
from minimax_operator.model.model_cache import implicit_cache, resolve_cache
from minimax_operator.render.model_cache import download_job_name
from tests.harness.cluster import Cluster, Operator, assert_quiet, wait_for

from .test_operator import HAND_WRITTEN, OPERATOR_USER, tiny

MMD = "apiVersion: minimax.chatos.io/v1alpha1\nkind: MiniMaxDeployment\n"


def _apply(cluster: Cluster, ns: str, name: str, spec: dict[str, Any], dry_run: bool = True) -> str:
    doc = MMD + f"metadata: {{name: {json.dumps(name)}}}\nspec: {json.dumps(spec)}\n"
    args = ["apply", "-n", ns, "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return cluster.kubectl(*args, stdin=doc, check=False)


def _snapshot(obj: Any) -> dict[str, Any]:
    """What must not change on a foreign object: its version, labels, owners, annotations and spec."""
    d = obj.to_dict()
    meta = d["metadata"]
    return {
        "resourceVersion": meta["resource_version"],
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "ownerReferences": meta.get("owner_references"),
        "spec": d.get("spec"),
    }


def _warning(cluster: Cluster, ns: str, name: str, reason: str) -> dict[str, Any]:
    return wait_for(
        lambda: next((e for e in cluster.events(ns, name) if e["type"] == "Warning" and e["reason"] == reason), None),
        what=f"Warning event {reason}",
    )


def _assert_nothing_created(cluster: Cluster, ns: str, except_kind: str = "") -> None:
    if except_kind != "Job":
        assert not cluster.batch.list_namespaced_job(ns).items, "no download may start"
    if except_kind != "PersistentVolumeClaim":
        assert not cluster.core.list_namespaced_persistent_volume_claim(ns).items
    if except_kind != "Deployment":
        assert not cluster.apps.list_namespaced_deployment(ns).items


# ---- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["minimax-m2.5", "m" * 64, "2-replicas", "M25", "trailing-"],
    ids=["dot", "64-chars", "leading-digit", "uppercase", "trailing-dash"],
)
def test_a_name_that_cannot_name_a_service_is_refused_at_apply(cluster: Cluster, ns: str, name: str) -> None:
    out = _apply(cluster, ns, name, {"model": "MiniMax-M2.5"})
    assert "(server dry run)" not in out
    if name != "M25" and name != "trailing-":  # the API server's own name check answers those first
        assert "metadata.name must be a DNS-1035 label" in out and "minimax-m2-5" in out, out
    out = _apply(cluster, ns, "minimax-m2-5", {"model": "MiniMax-M2.5"})
    assert "(server dry run)" in out, out


# ---- flags ------------------------------------------------------------------------------

REFUSED = [
    ["-tp", "8"],
    ["-tp=8"],
    ["-t", "8"],
    ["--tensor_parallel_size", "8"],
    ["--tensor-parallel-size=8"],
    ["--tensor-par", "8"],
    ["--served_model_name=x"],
    ["--served-model", "x"],
    ["-dp", "2"],
    ["--data_parallel_size_local=2"],
    ["-pp", "2"],
    ["--port", "9000"],
    ["--host=127.0.0.1"],
    ["--uds", "/tmp/s"],
    ["--config", "/etc/vllm.yaml"],
    ["--model=/other"],
    ["-ep"],
    ["--headless"],
    ["-n2"],
    ["--served-model-name.x", "y"],
    ["-tp.x=1"],
    ["-dpn", "1"],
    ["--master_addr=10.0.0.1"],
]
ACCEPTED = [
    ["--max-model-len", "8192"],
    ["-q", "fp8"],
    ["-O3"],
    ["--enable-prefix-caching"],
    ["--seed", "-1"],
    ["-dcp", "2"],
    ["--compilation-config.mode", "3"],
]


def test_owned_flags_are_refused_in_every_spelling_vllm_accepts(cluster: Cluster, ns: str) -> None:
    for args in REFUSED:
        out = _apply(cluster, ns, "flags", tiny("flags", vllm={"image": "vllm/vllm-openai:v0.20.0", "extraArgs": args}))
        assert "extraArgs must not set a flag the operator owns" in out, (args, out)
    for args in ACCEPTED:
        out = _apply(cluster, ns, "flags", tiny("flags", vllm={"image": "vllm/vllm-openai:v0.20.0", "extraArgs": args}))
        assert "(server dry run)" in out, (args, out)


# ---- foreign objects --------------------------------------------------------------------


def test_a_users_service_of_the_same_name_is_never_touched(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    theirs = {
        "metadata": {"name": "svc", "labels": {"team": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    cluster.core.create_namespaced_service(ns, theirs)
    before = _snapshot(cluster.core.read_namespaced_service("svc", ns))
    cluster.create_mmd(ns, "svc", tiny("svc"))
    cond = cluster.wait_condition(ns, "svc", "Ready", "False", "NameConflict")
    assert f"Service {ns}/svc exists and is not controlled by this MiniMaxDeployment" in cond["message"]
    assert cluster.mmd(ns, "svc")["status"]["phase"] == "Failed"
    assert f"Service {ns}/svc" in _warning(cluster, ns, "svc", "NameConflict")["message"]
    _assert_nothing_created(cluster, ns)  # refused before any byte is downloaded
    assert cluster.chatos_models(ns) == [HAND_WRITTEN]
    assert _snapshot(cluster.core.read_namespaced_service("svc", ns)) == before
    # Recovers by itself once the user's Service is gone.
    cluster.core.delete_namespaced_service("svc", ns)
    cluster.wait_phase(ns, "svc", "Ready", timeout=90)
    assert [m["model_id"] for m in cluster.chatos_models(ns)] == ["gpt-x", "tiny-svc"]


def test_a_users_ready_deployment_is_not_taken_for_the_server(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    labels = {"app": "their-api"}
    dep = {
        "metadata": {"name": "api", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "their:1"}]}},
        },
    }
    cluster.apps.create_namespaced_deployment(ns, dep)
    wait_for(lambda: (cluster.apps.read_namespaced_deployment("api", ns).status.available_replicas or 0) >= 1)
    before = _snapshot(cluster.apps.read_namespaced_deployment("api", ns))
    cluster.create_mmd(ns, "api", tiny("api"))
    cond = cluster.wait_condition(ns, "api", "Ready", "False", "NameConflict")
    assert f"Deployment {ns}/api" in cond["message"]
    assert cluster.condition(ns, "api", "Registered")["status"] != "True"
    _assert_nothing_created(cluster, ns, except_kind="Deployment")
    assert cluster.chatos_models(ns) == [HAND_WRITTEN]
    assert _snapshot(cluster.apps.read_namespaced_deployment("api", ns)) == before
    assert "endpoint" not in cluster.mmd(ns, "api")["status"]


def _cache_name(ns: str, spec: dict[str, Any]) -> str:
    """The implicit cache a resource of `spec` shares (named from its repo, revision and storage)."""
    return implicit_cache(MiniMaxDeploymentSpec.model_validate(spec))[0]


def test_a_users_pvc_of_the_weights_name_is_never_used(cluster: Cluster, ns: str, operator: Operator) -> None:
    claim_name = f"{_cache_name(ns, tiny('db'))}-weights"
    for name in ("db-weights", claim_name):  # the name releases before caches used, and the cache's
        claim = {
            "metadata": {"name": name, "labels": {"app": "postgres"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
        }
        cluster.core.create_namespaced_persistent_volume_claim(ns, claim)
        wait_for(lambda n=name: cluster.core.read_namespaced_persistent_volume_claim(n, ns).status.phase == "Bound")
    before = {
        n: _snapshot(cluster.core.read_namespaced_persistent_volume_claim(n, ns)) for n in ("db-weights", claim_name)
    }
    cluster.create_mmd(ns, "db", tiny("db"))
    cond = cluster.wait_condition(ns, "db", "Ready", "False", "NameConflict")
    assert (
        f"PersistentVolumeClaim {ns}/{claim_name}" in cond["message"] and "minimax.chatos.io/model" in cond["message"]
    )
    cache = cluster.cache_of(ns, "db")
    assert cluster.cache_condition(ns, cache, "Ready")["reason"] == "NameConflict"
    _assert_nothing_created(cluster, ns, except_kind="PersistentVolumeClaim")
    after = {n: _snapshot(cluster.core.read_namespaced_persistent_volume_claim(n, ns)) for n in before}
    assert after == before


def test_a_foreign_job_with_the_download_jobs_name_and_labels_is_left_alone(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    # A Job that even carries the operator's labels (copied by hand) but is not controlled by the cache.
    cache = _cache_name(ns, tiny("copy"))
    spec = implicit_cache(MiniMaxDeploymentSpec.model_validate(tiny("copy")))[1]
    job_name = download_job_name(resolve_cache(cache, ns, spec), 0)
    job = {
        "metadata": {
            "name": job_name,
            "labels": {
                "app.kubernetes.io/managed-by": "minimax-operator",
                "app.kubernetes.io/instance": cache,
                "minimax.chatos.io/cache": cache,
            },
        },
        "spec": {
            "template": {
                "metadata": {"annotations": {"sim.minimax.chatos.io/behavior": "Hold"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            }
        },
    }
    cluster.batch.create_namespaced_job(ns, job)
    before = _snapshot(cluster.batch.read_namespaced_job(job_name, ns))
    cluster.create_mmd(ns, "copy", tiny("copy"))
    cond = cluster.wait_condition(ns, "copy", "Ready", "False", "NameConflict")
    assert f"Job {ns}/{job_name}" in cond["message"]
    assert not cluster.apps.list_namespaced_deployment(ns).items
    after = cluster.batch.read_namespaced_job(job_name, ns)
    assert after.metadata.deletion_timestamp is None
    assert _snapshot(after)["ownerReferences"] == before["ownerReferences"]
    assert _snapshot(after)["labels"] == before["labels"] and _snapshot(after)["spec"] == before["spec"]


def test_a_retained_claim_is_reused_only_by_a_cache_of_the_same_model(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.create_mmc(ns, "keep", {"repo": "test-org/tiny-a", "storage": {"size": "1Gi"}})
    wait_for(lambda: cluster.mmc(ns, "keep")["status"]["phase"] == "Ready", what="cache Ready")
    cluster.delete_mmc(ns, "keep")
    wait_for(lambda: not cluster.mmcs(ns), what="cache deleted")
    claim = cluster.core.read_namespaced_persistent_volume_claim("keep-weights", ns)
    assert claim.metadata.labels["minimax.chatos.io/model"] == "test-org.tiny-a"
    # Another model under the same name: the retained weights are not its own.
    cluster.create_mmc(ns, "keep", {"repo": "test-org/tiny-b", "storage": {"size": "1Gi"}})
    cond = wait_for(
        lambda: (c := cluster.cache_condition(ns, "keep", "Ready")).get("reason") == "NameConflict" and c,
        what="NameConflict",
    )
    assert "keep-weights" in cond["message"]
    assert not cluster.batch.list_namespaced_job(ns).items
    assert _snapshot(cluster.core.read_namespaced_persistent_volume_claim("keep-weights", ns)) == _snapshot(claim)
    cluster.delete_mmc(ns, "keep")
    wait_for(lambda: not cluster.mmcs(ns), what="deleted")
    # The same model again: the claim is re-used (the downloader finds its verified commit).
    cluster.create_mmc(ns, "keep", {"repo": "test-org/tiny-a", "storage": {"size": "1Gi"}})
    wait_for(lambda: cluster.mmc(ns, "keep")["status"]["phase"] == "Ready", what="cache Ready again")
    assert cluster.core.read_namespaced_persistent_volume_claim("keep-weights", ns).metadata.uid == claim.metadata.uid


# ---- storage layouts --------------------------------------------------------------------


def test_replicas_that_cannot_share_a_readwriteonce_claim_are_refused(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.create_mmd(ns, "wide", tiny("wide", tensorParallelSize=8, replicas=2))
    cond = cluster.wait_condition(ns, "wide", "Ready", "False", "LayoutInvalid")
    assert "spec.storage.accessMode" in cond["message"] and "ReadWriteMany" in cond["message"]
    assert "Multi-Attach" in cond["message"]
    _assert_nothing_created(cluster, ns)
    cluster.wait_events(ns, "wide", "LayoutInvalid", type_="Warning")


def test_an_existing_claims_own_access_mode_is_checked(cluster: Cluster, ns: str, operator: Operator) -> None:
    claim = {
        "metadata": {"name": "team-weights"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    cluster.core.create_namespaced_persistent_volume_claim(ns, claim)
    wait_for(lambda: cluster.core.read_namespaced_persistent_volume_claim("team-weights", ns).status.phase == "Bound")
    before = _snapshot(cluster.core.read_namespaced_persistent_volume_claim("team-weights", ns))
    spec = tiny("ex", tensorParallelSize=8, replicas=2, storage={"existingClaim": "team-weights"})
    cluster.create_mmd(ns, "ex", spec)
    cond = cluster.wait_condition(ns, "ex", "Ready", "False", "LayoutInvalid")
    assert "spec.storage.existingClaim" in cond["message"] and "ReadWriteMany" in cond["message"]
    assert not cluster.batch.list_namespaced_job(ns).items and not cluster.apps.list_namespaced_deployment(ns).items
    assert _snapshot(cluster.core.read_namespaced_persistent_volume_claim("team-weights", ns)) == before


def test_readwriteoncepod_allows_one_replica(cluster: Cluster, ns: str, operator: Operator) -> None:
    storage = {"size": "1Gi", "accessMode": "ReadWriteOncePod"}
    cluster.create_mmd(ns, "solo", tiny("solo", replicas=2, storage=storage))
    cond = cluster.wait_condition(ns, "solo", "Ready", "False", "LayoutInvalid")
    assert "ReadWriteOncePod" in cond["message"] and "at most 1 replica" in cond["message"]
    _assert_nothing_created(cluster, ns)
    cluster.patch_mmd(ns, "solo", {"replicas": 1})
    cluster.chatos_configmap(ns, [])
    cluster.wait_phase(ns, "solo", "Ready")
    dep = cluster.apps.read_namespaced_deployment("solo", ns)
    assert dep.spec.strategy.type == "Recreate"  # the old pod must let go of the claim first


def test_readwriteonce_replicas_are_kept_on_one_node(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "pair", tiny("pair", tensorParallelSize=4, replicas=2))
    cluster.wait_phase(ns, "pair", "Ready", timeout=90)
    pods = cluster.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/component=server").items
    assert len(pods) == 2 and len({p.spec.node_name for p in pods}) == 1
    # With ReadWriteMany they may spread.
    rwx = tiny("spread", tensorParallelSize=8, replicas=2, storage={"size": "1Gi", "accessMode": "ReadWriteMany"})
    cluster.create_mmd(ns, "spread", rwx)
    cluster.wait_phase(ns, "spread", "Ready", timeout=90)
    dep = cluster.apps.read_namespaced_deployment("spread", ns)
    assert dep.spec.template.spec.affinity is None


# ---- drift ------------------------------------------------------------------------------


def test_hand_edits_of_owned_fields_are_reverted_and_others_kept(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "drift", tiny("drift"))
    cluster.wait_phase(ns, "drift", "Ready")
    dep = cluster.apps.read_namespaced_deployment("drift", ns)
    want_args = dep.spec.template.spec.containers[0].args
    patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/args/2", "value": "hijacked"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/nvidia.com~1gpu", "value": "8"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/resources/requests/nvidia.com~1gpu", "value": "8"},
        {"op": "add", "path": "/metadata/annotations/team.example.com~1note", "value": "kept"},
    ]
    cluster.kubectl("patch", "deployment", "drift", "-n", ns, "--type=json", "-p", json.dumps(patch))
    cluster.kubectl("patch", "service", "drift", "-n", ns, "--type=merge", "-p", '{"spec":{"selector":{"x":"y"}}}')

    def reverted() -> bool:
        d = cluster.apps.read_namespaced_deployment("drift", ns)
        c = d.spec.template.spec.containers[0]
        svc = cluster.core.read_namespaced_service("drift", ns)
        return bool(
            c.args == want_args and c.resources.limits["nvidia.com/gpu"] == "1" and "x" not in svc.spec.selector
        )

    wait_for(reverted, 30, what="owned fields reverted")
    dep = cluster.apps.read_namespaced_deployment("drift", ns)
    assert dep.metadata.annotations["team.example.com/note"] == "kept"  # not ours: left alone
    # And once reverted and rolled out, resyncs write nothing (the audit log has every write). The revert
    # starts a rollout, which the resource reports (Starting, then Ready): wait for its end, not the old Ready.
    cluster.wait_rolled_out(ns, "drift")
    cluster.wait_phase(ns, "drift", "Ready")
    assert_quiet(cluster, operator, OPERATOR_USER, ns)
