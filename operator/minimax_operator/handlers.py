"""kopf wiring: which events trigger a reconcile. No decisions are made here.

The resource's own events, a periodic resync (timer) and the events of the Jobs
and Deployments it owns all call the same level-triggered Reconciler. kopf keeps
its bookkeeping in annotations, never in status, and posts no Events of its own.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .api import GROUP, PLURAL, VERSION
from .builders import MANAGER
from .reconciler import FINALIZER, Reconciler, UnregisterBlocked

log = logging.getLogger(__name__)
OWNER_LABEL = f"{GROUP}/deployment"


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler, resync_seconds: float) -> None:
    """Register the handlers on `registry`, bound to one Reconciler."""

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
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

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def on_resource(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED" or body.metadata.get("deletionTimestamp"):
            return
        reconciler.reconcile(dict(body))

    @kopf.timer(GROUP, VERSION, PLURAL, interval=resync_seconds, registry=registry)
    def resync(body: kopf.Body, **_: Any) -> None:
        reconciler.reconcile(dict(body))

    # Retried every few seconds until the ChatOS entry is provably gone (kopf's default is 60 s).
    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, backoff=3)
    def on_delete(body: kopf.Body, **_: Any) -> None:
        try:
            reconciler.finalize(dict(body))
        except UnregisterBlocked as e:
            raise kopf.TemporaryError(str(e), delay=30) from e  # a person must act: no hot loop

    def kick_owner(body: kopf.Body) -> None:
        name = body.metadata.labels.get(OWNER_LABEL)
        namespace = body.metadata.namespace
        if not name or not namespace:
            return
        owner = reconciler.kube.get("MiniMaxDeployment", namespace, name)
        if owner is not None:
            reconciler.reconcile(owner)

    managed = {"app.kubernetes.io/managed-by": MANAGER}

    @kopf.on.event("batch", "v1", "jobs", labels=managed, registry=registry)
    def on_job(body: kopf.Body, **_: Any) -> None:
        kick_owner(body)

    @kopf.on.event("apps", "v1", "deployments", labels=managed, registry=registry)
    def on_deployment(body: kopf.Body, **_: Any) -> None:
        kick_owner(body)
