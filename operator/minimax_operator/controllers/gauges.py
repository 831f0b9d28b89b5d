"""Per-model gauges the operator exports beside its own metrics: what the dashboard and alerts read that
vLLM cannot say (replicas, the autoscaler's bound, parked) and that no server exports (a failing download).

Set by the leader at each reconcile that writes a status, removed when the resource goes. Followers export
none (they reconcile nothing): queries take `max by` over the operator's replicas.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Gauge

Obj = dict[str, Any]

_MODEL = ["namespace", "name", "model_name"]
REPLICAS = Gauge("minimax_deployment_replicas", "Server replicas that exist, per MiniMaxDeployment", _MODEL)
MAX_REPLICAS = Gauge(
    "minimax_deployment_max_replicas",
    "The most replicas the resource may run: spec.autoscaling.maxReplicas (as a quota caps it), else spec.replicas",
    _MODEL,
)
PARKED = Gauge("minimax_deployment_parked", "1 while the model is parked (0 replicas, woken by a request)", _MODEL)
DOWNLOAD_FAILING = Gauge(
    "minimax_cache_download_failing",
    "1 while a MiniMaxModelCache's download fails or waits to retry after failing",
    ["namespace", "name"],
)
_by_uid: dict[str, tuple[str, ...]] = {}


def model(uid: str, namespace: str, name: str, status: Obj, max_replicas: int) -> None:
    labels = (namespace, name, str(status.get("servedModelName") or ""))
    old = _by_uid.get(uid)
    if old is not None and old != labels:
        forget(uid)
    _by_uid[uid] = labels
    REPLICAS.labels(*labels).set(int(status.get("replicas") or 0))
    MAX_REPLICAS.labels(*labels).set(max_replicas)
    PARKED.labels(*labels).set(1 if status.get("phase") == "Parked" else 0)


def cache(namespace: str, name: str, ready_reason: str) -> None:
    DOWNLOAD_FAILING.labels(namespace, name).set(1 if ready_reason in ("DownloadFailed", "DownloadRetrying") else 0)


def forget(uid: str) -> None:
    labels = _by_uid.pop(uid, None)
    if labels is None:
        return
    for g in (REPLICAS, MAX_REPLICAS, PARKED):
        with contextlib.suppress(KeyError):
            g.remove(*labels)


def forget_cache(namespace: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        DOWNLOAD_FAILING.remove(namespace, name)
