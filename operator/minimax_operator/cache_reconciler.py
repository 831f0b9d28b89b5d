"""Reconcile one MiniMaxModelCache: its claim, the download of its revision, unused commits.

The cache is the one place a model's weights are downloaded, verified and kept, for
every MiniMaxDeployment of the namespace that serves them. Each commit has its own
folder; `status.commit`/`status.path` move to a new commit only once it is verified, so
servers never load a half-downloaded revision, and an older commit's folder is pruned
only when every server on the claim has rolled to the current one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from . import builders, quota, weights
from . import status as st
from .api import CACHE_KIND, MiniMaxModelCacheSpec
from .builders import Owner
from .indexes import caches_named, served_weights
from .metrics import WRITES
from .ownership import NameConflict, conflict_message, controlled_by, ours, widest_mode
from .presets import PRESETS
from .reconcile_base import (
    Base,
    QuotaExceeded,
    api_message,
    failure_text,
    iso,
    job_condition,
    kept_progress,
    parse_result,
    parse_time,
)
from .resolve import LayoutError, ResolvedCache, resolve_cache

log = logging.getLogger(__name__)
Obj = dict[str, Any]


#: Names in status.users (userCount has them all): a status stays small with a thousand users.
MAX_USERS_LISTED = 100


def _served(status: Obj) -> Obj:
    """The part of a cache's status its users read (everything but who uses it)."""
    out = {k: v for k, v in status.items() if k not in ("users", "userCount", "conditions")}
    out["ready"] = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return out


class CacheInUse(Exception):
    """A cache that servers still use cannot be deleted yet."""


def rolled_out(dep: Obj) -> bool:
    """Every pod of the Deployment runs its current template (no pod of an older one is left)."""
    s = dep.get("status") or {}
    want = (dep.get("spec") or {}).get("replicas", 1)
    return bool(
        s.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
        and s.get("updatedReplicas", 0) == want
        and s.get("replicas", 0) == want
    )


def uses(mmd: Obj, cache: str) -> bool:
    return cache in caches_named(mmd)


class CacheReconciler(Base):
    kind = CACHE_KIND

    # ---- who uses it --------------------------------------------------------------------

    def servers(self, namespace: str, claim: str) -> list[Obj]:
        """Server Deployments (ours) that load weights from this claim."""
        return self.kube.indexed("Deployment", "claim", namespace, claim)

    def users(self, namespace: str, name: str) -> list[str]:
        """MiniMaxDeployments that serve (or are about to serve) these weights, by name."""
        names = {m["metadata"]["name"] for m in self.kube.indexed("MiniMaxDeployment", "cache", namespace, name)}
        for d in self.kube.indexed("Deployment", "cache", namespace, name):
            names.add((d["metadata"].get("labels") or {}).get(builders.OWNER_LABEL, d["metadata"]["name"]))
        return sorted(names)

    # ---- the steps ----------------------------------------------------------------------

    def _reconcile(self, body: Obj) -> None:
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
        except (ValidationError, LayoutError) as e:
            reason = "LayoutInvalid" if isinstance(e, LayoutError) else "InvalidSpec"
            self._finish(body, old, new, [st.false("Ready", reason, str(e)), in_use])
            return
        new.update(repo=rc.repo, revision=rc.revision, claimName=rc.claim_name)
        if rc.storage_size:
            new["size"] = rc.storage_size
        if old.get("repo") in (None, rc.repo):  # what servers load stays until a newer commit is verified
            for key in ("commit", "path", "commits"):
                if old.get(key):
                    new[key] = old[key]
        if not old:
            # First sight: say so at once (no Event: nothing happened yet), then do the work
            # behind other new resources.
            first = [st.unknown("Ready", "Pending", "checking names, quota and storage"), in_use]
            new["conditions"] = st.merge([], first, gen, iso(self.clock()))
            new["phase"] = "Pending"
            self._write_status(body, old, new)
            self._local.served_changed = True
            self._wake(0)
            return
        owner = weights.cache_owner(name, meta["uid"])
        try:
            rc = self._preflight(rc, owner, old)
            ready = self._download(rc, owner, old, new)
            if ready.status == "True":
                self._collect(rc, owner, new)
        except (NameConflict, QuotaExceeded, LayoutError) as e:
            reason = {NameConflict: "NameConflict", QuotaExceeded: "QuotaExceeded"}.get(type(e), "LayoutInvalid")
            if isinstance(e, NameConflict):
                self._wake(30)  # someone else's object is not in our caches: its removal sends no event
            if old.get("download") and "download" not in new:
                new["download"] = old["download"]
            ready = st.false("Ready", reason, str(e))
        self._finish(body, old, new, [ready, in_use])

    def _finish(self, body: Obj, old: Obj, new: Obj, conds: list[st.Cond]) -> None:
        gen = new["observedGeneration"]
        new["conditions"] = st.merge(old.get("conditions") or [], conds, gen, iso(self.clock()))
        ready = conds[0]
        if ready.status == "True":
            new["phase"] = "Ready"
        elif ready.failed:
            new["phase"] = "Failed"
        elif ready.reason in ("Downloading", "DownloadFailed"):
            new["phase"] = "Downloading"
        else:
            new["phase"] = "Pending"
        self._write_status(body, old, new)
        self._local.served_changed = _served(old) != _served(new)
        self._events(body, old, conds)

    @property
    def served_changed(self) -> bool:
        """Whether the last reconcile on this thread changed what the cache's users read from it
        (not merely its list of users): only then are they queued."""
        return bool(getattr(self._local, "served_changed", False))

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
        want = weights.claim(rc, owner)
        if claim is not None and want is not None and not ours(claim, owner, want):
            problems.append(conflict_message("PersistentVolumeClaim", claim, pvc_hint=True, owner_kind=CACHE_KIND))
        dl = old.get("download") or {}
        job_name = str(dl.get("jobName") or weights.download_job_name(rc, 0))
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
        if rc.access_mode != "ReadWriteOnce":
            return ()
        running = [d for d in self.servers(rc.namespace, rc.claim_name) if (d.get("spec") or {}).get("replicas")]
        return tuple(sorted({d["metadata"]["name"] for d in running}))

    def _server_caches(self, rc: ResolvedCache) -> tuple[str, ...]:
        """Cache folders of the vLLM images that will load these weights (created writable by any user)."""
        if rc.access_mode == "ReadOnlyMany":
            return ()
        images = set()
        if rc.spec.model:
            images.add(self.settings.vllm_images.get(rc.spec.model) or PRESETS[rc.spec.model].vllm_image)
        for d in self.servers(rc.namespace, rc.claim_name):
            for c in d["spec"]["template"]["spec"].get("containers") or []:
                if c.get("name") == "vllm" and c.get("image"):
                    images.add(c["image"])
        return tuple(sorted(builders.image_cache_folder(i) for i in images))

    def _download(self, rc: ResolvedCache, owner: Owner, old: Obj, new: Obj) -> st.Cond:
        want_claim = weights.claim(rc, owner)
        if want_claim is not None:
            if self.kube.get("PersistentVolumeClaim", rc.namespace, rc.claim_name) is None:
                short = quota.shortfalls(self._quotas(rc.namespace), self._needs(rc))
                if short:
                    self._wake(60)  # quota changes send events; this is the safety net
                    return st.false("Ready", "QuotaFull", "; ".join(map(str, short)) + ": waiting for quota to free")
            try:
                self._ensure(want_claim, owner)
            except ApiException as e:
                self._wake(30)
                return st.false("Ready", "ApplyFailed", f"PVC {rc.claim_name}: {api_message(e)}")
        elif self.kube.get("PersistentVolumeClaim", rc.namespace, rc.claim_name) is None:
            self._wake(30)  # the user's claim carries none of our labels: its creation queues nothing
            return st.false("Ready", "ClaimNotFound", f"spec.storage.existingClaim: PVC {rc.claim_name} does not exist")
        if rc.access_mode:
            new["accessMode"] = rc.access_mode

        dl_old = old.get("download") or {}
        base = weights.download_job_name(rc, 0)
        same_key = str(dl_old.get("jobName", "")).startswith(base)
        attempt = int(dl_old.get("attempt", 0)) if same_key else 0
        last_failure = dl_old.get("lastFailureTime") if same_key else None
        job_name = weights.download_job_name(rc, attempt)
        dl: Obj = {"jobName": job_name, "attempt": attempt}
        if last_failure:
            dl["lastFailureTime"] = last_failure
        new["download"] = dl
        serving = f"; servers keep commit {str(new['commit'])[:12]} until it is verified" if new.get("commit") else ""

        job = self.kube.get("Job", rc.namespace, job_name)
        if job is None:
            job = self._ensure(
                weights.download_job(
                    rc, owner, self.settings.operator, attempt, self._beside(rc), self._server_caches(rc)
                ),
                owner,
            )
        elif not controlled_by(job, owner):
            raise NameConflict(conflict_message("Job", job, owner_kind=CACHE_KIND))
        pods = self.kube.list(
            "Pod", rc.namespace, {**weights.selector(rc, builders.COMPONENT_DOWNLOAD), "job-name": job_name}
        )
        done = job_condition(job, "Complete")
        failed = job_condition(job, "Failed")
        self._delete_stale_jobs(rc, owner, job_name, keep_older_attempts=not done)

        if done:
            if same_key and dl_old.get("jobName") == job_name and dl_old.get("path"):
                result = {k: dl_old[k] for k in ("revision", "path", "filesTotal", "bytesTotal") if k in dl_old}
            else:  # read once: the pods (and their termination messages) may be gone later
                result = parse_result(st.terminated_message(pods, "Succeeded"))
            if not result.get("path"):
                # Its pod is gone with the result (node lost, pod collected): run it again; it finds
                # the verified folder and says where it is, without downloading a byte.
                self.kube.delete("Job", rc.namespace, job_name)
                WRITES.labels(kind="Job/delete").inc()
                self._wake(1)
                return st.false("Ready", "Downloading", f"checking the download of {rc.repo} {rc.revision} again")
            path = str(result["path"])
            commit = result.get("revision")
            dl.update({k: result[k] for k in ("revision", "filesTotal", "bytesTotal") if result.get(k) is not None})
            dl["path"] = path
            dl.pop("lastFailureTime", None)
            if dl.get("bytesTotal"):
                dl.update(bytesDone=dl["bytesTotal"], progress="100%")
            if dl.get("filesTotal"):
                dl["filesDone"] = dl["filesTotal"]
            verified_at = (job.get("status") or {}).get("completionTime")
            found = [f for f in result.get("found") or [] if isinstance(f, dict) and f.get("path")]
            new["commits"] = _merge_commits(
                new.get("commits") or [],
                [
                    *found,
                    {"commit": commit, "path": path, "bytes": dl.get("bytesTotal"), "files": dl.get("filesTotal")},
                ],
                verified_at,
            )
            new["commit"], new["path"] = commit, path
            if commit is None:
                new.pop("commit")
            at = f" commit {commit[:12]}" if commit else ""
            return st.true(
                "Ready", "Downloaded", f"{rc.repo} {rc.revision}{at} verified in PVC {rc.claim_name}, folder {path}"
            )
        if failed:
            reason_text = failure_text(st.terminated_message(pods, "Failed")) or failed.get(
                "message", "the download Job failed"
            )
            failed_at = dl.get("lastFailureTime") or iso(self.clock())
            dl["lastFailureTime"] = failed_at
            wait = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2**attempt)
            retry_at = parse_time(failed_at) + dt.timedelta(seconds=wait)
            if self.clock() >= retry_at:
                dl["attempt"] = attempt + 1
                dl["jobName"] = weights.download_job_name(rc, attempt + 1)
                dl.pop("lastFailureTime", None)
                self._ensure(
                    weights.download_job(
                        rc, owner, self.settings.operator, attempt + 1, self._beside(rc), self._server_caches(rc)
                    ),
                    owner,
                )
                return st.false("Ready", "Downloading", f"retrying after: {reason_text}{serving}")
            self._wake((retry_at - self.clock()).total_seconds() + 1)
            return st.false(
                "Ready", "DownloadFailed", f"{reason_text} (retry {attempt + 1} at {iso(retry_at)}){serving}"
            )
        problem = st.pod_problem(pods)
        if problem:
            return st.false("Ready", problem[0], problem[1] + serving)
        if not pods:
            self._wake(5)  # a refused pod leaves only an Event, which is not watched
            refused = self.kube.failed_create_message(rc.namespace, "Job", job_name)
            if refused:
                reason, text = st.creation_failure(refused)
                return st.false("Ready", reason, f"download Job {job_name} cannot create its pod: {text}")
        # A pod that failed while the Job still retries (backoffLimit): its reason now, not once
        # the Job gives up minutes later (a gated repo took 2.5 min to say so on the real node).
        failed_pod = failure_text(st.terminated_message(pods, "Failed"))
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
        if running:
            newest = max(running, key=lambda p: p["metadata"].get("creationTimestamp", ""))
            self._wake(self.settings.progress_seconds)
            dl.update(self._progress(newest) or kept_progress(dl_old if same_key else {}))
            pct = f" ({dl['progress']})" if dl.get("progress") else ""
            doing = f"downloading {rc.repo} {rc.revision} into PVC {rc.claim_name}{pct}"
            if failed_pod:
                return st.false("Ready", "DownloadRetrying", f"{doing} after a failed pod: {failed_pod}{serving}")
            return st.false("Ready", "Downloading", f"{doing}{serving}")
        if failed_pod and not any(p.get("status", {}).get("phase") == "Succeeded" for p in pods):
            text = f"a pod of Job {job_name} failed: {failed_pod}; the Job starts another{serving}"
            return st.false("Ready", "DownloadRetrying", text)
        if any(p.get("status", {}).get("phase") == "Succeeded" for p in pods):
            # The pod is done; the Job controller marks the Job Complete a moment later. Not "waiting".
            dl.update(kept_progress(dl_old if same_key else {}))
            return st.false("Ready", "Downloading", f"download of {rc.repo} finished; Job {job_name} completing")
        return st.false("Ready", "Pending", f"download Job {job_name} is waiting for its pod{serving}")

    def _delete_stale_jobs(self, rc: ResolvedCache, owner: Owner, current: str, keep_older_attempts: bool) -> None:
        jobs = self.kube.list("Job", rc.namespace, weights.selector(rc, builders.COMPONENT_DOWNLOAD))
        for job in jobs:
            job_name = job["metadata"]["name"]
            if job_name == current or not controlled_by(job, owner):
                continue  # never delete a Job this cache does not control, even one with our labels
            same_key = (job["metadata"].get("annotations") or {}).get(builders.WEIGHTS_ANNOTATION) == rc.key
            if same_key and keep_older_attempts:
                continue  # keep a failed attempt's pods (and logs) until a newer one succeeds
            self.kube.delete("Job", rc.namespace, job_name)
            WRITES.labels(kind="Job/delete").inc()

    # ---- unused commits ---------------------------------------------------------------

    def _collect(self, rc: ResolvedCache, owner: Owner, new: Obj) -> None:
        """Prune commit folders no server loads, once every server on the claim runs the current one."""
        current = new.get("path")
        commits = new.get("commits") or []
        stale = [c for c in commits if c.get("path") != current]
        if not stale:
            return
        servers = self.servers(rc.namespace, rc.claim_name)
        if any(not rolled_out(d) for d in servers):
            return  # an older ReplicaSet may still load an older folder; its rollout sends events
        used = {served_weights(d).get("path") for d in servers}
        for other in self.kube.list(CACHE_KIND, rc.namespace, {}):
            if other["metadata"]["name"] != rc.name and (other.get("status") or {}).get("claimName") == rc.claim_name:
                used |= {c.get("path") for c in (other.get("status") or {}).get("commits") or []}
        paths = sorted(str(c["path"]) for c in stale if c.get("path") not in used)
        if not paths:
            return
        job_name = weights.prune_job_name(rc, paths)
        job = self.kube.get("Job", rc.namespace, job_name)
        if job is None:
            self._ensure(weights.prune_job(rc, owner, self.settings.operator, paths, self._beside(rc)), owner)
            return
        if not controlled_by(job, owner):
            raise NameConflict(conflict_message("Job", job, owner_kind=CACHE_KIND))
        if job_condition(job, "Complete"):
            new["commits"] = [c for c in commits if c.get("path") not in paths]
        elif job_condition(job, "Failed"):
            log.warning("%s/%s: pruning %s failed; the folders stay", rc.namespace, rc.name, ", ".join(paths))

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
            self.kube.remove_finalizer(body, "minimax.chatos.io/finalizer")
            WRITES.labels(kind=f"{CACHE_KIND}/finalizer").inc()
        self._forget(meta["uid"])


def _names(users: list[str], most: int = 10) -> str:
    """Users for a message: the first few, and how many more."""
    shown = ", ".join(users[:most])
    return shown + (f" and {len(users) - most} more" if len(users) > most else "")


def _merge_commits(have: list[Obj], seen: list[Obj], verified_at: str | None) -> list[Obj]:
    """The verified commits, by folder: what the last download found or made is added, nothing is lost."""
    by_path = {c["path"]: c for c in have if c.get("path")}
    for c in seen:
        path = c.get("path")
        if not path or path in by_path:
            continue
        entry = {"path": path, **{k: c[k] for k in ("commit", "bytes", "files") if c.get(k) is not None}}
        if verified_at:
            entry["verifiedAt"] = verified_at
        by_path[path] = entry
    return sorted(by_path.values(), key=lambda c: (c.get("verifiedAt") or "", c["path"]))
