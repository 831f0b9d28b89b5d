"""ChatOS registration: one entry per resource in a shared models.json, never anyone else's.

The ConfigMap is shared with people and other resources, so every change is a
read-modify-write with the resourceVersion read (a concurrent writer makes it retry,
never lose an entry), and what the operator owns is recorded in the ConfigMap's
owners annotation (render/chatos.py's pure functions do the editing).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
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
        change: Callable[[str | None, dict[str, str]], tuple[str | None, dict[str, str]]],
        create: bool,
        live: bool = False,
    ) -> None:
        """Read-modify-write with the resourceVersion read: concurrent writers never lose entries.

        The first read may come from the store (a resync that changes nothing reads
        nothing); after a conflict, and whenever `live`, from the API.
        """
        if not live:
            self.watch(target["namespace"], target["configMap"])
        for _ in range(20):
            cm = copy.deepcopy(self.kube.get("ConfigMap", target["namespace"], target["configMap"], live=live))
            if cm is None:
                if not create:
                    raise ConfigMapMissing(
                        f"spec.chatos.configMapRef: ConfigMap {target['namespace']}/{target['configMap']} does not "
                        "exist (the operator creates it only when started with --create-chatos-configmap)"
                    )
                cm = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": target["configMap"], "namespace": target["namespace"]},
                    "data": {},
                }
            annotations = cm["metadata"].setdefault("annotations", {}) or {}
            cm["metadata"]["annotations"] = annotations
            owners = chatos.parse_owners(annotations.get(OWNERS_ANNOTATION))
            data = cm.get("data") or {}
            text, new_owners = change(data.get(target["key"]), owners)
            if text is None:
                return
            data[target["key"]] = text
            cm["data"] = data
            if new_owners:
                annotations[OWNERS_ANNOTATION] = chatos.dump_owners(new_owners)
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
                live = True  # someone else wrote in between: read again and redo the change
                continue
        raise RuntimeError(f"ConfigMap {target['namespace']}/{target['configMap']} kept changing; will retry")
