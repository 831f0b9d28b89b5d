"""Compile-cache folders on a claim: recorded in the cache's status as servers mount them, and removed by the
prune Job once no server mounts them (a server moved to another vLLM image or layout); only folders of the
operator's naming, inside the claim, never through a link."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from minimax_operator.download import job as download
from minimax_operator.download.prune import prune_compile
from tests.unit.test_reconcilers import COMMIT, cache_scene, reconcile_cache

OLD = ".server-cache/registry.internal_vllm-openai_v0.19.1"  # a server's own image (spec.vllm.image)
NEW = ".server-cache/vllm_vllm-openai_v0.20.2"  # the preset's image: kept whatever servers do


def test_prune_removes_a_compile_folder_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "claim"
    (root / OLD / "vllm" / "torch_compile_cache").mkdir(parents=True)
    (root / OLD / "vllm" / "torch_compile_cache" / "graph.bin").write_bytes(b"x" * 100)
    (root / NEW).mkdir(parents=True)
    (root / "revisions").mkdir()
    assert prune_compile(root, OLD) == 100
    assert not (root / OLD).exists() and (root / NEW).is_dir() and (root / "revisions").is_dir()
    assert prune_compile(root, OLD) == 0  # gone already: idempotent


def test_prune_refuses_anything_but_a_compile_folder_inside_the_claim(tmp_path: Path) -> None:
    root = tmp_path / "claim"
    (root / ".server-cache").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    os.symlink(outside, root / ".server-cache" / "linked")
    for rel in (".server-cache/linked", ".server-cache/../../elsewhere", "revisions", ".server-cache", "/etc"):
        with pytest.raises(download.DownloadError) as e:
            prune_compile(root, rel)
        assert e.value.reason == "InvalidPath", rel
    assert (outside / "keep").exists()


def server(name: str, subpath: str, rolled: bool = True) -> dict[str, Any]:
    mount = {"name": "weights", "mountPath": "/var/cache/minimax", "subPath": subpath}
    spec = {"containers": [{"name": "vllm", "volumeMounts": [mount]}]}
    serves = '{"cache": "m25", "claim": "m25-weights", "path": "revisions/MiniMaxAI/MiniMax-M2.5/' + COMMIT + '"}'
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "generation": 2, "annotations": {"minimax.chatos.io/serves": serves}},
        "spec": {"replicas": 1, "template": {"spec": spec}},
        "status": {"observedGeneration": 2 if rolled else 1, "updatedReplicas": 1, "replicas": 1},
    }


def downloaded(kube: Any, caches: Any) -> None:
    """The cache through its download, as test_reconcilers walks it: Ready with COMMIT."""
    reconcile_cache(kube, caches)
    reconcile_cache(kube, caches)
    job_name = next(name for verb, kind, name in kube.writes if kind == "Job")
    labels = {"app.kubernetes.io/instance": "m25", "minimax.chatos.io/cache": "m25",
              "app.kubernetes.io/component": "weights-download", "job-name": job_name}  # fmt: skip
    result = {"revision": COMMIT, "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}", "bytesTotal": 100}
    status = {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"message": json.dumps(result)}}}]}
    kube.put({"kind": "Pod", "metadata": {"name": "dl-1", "labels": labels}, "status": status})
    job = kube.object("Job", job_name)
    kube.put({**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    reconcile_cache(kube, caches)
    assert kube.object("MiniMaxModelCache", "m25")["status"]["phase"] == "Ready"
    kube.writes.clear()


def test_a_folder_no_server_mounts_any_more_is_pruned_once_servers_rolled_out() -> None:
    kube, caches = cache_scene()
    downloaded(kube, caches)
    kube.put(server("m25", OLD))
    reconcile_cache(kube, caches)
    assert kube.object("MiniMaxModelCache", "m25")["status"]["compileFolders"] == sorted([OLD, NEW])

    # The server moves to the preset's image: nothing is removed while its old pods may still run.
    kube.put(server("m25", NEW, rolled=False))
    reconcile_cache(kube, caches)
    assert not [w for w in kube.writes if w[1] == "Job" and "prune" in w[2]]
    assert kube.object("MiniMaxModelCache", "m25")["status"]["compileFolders"] == sorted([OLD, NEW])

    kube.put(server("m25", NEW))
    reconcile_cache(kube, caches)
    job_name = next(w[2] for w in kube.writes if w[1] == "Job" and "prune" in w[2])
    job = kube.object("Job", job_name)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--compile-folder") + 1] == OLD and NEW not in args
    kube.put({**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    reconcile_cache(kube, caches)
    assert kube.object("MiniMaxModelCache", "m25")["status"]["compileFolders"] == [NEW]


def test_the_download_prepares_the_folder_of_a_server_with_its_own_image_before_it_exists() -> None:
    kube, caches = cache_scene()
    vllm = {"image": "registry.internal/vllm-openai:v0.19.1", "podSecurity": "restricted"}
    spec = {"model": "MiniMax-M2.5", "cacheRef": {"name": "m25"}, "vllm": vllm}
    kube.put({"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment",
              "metadata": {"name": "custom", "namespace": "ns"}, "spec": spec})  # fmt: skip
    reconcile_cache(kube, caches)
    reconcile_cache(kube, caches)
    job = kube.object("Job", next(name for verb, kind, name in kube.writes if kind == "Job"))
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    prepared = [args[i + 1] for i, a in enumerate(args) if a == "--server-cache"]
    assert prepared == [f"/models/{OLD}", f"/models/{NEW}"]
