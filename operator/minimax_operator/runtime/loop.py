"""The control loop: informer events and the resources' own watch feed a work queue served by a pool of workers.

Every change of a stored object becomes the keys of the resources it concerns (the
controllers' watches say which: an owner label, a shared ConfigMap, a quota of the
namespace); the resync timer queues every key behind those. A worker reconciles from
the stores, so a resource whose world has not changed costs no API request at all.
A reconcile returns a Result: when to look again, and whether the resources that
read this one (its peers) must look too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .informers import Informers, Stores
from .memory import Releaser
from .workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
#: A work item: (kind, namespace, name).
Item = tuple[str, str, str]


@dataclass
class Result:
    """What one reconcile tells the loop."""

    #: Look again in this many seconds although nothing watched may change (progress, a back-off).
    requeue_after: float | None = None
    #: The resources that read this one must look again (a cache's verified commit, a new user).
    peers_changed: bool = False

    def requeue(self, seconds: float) -> None:
        """Ask for another look in `seconds`; the earliest request of a reconcile wins."""
        current = self.requeue_after
        self.requeue_after = seconds if current is None else min(current, seconds)


class Reconciler(Protocol):
    def reconcile(self, body: Obj) -> Result: ...


class Watches(Protocol):
    """Which keys a change queues: declared by the controllers, like controller-runtime's Watches."""

    def keys(self, kind: str, obj: Obj) -> Iterable[Item]:
        """A stored object changed (an informer's event): the resources to look at."""
        ...

    def peers(self, kind: str, obj: Obj) -> Iterable[Item]:
        """The resources that read this resource (queued when it changed for them, or is gone)."""
        ...


class Router:
    """Turns changes into queued keys, by the controllers' Watches (the informers' event handler)."""

    def __init__(self, queue: WorkQueue, watches: Watches):
        self.queue = queue
        self.watches = watches

    def changed(self, kind: str, obj: Obj) -> None:
        """An informer's event."""
        self.add_all(self.watches.keys(kind, obj))

    def peers_changed(self, kind: str, obj: Obj) -> None:
        self.add_all(self.watches.peers(kind, obj))

    def add_all(self, items: Iterable[Item]) -> None:
        for item in items:
            self.queue.add(item)


class Loop:
    """The work queue and its workers around the reconcilers, one per resource kind."""

    def __init__(
        self,
        router: Router,
        stores: Stores,
        informers: Informers,
        reconcilers: Mapping[str, Reconciler],
        workers: int = 8,
        resync_seconds: float = 600,
    ):
        self.router = router
        self.queue = router.queue
        self.stores = stores
        self.informers = informers
        self.reconcilers = reconcilers
        self.workers = workers
        self.resync_seconds = resync_seconds
        self._failures: dict[Item, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Reconciles finished (a counter the memory releaser watches; a lost increment only delays it).
        self.processed = 0
        self.releaser = Releaser(done=lambda: self.processed, queued=lambda: len(self.queue))

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Fill the stores, then start the workers and the resync timer."""
        self.informers.start()
        log.info("informers synced (%d streams); %d workers", len(self.informers.informers), self.workers)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        threading.Thread(target=self._resync, name="resync", daemon=True).start()
        self.releaser.start()

    def stop(self) -> None:
        self._stop.set()
        self.releaser.stop()
        self.queue.shutdown()
        self.informers.stop()

    # ---- triggers -------------------------------------------------------------------------

    def resource_changed(self, kind: str, body: Obj | None, namespace: str, name: str) -> None:
        """A resource itself changed (fed from kopf's watch; None: deleted): store it and look at it first."""
        store = self.stores[kind]
        if body is None:
            gone = store.get(namespace, name)
            store.remove(namespace, name)
            self._failures.pop((kind, namespace, name), None)
            if gone is not None:
                self.router.peers_changed(kind, gone)
            return
        if store.put(body):  # not merely our own status write coming back
            self.queue.add((kind, namespace, name))
            self.router.peers_changed(kind, body)

    def _resync(self) -> None:
        while not self._stop.wait(self.resync_seconds):
            for kind in self.reconcilers:
                for key in self.stores[kind].all_keys():
                    self.queue.add((kind, *key), urgent=False)

    # ---- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            assert isinstance(item, tuple)
            kind, ns, name = item
            try:
                body = self.stores[kind].get(ns, name)
                if body is not None:
                    result = self.reconcilers[kind].reconcile(body)
                    if result.requeue_after is not None:
                        self.queue.add_after(item, result.requeue_after)
                    if result.peers_changed:
                        fresh = self.stores[kind].get(ns, name)
                        if fresh is not None:
                            self.router.peers_changed(kind, fresh)
                self._failures.pop(item, None)
            except Exception:  # a worker must survive any one resource
                n = self._failures[item] = self._failures.get(item, 0) + 1
                wait = min(60.0, 0.5 * 2**n)
                log.exception("reconcile of %s %s/%s failed (attempt %d); again in %.0f s", kind, ns, name, n, wait)
                self.queue.add_after(item, wait)
            finally:
                self.queue.done(item)
                self.processed += 1
