"""An in-memory stand-in for runtime.client.Kube: reads from the stores, records writes and Events.

Why: the reconcilers' observe and act steps, and the status they write, can then be
tested in milliseconds without an API server. It behaves as the API server does where
the reconcilers rely on it: uids and resourceVersions are set, a create of an existing
name or a write with a stale resourceVersion is a Conflict, status is a subresource.
What it does not do (admission, defaults, garbage collection, controllers) the tests
set on the objects themselves.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from minimax_operator.controllers.watches import KINDS
from minimax_operator.runtime.client import Conflict
from minimax_operator.runtime.informers import Stores

Obj = dict[str, Any]


@dataclass
class FakeKube:
    stores: Stores = field(default_factory=lambda: Stores(KINDS))
    #: (verb, kind, name) of every write, in order.
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    #: (type, reason, message) of every Event.
    events: list[tuple[str, str, str]] = field(default_factory=list)
    #: pod name -> its log.
    logs: dict[str, str] = field(default_factory=dict)
    #: (kind, name) -> FailedCreate message.
    refused: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Kinds whose API the server no longer serves (an add-on uninstalled): writes answer 404.
    uninstalled: set[str] = field(default_factory=set)
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ---- setting the scene ------------------------------------------------------------------

    def put(self, obj: Obj) -> Obj:
        """Store an object as the API server would return it (uid, resourceVersion)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "ns" if KINDS[obj["kind"]].namespaced else "")
        meta.setdefault("uid", uuid.uuid4().hex)
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        self.stores[obj["kind"]].put(obj)
        return obj

    def object(self, kind: str, name: str, namespace: str = "ns") -> Obj | None:
        return self.stores[kind].get(namespace, name)

    # ---- reads ------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str, live: bool = False, before_create: bool = False) -> Obj | None:
        return self.stores[kind].get(namespace, name)

    def list(self, kind: str, namespace: str, selector: dict[str, str]) -> builtins.list[Obj]:
        return self.stores[kind].list(namespace, selector)

    def indexed(self, kind: str, index: str, namespace: str, value: str) -> builtins.list[Obj]:
        return self.stores[kind].indexed(index, namespace, value)

    def failed_create_message(self, namespace: str, kind: str, name: str) -> str:
        return self.refused.get((kind, name), "")

    def log_tail(self, namespace: str, pod: str, container: str, lines: int = 5) -> str:
        return self.logs.get(pod, "")

    # ---- writes -----------------------------------------------------------------------------

    def _write(self, verb: str, obj: Obj) -> Obj:
        self.writes.append((verb, obj["kind"], obj["metadata"]["name"]))
        return self.put(obj)

    def _check_version(self, obj: Obj) -> Obj | None:
        meta = obj["metadata"]
        have = self.stores[obj["kind"]].get(meta.get("namespace", "ns"), meta["name"])
        if have is not None and meta.get("resourceVersion") not in (None, have["metadata"]["resourceVersion"]):
            raise Conflict("the object has been modified")
        return have

    def apply(self, obj: Obj) -> Obj:
        if obj["kind"] in self.uninstalled:
            raise ApiException(status=404, reason="Not Found")
        have = self._check_version(obj)
        merged = copy.deepcopy(obj)
        if have is not None:
            merged["metadata"] = {**have["metadata"], **obj["metadata"]}
            merged["status"] = have.get("status", {})
            if have.get("spec") != obj.get("spec"):
                merged["metadata"]["generation"] = have["metadata"].get("generation", 1) + 1
        merged["metadata"].pop("resourceVersion", None)
        return self._write("apply", merged)

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        if obj["kind"] == "Event":
            self.events.append((obj["type"], obj["reason"], obj["message"]))
            return obj
        if self.stores[obj["kind"]].get(meta.get("namespace", "ns"), meta["name"]) is not None:
            raise Conflict("already exists")
        return self._write("create", obj)

    def replace(self, obj: Obj) -> Obj:
        self._check_version(obj)
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("resourceVersion", None)
        return self._write("replace", obj)

    def merge_patch(self, obj: Obj, patch: Obj) -> Obj:
        have = self._check_version({**obj, "metadata": {**obj["metadata"], **patch.get("metadata", {})}})
        assert have is not None
        return self._write("patch", _merge(copy.deepcopy(have), patch))

    def patch_status(self, kind: str, namespace: str, name: str, status: Obj) -> None:
        have = self.stores[kind].get(namespace, name)
        assert have is not None, f"{kind} {name} is gone"
        new = copy.deepcopy(have)
        new["status"] = _merge(new.get("status") or {}, status)
        self._write("status", new)

    def add_finalizer(self, obj: Obj, finalizer: str) -> Obj:
        return self.merge_patch(
            obj, {"metadata": {"finalizers": [*(obj["metadata"].get("finalizers") or []), finalizer]}}
        )

    def remove_finalizer(self, obj: Obj, finalizer: str) -> None:
        have = self.stores[obj["kind"]].get(obj["metadata"]["namespace"], obj["metadata"]["name"])
        if have is not None:
            kept = [f for f in have["metadata"].get("finalizers") or [] if f != finalizer]
            self._write("patch", {**have, "metadata": {**have["metadata"], "finalizers": kept}})

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(("delete", kind, name))
        gone = self.stores[kind].get(namespace, name) is not None
        self.stores[kind].remove(namespace, name)
        return gone

    def event(self, owner: Obj, event_type: str, reason: str, message: str) -> None:
        self.events.append((event_type, reason, message))


def _merge(target: Obj, patch: Obj) -> Obj:
    """RFC 7386, as the API server applies a merge patch (None deletes)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target
