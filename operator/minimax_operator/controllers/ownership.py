"""Who controls an object: the rule behind "never patch, adopt or delete what is not ours".

An object belongs to a resource (a MiniMaxDeployment or a MiniMaxModelCache) when it
has a controller owner reference with the resource's uid. The one exception is the
retained weights PVC, which has no owner reference by design (days of downloading must
survive a delete): it belongs to a cache of the same name only when its labels say so
and name the same model.
"""

from __future__ import annotations

from typing import Any

from ..api.names import CACHE_LABEL, KIND, MANAGED_BY_LABEL, MODEL_LABEL, OWNER_LABEL
from ..render.meta import Owner

Obj = dict[str, Any]


def controlled_by(obj: Obj, owner: Owner) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == owner.uid for ref in refs)


def ours(have: Obj, owner: Owner, want: Obj) -> bool:
    """Does this resource control `have`? A controller reference with its uid, or, for a retained
    weights PVC (no owner reference by design), labels that prove it holds this resource's model."""
    if controlled_by(have, owner):
        return True
    if want["kind"] != "PersistentVolumeClaim":
        return False
    if any(ref.get("controller") for ref in have["metadata"].get("ownerReferences") or []):
        return False  # another object's claim
    labels = have["metadata"].get("labels") or {}
    wanted = want["metadata"]["labels"]
    holder = CACHE_LABEL if CACHE_LABEL in wanted else OWNER_LABEL
    same_resource = all(labels.get(k) == wanted[k] for k in (MANAGED_BY_LABEL, holder))
    # A claim without the model label (written before it existed) is never taken as it is: the
    # upgrade path (upgrade.py) hands such a claim over explicitly, as an existing claim.
    return same_resource and MODEL_LABEL in labels and labels[MODEL_LABEL] == wanted[MODEL_LABEL]


def conflict_message(kind: str, obj: Obj, pvc_hint: bool = False, owner_kind: str = KIND) -> str:
    meta = obj["metadata"]
    refs = [f"{r.get('kind')}/{r.get('name')}" for r in meta.get("ownerReferences") or [] if r.get("controller")]
    by = f", controlled by {refs[0]}" if refs else ""
    label = CACHE_LABEL if owner_kind != KIND else OWNER_LABEL
    hint = (
        f" (a retained weights claim is re-used only when its labels {label} and "
        f"{MODEL_LABEL} name this resource and its model)"
        if pvc_hint
        else ""
    )
    return (
        f"{kind} {meta['namespace']}/{meta['name']} exists and is not controlled by this {owner_kind}{by}{hint}; "
        "the operator never changes it: rename this resource or remove that object"
    )


def widest_mode(modes: list[str]) -> str:
    """The access mode that allows the most, of a claim that lists several."""
    for mode in ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"):
        if mode in modes:
            return mode
    return modes[0] if modes else "ReadWriteOnce"
