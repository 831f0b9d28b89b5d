"""kopf wiring: kopf logs in, watches the resources and holds their finalizer.

The resources' events only feed the loop's stores and work queue (an async handler: no
thread per event); the reconcile runs on the loop's workers, from the stores
(runtime/loop.py). Deletion runs here: kopf's finalizer holds a resource until its
cleanup is done (the ChatOS entry removed; a cache no longer served). kopf keeps its
bookkeeping in annotations, never in status, and posts no Events of its own.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..api.names import CACHE_KIND, CACHE_PLURAL, FINALIZER, GROUP, KIND, PLURAL, VERSION
from ..controllers.deployment import UnregisterBlocked
from ..controllers.model_cache import CacheInUse
from .operator import Operator

log = logging.getLogger(__name__)


class NoDiffBase(kopf.DiffBaseStorage):
    """Keep no last-handled state: our handlers are on.event and on.delete, which never compare with one.

    kopf's default wrote it, with a marker, into annotations of every resource and cache: three
    writes a model on the way to Ready (of 29, measured on the local cluster's audit log) and a copy
    of the spec inside every object. Without a stored state kopf sees each event as a creation, for
    which we register no handler: nothing runs, nothing is written.
    """

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def register(registry: kopf.OperatorRegistry, operator: Operator) -> None:
    """Register the handlers on `registry`, bound to one operator."""

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: the ServiceAccount; elsewhere: $KUBECONFIG (set from --kubeconfig).
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(
            **kwargs
        )
        return info

    def _changed(kind: str, type_: str | None, body: kopf.Body) -> None:
        meta = body.metadata
        obj = None
        if type_ != "DELETED":
            obj = dict(body)  # kopf's own dict stays as it is: a copy without managedFields for the store
            obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        operator.loop.resource_changed(kind, obj, str(meta.namespace), str(meta.name))

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def on_resource(type: str | None, body: kopf.Body, **_: Any) -> None:
        _changed(KIND, type, body)

    @kopf.on.event(GROUP, VERSION, CACHE_PLURAL, registry=registry)
    async def on_cache(type: str | None, body: kopf.Body, **_: Any) -> None:
        _changed(CACHE_KIND, type, body)

    # Held while servers use the weights; checked again every few seconds (kopf's retry).
    @kopf.on.delete(GROUP, VERSION, CACHE_PLURAL, registry=registry, backoff=3)
    def on_cache_delete(body: kopf.Body, **_: Any) -> None:
        try:
            operator.caches.finalize(dict(body))
        except CacheInUse as e:
            raise kopf.TemporaryError(str(e), delay=5) from e

    # Retried every few seconds until the ChatOS entry is provably gone (kopf's default is 60 s).
    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, backoff=3)
    def on_delete(body: kopf.Body, **_: Any) -> None:
        try:
            operator.deployments.finalize(dict(body))
        except UnregisterBlocked as e:
            raise kopf.TemporaryError(str(e), delay=30) from e  # a person must act: no hot loop
