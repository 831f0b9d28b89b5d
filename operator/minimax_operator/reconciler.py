"""Reconcile one MiniMaxDeployment: compare desired with observed, apply the difference.

Level-triggered and idempotent: every call reads the world (from the watch caches
once the controller runs, see controller.py), applies only objects
whose live content no longer holds what the operator wants (drift.covers), and
writes status only when it differs. So a resync of a Ready resource makes no
mutating request, a hand edit of an owned field is reverted at the next resync,
and an operator restarted at any point converges without duplicates (every name it
creates is derived from the spec and status).

Ownership: an object the resource does not control (a user's Service of the same
name, a retained PVC of another model) is never patched, adopted or deleted. Every
child name is checked before anything is created, so a conflict costs no download.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from . import builders, chatos, quota
from . import status as st
from .api import CONDITION_TYPES, GROUP, MiniMaxDeploymentSpec
from .builders import HASH_ANNOTATION, OperatorSettings, Owner
from .drift import covers
from .kube import Conflict, Kube
from .metrics import RECONCILES, WRITES
from .ownership import NameConflict, conflict_message, controlled_by, ours, widest_mode
from .registration import Registrar
from .resolve import LayoutError, Resolved, check_storage, resolve

log = logging.getLogger(__name__)
Obj = dict[str, Any]
#: Holds a resource until its ChatOS entry is removed; kopf's finalizer of the same name.
FINALIZER = f"{GROUP}/finalizer"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Settings:
    """How this operator instance behaves (command-line flags)."""

    operator: OperatorSettings = field(default_factory=OperatorSettings)
    vllm_images: dict[str, str] = field(default_factory=dict)
    allow_chatos_namespaces: frozenset[str] = frozenset()
    create_chatos_configmap: bool = False
    #: Waits before a failed download Job is tried again: base * 2^attempt, capped.
    retry_base_seconds: int = 60
    retry_max_seconds: int = 1800
    #: While a download runs: how often its progress is read from the pod's log (one request).
    progress_seconds: float = 10.0


class Reconciler:
    def __init__(self, kube: Kube, settings: Settings, clock: Callable[[], dt.datetime] = utcnow):
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.registrar = Registrar(kube, settings.allow_chatos_namespaces, settings.create_chatos_configmap)
        #: (uid, hash) of objects whose live form never covers the desired one (a field the API server
        #: rewrites in a way drift.covers does not know): compared by hash only, so no apply loop.
        self._uncoverable: set[tuple[str, str]] = set()
        self._local = threading.local()
        #: pod uid -> (monotonic time, progress) of the last log read: at most one per progress_seconds.
        self._progress_read: dict[str, tuple[float, Obj]] = {}

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    # ---- entry points -----------------------------------------------------------------

    def reconcile(self, body: Obj) -> float | None:
        """Bring the cluster in line with one resource. Safe to call at any time, concurrently.

        Returns in how many seconds the resource wants another look although nothing it
        watches may change (download progress, a retry's back-off, a name someone else holds).
        """
        self._local.after = None
        with self._lock(body["metadata"]["uid"]):
            fresh = self.kube.get("MiniMaxDeployment", body["metadata"]["namespace"], body["metadata"]["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return None
            if fresh["metadata"]["uid"] != body["metadata"]["uid"]:
                return None  # deleted and created again under the same name: the new one has its own turn
            if FINALIZER not in (fresh["metadata"].get("finalizers") or []):
                # Nothing is created or registered before the finalizer is on: without it a delete
                # would skip finalize() and leave the ChatOS entry behind for good. We add it ourselves
                # (kopf's is the same name, and kopf would add it only after its own queue of
                # events), with the resourceVersion read: a change in between sends us back here.
                try:
                    fresh = self.kube.add_finalizer(fresh, FINALIZER)
                except Conflict:
                    return 0.0
                WRITES.labels(kind="MiniMaxDeployment/finalizer").inc()
            try:
                self._reconcile(fresh)
                RECONCILES.labels(result="ok").inc()
            except Exception:
                RECONCILES.labels(result="error").inc()
                raise
        after: float | None = self._local.after
        return after

    def _wake(self, seconds: float) -> None:
        """Ask for another look in `seconds` (the earliest request of a reconcile wins)."""
        current = self._local.after
        self._local.after = seconds if current is None else min(current, seconds)

    def finalize(self, body: Obj) -> None:
        """On delete: take the model out of ChatOS. Weights stay unless retainOnDelete is false.

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
        with self._guard:
            self._locks.pop(meta["uid"], None)  # the resource is going away: keep no state for it

    # ---- the steps ----------------------------------------------------------------------

    def _reconcile(self, body: Obj) -> None:
        meta = body["metadata"]
        ns, name, gen = meta["namespace"], meta["name"], meta.get("generation", 1)
        old = body.get("status") or {}
        new: Obj = {"observedGeneration": gen}
        try:
            spec = MiniMaxDeploymentSpec.model_validate(body.get("spec") or {})
            r = resolve(name, ns, spec, self.settings.vllm_images)
        except (ValidationError, LayoutError) as e:
            reason = "LayoutInvalid" if isinstance(e, LayoutError) else "InvalidSpec"
            msg = str(e)
            conds = [
                st.false("WeightsReady", reason, msg),
                st.unknown("ServerReady", "WaitingForWeights"),
                st.unknown("Registered", "WaitingForServer"),
            ]
            self._finish(body, old, new, conds, replicas=0)
            return
        new.update(model=r.model_label, servedModelName=r.served_model_name, tensorParallelSize=r.tensor_parallel_size)
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
            r = self._preflight(body, r, old)
            weights = self._weights(r, owner, old, new)
            server = self._server(r, owner, weights.status == "True", new)
        except (NameConflict, _QuotaExceeded, LayoutError) as e:
            if isinstance(e, NameConflict):
                # Not our server: whatever answers under that name must not be in ChatOS as this model.
                for target in self.registrar.targets(body):
                    # A file broken by hand cannot be edited now; the next resync tries again.
                    with contextlib.suppress(chatos.ChatOSConfigError):
                        self.registrar.unregister(target, f"{ns}/{name}")
                new.pop("endpoint", None)
            reason = {NameConflict: "NameConflict", _QuotaExceeded: "QuotaExceeded"}.get(type(e), "LayoutInvalid")
            if isinstance(e, NameConflict):
                self._wake(30)  # someone else's object is not in our caches: its removal sends no event
            conds = [
                st.false("WeightsReady", reason, str(e)),
                st.unknown("ServerReady", "WaitingForWeights"),
                st.unknown("Registered", "WaitingForServer"),
            ]
            if old.get("download") and "download" not in new:
                new["download"] = old["download"]  # keep the record of what was downloaded
            self._finish(body, old, new, conds, replicas=0)
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
        for c in st.transitions(old.get("conditions") or [], conds):
            if c.type == "Ready" and c.status != "True":
                continue  # Ready repeats the condition that explains it, which has its own Event
            kind = "Warning" if c.status == "False" and c.failed else "Normal"
            meta = body["metadata"]
            log.info("%s/%s %s=%s %s: %s", meta["namespace"], meta["name"], c.type, c.status, c.reason, c.message)
            self.kube.event(body, kind, c.reason, f"{c.type}={c.status}: {c.message}" if c.message else c.type)

    def _write_status(self, body: Obj, old: Obj, new: Obj) -> None:
        if new == old:
            return
        patch = dict(new)
        for key in old:  # merge patch: removed keys must be nulled explicitly
            patch.setdefault(key, None)
        self.kube.patch_status(body["metadata"]["namespace"], body["metadata"]["name"], patch)
        WRITES.labels(kind="MiniMaxDeployment/status").inc()

    def _ensure(self, want: Obj, owner: Owner) -> Obj:
        """Apply `want` unless the live object already holds it; never touch an object we do not control."""
        meta = want["metadata"]
        have = self.kube.get(want["kind"], meta["namespace"], meta["name"], before_create=True)
        if have is not None:
            if not ours(have, owner, want):
                raise NameConflict(conflict_message(want["kind"], have))
            wanted_hash = meta["annotations"][HASH_ANNOTATION]
            have_hash = (have["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
            known_rewrite = (have["metadata"]["uid"], wanted_hash) in self._uncoverable
            if covers(have, want) or (known_rewrite and have_hash == wanted_hash):
                return have
            # Optimistic concurrency: if the object was replaced since we read it, the apply fails (409).
            want = {**want, "metadata": {**meta, "resourceVersion": have["metadata"]["resourceVersion"]}}
        WRITES.labels(kind=want["kind"]).inc()
        result = self.kube.apply(want)
        if not covers(result, {**want, "metadata": meta}):
            key = (result["metadata"]["uid"], meta["annotations"][HASH_ANNOTATION])
            if key not in self._uncoverable:
                log.warning(
                    "%s %s: the API server rewrites an owned field; drift is checked by hash",
                    want["kind"],
                    meta["name"],
                )
                self._uncoverable.add(key)
        return result

    def _quotas(self, r: Resolved) -> list[Obj]:
        return self.kube.list("ResourceQuota", r.namespace, {})

    def _needs(self, r: Resolved, with_storage: bool = False, with_server: bool = True) -> dict[str, Any]:
        creates_claim = with_storage and not r.spec.storage.existingClaim
        replicas = r.spec.replicas if with_server else 0
        return quota.needs(
            r.spec.gpu.resourceName,
            gpus=r.tensor_parallel_size * replicas,
            pods=max(replicas, 1),
            storage=r.storage_size if creates_claim else None,
            storage_class=r.spec.storage.storageClassName,
        )

    def _quota_full(self, r: Resolved, wanted: dict[str, Any]) -> str:
        """Quota that others use up for now: the numbers, or '' when it fits."""
        short = quota.shortfalls(self._quotas(r), wanted)
        return "; ".join(map(str, short)) + ": waiting for quota to free" if short else ""

    def _preflight(self, body: Obj, r: Resolved, old: Obj) -> Resolved:
        """Check every child name and the claim before anything is created or downloaded.

        Raises NameConflict naming each object this resource does not control, or
        LayoutError when an existing claim's access modes cannot carry the replicas.
        Returns `r` with the existing claim's access mode filled in.
        """
        owner = Owner(name=r.name, uid=body["metadata"]["uid"])
        problems = []
        claim = self.kube.get("PersistentVolumeClaim", r.namespace, r.claim_name)
        want_pvc = builders.pvc(r, owner)
        if claim is not None and want_pvc is not None and not ours(claim, owner, want_pvc, old):
            problems.append(conflict_message("PersistentVolumeClaim", claim, pvc_hint=True))
        probes: list[tuple[str, str, Obj]] = [
            ("Deployment", r.name, builders.deployment(r, owner)),
            ("Service", r.service_name, builders.service(r, owner)),
        ]
        dl = old.get("download") or {}
        job_name = str(dl.get("jobName") or builders.download_job_name(r, 0))
        probes.append(("Job", job_name, builders.download_job(r, owner, self.settings.operator)))
        for kind, obj_name, want in probes:
            have = self.kube.get(kind, r.namespace, obj_name)
            if have is not None and not ours(have, owner, want):
                problems.append(conflict_message(kind, have))
        if problems:
            raise NameConflict("; ".join(problems))
        never = [q for q in quota.shortfalls(self._quotas(r), self._needs(r, with_storage=True)) if q.never_fits]
        if never:
            raise _QuotaExceeded(
                "; ".join(map(str, never)) + ": this resource can never fit the namespace's quota; "
                "ask for a larger quota or use fewer GPUs (tensorParallelSize, replicas) or less storage"
            )
        if r.spec.storage.existingClaim and claim is not None:
            modes = list((claim.get("spec") or {}).get("accessModes") or [])
            check_storage(r, modes)
            r = dataclasses.replace(r, claim_access_mode=modes[0] if len(modes) == 1 else widest_mode(modes))
        return r

    # weights ------------------------------------------------------------------------------

    def _weights(self, r: Resolved, owner: Owner, old: Obj, new: Obj) -> st.Cond:
        want_pvc = builders.pvc(r, owner)
        if want_pvc is not None:
            if self.kube.get("PersistentVolumeClaim", r.namespace, r.claim_name) is None:
                full = self._quota_full(r, self._needs(r, with_storage=True, with_server=False))
                if full:
                    self._wake(60)  # quota changes send events; this is the safety net
                    return st.false("WeightsReady", "QuotaFull", full)
            try:
                self._ensure(want_pvc, owner)
            except ApiException as e:
                self._wake(30)
                return st.false("WeightsReady", "ApplyFailed", f"PVC {r.claim_name}: {_api_message(e)}")
        elif self.kube.get("PersistentVolumeClaim", r.namespace, r.claim_name) is None:
            self._wake(30)  # the user's claim carries none of our labels: its creation queues nothing
            return st.false(
                "WeightsReady", "ClaimNotFound", f"spec.storage.existingClaim: PVC {r.claim_name} does not exist"
            )

        dl_old = old.get("download") or {}
        base = builders.download_job_name(r, 0)
        same_weights = str(dl_old.get("jobName", "")).startswith(base)
        attempt = int(dl_old.get("attempt", 0)) if same_weights else 0
        last_failure = dl_old.get("lastFailureTime") if same_weights else None
        job_name = builders.download_job_name(r, attempt)
        dl: Obj = {"jobName": job_name, "attempt": attempt}
        if last_failure:
            dl["lastFailureTime"] = last_failure
        new["download"] = dl

        job = self.kube.get("Job", r.namespace, job_name)
        if job is None:
            job = self._ensure(
                builders.download_job(r, owner, self.settings.operator, attempt, self._server_running(r)), owner
            )
        elif not controlled_by(job, owner):
            raise NameConflict(conflict_message("Job", job))
        job_pods = {**builders.selector(r, builders.COMPONENT_DOWNLOAD), "job-name": job_name}
        pods = self.kube.list("Pod", r.namespace, job_pods)
        done = _job_condition(job, "Complete")
        failed = _job_condition(job, "Failed")
        self._delete_stale_jobs(r, owner, job_name, keep_older_attempts=not done)

        if done:
            result = _parse_result(st.terminated_message(pods, "Succeeded"))
            dl.update({k: v for k, v in result.items() if k in ("revision", "filesTotal", "bytesTotal")})
            dl.pop("lastFailureTime", None)
            if dl.get("bytesTotal"):
                dl.update(bytesDone=dl["bytesTotal"], progress="100%")
            if dl.get("filesTotal"):
                dl["filesDone"] = dl["filesTotal"]
            rev = f" at revision {dl['revision']}" if dl.get("revision") else ""
            return st.true("WeightsReady", "Downloaded", f"weights of {r.repo}{rev} verified in PVC {r.claim_name}")
        if failed:
            reason_text = _failure_text(st.terminated_message(pods, "Failed")) or failed.get(
                "message", "the download Job failed"
            )
            failed_at = dl.get("lastFailureTime") or iso(self.clock())
            dl["lastFailureTime"] = failed_at
            wait = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2**attempt)
            retry_at = _parse_time(failed_at) + dt.timedelta(seconds=wait)
            if self.clock() >= retry_at:
                dl["attempt"] = attempt + 1
                dl["jobName"] = builders.download_job_name(r, attempt + 1)
                dl.pop("lastFailureTime", None)
                self._ensure(
                    builders.download_job(r, owner, self.settings.operator, attempt + 1, self._server_running(r)),
                    owner,
                )
                return st.false("WeightsReady", "Downloading", f"retrying after: {reason_text}")
            self._wake((retry_at - self.clock()).total_seconds() + 1)
            return st.false("WeightsReady", "DownloadFailed", f"{reason_text} (retry {attempt + 1} at {iso(retry_at)})")
        problem = st.pod_problem(pods)
        if problem:
            return st.false("WeightsReady", problem[0], problem[1])
        if not pods:
            self._wake(5)  # a refused pod leaves only an Event, which is not watched
            refused = self.kube.failed_create_message(r.namespace, "Job", job_name)
            if refused:
                reason, text = st.creation_failure(refused)
                return st.false("WeightsReady", reason, f"download Job {job_name} cannot create its pod: {text}")
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
        if running:
            newest = max(running, key=lambda p: p["metadata"].get("creationTimestamp", ""))
            self._wake(self.settings.progress_seconds)
            dl.update(self._progress(newest) or _kept_progress(dl_old))
            pct = f" ({dl['progress']})" if dl.get("progress") else ""
            return st.false("WeightsReady", "Downloading", f"downloading {r.repo} into PVC {r.claim_name}{pct}")
        if any(p.get("status", {}).get("phase") == "Succeeded" for p in pods):
            # The pod is done; the Job controller marks the Job Complete a moment later. Not "waiting".
            dl.update(_kept_progress(dl_old))
            return st.false("WeightsReady", "Downloading", f"download of {r.repo} finished; Job {job_name} completing")
        return st.false("WeightsReady", "Pending", f"download Job {job_name} is waiting for its pod")

    def _progress(self, pod: Obj) -> Obj:
        """Progress from the last JSON line the downloader logged; {} when logs are unavailable.

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
                    progress = st.progress(line)
                    break
        except (ApiException, OSError, ValueError):
            pass
        with self._guard:
            if len(self._progress_read) > 4096:  # pods long gone: forget the oldest half
                for uid, _ in sorted(self._progress_read.items(), key=lambda kv: kv[1][0])[:2048]:
                    self._progress_read.pop(uid, None)
            self._progress_read[meta["uid"]] = (now, progress)
        return progress

    def _delete_stale_jobs(self, r: Resolved, owner: Owner, current: str, keep_older_attempts: bool) -> None:
        jobs = self.kube.list("Job", r.namespace, {**builders.selector(r, builders.COMPONENT_DOWNLOAD)})
        for job in jobs:
            job_name = job["metadata"]["name"]
            if job_name == current or not controlled_by(job, owner):
                continue  # never delete a Job this resource does not control, even one with our labels
            same_key = (job["metadata"].get("annotations") or {}).get(builders.WEIGHTS_ANNOTATION) == r.weights_key
            if same_key and keep_older_attempts:
                continue  # keep a failed attempt's pods (and logs) until a newer one succeeds
            self.kube.delete("Job", r.namespace, job_name)
            WRITES.labels(kind="Job/delete").inc()

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
            return st.false("ServerReady", "ApplyFailed", _api_message(e))
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


class _QuotaExceeded(Exception):
    """The namespace's quota can never hold this resource."""


def _failure_text(message: str) -> str:
    """`Reason: message` from the downloader's JSON termination message; other text as it is."""
    parsed = _parse_result(message)
    if parsed.get("reason"):
        return f"{parsed['reason']}: {parsed.get('message', '')}"
    return message


def _kept_progress(dl_old: Obj) -> Obj:
    """Keep the last known progress when the log cannot be read this time."""
    keys = (
        "bytesDone",
        "bytesTotal",
        "filesDone",
        "filesTotal",
        "bytesPerSecond",
        "etaSeconds",
        "revision",
        "progress",
    )
    return {k: dl_old[k] for k in keys if k in dl_old}


def _job_condition(job: Obj, type_: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def _parse_result(message: str) -> Obj:
    try:
        out = json.loads(message)
        return out if isinstance(out, dict) else {}
    except json.JSONDecodeError:
        return {}


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "").get("message", e.reason))
    except (TypeError, ValueError):
        return str(e.reason)
