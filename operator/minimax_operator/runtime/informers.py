"""Informers and their stores: the objects the operator reads, listed once and kept current by watches.

Why informers of our own rather than kopf's indexes: kopf watches every object of a
kind in the watched namespaces (its label filters are applied on the client) and
calls a handler per event per object. These caches ask the API server for the
operator's own labels only, keep only what a reconcile reads (no managedFields, no
pod specs), and hand each event to the loop, which turns it into the key of the resource
it belongs to (the work queue de-duplicates). The kubernetes Python client has no
informer to reuse.

Each Informer is one list+watch stream on a background thread (per namespace when
the operator watches named namespaces, which a Role per namespace allows; cluster-wide
with a namespace filter otherwise). A watch that ends is resumed from the last
resourceVersion (bookmarks keep it fresh); a 410 Gone lists again.
"""

from __future__ import annotations

import builtins
import fnmatch
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from .kinds import Indexer, Kind, Kinds, Watch, strip

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
#: The label every store indexes by: every child of a resource carries its instance name.
INSTANCE_LABEL = "app.kubernetes.io/instance"
#: How long an add-on's API found missing is taken as missing before discovery is asked again.
ABSENT_RECHECK_SECONDS = 30.0


def _rv(obj: Obj) -> int | None:
    value = obj.get("metadata", {}).get("resourceVersion", "")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _instance(obj: Obj) -> Iterable[str]:
    instance = (obj["metadata"].get("labels") or {}).get(INSTANCE_LABEL)
    return (instance,) if instance else ()


class Store:
    """Objects of one kind by (namespace, name), with an index by instance label and any named
    indexes given (values an object is found under, computed once per stored version). Thread-safe.

    Objects handed out are shared: callers must not mutate them (copy first).
    """

    def __init__(self, indexers: dict[str, Indexer] | None = None) -> None:
        self._lock = threading.Lock()
        self._objs: dict[Key, Obj] = {}
        self._indexers: dict[str, Indexer] = {INSTANCE_LABEL: _instance, **(indexers or {})}
        #: index name -> (namespace, value) -> names
        self._indexes: dict[str, dict[Key, set[str]]] = {name: {} for name in self._indexers}

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objs.get((namespace, name))

    def list(self, namespace: str | None, selector: dict[str, str] | None = None) -> list[Obj]:
        selector = selector or {}
        with self._lock:
            instance = selector.get(INSTANCE_LABEL)
            if instance is not None and namespace is not None:
                names = self._indexes[INSTANCE_LABEL].get((namespace, instance), set())
                candidates: Iterable[Obj] = [self._objs[(namespace, n)] for n in names]
            else:
                candidates = [o for (ns, _), o in self._objs.items() if namespace is None or ns == namespace]
            return [o for o in candidates if _matches(o, selector)]

    def indexed(self, index: str, namespace: str, value: str) -> builtins.list[Obj]:
        """The objects of `namespace` found under `value` in a named index."""
        with self._lock:
            return [self._objs[(namespace, n)] for n in sorted(self._indexes[index].get((namespace, value), ()))]

    def all_keys(self) -> builtins.list[Key]:
        with self._lock:
            return list(self._objs)

    def put(self, obj: Obj) -> bool:
        """Store `obj` unless the store holds this version or a newer one (our own write's result).

        Returns whether anything changed: the watch event of our own write changes nothing,
        so it queues nothing.
        """
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self._lock:
            have = self._objs.get(key)
            if have is not None and have["metadata"].get("uid") == meta.get("uid"):
                old_rv, new_rv = _rv(have), _rv(obj)
                if old_rv is not None and new_rv is not None and new_rv <= old_rv:
                    return False
            self._unindex(key, have)
            self._objs[key] = obj
            for name, indexer in self._indexers.items():
                for value in indexer(obj):
                    self._indexes[name].setdefault((key[0], value), set()).add(key[1])
            return True

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._unindex((namespace, name), self._objs.pop((namespace, name), None))

    def replace(self, objs: Iterable[Obj]) -> builtins.list[Obj]:
        """Replace the whole content (after a list); returns the objects that are gone."""
        new = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}
        with self._lock:
            gone = [o for k, o in self._objs.items() if k not in new]
            self._objs = {}
            self._indexes = {name: {} for name in self._indexers}
        for o in new.values():
            self.put(o)
        return gone

    def _unindex(self, key: Key, obj: Obj | None) -> None:
        if obj is None:
            return
        for name, indexer in self._indexers.items():
            for value in indexer(obj):
                names = self._indexes[name].get((key[0], value))
                if names is not None:
                    names.discard(key[1])
                    if not names:
                        del self._indexes[name][(key[0], value)]


def _matches(obj: Obj, selector: dict[str, str]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Informer:
    """One list+watch stream of one kind into a Store, calling `on_event(obj)` on every change."""

    def __init__(
        self,
        client: ApiClient,
        kind: tuple[str, str],
        path: str,
        store: Store,
        on_event: Callable[[Obj], None],
        label_selector: str = "",
        field_selector: str = "",
        namespace_filter: Callable[[str], bool] | None = None,
        transform: Callable[[Obj], Obj] = strip,
        timeout_seconds: int = 300,
    ):
        self.client = client
        self.api_version, self.kind = kind
        self.path = path
        self.store = store
        self.on_event = on_event
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.namespace_filter = namespace_filter
        self.transform = transform
        self.timeout_seconds = timeout_seconds
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.response.shutdown()  # unblocks a read in progress (urllib3 2.3+)
            except Exception:  # older urllib3: closing is enough
                resp.response.release_conn()

    def _query(self) -> list[tuple[str, str]]:
        q = []
        if self.label_selector:
            q.append(("labelSelector", self.label_selector))
        if self.field_selector:
            q.append(("fieldSelector", self.field_selector))
        return q

    def _request(self, query: list[tuple[str, str]], timeout: tuple[float, float]) -> Any:
        method, url, headers, _, _ = self.client.param_serialize(
            method="GET",
            resource_path=self.path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = self.client.call_api(method, url, header_params=headers, _request_timeout=timeout)
        if resp.status == 410:
            resp.read()  # type: ignore[no-untyped-call]
            raise _Gone()
        if not 200 <= resp.status < 300:
            resp.read()  # type: ignore[no-untyped-call]
            raise ApiException(http_resp=resp)
        return resp

    def _keep(self, obj: Obj) -> bool:
        ns = obj.get("metadata", {}).get("namespace", "")
        return self.namespace_filter is None or self.namespace_filter(ns)

    def _list(self) -> str:
        items: list[Obj] = []
        cont = ""
        while True:
            q = [*self._query(), ("limit", "500")] + ([("continue", cont)] if cont else [])
            resp = self._request(q, (10, 60))
            page = json.loads(resp.read())
            items += [self.transform(o) for o in page.get("items") or [] if self._keep(o)]
            cont = page.get("metadata", {}).get("continue") or ""
            if not cont:
                rv: str = page["metadata"]["resourceVersion"]
                break
        for o in items:  # a list's items carry no kind; writes of them (a ConfigMap's PUT) need it
            o.setdefault("apiVersion", self.api_version)
            o.setdefault("kind", self.kind)
        gone = self.store.replace(items)
        self.synced.set()
        for o in [*items, *gone]:
            self.on_event(o)
        return rv

    def _watch(self, rv: str) -> str:
        q = [
            *self._query(),
            ("watch", "1"),
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.timeout_seconds + random.randint(0, 60))),
        ]
        resp = self._request(q, (10, self.timeout_seconds + 90))
        self._resp = resp
        try:
            for line in _lines(resp.response):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                rv = obj.get("metadata", {}).get("resourceVersion") or rv
                if kind == "BOOKMARK" or not self._keep(obj):
                    continue
                obj = self.transform(obj)
                meta = obj["metadata"]
                if kind == "DELETED":
                    self.store.remove(meta.get("namespace", ""), meta["name"])
                elif not self.store.put(obj):
                    continue  # our own write, already in the store
                self.on_event(obj)
        finally:
            self._resp = None
            resp.response.release_conn()
        return rv

    def _run(self) -> None:
        rv = ""
        failures = 0
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                rv = self._watch(rv)
                failures = 0
            except _Gone:
                rv = ""  # too old: list again (the store is replaced, deletions are noticed)
            except Exception as e:  # a stream must outlive any one failure
                if self._stop.is_set():
                    return
                failures += 1
                wait = min(30.0, 0.5 * 2**failures)
                log.warning("watch %s failed (%s); again in %.0f s", self.path, e, wait)
                self._stop.wait(wait)


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON of a watch, as the bytes arrive."""
    buf = b""
    for chunk in response.stream(65536, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf


def namespace_filter(patterns: list[str]) -> Callable[[str], bool] | None:
    """kopf's --namespace semantics for globs: a namespace matches any pattern; none given: all."""
    if not patterns:
        return None
    return lambda ns: any(fnmatch.fnmatchcase(ns, p) for p in patterns)


def has_glob(patterns: list[str]) -> bool:
    return any(set(p) & set("*?[") for p in patterns)


def wait_synced(informers: Iterable[Informer], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in informers)


class Stores:
    """A store per stored kind of the table, with the kind's indexes."""

    def __init__(self, kinds: Kinds):
        self.kinds = kinds
        self._stores = {k.name: Store(dict(k.indexers)) for k in kinds.values() if k.stored}

    def __contains__(self, kind: object) -> bool:
        return kind in self._stores

    def __getitem__(self, kind: str) -> Store:
        return self._stores[kind]

    def remember(self, obj: Obj) -> None:
        """A write's result, so the next reconcile does not read what it replaced."""
        kind = obj.get("kind", "")
        if kind in self._stores:
            self._stores[kind].put(self.kinds[kind].transform(obj))


class Informers:
    """The informers of every kind the table marks INFORMER, and those declared by name later.

    Named namespaces: a stream each per kind (a Role per namespace allows that); globs or
    none: one cluster-wide stream with a namespace filter.
    """

    def __init__(
        self,
        client: ApiClient,
        stores: Stores,
        namespaces: list[str],
        on_change: Callable[[str, Obj], None],
    ):
        self.client = client
        self.stores = stores
        self.on_change = on_change
        self.scoped: list[str | None] = [] if has_glob(namespaces) else list(namespaces)
        self.ns_filter = namespace_filter(namespaces) if has_glob(namespaces) else None
        self.informers: list[Informer] = []
        for kind in stores.kinds.values():
            if kind.watch is Watch.INFORMER:
                self.informers += self._of(kind)
        self._by_name: dict[tuple[str, str, str], Informer] = {}
        #: OPTIONAL kinds being watched (their informers started), by kind name.
        self._optional: dict[str, list[Informer]] = {}
        #: OPTIONAL kinds found not installed, and when (monotonic seconds).
        self._absent: dict[str, float] = {}
        self.clock = time.monotonic
        self._guard = threading.Lock()

    def _of(self, kind: Kind) -> list[Informer]:
        return [
            Informer(
                self.client,
                (kind.api_version, kind.name),
                kind.collection(ns),
                self.stores[kind.name],
                self._notify(kind.name),
                label_selector=kind.label_selector,
                namespace_filter=self.ns_filter if kind.namespaced else None,
                transform=kind.transform,
            )
            for ns in ((self.scoped or [None]) if kind.namespaced else [None])
        ]

    def installed(self, kind: str) -> bool:
        """Whether the API server serves `kind` (API discovery of its group version)."""
        k: Kind = self.stores.kinds[kind]
        try:
            method, url, headers, _, _ = self.client.param_serialize(
                method="GET", resource_path=k.prefix, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )  # fmt: skip
            resp = self.client.call_api(method, url, header_params=headers, _request_timeout=(10, 30))
            body = resp.read()  # type: ignore[no-untyped-call]
        except Exception as e:  # unreachable now: not known to be installed
            log.warning("API discovery of %s failed: %s", k.prefix, e)
            return False
        if resp.status != 200:
            return False
        return any(r.get("name") == k.plural for r in json.loads(body).get("resources") or [])

    def watch_kind(self, kind: str, timeout: float = 30) -> bool:
        """Watch an OPTIONAL kind from now on (once); True once its store is filled, False when its API
        is not installed (asked again on the next call)."""
        with self._guard:
            started = self._optional.get(kind)
            absent_since = self._absent.get(kind)
        if started is None:
            # An API found missing is asked about again after a while, not on every reconcile: a thousand
            # resources that each may want an add-on's object must not cost a thousand discovery requests.
            if absent_since is not None and self.clock() - absent_since < ABSENT_RECHECK_SECONDS:
                return False
            if not self.installed(kind):
                with self._guard:
                    self._absent[kind] = self.clock()
                return False
            with self._guard:
                started = self._optional.get(kind)
                if started is None:
                    started = self._optional[kind] = self._of(self.stores.kinds[kind])
                    for informer in started:
                        informer.start()
        if not wait_synced(started, timeout):
            raise RuntimeError(f"{kind}: watch not established within {timeout:.0f} s")
        return True

    def _notify(self, kind: str) -> Callable[[Obj], None]:
        return lambda obj: self.on_change(kind, obj)

    def start(self, timeout: float = 120) -> None:
        for informer in self.informers:
            informer.start()
        if not wait_synced(self.informers, timeout):
            raise RuntimeError(f"informers not synced within {timeout:.0f} s")
        # Add-ons installed now are watched from the start: what the operator made of them before a
        # restart (a LeaderWorkerSet serving a commit) is in the stores before any reconcile reads them.
        for kind in self.stores.kinds.values():
            if kind.watch is Watch.OPTIONAL:
                self.watch_kind(kind.name, timeout)

    def stop(self) -> None:
        with self._guard:
            by_name = list(self._by_name.values())
            optional = [i for started in self._optional.values() for i in started]
        for informer in [*self.informers, *by_name, *optional]:
            informer.stop()

    def watch_by_name(self, kind: str, namespace: str, name: str, timeout: float = 30) -> None:
        """Watch one object of a BY_NAME kind (a stream each), from now on; returns once its store is filled."""
        k: Kind = self.stores.kinds[kind]
        with self._guard:
            informer = self._by_name.get((kind, namespace, name))
            if informer is None:
                informer = Informer(
                    self.client,
                    (k.api_version, k.name),
                    k.collection(namespace),
                    self.stores[kind],
                    self._notify(kind),
                    field_selector=f"metadata.name={name}",
                    transform=k.transform,
                )
                self._by_name[(kind, namespace, name)] = informer
                informer.start()
        if not informer.synced.wait(timeout):
            raise RuntimeError(f"{kind} {namespace}/{name}: watch not established within {timeout:.0f} s")
