"""ChatOS registration: one entry per resource in a shared models.json, never anyone else's.

The ConfigMap is shared with people and other resources, so every change is a
read-modify-write with the resourceVersion read (a concurrent writer makes it retry,
never lose an entry), and what the operator owns is recorded in the ConfigMap's
owners annotation (render/chatos.py's pure functions do the editing).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api.names import OWNERS_ANNOTATION
from ..api.v1alpha1 import MiniMaxDeploymentSpec
from ..model.deployment import Resolved
from ..render import chatos
from ..render import status as st
from ..runtime.client import Conflict, Kube
from ..runtime.metrics import WRITES

Obj = dict[str, Any]
Key = tuple[str, str]
#: An edit of one key's text and the owners annotation; None for the text: nothing to change.
Change = Callable[[str | None, dict[str, str]], tuple[str | None, dict[str, str]]]


class ConfigMapMissing(Exception):
    """The ChatOS ConfigMap does not exist (and the operator may not create it)."""


class Registrar:
    """Registers a resource's model in its ChatOS ConfigMap and takes it out again."""

    def __init__(
        self,
        kube: Kube,
        allow_namespaces: frozenset[str],
        create_configmap: bool,
        uses: Callable[[Key, Key], None] = lambda resource, configmap: None,
        watch: Callable[[str, str], None] = lambda namespace, name: None,
    ):
        self.kube = kube
        self.allow_namespaces = allow_namespaces
        self.create_configmap = create_configmap
        #: Told which ConfigMap a resource registers in, so that its changes queue that resource.
        self.uses = uses
        #: Told which ConfigMap is about to be read, so that it is watched (and read from its store).
        self.watch = watch
        self._guard = threading.Lock()
        self._groups: dict[Key, _GroupCommit] = {}

    def target(self, body: Obj, spec: MiniMaxDeploymentSpec) -> Obj:
        ref = spec.chatos.configMapRef
        target = {
            "configMap": ref.name,
            "namespace": ref.namespace or body["metadata"]["namespace"],
            "key": spec.chatos.key,
        }
        meta = body["metadata"]
        self.uses((meta["namespace"], meta["name"]), (target["namespace"], target["configMap"]))
        return target

    def targets(self, body: Obj) -> list[Obj]:
        """Every ConfigMap this resource may be registered in: the one in status, and the spec's."""
        targets = []
        reg = (body.get("status") or {}).get("registration")
        if reg:
            targets.append({k: reg[k] for k in ("configMap", "namespace", "key")})
        try:
            spec = MiniMaxDeploymentSpec.model_validate(body.get("spec") or {})
            t = self.target(body, spec)
            if t not in targets and self.namespace_allowed(body, t):
                targets.append(t)
        except ValidationError:
            pass
        return targets

    def namespace_allowed(self, body: Obj, target: Obj) -> bool:
        return bool(
            target["namespace"] == body["metadata"]["namespace"] or target["namespace"] in self.allow_namespaces
        )

    def reconcile(self, body: Obj, r: Resolved, server_ready: bool, old: Obj, new: Obj, parks: bool = False) -> st.Cond:
        """The Registered condition; registers once the server is ready, moves or removes the entry.

        `parks`: the model's requests go through KEDA's HTTP add-on, which wakes it; it stays registered
        at 0 replicas, and registers before a server is ready (its first request starts one).
        """
        spec = r.spec
        owner_id = f"{r.namespace}/{r.name}"
        reg_old = old.get("registration")
        target = self.target(body, spec)
        wanted = spec.chatos.enabled and (spec.replicas > 0 or parks)
        try:
            if reg_old and (not wanted or {k: reg_old[k] for k in target} != target):
                self.unregister({k: reg_old[k] for k in target}, owner_id)
                reg_old = None
            if not spec.chatos.enabled:
                return st.true("Registered", "Disabled", "spec.chatos.enabled is false")
            if not wanted:
                return st.false("Registered", "Stopped", "not registered while spec.replicas is 0")
            if not self.namespace_allowed(body, target):
                return st.false(
                    "Registered",
                    "NamespaceNotAllowed",
                    f"spec.chatos.configMapRef.namespace: {target['namespace']} is not allowed for this operator "
                    "(start it with --allow-chatos-namespace)",
                )
            if not server_ready and not reg_old and not parks:
                return st.unknown("Registered", "WaitingForServer", "registers once the server is ready")
            entry = chatos.chatos_entry(r)
            self.register(target, entry, owner_id)
        except (chatos.ModelIdTaken, chatos.ChatOSConfigError, ConfigMapMissing) as e:
            if reg_old:
                new["registration"] = reg_old
            reason = {
                chatos.ModelIdTaken: "ModelIdTaken",
                chatos.ChatOSConfigError: "InvalidChatOSConfig",
                ConfigMapMissing: "ConfigMapNotFound",
            }[type(e)]
            return st.false("Registered", reason, str(e))
        new["registration"] = {**target, "modelId": r.served_model_name}
        where = f"{target['namespace']}/{target['configMap']} key {target['key']}"
        return st.true("Registered", "Registered", f"model_id {r.served_model_name} registered in ConfigMap {where}")

    def register(self, target: Obj, entry: Obj, owner_id: str) -> None:
        def change(text: str | None, owners: dict[str, str]) -> tuple[str | None, dict[str, str]]:
            return chatos.upsert(text, owners, entry, owner_id, target["key"])

        self._edit_configmap(target, change, create=self.create_configmap)

    def unregister(self, target: Obj, owner_id: str, live: bool = False) -> None:
        def change(text: str | None, owners: dict[str, str]) -> tuple[str | None, dict[str, str]]:
            return chatos.remove(text, owners, owner_id, target["key"])

        with contextlib.suppress(ConfigMapMissing):  # no ConfigMap: nothing to remove
            self._edit_configmap(target, change, create=False, live=live)

    def _edit_configmap(
        self,
        target: Obj,
        change: Change,
        create: bool,
        live: bool = False,
    ) -> None:
        """Read-modify-write with the resourceVersion read: concurrent writers never lose entries.

        The first read may come from the store (a resync that changes nothing reads
        nothing); after a conflict, and whenever `live`, from the API. Edits of one
        ConfigMap made at the same time by several workers go out as one write
        (_GroupCommit): a burst of models becoming ready rewrites the whole models.json
        once per batch, not once per model, and our own workers no longer conflict.
        """
        if not live:
            self.watch(target["namespace"], target["configMap"])
        with self._guard:
            key = (target["namespace"], target["configMap"])
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _GroupCommit(functools.partial(self._commit, *key))
        group.submit(_Edit(target["key"], change, create, live))

    def _commit(self, namespace: str, name: str, edits: list[_Edit]) -> None:
        """One read-modify-write carrying every edit; each edit's own refusal goes to its caller only."""
        live = any(e.live for e in edits)
        for _ in range(20):
            for e in edits:
                e.error = None
            cm = copy.deepcopy(self.kube.get("ConfigMap", namespace, name, live=live))
            if cm is None:
                missing = ConfigMapMissing(
                    f"spec.chatos.configMapRef: ConfigMap {namespace}/{name} does not "
                    "exist (the operator creates it only when started with --create-chatos-configmap)"
                )
                for e in edits:
                    if not e.create:
                        e.error = missing
                if all(e.error is not None for e in edits):
                    return
                cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
            annotations = cm["metadata"].setdefault("annotations", {}) or {}
            cm["metadata"]["annotations"] = annotations
            owners = chatos.parse_owners(annotations.get(OWNERS_ANNOTATION))
            data = cm.get("data") or {}
            changed = False
            for e in edits:
                if e.error is not None:
                    continue
                try:
                    text, new_owners = e.change(data.get(e.key), owners)
                except (chatos.ModelIdTaken, chatos.ChatOSConfigError) as err:
                    e.error = err
                    continue
                if text is not None:
                    data[e.key] = text
                    owners = new_owners
                    changed = True
            if not changed:
                return
            cm["data"] = data
            if owners:
                annotations[OWNERS_ANNOTATION] = chatos.dump_owners(owners)
            else:
                annotations.pop(OWNERS_ANNOTATION, None)
            try:
                if "resourceVersion" in cm["metadata"]:
                    self.kube.replace(cm)
                else:
                    self.kube.create(cm)
                WRITES.labels(kind="ConfigMap").inc()
                return
            except Conflict:
                live = True  # someone else wrote in between: read again and redo the changes
                continue
        raise RuntimeError(f"ConfigMap {namespace}/{name} kept changing; will retry")


@dataclass
class _Edit:
    """One caller's change to one key of a ConfigMap, and how it ended."""

    key: str
    change: Change
    create: bool
    live: bool
    error: BaseException | None = None
    #: Set when the edit is written (or refused), or when its caller is to write the next batch.
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False


class _GroupCommit:
    """Group commit for one ConfigMap: one caller at a time writes every edit waiting, the others wait.

    Written here rather than taken from a library: it is a dozen lines around the
    read-modify-write above, and the point is that the batch is one request with
    the resourceVersion read. The caller that finds no write in flight leads: it
    writes its batch, then hands the lead to the first edit that arrived meanwhile
    (so no caller writes other callers' batches for ever) and wakes the rest.
    """

    def __init__(self, commit: Callable[[list[_Edit]], None]):
        self._commit = commit
        self._lock = threading.Lock()
        self._queue: list[_Edit] = []
        self._busy = False

    def submit(self, edit: _Edit) -> None:
        """Returns once the edit is written (or raises its refusal, or the batch's failure)."""
        with self._lock:
            self._queue.append(edit)
            lead = not self._busy
            self._busy = True
        if not lead:
            edit.woken.wait()
        if lead or edit.lead:
            with self._lock:
                batch, self._queue = self._queue, []
            try:
                self._commit(batch)
            except Exception as e:  # the write itself failed: every edit of the batch failed with it
                for other in batch:
                    other.error = e
            finally:
                with self._lock:
                    if self._queue:
                        self._queue[0].lead = True
                        self._queue[0].woken.set()
                    else:
                        self._busy = False
                for other in batch:
                    if other is not edit:
                        other.woken.set()
        if edit.error is not None:
            raise edit.error
