"""Reconcile one MiniMaxModelCache: its claim, the download of its revision, unused commits.

The cache is the one place a model's weights are downloaded, verified and kept, for
every MiniMaxDeployment of the namespace that serves them. Each commit has its own
folder; `status.commit`/`status.path` move to a new commit only once it is verified, so
servers never load a half-downloaded revision, and an older commit's folder is pruned
only when every server on the claim has rolled to the current one.

Observe, decide, act: the download's state is decided by download.decide from what was
read; this module reads and writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..api.names import (
    CACHE_KIND,
    COMPONENT_DOWNLOAD,
    CREATED_FOR_ANNOTATION,
    FINALIZER,
    IMPLICIT_LABEL,
    LWS_KIND,
    OWNER_LABEL,
)
from ..api.presets import PRESETS
from ..api.v1alpha1 import MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from ..model import quota
from ..model.deployment import resolve
from ..model.errors import LayoutError
from ..model.model_cache import ResolvedCache, resolve_cache
from ..protocol import parse_progress
from ..render import model_cache as render
from ..render import status as st
from ..render.meta import Owner
from ..render.server import COMPILE_DIR, compile_folder, compile_subpath
from ..render.status import iso
from ..runtime.loop import Result
from ..runtime.metrics import WRITES
from . import claims, download, gauges
from .base import Base, api_message
from .errors import NameConflict, QuotaExceeded, ReconcileError
from .ownership import conflict_message, controlled_by, ours, widest_mode
from .watches import pod_templates, served_weights

log = logging.getLogger(__name__)
Obj = dict[str, Any]

#: Names in status.users (userCount has them all): a status stays small with a thousand users.
MAX_USERS_LISTED = 100


def served_part(status: Obj) -> Obj:
    """The part of a cache's status its users read (everything but who uses it)."""
    out = {k: v for k, v in status.items() if k not in ("users", "userCount", "conditions")}
    out["ready"] = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return out


class CacheInUse(Exception):
    """A cache that servers still use cannot be deleted yet."""


def phase(ready: st.Cond) -> str:
    """A MiniMaxModelCache's phase, by the same rule as its users' (render/status.py)."""
    if ready.status == "True":
        return "Ready"
    if ready.failed:
        return "Failed"
    return st.weights_phase(ready)


class CacheReconciler(Base):
    kind = CACHE_KIND

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        #: pod uid -> (monotonic time, progress) of the last log read: at most one per progress_seconds.
        self._progress_read: dict[str, tuple[float, Obj]] = {}

    # ---- who uses it --------------------------------------------------------------------

    def servers(self, namespace: str, claim: str) -> list[Obj]:
        """Servers (ours: Deployments, and LeaderWorkerSets where LWS is installed) that load weights from
        this claim. The LWS informer runs before any of ours exists (Informers.start, watch_kind)."""
        return [*self.kube.indexed("Deployment", "claim", namespace, claim), *self._groups(namespace, "claim", claim)]

    def _groups(self, namespace: str, index: str, value: str) -> list[Obj]:
        if self.kube.stores is not None and LWS_KIND in self.kube.stores:
            return self.kube.indexed(LWS_KIND, index, namespace, value)
        return []

    def users(self, namespace: str, name: str) -> list[str]:
        """MiniMaxDeployments that serve (or are about to serve) these weights, by name."""
        names = {m["metadata"]["name"] for m in self.kube.indexed("MiniMaxDeployment", "cache", namespace, name)}
        for d in [*self.kube.indexed("Deployment", "cache", namespace, name), *self._groups(namespace, "cache", name)]:
            names.add((d["metadata"].get("labels") or {}).get(OWNER_LABEL, d["metadata"]["name"]))
        return sorted(names)

    # ---- the steps ----------------------------------------------------------------------

    def _reconcile(self, body: Obj, result: Result) -> None:
        meta = body["metadata"]
        ns, name, gen = meta["namespace"], meta["name"], meta.get("generation", 1)
        old = body.get("status") or {}
        new: Obj = {"observedGeneration": gen}
        users = self.users(ns, name)
        new.update(users=users[:MAX_USERS_LISTED], userCount=len(users))
        in_use = (
            st.true("InUse", "Serving", "served by " + _names(users))
            if users
            else st.false("InUse", "Unused", "no MiniMaxDeployment serves these weights")
        )
        try:
            spec = MiniMaxModelCacheSpec.model_validate(body.get("spec") or {})
            rc = resolve_cache(name, ns, spec)
            created_for = (meta.get("annotations") or {}).get(CREATED_FOR_ANNOTATION)
            if created_for:
                rc = dataclasses.replace(rc, created_for=str(created_for))
        except (ValidationError, LayoutError) as e:
            reason = "LayoutInvalid" if isinstance(e, LayoutError) else "InvalidSpec"
            ready = st.false("Ready", reason, str(e))
            self._finish(body, old, new, [ready, in_use], phase(ready), result)
            return
        new.update(repo=rc.repo, revision=rc.revision, claimName=rc.claim_name)
        if rc.storage_size:
            new["size"] = rc.storage_size
        if old.get("repo") in (None, rc.repo):  # what servers load stays until a newer commit is verified
            for key in ("commit", "path", "commits", "compileFolders"):
                if old.get(key):
                    new[key] = old[key]
        implicit = (meta.get("labels") or {}).get(IMPLICIT_LABEL) == "true"
        if not old and not implicit:
            # First sight: say so at once (no Event: nothing happened yet), then do the work
            # behind other new resources. Not for a cache a MiniMaxDeployment created: its user
            # reads the resource's status, which said so already; two writes a model saved (this
            # one, and the resource's copy of it).
            first = [st.unknown("Ready", "Pending", "checking names, quota and storage"), in_use]
            new["conditions"] = st.merge([], first, gen, iso(self.clock()))
            new["phase"] = "Pending"
            result.peers_changed = self._write_status(body, old, new)
            result.requeue(0)
            return
        owner = render.cache_owner(name, meta["uid"])
        try:
            rc = self._preflight(rc, owner, old)
            ready = self._download(rc, owner, old, new, result)
            if ready.status == "True":
                self._collect(rc, owner, new, old)
        except (ReconcileError, LayoutError) as e:
            if isinstance(e, NameConflict):
                result.requeue(30)  # someone else's object is not in our stores: its removal sends no event
            if old.get("download") and "download" not in new:
                new["download"] = old["download"]
            ready = st.false("Ready", e.reason, str(e))
        self._finish(body, old, new, [ready, in_use], phase(ready), result)
        gauges.cache(ns, name, ready.reason)

    def _peers_read_changed(self, old: Obj, new: Obj) -> bool:
        """Users are queued only when what they read from the cache changed, not merely its list of users."""
        return served_part(old) != served_part(new)

    def _quotas(self, namespace: str) -> list[Obj]:
        return self.kube.list("ResourceQuota", namespace, {})

    def _needs(self, rc: ResolvedCache) -> dict[str, Any]:
        return quota.needs(
            "nvidia.com/gpu",
            gpus=0,
            pods=1,
            storage=rc.storage_size if not rc.spec.storage.existingClaim else None,
            storage_class=rc.spec.storage.storageClassName,
        )

    def _preflight(self, rc: ResolvedCache, owner: Owner, old: Obj) -> ResolvedCache:
        """Every name and the quota, before anything is created or downloaded."""
        problems = []
        claim = self.kube.get("PersistentVolumeClaim", rc.namespace, rc.claim_name)
        want = render.claim(rc, owner)
        if claim is not None and want is not None and not ours(claim, owner, want):
            problems.append(conflict_message("PersistentVolumeClaim", claim, pvc_hint=True, owner_kind=CACHE_KIND))
        dl = old.get("download") or {}
        job_name = str(dl.get("jobName") or render.download_job_name(rc, 0))
        job = self.kube.get("Job", rc.namespace, job_name)
        if job is not None and not controlled_by(job, owner):
            problems.append(conflict_message("Job", job, owner_kind=CACHE_KIND))
        if problems:
            raise NameConflict("; ".join(problems))
        never = [q for q in quota.shortfalls(self._quotas(rc.namespace), self._needs(rc)) if q.never_fits]
        if never:
            raise QuotaExceeded(
                "; ".join(map(str, never)) + ": this cache can never fit the namespace's quota; "
                "ask for a larger quota or set a smaller spec.storage.size"
            )
        if rc.spec.storage.existingClaim and claim is not None:
            modes = list((claim.get("spec") or {}).get("accessModes") or [])
            if modes and not {"ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"} & set(modes):
                raise LayoutError(
                    "storage.existingClaim",
                    f"the claim's access modes {modes} do not allow the download Job to write the weights",
                )
            rc = dataclasses.replace(rc, access_mode=widest_mode(modes))
        return rc

    def _beside(self, rc: ResolvedCache) -> tuple[str, ...]:
        """Servers running on a ReadWriteOnce claim: the cache's pods must join them on their node."""
        return claims.servers_beside(rc.access_mode, self.servers(rc.namespace, rc.claim_name))

    def _compile_folders(self, rc: ResolvedCache) -> tuple[str, ...]:
        """Compile-cache folders the servers of these weights mount (created writable by any user): the
        preset's image's, and each server's own (its subPath: per image, and per layout over nodes)."""
        if rc.access_mode == "ReadOnlyMany":
            return ()
        folders = set()
        if rc.spec.model:
            folders.add(
                compile_folder(self.settings.vllm_images.get(rc.spec.model) or PRESETS[rc.spec.model].vllm_image)
            )
        # The resources that serve these weights, before their servers exist: a server of its own image
        # (spec.vllm.image) or layout must find its folder prepared too (the kubelet makes a missing subPath
        # folder with the volume's permissions: a restricted server could not write it on most storage).
        users = list(self.kube.indexed("MiniMaxDeployment", "cache", rc.namespace, rc.name))
        if rc.created_for and not any(u["metadata"]["name"] == rc.created_for for u in users):
            first = self.kube.get("MiniMaxDeployment", rc.namespace, rc.created_for)  # its status may not say so yet
            users += [first] if first else []
        for mmd in users:
            with contextlib.suppress(ValidationError, LayoutError):
                spec = MiniMaxDeploymentSpec.model_validate(mmd.get("spec") or {})
                sub = compile_subpath(resolve(mmd["metadata"]["name"], rc.namespace, spec, self.settings.vllm_images))
                if sub:
                    folders.add(sub)
        for d in self.servers(rc.namespace, rc.claim_name):
            for c in [c for t in pod_templates(d) for c in (t.get("spec") or {}).get("containers") or []]:
                for m in c.get("volumeMounts") or [] if c.get("name") == "vllm" else []:
                    if m.get("mountPath") == COMPILE_DIR and m.get("subPath"):
                        folders.add(str(m["subPath"]))
        return tuple(sorted(folders))

    def _claim(self, rc: ResolvedCache, owner: Owner, result: Result) -> st.Cond | None:
        """The claim, created (or brought back in line) once the quota allows; a condition when it cannot be."""
        want_claim = render.claim(rc, owner)
        if want_claim is not None:
            if self.kube.get("PersistentVolumeClaim", rc.namespace, rc.claim_name) is None:
                short = quota.shortfalls(self._quotas(rc.namespace), self._needs(rc))
                if short:
                    result.requeue(60)  # quota changes send events; this is the safety net
                    return st.false("Ready", "QuotaFull", "; ".join(map(str, short)) + ": waiting for quota to free")
            try:
                self._ensure(want_claim, owner)
            except ApiException as e:
                result.requeue(30)
                return st.false("Ready", "ApplyFailed", f"PVC {rc.claim_name}: {api_message(e)}")
        elif self.kube.get("PersistentVolumeClaim", rc.namespace, rc.claim_name) is None:
            result.requeue(30)  # the user's claim carries none of our labels: its creation queues nothing
            return st.false("Ready", "ClaimNotFound", f"spec.storage.existingClaim: PVC {rc.claim_name} does not exist")
        return None

    def _download(self, rc: ResolvedCache, owner: Owner, old: Obj, new: Obj, result: Result) -> st.Cond:
        refused_claim = self._claim(rc, owner, result)
        if refused_claim is not None:
            return refused_claim
        if rc.access_mode:
            new["accessMode"] = rc.access_mode
        observed = self._observe_download(rc, owner, old, new)
        decision = download.decide(observed)
        # Act: the Job this decision wants, stale Jobs gone, then status.
        if decision.create_attempt is not None:
            self._create_download_job(rc, owner, decision.create_attempt)
        for stale in download.stale_jobs(
            self.kube.list("Job", rc.namespace, render.selector(rc, COMPONENT_DOWNLOAD)),
            observed.job_name,
            rc.key,
            owner.uid,
            decision.keep_older_attempts,
        ):
            self.kube.delete("Job", rc.namespace, stale)
            WRITES.labels(kind="Job/delete").inc()
        if decision.delete_job:
            self.kube.delete("Job", rc.namespace, decision.delete_job)
            WRITES.labels(kind="Job/delete").inc()
        if decision.requeue_after is not None:
            result.requeue(decision.requeue_after)
        new["download"] = decision.download
        if decision.verified:
            new.pop("commit", None)
            new.update(decision.verified)
        return decision.ready

    def _observe_download(self, rc: ResolvedCache, owner: Owner, old: Obj, new: Obj) -> download.Observed:
        """Read what the download decision needs: the Job, its pods, and only when they matter, the
        running pod's progress line and the Job's FailedCreate Event."""
        previous = old.get("download") or {}
        base = render.download_job_name(rc, 0)
        same_key = str(previous.get("jobName", "")).startswith(base)
        attempt = int(previous.get("attempt", 0)) if same_key else 0
        job_name = render.download_job_name(rc, attempt)
        job = self.kube.get("Job", rc.namespace, job_name)
        if job is not None and not controlled_by(job, owner):
            raise NameConflict(conflict_message("Job", job, owner_kind=CACHE_KIND))
        pods = (
            self.kube.list("Pod", rc.namespace, {**render.selector(rc, COMPONENT_DOWNLOAD), "job-name": job_name})
            if job is not None
            else []
        )
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        newest = max(running, key=lambda p: p["metadata"].get("creationTimestamp", "")) if running else None
        progress = self._progress(newest) if newest is not None else {}
        refused = self.kube.failed_create_message(rc.namespace, "Job", job_name) if job is not None and not pods else ""
        return download.Observed(
            repo=rc.repo,
            revision=rc.revision,
            claim_name=rc.claim_name,
            job_name=job_name,
            next_job_name=render.download_job_name(rc, attempt + 1),
            attempt=attempt,
            job=job,
            pods=tuple(pods),
            previous=previous,
            same_key=same_key,
            commits=tuple(new.get("commits") or ()),
            serving_commit=new.get("commit"),
            progress=progress,
            refused=refused,
            now=self.clock(),
            retry_base_seconds=self.settings.retry_base_seconds,
            retry_max_seconds=self.settings.retry_max_seconds,
            progress_seconds=self.settings.progress_seconds,
        )

    def _create_download_job(self, rc: ResolvedCache, owner: Owner, attempt: int) -> None:
        job = render.download_job(
            rc, owner, self.settings.operator, attempt, self._beside(rc), self._compile_folders(rc)
        )
        self._ensure(job, owner)

    def _progress(self, pod: Obj) -> Obj:
        """Progress from the last progress line the downloader logged; {} when logs are unavailable.

        The log is the one thing no watch carries: read at most once per progress_seconds per pod.
        """
        meta = pod["metadata"]
        now = time.monotonic()
        last = self._progress_read.get(meta["uid"])
        if last and now - last[0] < self.settings.progress_seconds * 0.9:
            return last[1]
        progress: Obj = {}
        try:
            text = self.kube.log_tail(meta["namespace"], meta["name"], "download")
            for line in reversed(text.splitlines()):
                if line.startswith("{") and '"progress"' in line:
                    progress = parse_progress(line)
                    break
        except (ApiException, OSError, ValueError):
            pass
        with self._guard:
            if len(self._progress_read) > 4096:  # pods long gone: forget the oldest half
                for uid, _ in sorted(self._progress_read.items(), key=lambda kv: kv[1][0])[:2048]:
                    self._progress_read.pop(uid, None)
            self._progress_read[meta["uid"]] = (now, progress)
        return progress

    # ---- unused commits ---------------------------------------------------------------

    def _collect(self, rc: ResolvedCache, owner: Owner, new: Obj, old: Obj) -> None:
        """Prune commit folders no server loads and compile-cache folders no server mounts, once every server
        on the claim runs its current pod template (an older ReplicaSet may still use an older one)."""
        current = new.get("path")
        commits = new.get("commits") or []
        in_use = set(self._compile_folders(rc))
        known = sorted(set(old.get("compileFolders") or []) | in_use)
        if known:
            new["compileFolders"] = known
        stale = [c for c in commits if c.get("path") != current]
        servers = self.servers(rc.namespace, rc.claim_name)
        # A folder is superseded only while servers run: one of the resources that used it moved to another
        # image or layout. Without servers (all deleted or parked) the caches stay, as the weights do: the
        # next server starts warm. And not while a resource of the cache has no server yet.
        users = self.kube.indexed("MiniMaxDeployment", "cache", rc.namespace, rc.name)
        settled = bool(servers) and len(servers) >= len(users)
        unused_folders = [f for f in known if f not in in_use] if settled else []
        if not stale and not unused_folders:
            return
        if any(not rolled_out(d) for d in servers):
            return  # its rollout sends events
        used = {served_weights(d).get("path") for d in servers}
        for other in self.kube.list(CACHE_KIND, rc.namespace, {}):
            if other["metadata"]["name"] != rc.name and (other.get("status") or {}).get("claimName") == rc.claim_name:
                used |= {c.get("path") for c in (other.get("status") or {}).get("commits") or []}
        paths = sorted(str(c["path"]) for c in stale if c.get("path") not in used)
        if not paths and not unused_folders:
            return
        job_name = render.prune_job_name(rc, paths, unused_folders)
        job = self.kube.get("Job", rc.namespace, job_name)
        if job is None:
            self._ensure(
                render.prune_job(rc, owner, self.settings.operator, paths, self._beside(rc), unused_folders), owner
            )
            return
        if not controlled_by(job, owner):
            raise NameConflict(conflict_message("Job", job, owner_kind=CACHE_KIND))
        if download.job_condition(job, "Complete"):
            new["commits"] = [c for c in commits if c.get("path") not in paths]
            new["compileFolders"] = [f for f in known if f not in unused_folders]
            if not new["compileFolders"]:
                del new["compileFolders"]
        elif download.job_condition(job, "Failed"):
            what = ", ".join([*paths, *unused_folders])
            log.warning("%s/%s: pruning %s failed; the folders stay", rc.namespace, rc.name, what)

    # ---- deletion -----------------------------------------------------------------------

    def finalize(self, body: Obj) -> None:
        """On delete: held while any server uses the weights (like PVC protection), with a condition
        and an Event saying which; then the finalizer goes, and the claim with it only when
        retainOnDelete is false (its owner reference)."""
        meta = body["metadata"]
        with self._lock(meta["uid"]):
            users = self.users(meta["namespace"], meta["name"])
            if users:
                msg = (
                    f"deletion waits until no MiniMaxDeployment serves these weights: used by {_names(users)}; "
                    "delete them or point them at another cache"
                )
                old = body.get("status") or {}
                conds = [c for c in old.get("conditions") or [] if c.get("type") != "InUse"]
                blocked = st.true("InUse", "DeletionBlocked", msg)
                if not any(
                    c.get("type") == "InUse" and c.get("reason") == "DeletionBlocked" and c.get("message") == msg
                    for c in old.get("conditions") or []
                ):
                    merged = st.merge(
                        old.get("conditions") or [], [blocked], meta.get("generation", 1), iso(self.clock())
                    )
                    new = {**old, "conditions": [*conds, *merged], "users": users, "userCount": len(users)}
                    self._write_status(body, old, new)
                    self.kube.event(body, "Warning", "DeletionBlocked", msg)
                raise CacheInUse(msg)
            self.kube.remove_finalizer(body, FINALIZER)
            WRITES.labels(kind=f"{CACHE_KIND}/finalizer").inc()
        self._forget(meta["uid"])
        gauges.forget_cache(meta["namespace"], meta["name"])


def rolled_out(dep: Obj) -> bool:
    """Every pod of the Deployment runs its current template (no pod of an older one is left)."""
    s = dep.get("status") or {}
    want = (dep.get("spec") or {}).get("replicas", 1)
    return bool(
        s.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
        and s.get("updatedReplicas", 0) == want
        and s.get("replicas", 0) == want
    )


def _names(users: list[str], most: int = 10) -> str:
    """Users for a message: the first few, and how many more."""
    shown = ", ".join(users[:most])
    return shown + (f" and {len(users) - most} more" if len(users) > most else "")
