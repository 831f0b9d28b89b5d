"""What the reconcilers of both kinds share: the prologue, drift-free applies, and the status/Events finish.

Level-triggered and idempotent: a reconcile reads the world (the stores once informers
run), applies only objects whose live content no longer holds what the operator wants
(runtime.drift.covers), and writes status only when it differs. Objects the resource
does not control are never patched, adopted or deleted (ownership.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..api.names import FINALIZER, HASH_ANNOTATION
from ..render import status as st
from ..render.meta import Owner
from ..render.status import iso
from ..runtime.client import Conflict, Kube
from ..runtime.drift import covers
from ..runtime.loop import Result
from ..runtime.metrics import RECONCILES, WRITES
from .errors import NameConflict
from .ownership import conflict_message, ours
from .settings import Settings

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Base:
    """Locks, the prologue, drift-free applies and the status/Events finish, for one kind."""

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

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def _forget(self, uid: str) -> None:
        with self._guard:
            self._locks.pop(uid, None)

    def reconcile(self, body: Obj) -> Result:
        """Bring the cluster in line with one resource. Safe to call at any time, concurrently.

        The prologue every kind shares: one reconcile per resource at a time; the live object
        (not a deleted one, not a new one under the same name); the finalizer on before
        anything is created, since without it a delete would skip the cleanup.
        """
        result = Result()
        meta = body["metadata"]
        with self._lock(meta["uid"]):
            fresh = self.kube.get(self.kind, meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return result
            if fresh["metadata"]["uid"] != meta["uid"]:
                return result  # deleted and created again under the same name: the new one has its own turn
            if FINALIZER not in (fresh["metadata"].get("finalizers") or []):
                # kopf's finalizer is the same name, but kopf would add it only after its own queue
                # of events: added here with the resourceVersion read.
                try:
                    fresh = self.kube.add_finalizer(fresh, FINALIZER)
                except Conflict:
                    result.requeue(0.0)
                    return result
                WRITES.labels(kind=f"{self.kind}/finalizer").inc()
            try:
                self._reconcile(fresh, result)
                RECONCILES.labels(result="ok").inc()
            except Exception:
                RECONCILES.labels(result="error").inc()
                raise
        return result

    def _reconcile(self, body: Obj, result: Result) -> None:
        raise NotImplementedError

    # ---- the finish -----------------------------------------------------------------------

    def _finish(self, body: Obj, old: Obj, new: Obj, conds: list[st.Cond], phase: str, result: Result) -> None:
        """Conditions (transition times kept), phase, one status write if anything changed, Events."""
        gen = new["observedGeneration"]
        new["conditions"] = st.merge(old.get("conditions") or [], conds, gen, iso(self.clock()))
        new["phase"] = phase
        if self._write_status(body, old, new):
            result.peers_changed = self._peers_read_changed(old, new)
        self._events(body, old, conds)

    def _peers_read_changed(self, old: Obj, new: Obj) -> bool:
        """Whether a status change concerns the resources that read this one (by default: any change)."""
        return True

    def _write_status(self, body: Obj, old: Obj, new: Obj) -> bool:
        if new == old:
            return False
        patch = merge_patch(old, new)
        self.kube.patch_status(self.kind, body["metadata"]["namespace"], body["metadata"]["name"], patch)
        WRITES.labels(kind=f"{self.kind}/status").inc()
        return True

    def _events(self, body: Obj, old: Obj, conds: list[st.Cond]) -> None:
        """A Normal or Warning Event per condition that changed, as `kubectl describe` shows them.

        Only news: a Warning always; a Normal one not for a condition seen for the first
        time, nor for one that only waits for the step before it (st.WAITING_REASONS) unless it
        fell from True; and when Ready turns True, one Ready Event that names the conditions
        that turned True with it. At a thousand models every Event is a write.
        """
        before = {c.get("type"): c.get("status") for c in old.get("conditions") or []}
        news = []
        for c in st.transitions(old.get("conditions") or [], conds):
            warning = c.status == "False" and (c.failed or c.reason in st.WARNING_REASONS)
            if not warning:
                if c.type == "Ready" and c.status != "True":
                    continue  # Ready repeats the condition that explains it, which has its own Event
                if c.type not in before:
                    continue
                if c.reason in st.WAITING_REASONS and c.status != "True" and before[c.type] != "True":
                    continue
            news.append((c, warning))
        if any(c.type == "Ready" and c.status == "True" for c, _ in news):
            with_ready = [c for c, warning in news if c.type != "Ready" and c.status == "True"]
            news = [(c, w) for c, w in news if c not in with_ready]
            news = [
                (st.true("Ready", c.reason, "; ".join([c.message, *(f"{o.type}: {o.message}" for o in with_ready)])), w)
                if c.type == "Ready"
                else (c, w)
                for c, w in news
            ]
        meta = body["metadata"]
        for c, warning in news:
            log.info("%s/%s %s=%s %s: %s", meta["namespace"], meta["name"], c.type, c.status, c.reason, c.message)
            message = f"{c.type}={c.status}: {c.message}" if c.message else c.type
            self.kube.event(body, "Warning" if warning else "Normal", c.reason, message)

    # ---- acting -----------------------------------------------------------------------------

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
        applied = self.kube.apply(want)
        if not covers(applied, {**want, "metadata": meta}):
            key = (applied["metadata"]["uid"], meta["annotations"][HASH_ANNOTATION])
            if key not in self._uncoverable:
                log.warning(
                    "%s %s: the API server rewrites an owned field; drift is checked by hash",
                    want["kind"],
                    meta["name"],
                )
                self._uncoverable.add(key)
        return applied


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


def api_message(e: ApiException) -> str:
    """The API server's message of a refusal (its Status body), else the HTTP reason."""
    try:
        return str(json.loads(e.body or "").get("message", e.reason))
    except (TypeError, ValueError):
        return str(e.reason)
