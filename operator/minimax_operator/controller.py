"""The control loop: watch caches feed a work queue served by a fixed pool of workers.

Every change of an object the operator owns (found by its owner or cache label), of a
ResourceQuota in the namespace, of a ChatOS ConfigMap a resource registers in, and
of the resources themselves (kopf's watches, see handlers.py) queues that resource's
key; the resync timer queues every key behind those. A worker reconciles from the
caches, so a resource whose world has not changed costs no API request at all.
A MiniMaxModelCache and the MiniMaxDeployments that serve it queue each other
whenever one's status changes (a verified commit, a new user).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient

from . import cache as c
from .api import CACHE_KIND
from .builders import CACHE_LABEL, MANAGER, OWNER_LABEL
from .cache_reconciler import CacheReconciler
from .indexes import INDEXERS, served_weights
from .kube import CACHED_KINDS, Kube, api_kind, resource_path
from .reconcile_base import Base
from .reconciler import Reconciler
from .workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
#: A work item: (kind, namespace, name).
Item = tuple[str, str, str]
DEPLOYMENT = "MiniMaxDeployment"
RESOURCE_KINDS = (DEPLOYMENT, CACHE_KIND)
MANAGED = f"app.kubernetes.io/managed-by={MANAGER}"

#: kind -> (label selector, transform). PVCs and quotas are listed whole: an existing claim
#: is the user's (none of our labels), and quotas are few.
_INFORMED: dict[str, tuple[str, Callable[[Obj], Obj]]] = {
    "PersistentVolumeClaim": ("", c.strip),
    "Job": (MANAGED, c.strip),
    "Pod": (MANAGED, c.strip_pod),
    "Deployment": (MANAGED, c.strip),
    "Service": (MANAGED, c.strip),
    "ResourceQuota": ("", c.strip),
}
assert set(_INFORMED) | {DEPLOYMENT, CACHE_KIND, "ConfigMap"} == CACHED_KINDS


class Cache:
    """The stores a reconcile reads, and the informers that fill them."""

    def __init__(self, client: ApiClient, namespaces: list[str], on_change: Callable[[str, Obj], None]):
        self.client = client
        self.on_change = on_change
        self.stores: dict[str, c.Store] = {kind: c.Store(INDEXERS.get(kind)) for kind in CACHED_KINDS}
        # Named namespaces: a stream each (a Role per namespace allows that); globs or none: cluster-wide.
        self.scoped: list[str | None] = [] if c.has_glob(namespaces) else list(namespaces)
        self.ns_filter = c.namespace_filter(namespaces) if c.has_glob(namespaces) else None
        self.informers: list[c.Informer] = []
        for kind, (labels, transform) in _INFORMED.items():
            for ns in self.scoped or [None]:
                self.informers.append(
                    c.Informer(
                        client,
                        api_kind(kind),
                        resource_path(kind, ns),
                        self.stores[kind],
                        self._notify(kind),
                        label_selector=labels,
                        namespace_filter=self.ns_filter,
                        transform=transform,
                    )
                )
        self._configmaps: dict[Key, c.Informer] = {}
        self._cm_guard = threading.Lock()

    def _notify(self, kind: str) -> Callable[[Obj], None]:
        return lambda obj: self.on_change(kind, obj)

    def start(self, timeout: float = 120) -> None:
        for informer in self.informers:
            informer.start()
        if not c.wait_synced(self.informers, timeout):
            raise RuntimeError(f"watch caches not filled within {timeout:.0f} s")

    def stop(self) -> None:
        for informer in [*self.informers, *self._configmaps.values()]:
            informer.stop()

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        if kind == "ConfigMap":
            self._configmap(namespace, name)
        return self.stores[kind].get(namespace, name)

    def list(self, kind: str, namespace: str, selector: dict[str, str]) -> list[Obj]:
        return self.stores[kind].list(namespace, selector)

    def remember(self, obj: Obj) -> None:
        """Our own write's result, so the next reconcile does not read what it replaced."""
        kind = obj.get("kind", "")
        if kind in self.stores:
            transform = _INFORMED.get(kind, (None, c.strip))[1]
            self.stores[kind].put(transform(obj))

    def _configmap(self, namespace: str, name: str) -> None:
        """A ChatOS ConfigMap is watched by name (one stream each) from the first time it is read."""
        with self._cm_guard:
            informer = self._configmaps.get((namespace, name))
            if informer is None:
                informer = c.Informer(
                    self.client,
                    api_kind("ConfigMap"),
                    resource_path("ConfigMap", namespace),
                    self.stores["ConfigMap"],
                    lambda obj: self.on_change("ConfigMap", obj),
                    field_selector=f"metadata.name={name}",
                )
                self._configmaps[(namespace, name)] = informer
                informer.start()
        if not informer.synced.wait(30):
            raise RuntimeError(f"ConfigMap {namespace}/{name}: watch not established within 30 s")


class Controller:
    """Watch caches, the work queue and its workers around the reconcilers of both kinds."""

    def __init__(
        self,
        reconciler: Reconciler,
        client: ApiClient,
        namespaces: list[str],
        workers: int = 8,
        resync_seconds: float = 600,
    ):
        self.reconciler = reconciler
        self.kube: Kube = reconciler.kube
        self.caches = CacheReconciler(reconciler.kube, reconciler.settings, clock=reconciler.clock)
        self.reconcilers: dict[str, Base] = {DEPLOYMENT: reconciler, CACHE_KIND: self.caches}
        self.queue = WorkQueue()
        self.cache = Cache(client, namespaces, self._changed)
        self.workers = workers
        self.resync_seconds = resync_seconds
        self._failures: dict[Item, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: ChatOS ConfigMap -> the resources registered in it (or about to be).
        self._chatos_users: dict[Key, set[Key]] = {}
        self._guard = threading.Lock()

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.kube.cache = self.cache
        self.reconciler.registrar.on_target = self._uses_configmap
        self.cache.start()
        log.info("watch caches filled (%d streams); %d workers", len(self.cache.informers), self.workers)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        threading.Thread(target=self._resync, name="resync", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        self.cache.stop()

    # ---- triggers -------------------------------------------------------------------------

    def resource_changed(self, kind: str, body: Obj | None, namespace: str, name: str) -> None:
        """A resource itself changed (kopf's watch): store it and look at it first."""
        store = self.cache.stores[kind]
        if body is None:
            gone = store.get(namespace, name)
            store.remove(namespace, name)
            self._failures.pop((kind, namespace, name), None)
            if gone is not None:
                self._related(kind, gone)  # a cache's users see it gone; a cache sees a user gone
            return
        if store.put(body):  # not merely our own status write coming back
            self.queue.add((kind, namespace, name))
            self._related(kind, body)

    def _related(self, kind: str, body: Obj) -> None:
        """Queue the other side of a cache and its users."""
        meta = body["metadata"]
        ns = meta["namespace"]
        if kind == DEPLOYMENT:
            ref = ((body.get("spec") or {}).get("cacheRef") or {}).get("name")
            for cache in {ref, (body.get("status") or {}).get("cache")} - {None}:
                self.queue.add((CACHE_KIND, ns, str(cache)))
        else:
            for m in self.cache.stores[DEPLOYMENT].indexed("cache", ns, meta["name"]):
                self.queue.add((DEPLOYMENT, ns, m["metadata"]["name"]))

    def _changed(self, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        if kind == "ResourceQuota":  # quota freed or changed: every resource of the namespace checks again
            for resource_kind in RESOURCE_KINDS:
                for key in self.cache.stores[resource_kind].all_keys():
                    if key[0] == ns:
                        self.queue.add((resource_kind, *key))
            return
        if kind == "ConfigMap":
            with self._guard:
                users = list(self._chatos_users.get((ns, meta["name"]), ()))
            for key in users:
                self.queue.add((DEPLOYMENT, *key))
            return
        labels = meta.get("labels") or {}
        if labels.get(OWNER_LABEL):
            self.queue.add((DEPLOYMENT, ns, labels[OWNER_LABEL]))
        if labels.get(CACHE_LABEL):
            self.queue.add((CACHE_KIND, ns, labels[CACHE_LABEL]))
        if kind == "Deployment":  # a server rolled: its cache may prune the commit it left
            served = served_weights(obj).get("cache")
            if served:
                self.queue.add((CACHE_KIND, ns, str(served)))

    def _uses_configmap(self, resource: Key, configmap: Key) -> None:
        with self._guard:
            self._chatos_users.setdefault(configmap, set()).add(resource)

    def _resync(self) -> None:
        while not self._stop.wait(self.resync_seconds):
            for kind in RESOURCE_KINDS:
                for key in self.cache.stores[kind].all_keys():
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
                body = self.cache.stores[kind].get(ns, name)
                if body is not None:
                    reconciler = self.reconcilers[kind]
                    after = reconciler.reconcile(body)
                    if after is not None:
                        self.queue.add_after(item, after)
                    if reconciler.status_changed and (kind != CACHE_KIND or self.caches.served_changed):
                        fresh = self.cache.stores[kind].get(ns, name)
                        if fresh is not None:
                            self._related(kind, fresh)
                self._failures.pop(item, None)
            except Exception:  # a worker must survive any one resource
                n = self._failures[item] = self._failures.get(item, 0) + 1
                wait = min(60.0, 0.5 * 2**n)
                log.exception("reconcile of %s %s/%s failed (attempt %d); again in %.0f s", kind, ns, name, n, wait)
                self.queue.add_after(item, wait)
            finally:
                self.queue.done(item)
