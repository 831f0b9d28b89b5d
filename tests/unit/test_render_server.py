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
