"""Does a live object still hold what the operator wants of it? (drift, without a write)

Why not compare a hash the operator wrote itself: a `kubectl edit` of the args
keeps the hash annotation, so the edit would stay forever. Why not a dry-run apply
each resync: that is a request per object per resync, and steady state must cost
nothing. So the desired object is compared with the live one, field by field, the
way server-side apply merges them: every field the operator sets must be present
with its value; fields others added (defaults, other controllers' annotations,
env vars added by a webhook) are left alone, as apply leaves them.
"""

from __future__ import annotations

from typing import Any

from kubernetes.utils import parse_quantity

#: Maps the API declares atomic (`+mapType=atomic`: Service and pod selectors, nodeSelector):
#: whoever applies them owns the whole map, so a key someone added is drift too.
ATOMIC_MAPS = frozenset({"selector", "nodeSelector", "matchLabels"})
#: Merge keys of lists whose items are not keyed by `name` (the API's `patchMergeKey`): one
#: volume may be mounted twice (the weights read-only, the server's cache through a subPath).
MERGE_KEYS = {"volumeMounts": "mountPath", "ports": "containerPort", "volumeDevices": "devicePath"}


def covers(live: Any, want: Any, merge_key: str = "name") -> bool:
    """True when `live` carries every field of `want` with an equal value."""
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and _covers_field(k, live[k], v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(live, list):
            return False
        if want and all(isinstance(w, dict) and merge_key in w for w in want):
            # A list merged by key (containers, env, volumes by name): ours must be there; others may be too.
            by_key = {item.get(merge_key): item for item in live if isinstance(item, dict)}
            return all(w[merge_key] in by_key and covers(by_key[w[merge_key]], w) for w in want)
        return len(live) == len(want) and all(covers(lv, w) for lv, w in zip(live, want, strict=True))
    return _same_scalar(live, want)


def _covers_field(key: str, live: Any, want: Any) -> bool:
    if key in ATOMIC_MAPS and isinstance(want, dict):
        return covers(live, want) and isinstance(live, dict) and live.keys() == want.keys()
    return covers(live, want, MERGE_KEYS.get(key, "name"))


def _same_scalar(live: Any, want: Any) -> bool:
    if live == want:
        return True
    # The API server normalises quantities ("0.5" -> "500m", "1000Mi" stays, 2 -> "2").
    if isinstance(want, (str, int)) and isinstance(live, (str, int)) and not isinstance(want, bool):
        try:
            return bool(parse_quantity(want) == parse_quantity(live))  # type: ignore[no-untyped-call]
        except ValueError:
            return False
    return False
