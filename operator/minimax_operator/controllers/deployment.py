"""Reconcile one MiniMaxDeployment: the server, its Service and its ChatOS entry.

The weights come from a MiniMaxModelCache (model_cache.py): the one named in
spec.cacheRef, or the cache of the resource's repo and revision in its namespace, which
this reconcile creates when it does not exist yet (and, on upgrade, adopts the claim a
release before model caches filled for this very resource: upgrade.py). The server is
created once the cache has a verified commit, and moves to a newer commit only once that
one is verified; until then it keeps serving the one it loads.

Ownership: an object the resource does not control (a user's Service of the same
name) is never patched, adopted or deleted. Every child name is checked before
anything is created, so a conflict costs no GPU. Observe, decide (server.py, claims.py),
act.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..api.names import (
    API_VERSION,
    CACHE_KIND,
    COMPONENT_SERVER,
    CREATED_FOR_ANNOTATION,
    FINALIZER,
    HTTP_SCALED_OBJECT_KIND,
    IMPLICIT_LABEL,
    LWS_API_VERSION,
    LWS_KIND,
    LWS_TESTED_VERSION,
    SCALED_OBJECT_KIND,
    SERVICE_MONITOR_KIND,
)
from ..api.v1alpha1 import CONDITION_TYPES, MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from ..model import quota
from ..model.deployment import ENFORCE_LABEL, Resolved, WeightsSource, check_storage, resolve
from ..model.errors import LayoutError
from ..model.model_cache import implicit_cache
from ..render import autoscaling as scaling
from ..render import chatos
from ..render import server as render
from ..render import status as st
from ..render.meta import Owner, implicit_cache_labels
from ..render.status import iso
from ..runtime.client import Conflict, Kube
from ..runtime.loop import Result
from ..runtime.metrics import WRITES
from . import autoscale, claims, gauges, server, upgrade
from .base import Base, api_message
from .chatos import Registrar
from .errors import CacheNotFound, MultiNodeUnavailable, NameConflict, QuotaExceeded, ReconcileError
from .ownership import conflict_message, controlled_by, ours
from .settings import Settings

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class UnregisterBlocked(Exception):
    """The ChatOS entry cannot be removed until a person fixes the ConfigMap."""


class Reconciler(Base):
    kind = "MiniMaxDeployment"

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        registrar: Registrar,
        watch_kind: Callable[[str], bool] | None = None,
        **kwargs: Any,
    ):
        super().__init__(kube, settings, **kwargs)
        self.registrar = registrar
        #: Starts the watch of an add-on's kind (LeaderWorkerSet) and says whether its API is installed;
        #: None (tests, one-off commands): reads go to the API, which says it.
        self.watch_kind = watch_kind

    def finalize(self, body: Obj) -> None:
        """On delete: take the model out of ChatOS. The weights stay in their cache.

        Returns only once every ConfigMap this resource may be registered in is proven free
        of its entries (removed, or never there); otherwise raises, and the finalizer holds
        the resource until a retry succeeds. A ChatOS file a person broke holds it too,
        with a Warning Event saying what to fix: deleting anyway would leave an entry that
        points at a server that no longer exists.
        """
        meta = body["metadata"]
        with self._lock(meta["uid"]):
            owner_id = f"{meta['namespace']}/{meta['name']}"
            for target in self.registrar.targets(body):
                try:
                    self.registrar.unregister(target, owner_id, live=True)  # proof of removal: not a store
                except chatos.ChatOSConfigError as e:
                    where = f"{target['namespace']}/{target['configMap']}"
                    msg = f"deletion waits until ConfigMap {where} can be edited to remove this model's entry: {e}"
                    self.kube.event(body, "Warning", "UnregisterFailed", msg)
                    raise UnregisterBlocked(msg) from e
            # Proven gone: let the resource go now. kopf would remove the finalizer too, but with a
            # patch that tests resourceVersion; a status write in between makes that wait for an
            # event that, during deletion, may never come.
            self.kube.remove_finalizer(body, FINALIZER)
            WRITES.labels(kind="MiniMaxDeployment/finalizer").inc()
        self._forget(meta["uid"])
        gauges.forget(meta["uid"])

    # ---- the steps ----------------------------------------------------------------------

    def _finish_conditions(
        self,
        body: Obj,
        old: Obj,
        new: Obj,
        conds: list[st.Cond],
        replicas: int,
        result: Result,
        scaling_state: tuple[autoscale.Plan, st.Cond] | None = None,
    ) -> None:
        conds = [*conds, st.ready_condition(conds)]
        assert tuple(c.type for c in conds) == CONDITION_TYPES
        phase = st.phase(conds, replicas)
        if scaling_state is not None:
            plan, cond = scaling_state
            phase = _parked_phase(phase, plan, replicas, str(old.get("phase") or ""))
            conds.append(cond)
            times = autoscale.start_times(old, phase, self.clock())
            auto = {
                **new.get("autoscaling", {}),
                "startedAt": times.started_at,
                "expectedReadyAt": times.expected_ready_at,
                "lastStartSeconds": times.last_start_seconds,
            }
            new["autoscaling"] = {k: v for k, v in auto.items() if v is not None}
        self._finish(body, old, new, conds, phase, result)
        meta = body["metadata"]
        most = scaling_state[0].max_replicas if scaling_state and scaling_state[0].scale else replicas
        gauges.model(meta["uid"], meta["namespace"], meta["name"], new, most)

    def _fail(self, body: Obj, old: Obj, new: Obj, reason: str, message: str, result: Result) -> None:
        conds = [
            st.false("WeightsReady", reason, message),
            st.unknown("ServerReady", "WaitingForWeights"),
            st.unknown("Registered", "WaitingForServer"),
        ]
        if old.get("download") and "download" not in new:
            new["download"] = old["download"]  # keep the record of what was downloaded
        self._finish_conditions(body, old, new, conds, 0, result)

    def _reconcile(self, body: Obj, result: Result) -> None:
        meta = body["metadata"]
        ns, name, gen = meta["namespace"], meta["name"], meta.get("generation", 1)
        old = body.get("status") or {}
        new: Obj = {"observedGeneration": gen}
        r0: Resolved | None = None
        enforced = self._enforced(ns)
        try:
            spec = MiniMaxDeploymentSpec.model_validate(body.get("spec") or {})
            if spec.model or spec.repo:  # the layout checks that need no cache, before anything else
                r0 = resolve(name, ns, spec, self.settings.vllm_images, enforced=enforced)
                new.update(
                    model=r0.model_label,
                    servedModelName=r0.served_model_name,
                    tensorParallelSize=r0.tensor_parallel_size,
                    layout=r0.layout.describe(),
                    nodes=r0.layout.nodes,
                )
        except (ValidationError, LayoutError) as e:
            reason = e.reason if isinstance(e, LayoutError) else "InvalidSpec"
            self._fail(body, old, new, reason, str(e), result)
            return
        owner = Owner(name=name, uid=meta["uid"])
        if not old:
            # First sight: say so at once, then do the work behind the other new resources. In a
            # burst of hundreds, each gets its first status within seconds instead of after every
            # other resource's checks and creates (several requests each).
            first = [
                st.unknown("WeightsReady", "Pending", "checking names, quota and storage before anything is created"),
                st.unknown("ServerReady", "WaitingForWeights"),
                st.unknown("Registered", "WaitingForServer"),
            ]
            first.append(st.ready_condition(first))
            new["conditions"] = st.merge([], first, gen, iso(self.clock()))
            new["phase"] = st.phase(first, spec.replicas)
            result.peers_changed = self._write_status(body, old, new)
            result.requeue(0)
            return

        try:
            if r0 is not None:
                # A resource that can never serve must not cost a download: its own names, the GPU
                # quota and an existing claim's access modes are checked before its cache exists.
                self._preflight(r0, owner)
                self._check_existing_claim(r0)
            cache_name, cache = self._cache(body, spec, owner)
            new["cache"] = cache_name
            w = _weights_of(cache_name, cache)
            if w is None:
                raise LayoutError("cacheRef", f"MiniMaxModelCache {cache_name} has an invalid spec: see its status")
            r = resolve(name, ns, spec, self.settings.vllm_images, w, enforced=enforced)
            new.update(
                model=r.model_label,
                servedModelName=r.served_model_name,
                tensorParallelSize=r.tensor_parallel_size,
                layout=r.layout.describe(),
                nodes=r.layout.nodes,
            )
            r = self._neighbours(body, r, w)
            if r0 is None:
                self._preflight(r, owner)
            weights = self._weights(r, cache_name, cache, new)
            # One pod at all may mount a ReadWriteOncePod claim: the server stops while its cache downloads.
            claim_busy = r.claim_access_mode == "ReadWriteOncePod" and not _cache_ready(cache)
            plan = self._plan(r)
            if plan is not None and (not plan.scale or plan.condition.reason == "WakeUnavailable"):
                result.requeue(60)  # installing KEDA or its HTTP add-on sends this resource no event
            server_ready = self._server(r, owner, weights.status == "True", claim_busy, new, result)
            scaling_state = self._scaling(r, owner, plan, new)
            upgrade.delete_legacy_jobs(self.kube, r, owner)
        except (ReconcileError, LayoutError) as e:
            if isinstance(e, NameConflict):
                # Not our server: whatever answers under that name must not be in ChatOS as this model.
                for target in self.registrar.targets(body):
                    # A file broken by hand cannot be edited now; the next resync tries again.
                    with contextlib.suppress(chatos.ChatOSConfigError):
                        self.registrar.unregister(target, f"{ns}/{name}")
                new.pop("endpoint", None)
                result.requeue(30)  # someone else's object is not in our stores: its removal sends no event
            if isinstance(e, MultiNodeUnavailable):
                result.requeue(60)  # installing LWS sends this resource no event
            self._fail(body, old, new, e.reason, str(e), result)
            return
        if plan is not None and plan.wake:
            # ChatOS reaches the model through KEDA's HTTP add-on, which holds a parked model's requests.
            r = dataclasses.replace(r, chatos_root=scaling.wake_root(r, self.settings.operator))
            if spec.replicas == 0:
                server_ready = st.false(
                    "ServerReady",
                    "Parked",
                    f"no server while idle; the next request wakes it and is held up to "
                    f"{spec.autoscaling.wakeTimeoutSeconds if spec.autoscaling else 0} s",
                )
        parks = bool(plan and plan.wake)
        registered = self.registrar.reconcile(body, r, server_ready.status == "True", old, new, parks=parks)
        self._finish_conditions(
            body, old, new, [weights, server_ready, registered], spec.replicas, result, scaling_state
        )

    def _enforced(self, namespace: str) -> str | None:
        """The Pod Security level the namespace enforces (its label), None when it sets none."""
        obj = self.kube.get("Namespace", "", namespace)
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        level = labels.get(ENFORCE_LABEL)
        return str(level) if level else None

    # ---- the cache ------------------------------------------------------------------------

    def _check_existing_claim(self, r: Resolved) -> None:
        """spec.storage.existingClaim: its own access modes must carry the replicas (before any download)."""
        if r.spec.cacheRef or not r.spec.storage.existingClaim:
            return
        claim = self.kube.get("PersistentVolumeClaim", r.namespace, r.spec.storage.existingClaim)
        if claim is not None:
            check_storage(r, list((claim.get("spec") or {}).get("accessModes") or []))

    def _cache(self, body: Obj, spec: MiniMaxDeploymentSpec, owner: Owner) -> tuple[str, Obj]:
        """The cache this resource serves from; the implicit one is created when missing."""
        ns = body["metadata"]["namespace"]
        if spec.cacheRef:
            cache = self.kube.get(CACHE_KIND, ns, spec.cacheRef.name)
            if cache is None:
                raise CacheNotFound(f"spec.cacheRef: MiniMaxModelCache {spec.cacheRef.name} does not exist")
            return spec.cacheRef.name, cache
        legacy = upgrade.legacy_claim(self.kube, body, spec)  # upgrade
        name, cache_spec = implicit_cache(spec, legacy["metadata"]["name"] if legacy else None)
        cache = self.kube.get(CACHE_KIND, ns, name)
        if cache is None:
            cache = self._create_cache(ns, name, cache_spec, body["metadata"]["name"])
        elif (cache["metadata"].get("labels") or {}).get(IMPLICIT_LABEL) == "true":
            cache = self._sync_token(cache, spec)
        if legacy is not None:
            upgrade.hand_over(self.kube, legacy, owner, name, cache)  # upgrade
        return name, cache

    def _create_cache(self, ns: str, name: str, spec: MiniMaxModelCacheSpec, created_for: str) -> Obj:
        obj = {
            "apiVersion": API_VERSION,
            "kind": CACHE_KIND,
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": implicit_cache_labels(),
                "annotations": {CREATED_FOR_ANNOTATION: created_for},
                # Its own reconcile would add it with one more write: a thousand models, a thousand writes.
                "finalizers": [FINALIZER],
            },
            "spec": spec.model_dump(exclude_none=True, exclude_defaults=True),
        }
        try:
            created: Obj = self.kube.create(obj)
            WRITES.labels(kind=CACHE_KIND).inc()
            return created
        except Conflict:  # another resource of the same weights created it a moment ago
            live = self.kube.get(CACHE_KIND, ns, name, live=True)
            if live is None:
                raise
            return live

    def _sync_token(self, cache: Obj, spec: MiniMaxDeploymentSpec) -> Obj:
        """A token set on a resource reaches its implicit cache (a gated repo fixed without a new download)."""
        ref = spec.download.tokenSecretRef
        if ref is None:
            return cache
        have = ((cache.get("spec") or {}).get("download") or {}).get("tokenSecretRef") or {}
        want = ref.model_dump()
        if have == want:
            return cache
        WRITES.labels(kind=CACHE_KIND).inc()
        return self.kube.merge_patch(cache, {"spec": {"download": {"tokenSecretRef": want}}})

    def _neighbours(self, body: Obj, r: Resolved, w: WeightsSource) -> Resolved:
        """On a ReadWriteOnce claim shared with other resources: pin to their node, if their GPUs leave room."""
        if r.claim_access_mode != "ReadWriteOnce":
            return r
        meta = body["metadata"]
        users = self.kube.indexed("MiniMaxDeployment", "cache", meta["namespace"], w.cache)
        field = "cacheRef" if r.spec.cacheRef else "storage.accessMode"
        earlier = claims.neighbours(body, users, w.cache, r.layout.gpus * r.spec.replicas, r.spec.gpu.perNode, field)
        return dataclasses.replace(r, claim_neighbours=earlier) if earlier else r

    def _weights(self, r: Resolved, cache_name: str, cache: Obj, new: Obj) -> st.Cond:
        """WeightsReady, from the cache: True once it has a verified commit for the server to load."""
        cs = cache.get("status") or {}
        if cs.get("download"):
            new["download"] = cs["download"]
        ready: Obj = next((c for c in cs.get("conditions") or [] if c.get("type") == "Ready"), {})
        if cs.get("path") and cs.get("claimName"):
            if cs.get("commit"):
                new["commit"] = cs["commit"]
            what = f"commit {cs['commit'][:12]}" if cs.get("commit") else f"folder {cs['path']}"
            msg = f"{what} of {r.repo} verified in MiniMaxModelCache {cache_name} (PVC {cs['claimName']})"
            if ready.get("status") != "True" and ready.get("message"):
                msg += f"; the cache is getting revision {cs.get('revision')}: {ready['message']}"
            return st.true("WeightsReady", "Downloaded", msg)
        reason = str(ready.get("reason") or "Pending")
        message = str(ready.get("message") or "the cache has not started yet")
        return st.false("WeightsReady", reason, f"MiniMaxModelCache {cache_name}: {message}")

    def _quotas(self, r: Resolved) -> list[Obj]:
        return self.kube.list("ResourceQuota", r.namespace, {})

    def _needs(self, r: Resolved) -> dict[str, Any]:
        return quota.needs(
            r.spec.gpu.resourceName,
            gpus=r.layout.gpus * r.spec.replicas,  # every pod of every group
            pods=max(r.spec.replicas, 1) * r.layout.nodes,
            storage=None,
            storage_class=None,
        )

    def _multi_node_available(self, r: Resolved) -> None:
        """A replica over several nodes needs LWS: refused before anything costs when it is missing."""
        if not r.layout.multi_node:
            return
        # Without informers (one-off commands) nothing is watched: an API found missing at apply time
        # says MultiNodeUnavailable there (_server).
        installed = self.watch_kind(LWS_KIND) if self.watch_kind else True
        if not installed:
            raise MultiNodeUnavailable(
                f"{r.layout.describe()} spans {r.layout.nodes} nodes, a LeaderWorkerSet group, but the cluster does "
                f"not serve the LeaderWorkerSet API ({LWS_API_VERSION}): install LeaderWorkerSet "
                f"{LWS_TESTED_VERSION} or later (https://lws.sigs.k8s.io), or use a layout of one node "
                "(spec.tensorParallelSize, spec.gpu); nothing is downloaded until then"
            )

    def _preflight(self, r: Resolved, owner: Owner) -> None:
        """Check the server's names and the GPU quota before anything is created."""
        self._multi_node_available(r)
        problems = []
        kind, name = (LWS_KIND, render.group_name(r)) if r.layout.multi_node else ("Deployment", r.name)
        probes: list[tuple[str, str, Obj]] = [
            (kind, name, render.server(r, owner)),
            ("Service", r.service_name, render.service(r, owner)),
        ]
        if r.spec.autoscaling is not None:
            probes.append(
                ("Service", scaling.wake_service_name(r), scaling.wake_service(r, owner, self.settings.operator))
            )
        for kind, obj_name, want in probes:
            have = self.kube.get(kind, r.namespace, obj_name)
            if have is not None and not ours(have, owner, want):
                problems.append(conflict_message(kind, have))
        if problems:
            raise NameConflict("; ".join(problems))
        never = [q for q in quota.shortfalls(self._quotas(r), self._needs(r)) if q.never_fits]
        if never:
            raise QuotaExceeded(
                "; ".join(map(str, never)) + ": this resource can never fit the namespace's quota; "
                "ask for a larger quota or use fewer GPUs (tensorParallelSize, replicas)"
            )

    # ---- autoscaling and scraping ------------------------------------------------------------

    def _installed(self, kind: str) -> bool:
        """Whether an add-on's API is served (its watch starts on first ask); without informers, assumed."""
        return self.watch_kind(kind) if self.watch_kind else True

    def _plan(self, r: Resolved) -> autoscale.Plan | None:
        a = r.spec.autoscaling
        if a is None:
            return None
        keda = self._installed(SCALED_OBJECT_KIND)
        http_addon = a.minReplicas == 0 and self._installed(HTTP_SCALED_OBJECT_KIND)
        cap = autoscale.quota_cap(
            self._quotas(r), r.spec.gpu.resourceName, r.layout.gpus, min(r.spec.replicas, a.maxReplicas)
        )
        return autoscale.plan(a, keda, http_addon, cap, r.spec.replicas)

    def _scaling(
        self, r: Resolved, owner: Owner, plan: autoscale.Plan | None, new: Obj
    ) -> tuple[autoscale.Plan, st.Cond] | None:
        """The ScaledObject (and, for a model that parks, the HTTP add-on's route and the wake Service),
        and the ServiceMonitor; each retired (ours only) when no longer wanted."""
        if r.spec.metrics.serviceMonitor and self._installed_quietly(SERVICE_MONITOR_KIND):
            self._ensure(scaling.service_monitor(r, owner), owner)
        else:
            self._retire_named(SERVICE_MONITOR_KIND, r, owner, r.name)
        a = r.spec.autoscaling
        if plan is None or a is None or not plan.scale:
            self._retire_named(SCALED_OBJECT_KIND, r, owner, r.name)
            self._retire_named(HTTP_SCALED_OBJECT_KIND, r, owner, r.name)
            self._retire_named("Service", r, owner, scaling.wake_service_name(r))
            return None if plan is None else (plan, plan.condition)
        if plan.wake:
            self._ensure(scaling.http_scaled_object(r, owner, a, plan.max_replicas), owner)
            self._ensure(scaling.wake_service(r, owner, self.settings.operator), owner)
        so = self._ensure(
            scaling.scaled_object(r, owner, self.settings.operator, a, plan.min_replicas, plan.max_replicas), owner
        )
        if not plan.wake:
            self._retire_named(HTTP_SCALED_OBJECT_KIND, r, owner, r.name)
            self._retire_named("Service", r, owner, scaling.wake_service_name(r))
        new["autoscaling"] = {
            "scaledObject": r.name,
            "minReplicas": plan.min_replicas,
            "maxReplicas": plan.max_replicas,
            **({"limitedBy": plan.limited_by} if plan.limited_by else {}),
            **({"wakeEndpoint": scaling.wake_root(r, self.settings.operator) + "/v1"} if plan.wake else {}),
        }
        return plan, autoscale.scaler_condition(plan, so)

    def _installed_quietly(self, kind: str) -> bool:
        """Like _installed, but without informers (one-off commands) an add-on is assumed absent: an
        optional object is not worth a failed apply."""
        return self.watch_kind(kind) if self.watch_kind else False

    def _retire_named(self, kind: str, r: Resolved, owner: Owner, name: str) -> None:
        """Delete an object of ours that is no longer wanted; looked up in the stores (no request when absent).

        An add-on's objects of ours are in its store: its watch starts at the operator's start when the
        API is installed, and before this operator creates any (_installed, Informers.watch_kind). Without
        stores (a client of its own), only the core kinds are looked up.
        """
        stores = self.kube.stores
        if stores is not None:
            if kind not in stores:
                return
            old = stores[kind].get(r.namespace, name)
        elif kind in ("Service", "Deployment"):
            old = self.kube.get(kind, r.namespace, name)
        else:
            return
        if old is not None and controlled_by(old, owner):
            self.kube.delete(kind, r.namespace, name)
            WRITES.labels(kind=kind).inc()

    # ---- the server -----------------------------------------------------------------------

    def _server(
        self, r: Resolved, owner: Owner, weights_ready: bool, claim_busy: bool, new: Obj, result: Result
    ) -> st.Cond:
        """Observe the server, decide (server.action, server.condition), act.

        The server is a Deployment on one node, a LeaderWorkerSet over several; a resource whose layout
        moves between them gets the new one, and the old one (ours only) is deleted once it exists.
        """
        multi = r.layout.multi_node
        kind, name = (LWS_KIND, render.group_name(r)) if multi else ("Deployment", r.name)
        dep = self.kube.get(kind, r.namespace, name)
        if dep is not None and not controlled_by(dep, owner):
            raise NameConflict(conflict_message(kind, dep))
        replicas = r.spec.replicas
        quota_full = ""
        if server.needs_quota_check(weights_ready, claim_busy, dep, replicas):
            short = quota.shortfalls(self._quotas(r), self._needs(r))
            quota_full = "; ".join(map(str, short)) + ": waiting for quota to free" if short else ""
        step = server.action(weights_ready, claim_busy, dep, replicas, bool(quota_full))
        try:
            if step is server.Action.WAIT_FOR_QUOTA:
                result.requeue(60)
                return st.false("ServerReady", "QuotaFull", quota_full)
            if step is server.Action.APPLY:
                dep = self._ensure(render.server(r, owner), owner)
                self._ensure(render.service(r, owner), owner)
                self._retire(r, owner, "Deployment" if multi else LWS_KIND)
            elif step is server.Action.STOP_FOR_DOWNLOAD:
                self._ensure(render.server(r, owner, replicas=0), owner)
                new["endpoint"] = r.endpoint
                return st.false(
                    "ServerReady", "StoppedForDownload", "ReadWriteOncePod: the server stops while the weights download"
                )
        except ApiException as e:
            if multi and e.status == 404:  # LWS uninstalled since its watch started
                result.requeue(60)
                return st.false(
                    "ServerReady",
                    "MultiNodeUnavailable",
                    f"the API server no longer serves {LWS_API_VERSION}: reinstall LeaderWorkerSet "
                    f"{LWS_TESTED_VERSION} or later, or use a layout of one node",
                )
            result.requeue(30)
            return st.false("ServerReady", "ApplyFailed", api_message(e))
        if dep is not None:
            new["endpoint"] = r.endpoint
        new["replicas"] = int(((dep or {}).get("status") or {}).get("replicas") or 0)
        new["selector"] = render.pod_selector(r)
        if multi:
            needs = server.needs_group_pods(dep, replicas)
            pods = self.kube.list("Pod", r.namespace, render.selector(r, COMPONENT_SERVER)) if needs else []
            return server.group_condition(dep, replicas, r.layout.nodes, r.served_model_name, pods)
        pods = (
            self.kube.list("Pod", r.namespace, render.selector(r, COMPONENT_SERVER))
            if server.needs_pods(dep, replicas)
            else []
        )
        return server.condition(dep, replicas, r.served_model_name, pods)

    def _retire(self, r: Resolved, owner: Owner, kind: str) -> None:
        """The server of the layout this resource had before (one node, or several), if it is ours."""
        self._retire_named(kind, r, owner, render.group_name(r) if kind == LWS_KIND else r.name)


def _weights_of(cache_name: str, cache: Obj) -> WeightsSource | None:
    """What the cache offers the server: its claim and verified folder (None when its spec is invalid)."""
    try:
        spec = MiniMaxModelCacheSpec.model_validate(cache.get("spec") or {})
    except ValidationError:
        return None
    cs = cache.get("status") or {}
    storage = spec.storage
    return WeightsSource(
        cache=cache_name,
        spec=spec,
        claim_name=cs.get("claimName") or storage.existingClaim or f"{cache_name}-weights",
        access_mode=cs.get("accessMode") or (None if storage.existingClaim else storage.accessMode),
        path=cs.get("path"),
    )


def _cache_ready(cache: Obj) -> bool:
    conds = (cache.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _parked_phase(phase: str, plan: autoscale.Plan, replicas: int, was: str) -> str:
    """Parked while a model that may park has no replica; Waking while it starts again after that."""
    if not plan.wake or phase in ("Failed", "Pending", "Downloading"):
        return phase
    if replicas == 0:
        return "Parked"
    if phase == "Starting" and was in ("Parked", "Waking"):
        return "Waking"
    return phase
