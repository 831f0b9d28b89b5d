"""Who shares a claim: the pure rules behind pinning servers and cache pods to one node.

A ReadWriteOnce claim attaches to one node at a time, so every pod that mounts it (the
servers of every resource on the cache, and the cache's download and prune pods) must
run on that node. Only resources created earlier count as neighbours, so a newcomer never
changes (and rolls) the servers already there; one that does not fit is refused.
"""

from __future__ import annotations

from typing import Any

from ..model.errors import LayoutError

Obj = dict[str, Any]


def servers_beside(access_mode: str | None, servers: list[Obj]) -> tuple[str, ...]:
    """Server Deployments running on a ReadWriteOnce claim, whose node the cache's pods must join."""
    if access_mode != "ReadWriteOnce":
        return ()
    running = [d for d in servers if (d.get("spec") or {}).get("replicas")]
    return tuple(sorted({d["metadata"]["name"] for d in running}))


def neighbours(me: Obj, users: list[Obj], cache: str, my_gpus: int, per_node: int, field: str) -> tuple[str, ...]:
    """The resources created before `me` that serve from `cache` (so share its ReadWriteOnce claim).

    Raises LayoutError when their GPUs and mine do not fit one node of `per_node` GPUs.
    """
    meta = me["metadata"]
    mine = (meta.get("creationTimestamp") or "", meta["name"])
    earlier = []
    gpus = 0
    for m in users:
        mm = m["metadata"]
        if mm["name"] == meta["name"] or (m.get("status") or {}).get("cache") != cache:
            continue
        if ((mm.get("creationTimestamp") or ""), mm["name"]) < mine:
            earlier.append(mm["name"])
            tp = int((m.get("status") or {}).get("tensorParallelSize") or 1)
            gpus += tp * int((m.get("spec") or {}).get("replicas", 1))
    if earlier and gpus + my_gpus > per_node:
        raise LayoutError(
            field,
            f"the ReadWriteOnce claim of MiniMaxModelCache {cache} attaches to one node, where "
            f"{', '.join(earlier)} already take {gpus} GPUs; {my_gpus} more do not fit a node of "
            f"{per_node} (spec.gpu.perNode). Use a ReadWriteMany cache or fewer GPUs",
        )
    return tuple(sorted(earlier))
