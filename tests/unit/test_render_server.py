"""The objects a spec becomes."""

from __future__ import annotations

import copy

from minimax_operator.api.names import HASH_ANNOTATION
from minimax_operator.api.v1alpha1 import MiniMaxDeploymentSpec
from minimax_operator.model.deployment import resolve
from minimax_operator.render import chatos
from minimax_operator.render import server as render_server
from minimax_operator.render.meta import Owner, stamp

OWNER = Owner("m25", "uid-1")


def r(**kw: object):  # type: ignore[no-untyped-def]
    return resolve("m25", "team-a", MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", **kw}))


def container(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]["containers"][0]


def test_gpu_limit_equals_tensor_parallel_size() -> None:
    c = container(render_server.deployment(r(), OWNER))
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert c["resources"]["requests"]["nvidia.com/gpu"] == "4"
    c8 = container(render_server.deployment(r(tensorParallelSize=8, expertParallel=True), OWNER))
    assert c8["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "--enable-expert-parallel" in c8["args"]


def test_server_command_flags_and_user_args_last() -> None:
    c = container(
        render_server.deployment(r(maxModelLen=65536, vllm={"extraArgs": ["--enable-prefix-caching"]}), OWNER)
    )
    assert c["command"] == ["vllm", "serve"]
    args = c["args"]
    assert args[:7] == [
        "/models/MiniMaxAI/MiniMax-M2.5",
        "--served-model-name",
        "MiniMax-M2.5",
        "--tensor-parallel-size",
        "4",
        "--host",
        "0.0.0.0",
    ]
    assert args[args.index("--reasoning-parser") + 1] == "minimax_m2"  # same fields streamed or not
    assert args[args.index("--max-model-len") + 1] == "65536"
    assert args[-1] == "--enable-prefix-caching"
    assert "--quantization" not in args  # M2.x ships FP8 already


def test_m3_mxfp8_renders_no_fp8_indexer_cache_that_hopper_cannot_run() -> None:
    """vLLM 0.24.0 has the FP8 indexer cache only on Blackwell: on an H200 the recipe's flag killed the
    server at start (hack/gpu-check m3); the preset leaves it out and extraArgs can add it on Blackwell."""
    args = container(render_server.deployment(r(model="MiniMax-M3-MXFP8"), OWNER))["args"]
    assert not any("indexer_kv_dtype" in a for a in args)
    assert args[args.index("--block-size") + 1] == "128"
    assert "--language-model-only" in args
    extra = ["--attention-config.indexer_kv_dtype", "fp8"]
    blackwell = container(render_server.deployment(r(model="MiniMax-M3-MXFP8", vllm={"extraArgs": extra}), OWNER))
    assert blackwell["args"][-2:] == extra


def test_probes_let_a_huge_checkpoint_load() -> None:
    c = container(render_server.deployment(r(), OWNER))
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600
    m1 = resolve("x", "ns", MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M1-80k"}))
    s1 = container(render_server.deployment(m1, OWNER))["startupProbe"]
    assert s1["periodSeconds"] * s1["failureThreshold"] >= 7200
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_ENGINE_READY_TIMEOUT_S"] == "3600"


def test_weights_mounted_read_only_and_shm_in_memory() -> None:
    dep = render_server.deployment(r(), OWNER)
    mounts = {m["mountPath"]: m for m in container(dep)["volumeMounts"]}
    assert mounts["/models"] == {"name": "weights", "mountPath": "/models", "readOnly": True}
    assert mounts["/dev/shm"]["name"] == "dshm"
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    # Writable only through the server cache's subPath (below); the weights' mount is read-only.
    assert vols["weights"]["persistentVolumeClaim"] == {"claimName": "m25-weights"}


def test_server_caches_survive_restarts_on_the_claim_per_vllm_image() -> None:
    dep = render_server.deployment(r(), OWNER)
    c = container(dep)
    cache = next(m for m in c["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR)
    assert cache == {
        "name": "weights",
        "mountPath": "/var/cache/minimax",
        "subPath": ".server-cache/vllm_vllm-openai_v0.20.2",
    }
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["XDG_CACHE_HOME"] == "/var/cache/minimax"  # vLLM's cache root: torch.compile and DeepGEMM
    assert env["TRITON_CACHE_DIR"] == "/var/cache/minimax/triton"


def test_a_read_only_claim_gets_its_server_cache_in_an_empty_dir() -> None:
    import dataclasses

    rox = dataclasses.replace(r(), claim_access_mode="ReadOnlyMany")
    dep = render_server.deployment(rox, OWNER)
    cache = next(m for m in container(dep)["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR)
    assert cache == {"name": "server-cache", "mountPath": "/var/cache/minimax"}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["weights"]["persistentVolumeClaim"]["readOnly"] is True
    assert vols["server-cache"] == {"name": "server-cache", "emptyDir": {}}


def test_rollout_never_asks_for_extra_gpus() -> None:
    strategy = render_server.deployment(r(), OWNER)["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_server_objects_are_labelled_and_owned() -> None:
    objs = render_server.render_server(r(), OWNER)
    assert [o["kind"] for o in objs] == ["Deployment", "Service"]
    for o in objs:
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == "m25"
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "minimax-operator"
        assert o["metadata"]["ownerReferences"][0]["controller"] is True


def test_hash_is_stable_and_tracks_content() -> None:
    a = render_server.deployment(r(), OWNER)
    b = render_server.deployment(r(), OWNER)
    c = render_server.deployment(r(replicas=2), OWNER)
    h = HASH_ANNOTATION
    assert a["metadata"]["annotations"][h] == b["metadata"]["annotations"][h] != c["metadata"]["annotations"][h]
    unstamped = copy.deepcopy(a)
    assert unstamped["metadata"].pop("annotations") == {h: a["metadata"]["annotations"][h]}
    assert stamp(unstamped)["metadata"]["annotations"][h] == a["metadata"]["annotations"][h]


def test_chatos_entry_has_the_seed_shape() -> None:
    assert chatos.chatos_entry(r(chatos={"displayName": "MiniMax M2.5"})) == {
        "name": "MiniMax M2.5",
        "provider": "minimax",
        "base_url": "http://m25.team-a.svc.cluster.local:8000",
        "model_id": "MiniMax-M2.5",
    }


def test_server_pods_meet_restricted_when_asked_with_a_writable_home() -> None:
    default = render_server.deployment(r(), OWNER)["spec"]["template"]["spec"]
    assert "securityContext" not in default
    pod = render_server.deployment(r(vllm={"podSecurity": "restricted"}), OWNER)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    c = container({"spec": {"template": {"spec": pod}}})
    assert {"name": "HOME", "value": "/home/vllm"} in c["env"]
    assert {"name": "home", "mountPath": "/home/vllm"} in c["volumeMounts"]
    assert {"name": "home", "emptyDir": {}} in pod["volumes"]


# ---- a replica over several nodes: a LeaderWorkerSet group ----------------------------------------


def test_a_model_bigger_than_a_node_is_one_leaderworkerset_group() -> None:
    rr = r(model="MiniMax-M3")  # BF16 on 8 x 80 GB nodes: TP8 x PP2 over 2 nodes
    lws = render_server.server(rr, OWNER)
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1" and lws["kind"] == "LeaderWorkerSet"
    assert lws["metadata"]["name"] == "m25-group"  # LWS names its headless Service after it: not the model's
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 2 and group["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {"maxUnavailable": 1, "maxSurge": 0}
    leader, worker = group["leaderTemplate"]["spec"]["containers"][0], group["workerTemplate"]["spec"]["containers"][0]
    for c in (leader, worker):
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"  # GPUs per pod: a node's share
        assert c["command"][:2] == ["/bin/sh", "-c"] and "$LWS_WORKER_INDEX" in c["command"][2]
        assert "--master-addr" in c["command"][2] and "gethostbyname" in c["command"][2]  # ZMQ needs an address
        args = c["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == "8"
        assert args[args.index("--pipeline-parallel-size") + 1] == "2"
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR)
        assert mount["subPath"].endswith("@tp8-pp2-nodes2")  # never a single-node server's compile cache
    assert "--headless" not in leader["args"] and leader["readinessProbe"]["httpGet"]["path"] == "/health"
    assert worker["args"][-1] == "--headless" and "readinessProbe" not in worker and "ports" not in worker
    svc = render_server.service(rr, OWNER)
    assert svc["metadata"]["name"] == "m25"
    assert svc["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"  # the leaders serve


def test_a_single_node_server_is_unchanged_by_layouts() -> None:
    # Releases before layouts rendered exactly this: no new field may roll existing servers.
    rr = r(model="MiniMax-M2.5")
    dep = render_server.server(rr, OWNER)
    assert dep["kind"] == "Deployment"
    c = container(dep)
    assert "--pipeline-parallel-size" not in c["args"] and c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR)
    assert mount["subPath"] == render_server.compile_folder(rr.image)
    assert "leaderworkerset.sigs.k8s.io/worker-index" not in render_server.service(rr, OWNER)["spec"]["selector"]


def test_servers_of_different_layouts_on_one_node_never_share_a_compile_folder() -> None:
    def folder(**kw: object) -> str:
        c = container(render_server.server(r(**kw), OWNER))
        return str(next(m for m in c["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR)["subPath"])

    preset = folder()  # TP 4, the preset's: the folder of earlier releases (no roll on upgrade)
    assert folder(tensorParallelSize=4) == preset == render_server.compile_folder(r().image)
    assert folder(tensorParallelSize=8, expertParallel=True) == f"{preset}@tp8-ep"
    assert folder(tensorParallelSize=2, gpu={"perNode": 8, "memoryGiB": 141}) == f"{preset}@tp2"


def test_data_parallel_engines_share_one_pod_and_its_gpus() -> None:
    rr = r(tensorParallelSize=1, dataParallelSize=8, expertParallel=True)
    c = container(render_server.server(rr, OWNER))
    assert c["args"][c["args"].index("--data-parallel-size") + 1] == "8" and "--enable-expert-parallel" in c["args"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == render_server.COMPILE_DIR)
    assert mount["subPath"].endswith("@tp1-pp1-dp8-nodes1")


def test_a_restricted_server_keeps_its_caches_in_a_folder_of_its_own_user() -> None:
    # Folders a root server made in the shared cache are 0755 root: a restricted server (uid 1000)
    # makes uid1000/ in the world-writable mounted folder and owns everything below it.
    env = {
        e["name"]: e["value"]
        for e in container(render_server.server(r(vllm={"podSecurity": "restricted"}), OWNER))["env"]
    }
    assert env["XDG_CACHE_HOME"] == "/var/cache/minimax/uid1000"
    assert env["TRITON_CACHE_DIR"] == "/var/cache/minimax/uid1000/triton"
    default = {e["name"]: e["value"] for e in container(render_server.server(r(), OWNER))["env"]}
    assert default["XDG_CACHE_HOME"] == "/var/cache/minimax"  # as before: no roll on upgrade


def test_a_surge_rollout_keeps_the_old_servers_until_the_new_are_ready() -> None:
    dep = render_server.server(r(rollout={"maxSurge": 1}), OWNER)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    group = render_server.server(r(model="MiniMax-M3", rollout={"maxSurge": 1}), OWNER)
    assert group["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {"maxSurge": 1, "maxUnavailable": 0}
    default = render_server.server(r(), OWNER)
    assert default["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}  # never extra GPUs
