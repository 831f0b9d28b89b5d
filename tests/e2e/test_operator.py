"""The operator's behaviour, as a user sees it through the API, on the local cluster."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import Cluster, Operator, assert_quiet, start_operator, wait_for

OPERATOR_USER = "system:serviceaccount:minimax-system:minimax-operator"
HAND_WRITTEN = {"name": "Hand written", "provider": "openai", "base_url": "http://gpt", "model_id": "gpt-x", "x": 1}
HOLD = {"sim.minimax.chatos.io/behavior": "Hold"}


def tiny(i: int | str, **extra: object) -> dict:
    """A custom-repo model that needs one GPU, for tests that create many."""
    spec = {
        "repo": f"test-org/tiny-{i}",
        "servedModelName": f"tiny-{i}",
        "tensorParallelSize": 1,
        "storage": {"size": "1Gi"},
        "vllm": {"image": "vllm/vllm-openai:v0.20.0"},
    }
    spec.update(extra)
    return spec


def _exists(read) -> bool:
    try:
        read()
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def test_m25_preset_reaches_ready_and_is_registered(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    cluster.create_mmd(ns, "m25", {"model": "MiniMax-M2.5", "chatos": {"displayName": "MiniMax M2.5"}})
    obj = cluster.wait_phase(ns, "m25", "Ready")

    status = obj["status"]
    assert status["endpoint"] == f"http://m25.{ns}.svc.cluster.local:8000/v1"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "WeightsReady": "True",
        "ServerReady": "True",
        "Registered": "True",
        "Ready": "True",
    }
    assert all(c["observedGeneration"] == obj["metadata"]["generation"] for c in status["conditions"])
    dep = cluster.apps.read_namespaced_deployment("m25", ns)
    container = dep.spec.template.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "4"
    # The weights come from the model's cache, one folder per verified commit.
    cache = cluster.mmc(ns, status["cache"])
    commit = cache["status"]["commit"]
    assert status["commit"] == commit and cache["spec"]["model"] == "MiniMax-M2.5"
    folder = f"/models/revisions/MiniMaxAI/MiniMax-M2.5/{commit}"
    assert container.args[:3] == [folder, "--served-model-name", "MiniMax-M2.5"]
    pvc = cluster.core.read_namespaced_persistent_volume_claim(cache["status"]["claimName"], ns)
    assert pvc.spec.resources.requests["storage"] == "260Gi"
    assert not pvc.metadata.owner_references  # retained by default
    assert dep.spec.template.spec.volumes[0].persistent_volume_claim.claim_name == pvc.metadata.name

    models = cluster.chatos_models(ns)
    assert models[0] == HAND_WRITTEN
    assert models[1] == {
        "name": "MiniMax M2.5",
        "provider": "minimax",
        "base_url": f"http://m25.{ns}.svc.cluster.local:8000",
        "model_id": "MiniMax-M2.5",
    }
    table = cluster.kubectl("get", "mmd", "-n", ns)
    header = ["NAME", "MODEL", "TP", "NODES", "PHASE", "READY", "DOWNLOAD", "ENDPOINT", "AGE"]
    assert table.split("\n")[0].split() == header
    assert table.split("\n")[1].split()[1:6] == ["MiniMax-M2.5", "4", "1", "Ready", "True"]
    cluster.wait_events(ns, "m25", "Downloaded", "Starting", "Ready")
    ready = next(e for e in cluster.events(ns, "m25") if e["reason"] == "Ready")["message"]
    assert "Registered: model_id MiniMax-M2.5 registered in ConfigMap" in ready, ready


def test_m1_preset_reaches_ready_on_eight_gpus(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, {"models": [HAND_WRITTEN], "version": 3})
    cluster.create_mmd(ns, "m1", {"model": "MiniMax-M1-40k", "servedModelName": "MiniMax-M1"})
    cluster.wait_phase(ns, "m1", "Ready")
    args = cluster.apps.read_namespaced_deployment("m1", ns).spec.template.spec.containers[0].args
    assert "--quantization" in args and args[args.index("--quantization") + 1] == "experts_int8"
    doc = json.loads(cluster.chatos_text(ns))
    assert doc["version"] == 3  # the object shape and its other keys are kept
    assert [m["model_id"] for m in doc["models"]] == ["gpt-x", "MiniMax-M1"]


def test_impossible_layout_fails_before_anything_is_created(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "tp8", {"model": "MiniMax-M2.5", "tensorParallelSize": 8})
    cluster.wait_phase(ns, "tp8", "Failed")
    cond = cluster.condition(ns, "tp8", "Ready")
    assert cond["reason"] == "LayoutInvalid"
    assert "spec.expertParallel: true" in cond["message"]
    assert not cluster.batch.list_namespaced_job(ns).items
    assert not cluster.core.list_namespaced_persistent_volume_claim(ns).items
    warning = wait_for(lambda: [e for e in cluster.events(ns, "tp8") if e["type"] == "Warning"], what="Warning event")
    assert warning[0]["reason"] == "LayoutInvalid"
    # Fixing the spec recovers.
    cluster.patch_mmd(ns, "tp8", {"expertParallel": True})
    cluster.wait_phase(ns, "tp8", "Ready")
    args = cluster.apps.read_namespaced_deployment("tp8", ns).spec.template.spec.containers[0].args
    assert "--enable-expert-parallel" in args


def test_second_resource_cannot_take_a_registered_model_id(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "first", tiny("same"))
    cluster.wait_phase(ns, "first", "Ready")
    cluster.create_mmd(ns, "second", tiny("other", servedModelName="tiny-same"))
    cond = cluster.wait_condition(ns, "second", "Registered", "False", "ModelIdTaken")
    assert f"{ns}/first" in cond["message"]
    assert cluster.mmd(ns, "second")["status"]["phase"] == "Failed"
    models = cluster.chatos_models(ns)
    assert len(models) == 1 and models[0]["base_url"].startswith(f"http://first.{ns}")


def test_hand_written_entry_with_the_same_model_id_is_not_overwritten(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    mine = {**HAND_WRITTEN, "model_id": "tiny-h"}
    cluster.chatos_configmap(ns, [mine])
    cluster.create_mmd(ns, "h", tiny("h"))
    cluster.wait_condition(ns, "h", "Registered", "False", "ModelIdTaken")
    assert cluster.chatos_models(ns) == [mine]


def test_thirty_resources_register_concurrently_without_losing_entries(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    threads = [threading.Thread(target=cluster.create_mmd, args=(ns, f"t{i}", tiny(i))) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(
        lambda: len(cluster.chatos_models(ns)) == 31,
        timeout=180,
        what="31 entries in models.json",
        interval=0.5,
    )
    models = cluster.chatos_models(ns)
    assert models[0] == HAND_WRITTEN
    assert sorted(m["model_id"] for m in models[1:]) == sorted(f"tiny-{i}" for i in range(30))
    for i in range(30):
        cluster.wait_phase(ns, f"t{i}", "Ready", timeout=60)


def test_invalid_chatos_json_is_never_overwritten(cluster: Cluster, ns: str, operator: Operator) -> None:
    broken = '[{"model_id": "x",'
    cluster.chatos_configmap(ns, broken)
    cluster.create_mmd(ns, "j", tiny("j"))
    cond = cluster.wait_condition(ns, "j", "Registered", "False", "InvalidChatOSConfig")
    assert "not valid JSON" in cond["message"]
    assert cluster.chatos_text(ns) == broken
    cluster.wait_events(ns, "j", "InvalidChatOSConfig")


def test_missing_chatos_configmap_is_reported_not_created(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.create_mmd(ns, "nocm", tiny("nocm"))
    cond = cluster.wait_condition(ns, "nocm", "Registered", "False", "ConfigMapNotFound")
    assert "spec.chatos.configMapRef" in cond["message"]
    assert not _exists(lambda: cluster.core.read_namespaced_config_map("chatos-models", ns))
    # Once the platform creates it, the model registers.
    cluster.chatos_configmap(ns, [])
    cluster.wait_phase(ns, "nocm", "Ready")
    assert [m["model_id"] for m in cluster.chatos_models(ns)] == ["tiny-nocm"]


def test_delete_removes_the_entry_and_keeps_the_weights(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    cluster.create_mmd(ns, "keep", tiny("keep"))
    cluster.create_mmd(ns, "drop", tiny("drop", storage={"size": "1Gi", "retainOnDelete": False}))
    cluster.wait_phase(ns, "keep", "Ready")
    cluster.wait_phase(ns, "drop", "Ready")
    keep, drop = cluster.cache_of(ns, "keep"), cluster.cache_of(ns, "drop")
    cluster.delete_mmd(ns, "keep")
    cluster.delete_mmd(ns, "drop")
    wait_for(lambda: cluster.chatos_models(ns) == [HAND_WRITTEN], what="entries removed, hand-written kept")
    wait_for(lambda: not _exists(lambda: cluster.mmd(ns, "keep")), what="resource gone")
    wait_for(lambda: not _exists(lambda: cluster.apps.read_namespaced_deployment("keep", ns)), what="Deployment GC")
    # The caches outlive the resources (days of downloading); unused now, deleting them is allowed.
    for cache in (keep, drop):
        wait_for(lambda c=cache: cluster.cache_condition(ns, c, "InUse").get("reason") == "Unused", what="unused")
        assert cluster.mmc(ns, cache)["status"]["phase"] == "Ready"
    assert _exists(lambda: cluster.core.read_namespaced_persistent_volume_claim(f"{keep}-weights", ns))
    cluster.delete_mmc(ns, keep)
    cluster.delete_mmc(ns, drop)
    wait_for(lambda: not cluster.mmcs(ns), what="caches deleted")
    assert _exists(lambda: cluster.core.read_namespaced_persistent_volume_claim(f"{keep}-weights", ns))
    wait_for(
        lambda: not _exists(lambda: cluster.core.read_namespaced_persistent_volume_claim(f"{drop}-weights", ns)),
        what="PVC of retainOnDelete=false collected with its cache",
    )


def test_delete_while_downloading(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    cluster.create_mmd(ns, "dl", tiny("dl", download={"podAnnotations": HOLD}))
    cluster.wait_phase(ns, "dl", "Downloading")
    assert not _exists(lambda: cluster.apps.read_namespaced_deployment("dl", ns))  # not before the weights
    cache = cluster.cache_of(ns, "dl")
    cluster.delete_mmd(ns, "dl")
    wait_for(lambda: not _exists(lambda: cluster.mmd(ns, "dl")), what="resource gone")
    assert cluster.chatos_models(ns) == [HAND_WRITTEN]
    # The download goes on in the cache, for the next resource of this model; deleting the cache stops it.
    assert cluster.mmc(ns, cache)["status"]["phase"] == "Downloading"
    assert len(cluster.batch.list_namespaced_job(ns).items) == 1
    cluster.delete_mmc(ns, cache)
    wait_for(lambda: not cluster.batch.list_namespaced_job(ns).items, what="download Job collected")
    assert _exists(lambda: cluster.core.read_namespaced_persistent_volume_claim(f"{cache}-weights", ns))


def test_failed_download_surfaces_its_reason_and_retries_with_backoff(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    fail = {"sim.minimax.chatos.io/behavior": "Fail", "sim.minimax.chatos.io/message": "RepoNotFound: no such repo"}
    cluster.create_mmd(ns, "f", tiny("f", download={"podAnnotations": fail}))
    cond = cluster.wait_condition(ns, "f", "WeightsReady", "False", "DownloadFailed", timeout=120)
    assert "RepoNotFound: no such repo" in cond["message"] and "retry 1 at" in cond["message"]
    assert cluster.mmd(ns, "f")["status"]["phase"] == "Failed"
    # The operator waits (3 s in tests, 60 s by default), then tries a new Job: no hot loop.
    first = cluster.mmd(ns, "f")["status"]["download"]["jobName"]
    wait_for(lambda: cluster.mmd(ns, "f")["status"]["download"]["attempt"] == 1, 60, what="second attempt")
    jobs = {j.metadata.name for j in cluster.batch.list_namespaced_job(ns).items}
    assert jobs == {first, f"{first}-r1"}  # the failed attempt is kept for its logs
    cluster.wait_events(ns, "f", "DownloadFailed", type_="Warning")


def test_spec_change_rolls_the_server_and_new_revision_downloads_again(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "roll", tiny("roll"))
    cluster.wait_phase(ns, "roll", "Ready")
    job_before = cluster.mmd(ns, "roll")["status"]["download"]["jobName"]
    cluster.patch_mmd(ns, "roll", {"maxModelLen": 32768})
    cluster.wait_phase(ns, "roll", "Ready")
    args = cluster.apps.read_namespaced_deployment("roll", ns).spec.template.spec.containers[0].args
    assert args[-2:] == ["--max-model-len", "32768"]
    assert cluster.mmd(ns, "roll")["status"]["download"]["jobName"] == job_before  # same weights: no download

    cluster.patch_mmd(ns, "roll", {"revision": "v2"})
    wait_for(lambda: cluster.mmd(ns, "roll")["status"]["download"]["jobName"] != job_before, what="new Job")
    cluster.wait_phase(ns, "roll", "Ready")
    status = cluster.mmd(ns, "roll")["status"]
    args = cluster.apps.read_namespaced_deployment("roll", ns).spec.template.spec.containers[0].args
    assert args[0] == f"/models/revisions/test-org/tiny-roll/{status['commit']}"
    # Another revision is other weights: its own cache; the old one stays, unused once the server moved.
    caches = {c["metadata"]["name"]: c for c in cluster.mmcs(ns)}
    assert len(caches) == 2 and status["cache"] in caches
    (old,) = set(caches) - {status["cache"]}
    wait_for(lambda: cluster.cache_condition(ns, old, "InUse").get("reason") == "Unused", what="old cache unused")
    cluster.patch_mmd(ns, "roll", {"servedModelName": "tiny-renamed"})
    wait_for(lambda: [m["model_id"] for m in cluster.chatos_models(ns)] == ["tiny-renamed"], what="entry renamed")


def test_steady_state_makes_no_writes(cluster: Cluster, ns: str, operator: Operator) -> None:
    if not cluster.audit_log:
        pytest.fail("this test needs the API server's audit log (CLUSTER=kwok, or AUDIT_LOG with CLUSTER=existing)")
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    cluster.create_mmd(ns, "calm", tiny("calm"))
    cluster.wait_phase(ns, "calm", "Ready")
    assert_quiet(cluster, operator, OPERATOR_USER, ns)


def test_idle_resources_cost_no_reads(cluster: Cluster, operator_kubeconfig: Path, tmp_path: Path) -> None:
    """Ready resources resync from the informers' stores: over 30 resyncs each, not one GET or LIST."""
    if not cluster.audit_log:
        pytest.fail("this test needs the API server's audit log (CLUSTER=kwok, or AUDIT_LOG with CLUSTER=existing)")
    ns = f"solo-idle-{secrets.token_hex(2)}"
    cluster.kubectl("create", "namespace", ns)
    op = start_operator(operator_kubeconfig, tmp_path / "op.log", [ns])  # its reconciles are this test's only
    try:
        cluster.chatos_configmap(ns, [HAND_WRITTEN])
        names = [f"idle-{i}" for i in range(4)]
        for name in names:
            cluster.create_mmd(ns, name, tiny(name))
        for name in names:
            cluster.wait_phase(ns, name, "Ready")
        wait_for(lambda: len(cluster.chatos_models(ns)) == 5, what="all registered")
        start = op.metric("minimax_operator_reconciles_total")
        wait_for(lambda: op.metric("minimax_operator_reconciles_total") >= start + 2 * len(names), what="settle")
        before = len(cluster.audit_requests(OPERATOR_USER, ns))
        start = op.metric("minimax_operator_reconciles_total")
        resyncs = 30
        wait_for(
            lambda: op.metric("minimax_operator_reconciles_total") >= start + resyncs * len(names),
            timeout=120,
            what=f"{resyncs} resyncs of each resource",
        )
        requests = cluster.audit_requests(OPERATOR_USER, ns)[before:]
        # A watch stream that ends is resumed (every 5 to 6 minutes): that is not a read per resource.
        calls = [(e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name")) for e in requests]
        assert [c for c in calls if c[0] != "watch"] == []
    finally:
        cluster.kubectl("delete", "mmd", "--all", "-n", ns, "--timeout=60s", check=False)  # the operator finalizes
        op.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_operator_killed_midway_converges_without_duplicates(
    cluster: Cluster, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    ns = f"solo-restart-{secrets.token_hex(2)}"
    cluster.kubectl("create", "namespace", ns)
    try:
        cluster.chatos_configmap(ns, [HAND_WRITTEN])
        op = start_operator(operator_kubeconfig, tmp_path / "op1.log", [ns])
        for i in range(3):
            cluster.create_mmd(ns, f"r{i}", tiny(f"r{i}"))
        wait_for(lambda: cluster.batch.list_namespaced_job(ns).items, what="first Job")
        op.kill()
        op = start_operator(operator_kubeconfig, tmp_path / "op2.log", [ns])
        try:
            for i in range(3):
                cluster.wait_phase(ns, f"r{i}", "Ready")
            assert len(cluster.batch.list_namespaced_job(ns).items) == 3
            assert len(cluster.apps.list_namespaced_deployment(ns).items) == 3
            assert len(cluster.core.list_namespaced_persistent_volume_claim(ns).items) == 3
            ids = [m["model_id"] for m in cluster.chatos_models(ns)]
            assert sorted(ids) == ["gpt-x", "tiny-r0", "tiny-r1", "tiny-r2"]
            for i in range(3):
                cluster.delete_mmd(ns, f"r{i}")
            wait_for(lambda: cluster.chatos_models(ns) == [HAND_WRITTEN], what="entries removed")
            wait_for(lambda: "r" not in cluster.kubectl("get", "mmd", "-n", ns, "-o", "name"), what="finalized")
        finally:
            op.stop()
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_crash_looping_server_is_failed_with_its_reason(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    crash = {"sim.minimax.chatos.io/behavior": "CrashLoop", "sim.minimax.chatos.io/message": "CUDA out of memory"}
    cluster.create_mmd(ns, "crash", tiny("crash", vllm={"image": "vllm/vllm-openai:v0.20.0", "podAnnotations": crash}))
    cond = cluster.wait_condition(ns, "crash", "ServerReady", "False", "CrashLoopBackOff")
    assert "CUDA out of memory" in cond["message"]
    assert cluster.mmd(ns, "crash")["status"]["phase"] == "Failed"
    assert cluster.chatos_models(ns) == []  # never registered


def test_unschedulable_server_says_why(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    spec = tiny("far", vllm={"image": "vllm/vllm-openai:v0.20.0", "nodeSelector": {"zone": "nowhere"}})
    cluster.create_mmd(ns, "far", spec)
    cond = cluster.wait_condition(ns, "far", "ServerReady", "False", "Unschedulable")
    assert "node(s) didn't match" in cond["message"]
    assert cluster.mmd(ns, "far")["status"]["phase"] == "Starting"
