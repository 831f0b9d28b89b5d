"""What the reconcilers of both kinds share: applying without drift, status writes, Events.

Level-triggered and idempotent: a reconcile reads the world (the watch caches once the
controller runs), applies only objects whose live content no longer holds what the
operator wants (drift.covers), and writes status only when it differs. Objects the
resource does not control are never patched, adopted or deleted (ownership.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import status as st
from .api import GROUP
from .builders import HASH_ANNOTATION, OperatorSettings, Owner
from .drift import covers
from .kube import Conflict, Kube
from .metrics import RECONCILES, WRITES
from .ownership import NameConflict, conflict_message, ours

log = logging.getLogger(__name__)
Obj = dict[str, Any]
#: Holds a resource until its cleanup is done; kopf's finalizer of the same name.
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


class Base:
    """Locks, requeue requests, drift-free applies and status writes, for one kind."""

    kind = ""

    def __init__(self, kube: Kube, settings: Settings, clock: Callable[[], dt.datetime] = utcnow):
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        #: (uid, hash) of objects whose live form never covers the desired one (a field the API server
        #: rewrites in a way drift.covers does not know): compared by hash only, so no apply loop.
        self._uncoverable: set[tuple[str, str]] = set()
        self._local = threading.local()
        #: pod uid -> (monotonic time, progress) of the last log read: at most one per progress_seconds.
        self._progress_read: dict[str, tuple[float, Obj]] = {}

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def _forget(self, uid: str) -> None:
        with self._guard:
            self._locks.pop(uid, None)

    def reconcile(self, body: Obj) -> float | None:
        """Bring the cluster in line with one resource. Safe to call at any time, concurrently.

        Returns in how many seconds the resource wants another look although nothing it
        watches may change (download progress, a retry's back-off, a name someone else holds).
        """
        self._local.after = None
        self._local.status_changed = False
        meta = body["metadata"]
        with self._lock(meta["uid"]):
            fresh = self.kube.get(self.kind, meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return None
            if fresh["metadata"]["uid"] != meta["uid"]:
                return None  # deleted and created again under the same name: the new one has its own turn
            if FINALIZER not in (fresh["metadata"].get("finalizers") or []):
                # Nothing is created before the finalizer is on: without it a delete would skip the
                # cleanup. We add it ourselves (kopf's is the same name, and kopf would add it only
                # after its own queue of events), with the resourceVersion read.
                try:
                    fresh = self.kube.add_finalizer(fresh, FINALIZER)
                except Conflict:
                    return 0.0
                WRITES.labels(kind=f"{self.kind}/finalizer").inc()
            try:
                self._reconcile(fresh)
                RECONCILES.labels(result="ok").inc()
            except Exception:
                RECONCILES.labels(result="error").inc()
                raise
        after: float | None = self._local.after
        return after

    @property
    def status_changed(self) -> bool:
        """Whether the last reconcile on this thread wrote the resource's status."""
        return bool(getattr(self._local, "status_changed", False))

    def _reconcile(self, body: Obj) -> None:
        raise NotImplementedError

    def _wake(self, seconds: float) -> None:
        """Ask for another look in `seconds` (the earliest request of a reconcile wins)."""
        current = self._local.after
        self._local.after = seconds if current is None else min(current, seconds)

    def _write_status(self, body: Obj, old: Obj, new: Obj) -> None:
        if new == old:
            return
        patch = merge_patch(old, new)
        self.kube.patch_status(self.kind, body["metadata"]["namespace"], body["metadata"]["name"], patch)
        self._local.status_changed = True
        WRITES.labels(kind=f"{self.kind}/status").inc()

    def _events(self, body: Obj, old: Obj, conds: list[st.Cond]) -> None:
        """A Normal or Warning Event per condition that changed, as `kubectl describe` shows them."""
        for c in st.transitions(old.get("conditions") or [], conds):
            if c.type == "Ready" and c.status != "True":
                continue  # Ready repeats the condition that explains it, which has its own Event
            kind = "Warning" if c.status == "False" and c.failed else "Normal"
            meta = body["metadata"]
            log.info("%s/%s %s=%s %s: %s", meta["namespace"], meta["name"], c.type, c.status, c.reason, c.message)
            self.kube.event(body, kind, c.reason, f"{c.type}={c.status}: {c.message}" if c.message else c.type)

    def _ensure(self, want: Obj, owner: Owner) -> Obj:
        """Apply `want` unless the live object already holds it; never touch an object we do not control."""
        meta = want["metadata"]
        have = self.kube.get(want["kind"], meta["namespace"], meta["name"], before_create=True)
        if have is not None:
            if not ours(have, owner, want):
                raise NameConflict(conflict_message(want["kind"], have, owner_kind=owner.kind))
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


def merge_patch(old: Obj, new: Obj) -> Obj:
    """A JSON merge patch (RFC 7386) that turns `old` into `new`.

    Merge patches merge nested objects: a key dropped from a nested object (a finished
    download's progress, say) must be nulled explicitly, or it would outlive its meaning.
    """
    patch: Obj = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            if value != before:
                patch[key] = merge_patch(before, value)
        elif value != before or key not in old:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


class QuotaExceeded(Exception):
    """The namespace's quota can never hold this resource."""


def failure_text(message: str) -> str:
    """`Reason: message` from the downloader's JSON termination message; other text as it is."""
    parsed = parse_result(message)
    if parsed.get("reason"):
        return f"{parsed['reason']}: {parsed.get('message', '')}"
    return message


PROGRESS_KEYS = (
    "bytesDone",
    "bytesTotal",
    "filesDone",
    "filesTotal",
    "bytesPerSecond",
    "etaSeconds",
    "revision",
    "progress",
)


def kept_progress(dl_old: Obj) -> Obj:
    """Keep the last known progress when the log cannot be read this time."""
    return {k: dl_old[k] for k in PROGRESS_KEYS if k in dl_old}


def job_condition(job: Obj, type_: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def parse_result(message: str) -> Obj:
    try:
        out = json.loads(message)
        return out if isinstance(out, dict) else {}
    except json.JSONDecodeError:
        return {}


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "").get("message", e.reason))
    except (TypeError, ValueError):
        return str(e.reason)
