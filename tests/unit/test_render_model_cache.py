"""The objects a MiniMaxModelCache becomes, and the cache a resource without cacheRef shares."""

from __future__ import annotations

import dataclasses

import pytest

from minimax_operator.api.names import SERVES_ANNOTATION
from minimax_operator.api.v1alpha1 import MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from minimax_operator.model.deployment import WeightsSource, resolve
from minimax_operator.model.model_cache import implicit_cache, resolve_cache
from minimax_operator.render import model_cache as render_cache
from minimax_operator.render import server as render_server
from minimax_operator.render.meta import OperatorSettings, Owner

OWNER = render_cache.cache_owner("m25-cache", "uid-c")


def rc(**kw: object):  # type: ignore[no-untyped-def]
    return resolve_cache("m25-cache", "team-a", MiniMaxModelCacheSpec.model_validate({"model": "MiniMax-M2.5", **kw}))


def pod(job: dict) -> dict:
    spec: dict = job["spec"]["template"]["spec"]
    return spec


def test_claim_is_retained_unless_told_otherwise() -> None:
    kept = render_cache.claim(rc(), OWNER)
    assert kept is not None and "ownerReferences" not in kept["metadata"]
    assert kept["metadata"]["name"] == "m25-cache-weights"
    assert kept["spec"]["resources"]["requests"]["storage"] == "260Gi"
    assert kept["metadata"]["labels"]["minimax.chatos.io/model"] == "MiniMaxAI.MiniMax-M2.5"
    owned = render_cache.claim(rc(storage={"retainOnDelete": False, "size": "300Gi"}), OWNER)
    assert owned is not None and owned["metadata"]["ownerReferences"][0] == {
        "apiVersion": "minimax.chatos.io/v1alpha1",
        "kind": "MiniMaxModelCache",
        "name": "m25-cache",
        "uid": "uid-c",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert render_cache.claim(rc(storage={"existingClaim": "shared"}), OWNER) is None


def test_download_goes_into_a_folder_per_commit_and_finds_older_layouts() -> None:
    c = pod(render_cache.download_job(rc(revision="v2"), OWNER, OperatorSettings()))["containers"][0]
    args = c["args"]
    assert args[:3] == ["download", "--repo", "MiniMaxAI/MiniMax-M2.5"]
    assert args[args.index("--root") + 1] == "/models"
    assert args[args.index("--legacy-dir") + 1] == "MiniMaxAI/MiniMax-M2.5"
    assert args[args.index("--revision") + 1] == "v2"
    assert "--dest" not in args


def test_token_reaches_the_downloader_only_through_a_secret_ref() -> None:
    job = render_cache.download_job(rc(download={"tokenSecretRef": {"name": "hf"}}), OWNER, OperatorSettings())
    c = pod(job)["containers"][0]
    token = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert not any("token" in a.lower() for a in c["args"])
    assert c["command"] == ["minimax-operator"] and c["args"][0] == "download"


def test_mirror_and_patterns_reach_the_downloader_and_change_the_job() -> None:
    spec = {"endpoint": "https://hf-mirror.com", "allowPatterns": ["*.safetensors", "*.json"]}
    job = render_cache.download_job(rc(download=spec), OWNER, OperatorSettings())
    c = pod(job)["containers"][0]
    assert {"name": "HF_ENDPOINT", "value": "https://hf-mirror.com"} in c["env"]
    assert c["args"].count("--allow-pattern") == 2
    assert render_cache.download_job_name(rc(download=spec), 0) != render_cache.download_job_name(rc(), 0)
    assert render_cache.download_job_name(rc(revision="v2"), 0) != render_cache.download_job_name(rc(), 0)
    assert render_cache.download_job_name(rc(), 1).endswith("-r1")


def test_a_deadline_reaches_the_downloader_only_when_set() -> None:
    args = pod(render_cache.download_job(rc(download={"deadlineSeconds": 7200}), OWNER, OperatorSettings()))
    assert args["containers"][0]["args"][-2:] == ["--deadline-seconds", "7200"]
    plain = pod(render_cache.download_job(rc(), OWNER, OperatorSettings()))["containers"][0]["args"]
    assert "--deadline-seconds" not in plain  # the Job of an existing cache is not changed by an upgrade
    with pytest.raises(ValueError, match="greater than or equal to 60"):
        rc(download={"deadlineSeconds": 5})


def test_server_cache_folders_are_prepared_for_the_images_given() -> None:
    folder = render_server.compile_folder("vllm/vllm-openai:v0.20.2")
    assert folder == ".server-cache/vllm_vllm-openai_v0.20.2"
    c = pod(render_cache.download_job(rc(), OWNER, OperatorSettings(), compile_folders=(folder,)))["containers"][0]
    assert c["args"][c["args"].index("--server-cache") + 1] == "/models/.server-cache/vllm_vllm-openai_v0.20.2"


def test_cache_pods_meet_pod_security_restricted() -> None:
    for job in (
        render_cache.download_job(rc(), OWNER, OperatorSettings()),
        render_cache.prune_job(rc(), OWNER, OperatorSettings(), ["revisions/a/b/" + "0" * 40]),
    ):
        p = pod(job)
        assert p["securityContext"]["runAsNonRoot"] is True
        assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = p["containers"][0]["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}


def test_cache_pods_join_running_servers_on_a_read_write_once_claim() -> None:
    alone = pod(render_cache.download_job(rc(), OWNER, OperatorSettings()))
    assert "affinity" not in alone
    beside = pod(render_cache.download_job(rc(), OWNER, OperatorSettings(), beside=("b", "a")))
    term = beside["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["a", "b"]}
    ]
    rwx = dataclasses.replace(rc(), access_mode="ReadWriteMany")
    assert "affinity" not in pod(render_cache.download_job(rwx, OWNER, OperatorSettings(), beside=("a",)))


def test_prune_names_each_folder_and_is_owned_by_the_cache() -> None:
    paths = ["revisions/MiniMaxAI/MiniMax-M2.5/" + "a" * 40, "MiniMaxAI/MiniMax-M2.5"]
    job = render_cache.prune_job(rc(), OWNER, OperatorSettings(), paths)
    args = pod(job)["containers"][0]["args"]
    assert args[:3] == ["prune", "--root", "/models"]
    assert sorted(args[i + 1] for i, a in enumerate(args) if a == "--path") == sorted(paths)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "MiniMaxModelCache"
    assert render_cache.prune_job_name(rc(), paths) == render_cache.prune_job_name(rc(), list(reversed(paths)))


def test_resources_of_the_same_weights_share_one_implicit_cache() -> None:
    a = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", "servedModelName": "a"})
    b = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", "servedModelName": "b", "replicas": 2})
    name, spec = implicit_cache(a)
    assert implicit_cache(b)[0] == name
    assert name.startswith("minimax-m2-5-") and len(name) <= 55
    assert spec.model == "MiniMax-M2.5" and spec.revision is None
    other_revision = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", "revision": "v2"})
    other_storage = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", "storage": {"size": "900Gi"}})
    assert len({name, implicit_cache(other_revision)[0], implicit_cache(other_storage)[0]}) == 3
    # A token is not part of the identity: adding one must not download again.
    token = MiniMaxDeploymentSpec.model_validate(
        {"model": "MiniMax-M2.5", "download": {"tokenSecretRef": {"name": "t"}}}
    )
    assert implicit_cache(token)[0] == name
    legacy_name, legacy = implicit_cache(a, legacy_claim="m25-weights")
    assert legacy_name != name and legacy.storage.existingClaim == "m25-weights" and legacy.storage.size is None


def test_odd_repo_names_give_valid_cache_names() -> None:
    for repo in ("org/9-Lives.v2", "org/a___", "org/" + "x" * 150):
        name, _ = implicit_cache(
            MiniMaxDeploymentSpec.model_validate({"repo": repo, "storage": {"size": "1Gi"}, "vllm": {"image": "v"}})
        )
        resolve_cache(name, "ns", MiniMaxModelCacheSpec(repo=repo, storage={"size": "1Gi"}))  # type: ignore[arg-type]


def test_the_server_loads_the_caches_verified_commit_from_its_claim() -> None:
    spec = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5"})
    cache_name, cache_spec = implicit_cache(spec)
    w = WeightsSource(
        cache=cache_name,
        spec=cache_spec,
        claim_name=f"{cache_name}-weights",
        access_mode="ReadWriteMany",
        path="revisions/MiniMaxAI/MiniMax-M2.5/" + "c" * 40,
    )
    r = resolve("m25", "team-a", spec, weights=w)
    dep = render_server.deployment(r, Owner("m25", "u"))
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][0] == "/models/revisions/MiniMaxAI/MiniMax-M2.5/" + "c" * 40
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["weights"]["persistentVolumeClaim"]["claimName"] == f"{cache_name}-weights"
    assert {"name": "weights", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
    serves = dep["metadata"]["annotations"][SERVES_ANNOTATION]
    assert cache_name in serves and "c" * 40 in serves
    assert SERVES_ANNOTATION not in dep["spec"]["template"]["metadata"].get("annotations", {})


def test_a_claim_of_a_release_before_caches_keeps_the_same_server_template() -> None:
    """Upgrade: the adopted claim's folder gives the very pod template the older release wrote."""
    spec = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5"})
    before = render_server.deployment(resolve("m25", "team-a", spec), Owner("m25", "u"))
    cache_name, cache_spec = implicit_cache(spec, legacy_claim="m25-weights")
    w = WeightsSource(cache_name, cache_spec, "m25-weights", "ReadWriteOnce", path="MiniMaxAI/MiniMax-M2.5")
    after = render_server.deployment(resolve("m25", "team-a", spec, weights=w), Owner("m25", "u"))
    assert after["spec"]["template"] == before["spec"]["template"]
