"""Upgrading resources of the release before model caches: the only code that exists for it.

That release downloaded into a claim `NAME-weights` per MiniMaxDeployment (one folder
per repo, any revision) with a download Job the resource owned. On upgrade, a resource
gets an implicit MiniMaxModelCache whose existing claim is that very claim (nothing is
downloaded again), its old download Jobs are deleted, and a claim it owned is handed to
the cache (owner reference), which outlives it.

When v1alpha1 ends, delete this module and these upgrade-only pieces elsewhere:
- model/model_cache.implicit_cache's `legacy_claim` argument;
- model/deployment.Resolved.weights_key's branch for folders outside `revisions/`;
- render/server._same_node_as_servers' single-resource term (kept so no server rolls);
- protocol.legacy_folder and the downloader's `--legacy-dir` and `--dest` (download/job.py);
- the uses of this module in controllers/deployment.py (marked "upgrade").
"""

from __future__ import annotations

from typing import Any

from ..api.names import CACHE_KIND, CACHE_LABEL, COMPONENT_DOWNLOAD, MANAGED_BY_LABEL, MANAGER, MODEL_LABEL, OWNER_LABEL
from ..api.v1alpha1 import MiniMaxDeploymentSpec
from ..model.deployment import Resolved, resolve
from ..render import server as render
from ..render.meta import Owner, model_label, owner_reference
from ..runtime.client import Kube
from ..runtime.metrics import WRITES
from .ownership import controlled_by

Obj = dict[str, Any]


def legacy_claim(kube: Kube, body: Obj, spec: MiniMaxDeploymentSpec) -> Obj | None:
    """The claim a release before model caches filled for this resource (`NAME-weights`), if any.

    Recognised by the labels that release wrote (ours, this resource's name, its model)
    and an owner that is this resource, a cache it was handed to, or none (retained).
    """
    if spec.storage.existingClaim or spec.cacheRef:
        return None
    meta = body["metadata"]
    pvc = kube.get("PersistentVolumeClaim", meta["namespace"], f"{meta['name']}-weights")
    if pvc is None:
        return None
    labels = pvc["metadata"].get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGER or labels.get(OWNER_LABEL) != meta["name"]:
        return None
    if CACHE_LABEL in labels:
        return None  # a cache's own claim
    repo = spec.repo or (resolve(meta["name"], meta["namespace"], spec).repo)
    if MODEL_LABEL in labels:
        if labels[MODEL_LABEL] != model_label(repo):
            return None  # retained for another model
    else:  # written before the model label: ours only if this very resource downloaded into it
        status = body.get("status") or {}
        if not ((status.get("download") or {}).get("jobName") or status.get("cache")):
            return None
    for ref in pvc["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") != meta["uid"] and ref.get("kind") != CACHE_KIND:
            return None
    return pvc


def hand_over(kube: Kube, claim: Obj, owner: Owner, cache_name: str, cache: Obj) -> None:
    """A claim this resource owned (retainOnDelete: false) now serves from the cache, which outlives
    the resource: its owner becomes the cache, so deleting the cache removes it."""
    if not controlled_by(claim, owner):
        return
    cache_owner = Owner(name=cache_name, uid=cache["metadata"]["uid"], kind=CACHE_KIND)
    kube.merge_patch(claim, {"metadata": {"ownerReferences": [owner_reference(cache_owner)]}})
    WRITES.labels(kind="PersistentVolumeClaim/handover").inc()


def delete_legacy_jobs(kube: Kube, r: Resolved, owner: Owner) -> None:
    """Download Jobs a release before model caches ran for this resource: the cache downloads now."""
    for job in kube.list("Job", r.namespace, render.selector(r, COMPONENT_DOWNLOAD)):
        if controlled_by(job, owner):
            kube.delete("Job", r.namespace, job["metadata"]["name"])
            WRITES.labels(kind="Job/delete").inc()
