"""The operator's wiring: every collaborator built once, in order, and handed to the next.

Order: the stores and the client that reads them; the work queue and the router that
turns changes into keys (the informers' event handler); the informers; the ChatOS
registrar (told which ConfigMaps to watch); the reconcilers; the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from kubernetes.client import ApiClient

from ..api.names import CACHE_KIND, KIND, MANAGER
from ..controllers.chatos import Registrar
from ..controllers.deployment import Reconciler
from ..controllers.model_cache import CacheReconciler
from ..controllers.settings import Settings
from ..controllers.watches import KINDS, Mapping
from ..runtime.client import Kube
from ..runtime.informers import Informers, Stores
from ..runtime.loop import Loop, Router
from ..runtime.workqueue import WorkQueue


@dataclass(frozen=True)
class Operator:
    """The running parts kopf's handlers and the command line need."""

    loop: Loop
    deployments: Reconciler
    caches: CacheReconciler


def build(
    client: ApiClient, settings: Settings, namespaces: list[str], workers: int = 8, resync_seconds: float = 600
) -> Operator:
    stores = Stores(KINDS)
    kube = Kube(client, KINDS, MANAGER, stores)
    mapping = Mapping(stores)
    router = Router(WorkQueue(), mapping)
    informers = Informers(client, stores, namespaces, router.changed)
    registrar = Registrar(
        kube,
        settings.allow_chatos_namespaces,
        settings.create_chatos_configmap,
        uses=mapping.uses_configmap,
        watch=partial(informers.watch_by_name, "ConfigMap"),
    )
    deployments = Reconciler(kube, settings, registrar, watch_kind=informers.watch_kind)
    caches = CacheReconciler(kube, settings, clock=deployments.clock)
    loop = Loop(router, stores, informers, {KIND: deployments, CACHE_KIND: caches}, workers, resync_seconds)
    return Operator(loop=loop, deployments=deployments, caches=caches)
