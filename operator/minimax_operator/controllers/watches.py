"""What the operator reads and which changes queue which resource: the kind table and the event mapping.

Why indexes: a cache asks which resources and servers use it on every reconcile, and a
resource asks which others share its claim; scanning (and JSON-parsing) every object of
the namespace each time made a thousand models quadratic. The stores compute these once
per stored version; without stores (tests, one-off commands), the client scans.

The mapping, as controller-runtime's Watches declare it: a change of an object the
operator owns (found by its owner or cache label) queues that resource; a ResourceQuota
queues every resource of its namespace; a ChatOS ConfigMap queues the resources that
register in it; a server Deployment also queues the cache it serves from. A
MiniMaxModelCache and the MiniMaxDeployments that serve it are each other's peers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from ..api.names import (
    API_VERSION,
    CACHE_KIND,
    CACHE_LABEL,
    CACHE_PLURAL,
    HTTP_SCALED_OBJECT_KIND,
    KEDA_API_VERSION,
    KEDA_HTTP_API_VERSION,
    KIND,
    LWS_API_VERSION,
    LWS_KIND,
    LWS_PLURAL,
    MANAGED_BY_LABEL,
    MANAGER,
    MONITORING_API_VERSION,
    OWNER_LABEL,
    PLURAL,
    SCALED_OBJECT_KIND,
    SERVES_ANNOTATION,
    SERVICE_MONITOR_KIND,
)
from ..runtime.informers import Stores
from ..runtime.kinds import Kind, Kinds, Watch, strip_job, strip_pod
from ..runtime.loop import Item

Obj = dict[str, Any]
Key = tuple[str, str]
MANAGED = f"{MANAGED_BY_LABEL}={MANAGER}"
#: The kinds reconciled, in the order their keys are resynced.
RESOURCE_KINDS = (KIND, CACHE_KIND)


def served_weights(dep: Obj) -> Obj:
    """What a server Deployment loads: {"cache", "claim", "path"} from its annotation, or {}."""
    raw = (dep["metadata"].get("annotations") or {}).get(SERVES_ANNOTATION)
    try:
        out = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def caches_named(mmd: Obj) -> Iterable[str]:
    """The caches a MiniMaxDeployment names (spec.cacheRef) or serves from (status.cache)."""
    ref = ((mmd.get("spec") or {}).get("cacheRef") or {}).get("name")
    served = (mmd.get("status") or {}).get("cache")
    return {str(c) for c in (ref, served) if c}


def pod_templates(server: Obj) -> list[Obj]:
    """The pod templates of a server: a Deployment's, or a LeaderWorkerSet's leader and worker."""
    spec = server.get("spec") or {}
    if server.get("kind") == LWS_KIND:
        group = spec.get("leaderWorkerTemplate") or {}
        return [t for t in (group.get("leaderTemplate"), group.get("workerTemplate")) if t]
    return [spec["template"]] if spec.get("template") else []


def served_cache(dep: Obj) -> Iterable[str]:
    cache = served_weights(dep).get("cache")
    return (str(cache),) if cache else ()


def served_claim(dep: Obj) -> Iterable[str]:
    claim = served_weights(dep).get("claim")
    return (str(claim),) if claim else ()


#: Every kind the operator touches. PVCs and quotas are listed whole: an existing claim is
#: the user's (none of our labels), and quotas are few. The resources come from kopf's watch.
KINDS = Kinds(
    [
        Kind(KIND, API_VERSION, PLURAL, Watch.FED, indexers={"cache": caches_named}),
        Kind(CACHE_KIND, API_VERSION, CACHE_PLURAL, Watch.FED),
        Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", Watch.INFORMER),
        Kind("Job", "batch/v1", "jobs", Watch.INFORMER, MANAGED, transform=strip_job),
        Kind("Pod", "v1", "pods", Watch.INFORMER, MANAGED, transform=strip_pod),
        Kind(
            "Deployment",
            "apps/v1",
            "deployments",
            Watch.INFORMER,
            MANAGED,
            indexers={"cache": served_cache, "claim": served_claim},
        ),
        # A replica over several nodes (only where LWS is installed; the server then is one of these).
        Kind(
            LWS_KIND,
            LWS_API_VERSION,
            LWS_PLURAL,
            Watch.OPTIONAL,
            MANAGED,
            indexers={"cache": served_cache, "claim": served_claim},
        ),
        Kind("Service", "v1", "services", Watch.INFORMER, MANAGED),
        # Add-ons: autoscaling (KEDA, its HTTP add-on) and scraping (the Prometheus operator), where installed.
        Kind(SCALED_OBJECT_KIND, KEDA_API_VERSION, "scaledobjects", Watch.OPTIONAL, MANAGED),
        Kind(HTTP_SCALED_OBJECT_KIND, KEDA_HTTP_API_VERSION, "httpscaledobjects", Watch.OPTIONAL, MANAGED),
        Kind(SERVICE_MONITOR_KIND, MONITORING_API_VERSION, "servicemonitors", Watch.OPTIONAL, MANAGED),
        Kind("ResourceQuota", "v1", "resourcequotas", Watch.INFORMER),
        Kind("ConfigMap", "v1", "configmaps", Watch.BY_NAME),
        Kind("Event", "v1", "events"),
        # Its Pod Security label decides the server's level before anything is created.
        Kind("Namespace", "v1", "namespaces", Watch.INFORMER, namespaced=False),
    ]
)


class Mapping:
    """The loop's Watches: which resources an object's change concerns."""

    def __init__(self, stores: Stores):
        self.stores = stores
        #: ChatOS ConfigMap -> the resources registered in it (or about to be).
        self._chatos_users: dict[Key, set[Key]] = {}
        self._guard = threading.Lock()

    def uses_configmap(self, resource: Key, configmap: Key) -> None:
        """A resource registers in this ConfigMap: its changes queue that resource."""
        with self._guard:
            self._chatos_users.setdefault(configmap, set()).add(resource)

    def keys(self, kind: str, obj: Obj) -> Iterable[Item]:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        if kind == "ResourceQuota":  # quota freed or changed: every resource of the namespace checks again
            return [(k, *key) for k in RESOURCE_KINDS for key in self.stores[k].all_keys() if key[0] == ns]
        if kind == "Namespace":  # its Pod Security label changed (or it is new): its resources check again
            return [(KIND, *key) for key in self.stores[KIND].all_keys() if key[0] == meta["name"]]
        if kind == "ConfigMap":
            with self._guard:
                users = list(self._chatos_users.get((ns, meta["name"]), ()))
            return [(KIND, *key) for key in users]
        out: list[Item] = []
        labels = meta.get("labels") or {}
        if labels.get(OWNER_LABEL):
            out.append((KIND, ns, labels[OWNER_LABEL]))
        if labels.get(CACHE_LABEL):
            out.append((CACHE_KIND, ns, labels[CACHE_LABEL]))
        if kind in ("Deployment", LWS_KIND):  # a server rolled: its cache may prune the commit it left
            served = served_weights(obj).get("cache")
            if served:
                out.append((CACHE_KIND, ns, str(served)))
        return out

    def peers(self, kind: str, obj: Obj) -> Iterable[Item]:
        """A cache's users see it change; a cache sees a user come, change or go."""
        meta = obj["metadata"]
        ns = meta["namespace"]
        if kind == KIND:
            return [(CACHE_KIND, ns, cache) for cache in sorted(caches_named(obj))]
        return [(KIND, ns, m["metadata"]["name"]) for m in self.stores[KIND].indexed("cache", ns, meta["name"])]
