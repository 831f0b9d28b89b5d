"""Who serves from which cache and claim: the lookups a cache and its users need, as indexes.

Why indexes: a cache asks which resources and servers use it on every reconcile, and a
resource asks which others share its claim; scanning (and JSON-parsing) every object of
the namespace each time made a thousand models quadratic. The watch caches (cache.Store)
compute these once per stored version; without them (no controller), kube.Kube scans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from .builders import SERVES_ANNOTATION

Obj = dict[str, Any]


def served_weights(dep: Obj) -> Obj:
    """What a server Deployment loads: {"cache", "claim", "path"} from its annotation, or {}."""
    raw = (dep["metadata"].get("annotations") or {}).get(SERVES_ANNOTATION)
    try:
        out = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def caches_named(mmd: Obj) -> Iterable[str]:
    """The caches a MiniMaxDeployment names (spec.cacheRef) or serves from (status.cache)."""
    ref = ((mmd.get("spec") or {}).get("cacheRef") or {}).get("name")
    served = (mmd.get("status") or {}).get("cache")
    return {str(c) for c in (ref, served) if c}


def served_cache(dep: Obj) -> Iterable[str]:
    cache = served_weights(dep).get("cache")
    return (str(cache),) if cache else ()


def served_claim(dep: Obj) -> Iterable[str]:
    claim = served_weights(dep).get("claim")
    return (str(claim),) if claim else ()


#: kind -> index name -> the values an object is found under.
INDEXERS: dict[str, dict[str, Callable[[Obj], Iterable[str]]]] = {
    "MiniMaxDeployment": {"cache": caches_named},
    "Deployment": {"cache": served_cache, "claim": served_claim},
}
