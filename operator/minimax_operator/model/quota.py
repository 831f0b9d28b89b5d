"""ResourceQuota checks before anything costs: GPUs, storage, claims and pods.

Why here and not left to the API server: a quota refuses the pods only after the
download (hundreds of GB, hours) has run, and the refusal is visible only in a
ReplicaSet's Events. Reading the namespace's quotas first turns that into a condition
with the numbers. Pure functions over the quota objects the reconciler lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

Obj = dict[str, Any]


@dataclass(frozen=True)
class Shortfall:
    """One quota resource that cannot take what a resource needs."""

    quota: str
    resource: str
    need: Decimal
    used: Decimal
    hard: Decimal

    @property
    def never_fits(self) -> bool:
        return self.need > self.hard

    def __str__(self) -> str:
        def n(q: Decimal) -> str:
            return str(q.normalize()) if q == q.to_integral() else str(q)

        return (
            f"ResourceQuota {self.quota}: {self.resource} needs {n(self.need)}, "
            f"{n(self.used)} of {n(self.hard)} already used"
        )


def needs(gpu_resource: str, gpus: int, pods: int, storage: str | None, storage_class: str | None) -> dict[str, Any]:
    """What a resource asks of quotas, by quota resource name (only what it will create)."""
    out: dict[str, Any] = {}
    if gpus:
        out[f"requests.{gpu_resource}"] = gpus
        out[gpu_resource] = gpus  # quotas may name an extended resource without the prefix
    if pods:
        out["pods"] = pods
        out["count/pods"] = pods
    if storage:
        out["requests.storage"] = storage
        out["persistentvolumeclaims"] = 1
        out["count/persistentvolumeclaims"] = 1
        if storage_class:
            out[f"{storage_class}.storageclass.storage.k8s.io/requests.storage"] = storage
            out[f"{storage_class}.storageclass.storage.k8s.io/persistentvolumeclaims"] = 1
    return out


def shortfalls(quotas: list[Obj], wanted: dict[str, Any]) -> list[Shortfall]:
    """Every quota resource where used + need exceeds the hard limit (`never_fits` when need alone does)."""
    out = []
    for q in quotas:
        if (q.get("spec") or {}).get("scopes") or (q.get("spec") or {}).get("scopeSelector"):
            continue  # scoped quotas (priority class, terminating, ...) apply to some pods only: not judged here
        hard = (q.get("status") or {}).get("hard") or (q.get("spec") or {}).get("hard") or {}
        used = (q.get("status") or {}).get("used") or {}
        for resource, need in wanted.items():
            if resource not in hard:
                continue
            h, u, n = (parse_quantity(x) for x in (hard[resource], used.get(resource, 0), need))  # type: ignore[no-untyped-call]
            if u + n > h:
                out.append(Shortfall(q["metadata"]["name"], resource, n, u, h))
    return out


def gpu_room(quotas: list[Obj], gpu_resource: str) -> list[tuple[str, Decimal, Decimal]]:
    """(quota name, hard, used) of every unscoped quota that limits this GPU resource (either spelling)."""
    out = []
    for q in quotas:
        if (q.get("spec") or {}).get("scopes") or (q.get("spec") or {}).get("scopeSelector"):
            continue
        hard = (q.get("status") or {}).get("hard") or (q.get("spec") or {}).get("hard") or {}
        used = (q.get("status") or {}).get("used") or {}
        for resource in (f"requests.{gpu_resource}", gpu_resource):
            if resource in hard:
                h = parse_quantity(hard[resource])  # type: ignore[no-untyped-call]
                u = parse_quantity(used.get(resource, 0))  # type: ignore[no-untyped-call]
                out.append((str(q["metadata"]["name"]), Decimal(h), Decimal(u)))
    return out
