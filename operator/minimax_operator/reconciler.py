"""Reconcile one MiniMaxDeployment: the server, its Service and its ChatOS entry.

The weights come from a MiniMaxModelCache (cache_reconciler.py): the one named in
spec.cacheRef, or the cache of the resource's repo and revision in its namespace, which
this reconcile creates when it does not exist yet (and adopts the claim a release
before model caches filled for this very resource, so nothing is downloaded again).
The server is created once the cache has a verified commit, and moves to a newer
commit only once that one is verified; until then it keeps serving the one it loads.

Ownership: an object the resource does not control (a user's Service of the same
name) is never patched, adopted or deleted. Every child name is checked before
anything is created, so a conflict costs no GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from . import builders, chatos, quota
from . import status as st
from .api import CACHE_KIND, CONDITION_TYPES, GROUP, VERSION, MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from .builders import MANAGER, Owner, implicit_cache_labels, model_label, owner_reference
from .kube import Conflict
from .metrics import WRITES
from .ownership import NameConflict, conflict_message, controlled_by, ours
from .reconcile_base import FINALIZER, Base, QuotaExceeded, Settings, api_message, iso
from .registration import Registrar
from .resolve import LayoutError, Resolved, Weights, check_storage, implicit_cache, resolve

__all__ = ["FINALIZER", "Reconciler", "Settings", "UnregisterBlocked"]

log = logging.getLogger(__name__)
Obj = dict[str, Any]
#: On an implicit cache: the resource it was first made for (for people reading it).
CREATED_FOR = f"{GROUP}/created-for"


class _CacheMissing(Exception):
    """spec.cacheRef names a cache that does not exist."""


class Reconciler(Base):
    kind = "MiniMaxDeployment"

    def __init__(self, kube: Any, settings: Settings, **kwargs: Any):
        super().__init__(kube, settings, **kwargs)
        self.registrar = Registrar(kube, settings.allow_chatos_namespaces, settings.create_chatos_configmap)

    def finalize(self, body: Obj) -> None:
        """On delete: take the model out of ChatOS. The weights stay in their cache.

        Returns only once every ConfigMap this resource may be registered in is proven free
        of its entries (removed, or never there); otherwise raises, and the finalizer holds
        the resource until a retry succeeds. A ChatOS file a person broke holds it too,
        with a Warning Event saying what to fix: deleting anyway would leave an entry that
        points at a server that no longer exists.
        """
        meta = body["metadata"]
        with self._lock(meta["uid"]):
            owner_id = f"{meta['namespace']}/{meta['name']}"
            for target in self.registrar.targets(body):
                try:
                    self.registrar.unregister(target, owner_id, live=True)  # proof of removal: not a cache
                except chatos.ChatOSConfigError as e:
                    where = f"{target['namespace']}/{target['configMap']}"
                    msg = f"deletion waits until ConfigMap {where} can be edited to remove this model's entry: {e}"
                    self.kube.event(body, "Warning", "UnregisterFailed", msg)
                    raise UnregisterBlocked(msg) from e
            # Proven gone: let the resource go now. kopf would remove the finalizer too, but with a
            # patch that tests resourceVersion; a status write in between makes that wait for an
            # event that, during deletion, may never come.
            self.kube.remove_finalizer(body, FINALIZER)
            WRITES.labels(kind="MiniMaxDeployment/finalizer").inc()
        self._forget(meta["uid"])

    # ---- the steps ----------------------------------------------------------------------

    def _fail(self, body: Obj, old: Obj, new: Obj, reason: str, message: str) -> None:
        conds = [
            st.false("WeightsReady", reason, message),
            st.unknown("ServerReady", "WaitingForWeights"),
            st.unknown("Registered", "WaitingForServer"),
        ]
        if old.get("download") and "download" not in new:
            new["download"] = old["download"]  # keep the record of what was downloaded
        self._finish(body, old, new, conds, replicas=0)

    def _reconcile(self, body: Obj) -> None:
        meta = body["metadata"]
        ns, name, gen = meta["namespace"], meta["name"], meta.get("generation", 1)
        old = body.get("status") or {}
        new: Obj = {"observedGeneration": gen}
        r0: Resolved | None = None
        try:
            spec = MiniMaxDeploymentSpec.model_validate(body.get("spec") or {})
            if spec.model or spec.repo:  # the layout checks that need no cache, before anything else
                r0 = resolve(name, ns, spec, self.settings.vllm_images)
                new.update(
                    model=r0.model_label,
                    servedModelName=r0.served_model_name,
                    tensorParallelSize=r0.tensor_parallel_size,
                )
        except (ValidationError, LayoutError) as e:
            self._fail(body, old, new, "LayoutInvalid" if isinstance(e, LayoutError) else "InvalidSpec", str(e))
            return
        owner = Owner(name=name, uid=meta["uid"])
        if not old:
            # First sight: say so at once, then do the work behind the other new resources. In a
            # burst of hundreds, each gets its first status within seconds instead of after every
            # other resource's checks and creates (several requests each).
            first = [
                st.unknown("WeightsReady", "Pending", "checking names, quota and storage before anything is created"),
                st.unknown("ServerReady", "WaitingForWeights"),
                st.unknown("Registered", "WaitingForServer"),
            ]
            first.append(st.ready_condition(first))
            new["conditions"] = st.merge([], first, gen, iso(self.clock()))
            new["phase"] = st.phase(first, spec.replicas)
            self._write_status(body, old, new)
            self._wake(0)
            return

        try:
            if r0 is not None:
                # A resource that can never serve must not cost a download: its own names, the GPU
                # quota and an existing claim's access modes are checked before its cache exists.
                self._preflight(r0, owner)
                self._check_existing_claim(r0)
            cache_name, cache = self._cache(body, spec, owner)
            new["cache"] = cache_name
            w = _weights_of(cache_name, cache)
            if w is None:
                raise LayoutError("cacheRef", f"MiniMaxModelCache {cache_name} has an invalid spec: see its status")
            r = resolve(name, ns, spec, self.settings.vllm_images, w)
            new.update(
                model=r.model_label, servedModelName=r.served_model_name, tensorParallelSize=r.tensor_parallel_size
            )
            r = self._neighbours(body, r, w)
            if r0 is None:
                self._preflight(r, owner)
            weights = self._weights(r, cache_name, cache, old, new)
            # One pod at all may mount a ReadWriteOncePod claim: the server stops while its cache downloads.
            cache_busy = r.claim_access_mode == "ReadWriteOncePod" and not _cache_ready(cache)
            server = self._server(r, owner, weights.status == "True" and not cache_busy, new)
            self._delete_legacy_jobs(r, owner)
        except (NameConflict, QuotaExceeded, LayoutError, _CacheMissing) as e:
            if isinstance(e, NameConflict):
                # Not our server: whatever answers under that name must not be in ChatOS as this model.
                for target in self.registrar.targets(body):
                    # A file broken by hand cannot be edited now; the next resync tries again.
                    with contextlib.suppress(chatos.ChatOSConfigError):
                        self.registrar.unregister(target, f"{ns}/{name}")
                new.pop("endpoint", None)
                self._wake(30)  # someone else's object is not in our caches: its removal sends no event
            reason = {
                NameConflict: "NameConflict",
                QuotaExceeded: "QuotaExceeded",
                _CacheMissing: "CacheNotFound",
            }.get(type(e), "LayoutInvalid")
            self._fail(body, old, new, reason, str(e))
            return
        registered = self.registrar.reconcile(body, r, server.status == "True", old, new)
        self._finish(body, old, new, [weights, server, registered], replicas=spec.replicas)

    def _finish(self, body: Obj, old: Obj, new: Obj, conds: list[st.Cond], replicas: int) -> None:
        conds = [*conds, st.ready_condition(conds)]
        assert tuple(c.type for c in conds) == CONDITION_TYPES
        gen = new["observedGeneration"]
        new["conditions"] = st.merge(old.get("conditions") or [], conds, gen, iso(self.clock()))
        new["phase"] = st.phase(conds, replicas)
        self._write_status(body, old, new)
        self._events(body, old, conds)

    # ---- the cache ------------------------------------------------------------------------

    def _legacy_claim(self, body: Obj, spec: MiniMaxDeploymentSpec) -> Obj | None:
        """The claim a release before model caches filled for this resource (`NAME-weights`), if any.

        Recognised by the labels that release wrote (ours, this resource's name, its model)
        and an owner that is this resource, a cache it was handed to, or none (retained).
        """
        if spec.storage.existingClaim or spec.cacheRef:
            return None
        meta = body["metadata"]
        pvc = self.kube.get("PersistentVolumeClaim", meta["namespace"], f"{meta['name']}-weights")
        if pvc is None:
            return None
        labels = pvc["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") != MANAGER or labels.get(builders.OWNER_LABEL) != meta["name"]:
            return None
        if builders.CACHE_LABEL in labels:
            return None  # a cache's own claim
        repo = spec.repo or (resolve(meta["name"], meta["namespace"], spec).repo)
        if builders.MODEL_LABEL in labels:
            if labels[builders.MODEL_LABEL] != model_label(repo):
                return None  # retained for another model
        else:  # written before the model label: ours only if this very resource downloaded into it
            status = body.get("status") or {}
            if not ((status.get("download") or {}).get("jobName") or status.get("cache")):
                return None
        for ref in pvc["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("uid") != meta["uid"] and ref.get("kind") != CACHE_KIND:
                return None
        return pvc

    def _check_existing_claim(self, r: Resolved) -> None:
        """spec.storage.existingClaim: its own access modes must carry the replicas (before any download)."""
        if r.spec.cacheRef or not r.spec.storage.existingClaim:
            return
        claim = self.kube.get("PersistentVolumeClaim", r.namespace, r.spec.storage.existingClaim)
        if claim is not None:
            check_storage(r, list((claim.get("spec") or {}).get("accessModes") or []))

    def _cache(self, body: Obj, spec: MiniMaxDeploymentSpec, owner: Owner) -> tuple[str, Obj]:
        """The cache this resource serves from; the implicit one is created when missing."""
        ns = body["metadata"]["namespace"]
        if spec.cacheRef:
            cache = self.kube.get(CACHE_KIND, ns, spec.cacheRef.name)
            if cache is None:
                raise _CacheMissing(f"spec.cacheRef: MiniMaxModelCache {spec.cacheRef.name} does not exist")
            return spec.cacheRef.name, cache
        legacy = self._legacy_claim(body, spec)
        name, cache_spec = implicit_cache(spec, legacy["metadata"]["name"] if legacy else None)
        cache = self.kube.get(CACHE_KIND, ns, name)
        if cache is None:
            cache = self._create_cache(ns, name, cache_spec, body["metadata"]["name"])
        elif (cache["metadata"].get("labels") or {}).get(builders.IMPLICIT_LABEL) == "true":
            cache = self._sync_token(cache, spec)
        if legacy is not None and controlled_by(legacy, owner):
            # The claim this resource owned (retainOnDelete: false) now serves from the cache, which
            # outlives the resource: its owner becomes the cache, so deleting the cache removes it.
            cache_owner = Owner(name=name, uid=cache["metadata"]["uid"], kind=CACHE_KIND)
            self.kube.merge_patch(legacy, {"metadata": {"ownerReferences": [owner_reference(cache_owner)]}})
            WRITES.labels(kind="PersistentVolumeClaim/handover").inc()
        return name, cache

    def _create_cache(self, ns: str, name: str, spec: MiniMaxModelCacheSpec, created_for: str) -> Obj:
        obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": CACHE_KIND,
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": implicit_cache_labels(),
                "annotations": {CREATED_FOR: created_for},
                # Its own reconcile would add it with one more write: a thousand models, a thousand writes.
                "finalizers": [FINALIZER],
            },
            "spec": spec.model_dump(exclude_none=True, exclude_defaults=True),
        }
        try:
            created: Obj = self.kube.create(obj)
            WRITES.labels(kind=CACHE_KIND).inc()
            return created
        except Conflict:  # another resource of the same weights created it a moment ago
            live = self.kube.get(CACHE_KIND, ns, name, live=True)
            if live is None:
                raise
            return live

    def _sync_token(self, cache: Obj, spec: MiniMaxDeploymentSpec) -> Obj:
        """A token set on a resource reaches its implicit cache (a gated repo fixed without a new download)."""
        ref = spec.download.tokenSecretRef
        if ref is None:
            return cache
        have = ((cache.get("spec") or {}).get("download") or {}).get("tokenSecretRef") or {}
        want = ref.model_dump()
        if have == want:
            return cache
        WRITES.labels(kind=CACHE_KIND).inc()
        return self.kube.merge_patch(cache, {"spec": {"download": {"tokenSecretRef": want}}})

    def _neighbours(self, body: Obj, r: Resolved, w: Weights | None) -> Resolved:
        """On a ReadWriteOnce claim shared with other resources: pin to their node, if their GPUs leave room.

        Only resources created earlier count, so a newcomer never changes (and rolls) the
        servers already there.
        """
        if w is None or r.claim_access_mode != "ReadWriteOnce":
            return r
        meta = body["metadata"]
        mine = (meta.get("creationTimestamp") or "", meta["name"])
        earlier = []
        gpus = 0
        for m in self.kube.indexed("MiniMaxDeployment", "cache", meta["namespace"], w.cache):
            mm = m["metadata"]
            if mm["name"] == meta["name"] or (m.get("status") or {}).get("cache") != w.cache:
                continue
            if ((mm.get("creationTimestamp") or ""), mm["name"]) < mine:
                earlier.append(mm["name"])
                tp = int((m.get("status") or {}).get("tensorParallelSize") or 1)
                gpus += tp * int((m.get("spec") or {}).get("replicas", 1))
        if not earlier:
            return r
        mine_gpus = r.tensor_parallel_size * r.spec.replicas
        if gpus + mine_gpus > r.spec.gpu.perNode:
            field = "cacheRef" if r.spec.cacheRef else "storage.accessMode"
            raise LayoutError(
                field,
                f"the ReadWriteOnce claim of MiniMaxModelCache {w.cache} attaches to one node, where "
                f"{', '.join(earlier)} already take {gpus} GPUs; {mine_gpus} more do not fit a node of "
                f"{r.spec.gpu.perNode} (spec.gpu.perNode). Use a ReadWriteMany cache or fewer GPUs",
            )
        return dataclasses.replace(r, claim_neighbours=tuple(sorted(earlier)))

    def _weights(self, r: Resolved, cache_name: str, cache: Obj, old: Obj, new: Obj) -> st.Cond:
        """WeightsReady, from the cache: True once it has a verified commit for the server to load."""
        cs = cache.get("status") or {}
        if cs.get("download"):
            new["download"] = cs["download"]
        ready: Obj = next((c for c in cs.get("conditions") or [] if c.get("type") == "Ready"), {})
        if cs.get("path") and cs.get("claimName"):
            if cs.get("commit"):
                new["commit"] = cs["commit"]
            what = f"commit {cs['commit'][:12]}" if cs.get("commit") else f"folder {cs['path']}"
            msg = f"{what} of {r.repo} verified in MiniMaxModelCache {cache_name} (PVC {cs['claimName']})"
            if ready.get("status") != "True" and ready.get("message"):
                msg += f"; the cache is getting revision {cs.get('revision')}: {ready['message']}"
            return st.true("WeightsReady", "Downloaded", msg)
        reason = str(ready.get("reason") or "Pending")
        message = str(ready.get("message") or "the cache has not started yet")
        return st.false("WeightsReady", reason, f"MiniMaxModelCache {cache_name}: {message}")

    def _delete_legacy_jobs(self, r: Resolved, owner: Owner) -> None:
        """Download Jobs a release before model caches ran for this resource: the cache downloads now."""
        for job in self.kube.list("Job", r.namespace, builders.selector(r, builders.COMPONENT_DOWNLOAD)):
            if controlled_by(job, owner):
                self.kube.delete("Job", r.namespace, job["metadata"]["name"])
                WRITES.labels(kind="Job/delete").inc()

    def _quotas(self, r: Resolved) -> list[Obj]:
        return self.kube.list("ResourceQuota", r.namespace, {})

    def _needs(self, r: Resolved) -> dict[str, Any]:
        return quota.needs(
            r.spec.gpu.resourceName,
            gpus=r.tensor_parallel_size * r.spec.replicas,
            pods=max(r.spec.replicas, 1),
            storage=None,
            storage_class=None,
        )

    def _quota_full(self, r: Resolved, wanted: dict[str, Any]) -> str:
        """Quota that others use up for now: the numbers, or '' when it fits."""
        short = quota.shortfalls(self._quotas(r), wanted)
        return "; ".join(map(str, short)) + ": waiting for quota to free" if short else ""

    def _preflight(self, r: Resolved, owner: Owner) -> None:
        """Check the server's names and the GPU quota before anything is created."""
        problems = []
        probes: list[tuple[str, str, Obj]] = [
            ("Deployment", r.name, builders.deployment(r, owner)),
            ("Service", r.service_name, builders.service(r, owner)),
        ]
        for kind, obj_name, want in probes:
            have = self.kube.get(kind, r.namespace, obj_name)
            if have is not None and not ours(have, owner, want):
                problems.append(conflict_message(kind, have))
        if problems:
            raise NameConflict("; ".join(problems))
        never = [q for q in quota.shortfalls(self._quotas(r), self._needs(r)) if q.never_fits]
        if never:
            raise QuotaExceeded(
                "; ".join(map(str, never)) + ": this resource can never fit the namespace's quota; "
                "ask for a larger quota or use fewer GPUs (tensorParallelSize, replicas)"
            )

    # server -------------------------------------------------------------------------------

    def _server_running(self, r: Resolved) -> bool:
        dep = self.kube.get("Deployment", r.namespace, r.name)
        return bool(dep and (dep.get("spec") or {}).get("replicas"))

    def _server(self, r: Resolved, owner: Owner, weights_ready: bool, new: Obj) -> st.Cond:
        dep = self.kube.get("Deployment", r.namespace, r.name)
        if dep is not None and not controlled_by(dep, owner):
            raise NameConflict(conflict_message("Deployment", dep))
        if weights_ready and dep is None and r.spec.replicas:
            full = self._quota_full(r, self._needs(r))
            if full:
                self._wake(60)
                return st.false("ServerReady", "QuotaFull", full)
        try:
            if weights_ready:
                dep = self._ensure(builders.deployment(r, owner), owner)
                self._ensure(builders.service(r, owner), owner)
            elif dep is not None and r.claim_access_mode == "ReadWriteOncePod" and dep["spec"].get("replicas"):
                # One pod at all may mount the claim: the server stops while the download Job runs.
                dep = self._ensure(builders.deployment(r, owner, replicas=0), owner)
                new["endpoint"] = r.endpoint
                return st.false(
                    "ServerReady", "StoppedForDownload", "ReadWriteOncePod: the server stops while the weights download"
                )
        except ApiException as e:
            self._wake(30)
            return st.false("ServerReady", "ApplyFailed", api_message(e))
        if dep is None:
            return st.false("ServerReady", "WaitingForWeights", "the server starts once the weights are verified")
        new["endpoint"] = r.endpoint
        want = r.spec.replicas
        if want == 0:
            return st.false("ServerReady", "Stopped", "spec.replicas is 0")
        s = dep.get("status") or {}
        current = s.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
        updated, available = s.get("updatedReplicas", 0), s.get("availableReplicas", 0)
        if current and updated >= want and available >= want and s.get("replicas", 0) == want:
            return st.true("ServerReady", "Available", f"{available}/{want} replicas serving {r.served_model_name}")
        for c in s.get("conditions") or []:
            if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
                reason, text = st.creation_failure(str(c.get("message", "")))
                return st.false("ServerReady", reason, f"server pods cannot be created: {text}")
        pods = self.kube.list("Pod", r.namespace, builders.selector(r, builders.COMPONENT_SERVER))
        problem = st.pod_problem(pods)
        if problem:
            return st.false("ServerReady", problem[0], problem[1])
        return st.false("ServerReady", "Starting", f"{available}/{want} replicas ready (loading weights)")


class UnregisterBlocked(Exception):
    """The ChatOS entry cannot be removed until a person fixes the ConfigMap."""


def _weights_of(cache_name: str, cache: Obj) -> Weights | None:
    """What the cache offers the server: its claim and verified folder (None when its spec is invalid)."""
    try:
        spec = MiniMaxModelCacheSpec.model_validate(cache.get("spec") or {})
    except ValidationError:
        return None
    cs = cache.get("status") or {}
    storage = spec.storage
    return Weights(
        cache=cache_name,
        spec=spec,
        claim_name=cs.get("claimName") or storage.existingClaim or f"{cache_name}-weights",
        access_mode=cs.get("accessMode") or (None if storage.existingClaim else storage.accessMode),
        path=cs.get("path"),
        commit=cs.get("commit"),
    )


def _cache_ready(cache: Obj) -> bool:
    conds = (cache.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
