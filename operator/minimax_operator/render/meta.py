"""What every object the operator makes carries: owner references, the applied hash, common labels."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..api.names import (
    API_VERSION,
    APP_NAME,
    HASH_ANNOTATION,
    IMPLICIT_LABEL,
    KIND,
    MANAGED_BY_LABEL,
    MANAGER,
    NAME_LABEL,
)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The resource that owns the objects (for owner references): a MiniMaxDeployment or a cache."""

    name: str
    uid: str
    kind: str = KIND


@dataclass(frozen=True)
class OperatorSettings:
    """Settings of the running operator that shape the objects it creates."""

    download_image: str = "ghcr.io/chatos/minimax-operator:0.1.0"
    #: Pod retries inside one download Job (the Job controller backs off 10 s, 20 s, 40 s, ...).
    download_backoff_limit: int = 4
    #: Where KEDA reads vLLM's metrics (a Prometheus that scrapes the servers): in the ScaledObjects.
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    #: KEDA's HTTP add-on: its external scaler (a trigger of the ScaledObject of a model that parks) and its
    #: interceptor's proxy (where ChatOS sends requests to such a model), host:port.
    keda_http_scaler: str = "keda-add-ons-http-external-scaler.keda:9090"
    keda_http_interceptor: str = "keda-add-ons-http-interceptor-proxy.keda:8080"


def owner_reference(owner: Owner) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def stamp(obj: Obj) -> Obj:
    """Record a hash of the desired object on it, so an unchanged object is never applied again."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return obj


def model_label(repo: str) -> str:
    """A label value naming the repo (`org.name`), or a hash of it when too long for a label."""
    value = repo.replace("/", ".")
    if len(value) <= 63 and value[-1].isalnum():
        return value
    return "sha256-" + hashlib.sha256(repo.encode()).hexdigest()[:32]


def implicit_cache_labels() -> dict[str, str]:
    return {NAME_LABEL: APP_NAME, MANAGED_BY_LABEL: MANAGER, IMPLICIT_LABEL: "true"}
