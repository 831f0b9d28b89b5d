"""The kind table: where each kind lives in the API and how reconciles read it.

Why one table: the client's paths, which kinds the informers watch (and with which label
selector and transform), which are fed from outside (kopf's watch of the resources),
and which indexes their stores keep were five tables in three modules, held together by
an assert. Now a kind is declared once, by the controllers (controllers/watches.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Obj = dict[str, Any]
#: An index: the values an object is found under (several, or none).
Indexer = Callable[[Obj], Iterable[str]]


class Watch(Enum):
    """How reconciles read a kind."""

    #: Listed and watched by an informer of the runtime, into a store.
    INFORMER = "informer"
    #: Stored from outside (kopf watches the resources and hands each event to the loop).
    FED = "fed"
    #: Watched one object at a time, from when a controller declares it (a shared ConfigMap).
    BY_NAME = "by-name"
    #: Not stored: every read asks the API (Events).
    NONE = "none"
    #: An add-on's kind (LeaderWorkerSet): like INFORMER when its API is installed at start, else
    #: watched from when a reconcile first needs it. A cluster without the add-on pays nothing.
    OPTIONAL = "optional"


def strip(obj: Obj) -> Obj:
    """Drop what no reconcile reads (managedFields, kubectl's and kopf's copies); share repeated strings.

    A thousand models keep some 8,000 objects in the stores, each parsed on its own: every
    key ("metadata", "containers", ...) and every repeated value (namespace, image, labels)
    was a string of its own. Interned, they are one string each: half the stores' memory
    (bench/scale.py's RSS at 1,000 models).
    """
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if annotations:
            annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
            for key in [k for k in annotations if k.endswith("/last-handled-configuration")]:
                del annotations[key]  # kopf's copy of the spec, on objects of earlier releases
    shared: Obj = _shared(obj)
    return shared


#: Strings longer than this (messages, logs, JSON in annotations) are rarely repeated: kept as they are.
_INTERN_MAX = 128


def _shared(value: Any) -> Any:
    """The same tree, with dict keys and short strings interned (strings are immutable: safe to share)."""
    if isinstance(value, dict):
        return {sys.intern(k) if type(k) is str else k: _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if type(value) is str and len(value) <= _INTERN_MAX:
        return sys.intern(value)
    return value


#: What a reconcile reads of a pod's status: its phase, why a container waits or ended (reason,
#: message, exit code; the downloader's result is its termination message), and whether it was
#: scheduled. Timestamps, IPs, image IDs and container IDs are unique to each pod and read by none.
_POD_CONDITION = ("type", "status", "reason", "message")
_CONTAINER = ("name", "ready", "restartCount", "started")
_CONTAINER_STATE = ("reason", "message", "exitCode")


def _state(state: Any) -> Obj:
    if not isinstance(state, dict):
        return {}
    return {k: {f: v[f] for f in _CONTAINER_STATE if f in v} if isinstance(v, dict) else v for k, v in state.items()}


def strip_pod(obj: Obj) -> Obj:
    """Pods: metadata and what reconciles read of the status (no spec: the Deployment or Job holds it).

    Two thousand pods at a thousand models (a download's and a server's each): their statuses
    were the stores' largest unique strings.
    """
    status = obj.get("status")
    if isinstance(status, dict):
        slim: Obj = {"phase": status["phase"]} if "phase" in status else {}
        if status.get("conditions"):
            slim["conditions"] = [{k: c[k] for k in _POD_CONDITION if k in c} for c in status["conditions"]]
        for key in ("initContainerStatuses", "containerStatuses"):
            if status.get(key):
                slim[key] = [
                    {
                        **{k: cs[k] for k in _CONTAINER if k in cs},
                        **{s: _state(cs[s]) for s in ("state", "lastState") if s in cs},
                    }
                    for cs in status[key]
                ]
        obj["status"] = slim
    return strip({k: obj[k] for k in ("apiVersion", "kind", "metadata", "status") if k in obj})


def strip_job(obj: Obj) -> Obj:
    """Jobs: all but the pod template, which the API server never lets change (spec.template is
    immutable) and no reconcile reads back: a Job is created once per attempt and then only its status
    and metadata are read. The template was most of a stored download Job (its pod spec, args, env).
    Where a Job of the same name is applied again, the store's copy does not cover the desired one, so
    the apply goes to the API server, which finds nothing to change."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.pop("template", None)
    return strip(obj)


@dataclass(frozen=True)
class Kind:
    """One kind the operator reads or writes."""

    name: str
    #: "v1", "batch/v1", "group/version".
    api_version: str
    plural: str
    watch: Watch = Watch.NONE
    #: The informer's label selector ("" lists every object of the kind).
    label_selector: str = ""
    #: What the store keeps of an object.
    transform: Callable[[Obj], Obj] = strip
    #: Named indexes of the store: index name -> the values an object is found under.
    indexers: Mapping[str, Indexer] = field(default_factory=dict)
    #: False for cluster-scoped kinds (Namespace): stored under the namespace "".
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    @property
    def stored(self) -> bool:
        return self.watch is not Watch.NONE

    @property
    def label_filtered(self) -> bool:
        """A miss in the store may be someone else's object: the informer asks for our labels only."""
        return self.watch in (Watch.INFORMER, Watch.OPTIONAL) and bool(self.label_selector)

    def collection(self, namespace: str | None) -> str:
        """The collection of this kind in one namespace, or across all of them."""
        if namespace and self.namespaced:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        path = self.collection(namespace)
        if name:
            path += f"/{name}"
        if sub:
            path += f"/{sub}"
        return path


class Kinds(dict[str, Kind]):
    """The kind table, by kind name."""

    def __init__(self, kinds: Iterable[Kind]):
        super().__init__((k.name, k) for k in kinds)
