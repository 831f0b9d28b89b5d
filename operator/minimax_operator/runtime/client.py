"""A small, typed-enough Kubernetes client over the official ApiClient.

Why not the generated per-kind APIs: the operator handles a handful of kinds the
same way (get, list, server-side apply, delete) and wants plain dicts, the shape
the render layer produces. One field manager for every apply. Paths come from the
kind table (kinds.py); once informers run, reads of stored kinds come from their stores.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
import time
import uuid
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from .informers import Stores
from .kinds import Kinds

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: How long a confirmed miss stands for checks (a create always confirms again).
ABSENT_TTL_SECONDS = 60.0


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


def load_client(kubeconfig: str | None = None) -> ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    config = kubernetes.client.Configuration.get_default_copy()
    # Each watch stream holds a connection for minutes; workers need theirs besides.
    config.connection_pool_maxsize = 64
    return ApiClient(config)


class Kube:
    """The API calls the operator makes; each one maps to one RBAC rule."""

    def __init__(self, client: ApiClient, kinds: Kinds, field_manager: str, stores: Stores | None = None):
        self.client = client
        self.kinds = kinds
        self.field_manager = field_manager
        #: The informers' stores; None (tests, one-off commands): every read goes to the API.
        self.stores = stores
        self._absent: dict[tuple[str, str, str], float] = {}

    def _path(self, kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        return self.kinds[kind].path(namespace, name, sub)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        method_, url, headers, payload, _ = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.client.call_api(method_, url, header_params=headers, body=payload)
        resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status < 300:
            if resp.status == 409:
                raise Conflict(str(resp.reason))
            raise ApiException(http_resp=resp)
        data = resp.data
        return json.loads(data) if data else None

    def get(self, kind: str, namespace: str, name: str, live: bool = False, before_create: bool = False) -> Obj | None:
        """The object from its store (shared: do not mutate), or from the API when `live`.

        Kinds stored by our labels only: a miss is asked of the API (someone else's object of
        that name), at most once a minute per name, and always `before_create`.
        """
        key = (kind, namespace, name)
        if self.stores is not None and not live and kind in self.stores:
            obj: Obj | None = self.stores[kind].get(namespace, name)
            if obj is not None or not self.kinds[kind].label_filtered:
                return obj
            confirmed = self._absent.get(key)
            if not before_create and confirmed and time.monotonic() - confirmed < ABSENT_TTL_SECONDS:
                return None
        try:
            obj = self._call("GET", self._path(kind, namespace, name))
        except ApiException as e:
            if e.status != 404:
                raise
            obj = None
        if obj is None and self.stores is not None:
            if len(self._absent) > 10000:
                self._absent.clear()
            self._absent[key] = time.monotonic()
        else:
            self._absent.pop(key, None)
        return obj

    def list(self, kind: str, namespace: str, selector: dict[str, str]) -> list[Obj]:
        if self.stores is not None and kind in self.stores:
            stored: list[Obj] = self.stores[kind].list(namespace, selector)
            return stored
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))]
        items: list[Obj] = self._call("GET", self._path(kind, namespace), query=query)["items"]
        return items

    def indexed(self, kind: str, index: str, namespace: str, value: str) -> builtins.list[Obj]:
        """Objects of `kind` in `namespace` found under `value` in one of the kind's indexes."""
        if self.stores is not None and kind in self.stores:
            found: builtins.list[Obj] = self.stores[kind].indexed(index, namespace, value)
            return found
        indexer = self.kinds[kind].indexers[index]
        return [o for o in self.list(kind, namespace, {}) if value in indexer(o)]

    def _remember(self, obj: Obj | None) -> None:
        if self.stores is not None and obj:
            self.stores.remember(obj)

    def failed_create_message(self, namespace: str, kind: str, name: str) -> str:
        """The newest FailedCreate Event's message for an object (a Job whose pods are refused)."""
        field = f"involvedObject.kind={kind},involvedObject.name={name},reason=FailedCreate"
        items: list[Obj] = self._call("GET", self._path("Event", namespace), query=[("fieldSelector", field)])["items"]
        if not items:
            return ""
        newest = max(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return str(newest.get("message", ""))

    def log_tail(self, namespace: str, pod: str, container: str, lines: int = 5) -> str:
        """The last lines a container printed (the downloader prints its progress there)."""
        method_, url, headers, payload, _ = self.client.param_serialize(
            method="GET",
            resource_path=self._path("Pod", namespace, pod, "log"),
            query_params=[("container", container), ("tailLines", str(lines)), ("limitBytes", "65536")],
            # The log is text/plain, but the API server answers 406 to `Accept: text/plain` (it
            # negotiates only its serializers' types): ask as kubectl does. Found on the real node.
            header_params={"Accept": "application/json, */*"},
            auth_settings=["BearerToken"],
        )
        resp = self.client.call_api(method_, url, header_params=headers, body=payload, _request_timeout=5)
        resp.read()  # type: ignore[no-untyped-call]
        if not 200 <= resp.status < 300:
            raise ApiException(http_resp=resp)
        return bytes(resp.data or b"").decode(errors="replace")

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply with the operator's field manager (it owns what it sets)."""
        meta = obj["metadata"]
        result: Obj = self._call(
            "PATCH",
            self._path(obj["kind"], meta["namespace"], meta["name"]),
            body=obj,
            query=[("fieldManager", self.field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        self._remember(result)
        return result

    def add_finalizer(self, obj: Obj, finalizer: str) -> Obj:
        """Add `finalizer`, keeping the others, if the object is still the one read (resourceVersion)."""
        return self.merge_patch(
            obj, {"metadata": {"finalizers": [*(obj["metadata"].get("finalizers") or []), finalizer]}}
        )

    def remove_finalizer(self, obj: Obj, finalizer: str) -> None:
        """Remove `finalizer` from this very object (same uid), leaving every other finalizer alone.

        A JSON patch that tests only the element and the uid: unrelated changes in between (a
        status write) cannot make it fail, unlike a test of resourceVersion.
        """
        meta = obj["metadata"]
        for _ in range(10):
            live = self.get(obj["kind"], meta["namespace"], meta["name"], live=True)
            if live is None or live["metadata"]["uid"] != meta["uid"]:
                return
            current = live["metadata"].get("finalizers") or []
            if finalizer not in current:
                return
            i = current.index(finalizer)
            patch = [
                {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
                {"op": "test", "path": f"/metadata/finalizers/{i}", "value": finalizer},
                {"op": "remove", "path": f"/metadata/finalizers/{i}"},
            ]
            try:
                self._call(
                    "PATCH",
                    self._path(obj["kind"], meta["namespace"], meta["name"]),
                    body=patch,
                    content_type="application/json-patch+json",
                )
                return
            except Conflict:
                continue
            except ApiException as e:
                if e.status == 404:
                    return
                if e.status != 422:  # 422: a test failed (the list changed): read again
                    raise
        raise RuntimeError(f"{obj['kind']} {meta['name']}: finalizers kept changing; will retry")

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._call("DELETE", self._path(kind, namespace, name), body=body)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def replace(self, obj: Obj) -> Obj:
        """PUT with the resourceVersion read earlier: optimistic concurrency for shared objects."""
        meta = obj["metadata"]
        result: Obj = self._call("PUT", self._path(obj["kind"], meta["namespace"], meta["name"]), body=obj)
        self._remember(result)
        return result

    def create(self, obj: Obj) -> Obj:
        result: Obj = self._call("POST", self._path(obj["kind"], obj["metadata"]["namespace"]), body=obj)
        self._remember(result)
        return result

    def patch_status(self, kind: str, namespace: str, name: str, status: Obj) -> None:
        result = self._call(
            "PATCH",
            self._path(kind, namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )
        self._remember(result)

    def merge_patch(self, obj: Obj, patch: Obj) -> Obj:
        """A JSON merge patch of `obj`, only if it is still the version read (resourceVersion)."""
        meta = obj["metadata"]
        body = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": meta["resourceVersion"]}}
        result: Obj = self._call(
            "PATCH",
            self._path(obj["kind"], meta["namespace"], meta["name"]),
            body=body,
            content_type="application/merge-patch+json",
        )
        self._remember(result)
        return result

    def event(self, owner: Obj, event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on `owner`, as `kubectl describe` shows them."""
        meta = owner["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
        }
        try:
            self.create(event)
        except ApiException as e:  # an event is best effort: never fail a reconcile for it
            log.warning("could not post event %s: %s", reason, e.reason)
