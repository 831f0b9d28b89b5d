"""ChatOS's models.json: the entry of a served model, and edits that never lose anybody's entries.

The ConfigMap is shared: people edit it by hand, other resources register in
it. So these pure functions change exactly one entry, keep the document's shape
(a top-level list, or an object with a `models` list and other keys), keep
unknown fields, and refuse text that is not valid JSON rather than replace it.
Which entries the operator owns is recorded in an annotation on the ConfigMap
(model_id -> namespace/name), not in the entries, so ChatOS sees clean entries.
"""

from __future__ import annotations

import json
from typing import Any

from ..api.names import OWNERS_ANNOTATION
from ..model.deployment import Resolved

Obj = dict[str, Any]


class ChatOSConfigError(ValueError):
    """The ConfigMap's content is not a models.json the operator can edit safely."""


class ModelIdTaken(ValueError):
    """Another resource or a person owns an entry with this model_id."""


def chatos_entry(r: Resolved) -> Obj:
    """The models.json entry, in the shape of the seed guide's table."""
    return {
        "name": r.spec.chatos.displayName or r.served_model_name,
        "provider": "minimax",
        "base_url": r.base_url,
        "model_id": r.served_model_name,
    }


def parse_owners(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        owners = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ChatOSConfigError(f"annotation {OWNERS_ANNOTATION} is not valid JSON: {e}") from e
    if not isinstance(owners, dict) or not all(isinstance(v, str) for v in owners.values()):
        raise ChatOSConfigError(f"annotation {OWNERS_ANNOTATION} must map model_id to namespace/name")
    return owners


def dump_owners(owners: dict[str, str]) -> str:
    return json.dumps(dict(sorted(owners.items())), separators=(",", ":"))


def _entries(doc: Any, key: str) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        models = doc.setdefault("models", [])
        if isinstance(models, list):
            return models
    raise ChatOSConfigError(f"{key} must hold a JSON list of models or an object with a 'models' list")


def _load(text: str | None, key: str) -> Any:
    if text is None or not text.strip():
        return []
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ChatOSConfigError(f"{key} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def upsert(
    text: str | None, owners: dict[str, str], entry: dict[str, Any], owner: str, key: str = "models.json"
) -> tuple[str | None, dict[str, str]]:
    """Add or update `entry` (matched by model_id) for `owner`, dropping the owner's other entries.

    Returns (new text, new owners), or (None, owners) when nothing changes.
    """
    doc = _load(text, key)
    entries = _entries(doc, key)
    model_id = entry["model_id"]
    holder = owners.get(model_id)
    existing = [i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("model_id") == model_id]
    if holder not in (None, owner):
        raise ModelIdTaken(f"model_id {model_id!r} in {key} is registered by MiniMaxDeployment {holder}")
    if holder is None and existing:
        raise ModelIdTaken(f"model_id {model_id!r} in {key} is an entry the operator did not write; rename one of them")
    new_owners = dict(owners)
    # Entries this owner registered under an older model_id (servedModelName changed).
    stale = {m for m, o in owners.items() if o == owner and m != model_id}
    kept = [e for e in entries if not (isinstance(e, dict) and e.get("model_id") in stale)]
    for m in stale:
        del new_owners[m]
    if existing:
        i = kept.index(entries[existing[0]])
        kept[i] = {**kept[i], **entry}  # unknown fields a person added to our entry survive
    else:
        kept.append(dict(entry))
    new_owners[model_id] = owner
    _replace_entries(doc, kept)
    if doc == _load(text, key) and new_owners == owners:
        return None, owners
    return _dump(doc), new_owners


def remove(
    text: str | None, owners: dict[str, str], owner: str, key: str = "models.json"
) -> tuple[str | None, dict[str, str]]:
    """Remove every entry `owner` registered. (None, owners) when there is nothing to remove."""
    mine = {m for m, o in owners.items() if o == owner}
    if not mine:
        return None, owners
    new_owners = {m: o for m, o in owners.items() if o != owner}
    try:
        doc = _load(text, key)
        entries = _entries(doc, key)
    except ChatOSConfigError:
        raise
    kept = [e for e in entries if not (isinstance(e, dict) and e.get("model_id") in mine)]
    _replace_entries(doc, kept)
    return _dump(doc), new_owners


def _replace_entries(doc: Any, entries: list[Any]) -> None:
    if isinstance(doc, list):
        doc[:] = entries
    else:
        doc["models"] = entries
