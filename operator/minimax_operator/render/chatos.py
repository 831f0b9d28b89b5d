"""ChatOS's models.json: the entry of a served model, and edits that never lose anybody's entries.

The ConfigMap is shared: people edit it by hand, other resources register in
it. So these pure functions change exactly one entry, keep the document's shape
(a top-level list, or an object with a `models` list and other keys), its key order,
its indentation (or compactness), and unknown fields, and refuse rather than rewrite
text they cannot keep exactly: invalid JSON, duplicate keys, NaN and Infinity (not JSON),
nesting deeper than any models.json needs, or a result past the 1 MiB a ConfigMap holds.
Numbers are written back as they were written (`1.10`, `1e5`, `1e400`, a 5,000-digit
integer): Python would reparse them into floats and ints and print them its own way.
Which entries the operator owns is recorded in an annotation on the ConfigMap (model_id ->
namespace/name), not in the entries, so ChatOS sees clean entries; of several entries with one
model_id, the operator's is the one that points at its server (a person's entry of the same
model_id is never touched).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from ..api.names import OWNERS_ANNOTATION
from ..model.deployment import Resolved, server_root

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
        "base_url": r.chatos_base_url,
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


#: What a ConfigMap holds in all (the API server refuses more); the text must leave room for the rest.
CONFIGMAP_MAX_BYTES = 1 << 20
#: Deeper nesting than this is no models.json (and would exhaust the parser's recursion).
MAX_DEPTH = 64


def _entries(doc: Any, key: str) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        models = doc.setdefault("models", [])
        if isinstance(models, list):
            return models
    raise ChatOSConfigError(f"{key} must hold a JSON list of models or an object with a 'models' list")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ChatOSConfigError(f"the key {k!r} appears twice in one object: one of them would be lost")
        out[k] = v
    return out


class _Numbers:
    """Every number of a document, kept as its text while the document is edited.

    Why not parse them: json.loads turns `1.10` and `1e5` into floats that print as `1.1` and
    `100000.0`, `1e400` into inf (printed as `Infinity`, which strict readers refuse), and refuses
    an integer past 4,300 digits with a ValueError. So each number is parsed into a placeholder
    string that no document can hold by chance (a NUL and a random token), and the text replaces
    the placeholder again in the dump.
    """

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.texts: list[str] = []

    def keep(self, text: str) -> str:
        self.texts.append(text)
        return f"\x00{self.token}#{len(self.texts) - 1}"

    def restore(self, dumped: str) -> str:
        # json.dumps writes the NUL as \u0000, whatever ensure_ascii says.
        pattern = re.compile(r'"\\u0000' + self.token + r'#([0-9]+)"')
        return pattern.sub(lambda m: self.texts[int(m.group(1))], dumped)


def _constant(name: str) -> Any:
    raise ChatOSConfigError(f"{name} is not JSON (strict readers refuse it)")


def _load(text: str | None, key: str) -> tuple[Any, _Numbers]:
    numbers = _Numbers()
    if text is None or not text.strip():
        return [], numbers
    if _nesting(text) > MAX_DEPTH:
        raise ChatOSConfigError(f"{key} nests deeper than {MAX_DEPTH} levels: that is no models.json")
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=numbers.keep,
            parse_int=numbers.keep,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as e:
        raise ChatOSConfigError(f"{key} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e
    except ChatOSConfigError as e:
        raise ChatOSConfigError(f"{key}: {e}") from e
    except RecursionError as e:
        raise ChatOSConfigError(f"{key} nests too deeply to be edited safely") from e
    return doc, numbers


def _nesting(text: str) -> int:
    """How deep brackets nest, outside strings (a cheap scan before the parser recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _style(text: str | None) -> int | None:
    """The document's indentation: None for compact text, else the first indented line's spaces."""
    if text is None or not text.strip():
        return 2
    for line in text.split("\n")[1:]:  # JSON breaks lines with \n only (splitlines also splits on U+0085 in a string)
        stripped = line.lstrip(" ")
        if stripped and len(stripped) < len(line):
            return len(line) - len(stripped)
    return None if "\n" not in text.strip() else 2


def _dump(doc: Any, numbers: _Numbers, indent: int | None, key: str) -> str:
    if indent is None:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
    else:
        text = json.dumps(doc, indent=indent, ensure_ascii=False) + "\n"
    text = numbers.restore(text)
    if len(text.encode()) > CONFIGMAP_MAX_BYTES - 64 * 1024:
        raise ChatOSConfigError(
            f"{key} would grow to {len(text.encode())} bytes, past what a ConfigMap holds (1 MiB): nothing was written"
        )
    return text


def _mine(entries: list[Any], model_id: str, base_url: str) -> list[int]:
    """Indexes of the operator's entries of `model_id`: those pointing at its server; when none
    does, the only entry of that model_id (ours, its base_url edited by hand); never one of several."""
    same = [i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("model_id") == model_id]
    pointing = [i for i in same if entries[i].get("base_url") == base_url]
    if pointing:
        return pointing[:1]
    return same if len(same) == 1 else []


def owner_url(owner: str) -> str:
    """The server root of the resource `namespace/name` (where its entry points)."""
    namespace, _, name = owner.partition("/")
    return server_root(name, namespace)


def upsert(
    text: str | None, owners: dict[str, str], entry: dict[str, Any], owner: str, key: str = "models.json"
) -> tuple[str | None, dict[str, str]]:
    """Add or update `entry` (matched by model_id) for `owner`, dropping the owner's other entries.

    Returns (new text, new owners), or (None, owners) when nothing changes.
    """
    doc, numbers = _load(text, key)
    entries = _entries(doc, key)
    model_id = entry["model_id"]
    holder = owners.get(model_id)
    if holder not in (None, owner):
        raise ModelIdTaken(f"model_id {model_id!r} in {key} is registered by MiniMaxDeployment {holder}")
    existing = [i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("model_id") == model_id]
    if holder is None and existing:
        raise ModelIdTaken(f"model_id {model_id!r} in {key} is an entry the operator did not write; rename one of them")
    new_owners = dict(owners)
    # Entries this owner registered under an older model_id (servedModelName changed).
    url = owner_url(owner)
    stale = {m for m, o in owners.items() if o == owner and m != model_id}
    drop = {i for m in stale for i in _mine(entries, m, url)}
    for m in stale:
        del new_owners[m]
    ours = _mine(entries, model_id, entry.get("base_url", url)) if holder == owner else []
    kept = []
    for i, e in enumerate(entries):
        if i in drop:
            continue
        if ours and i == ours[0]:
            e = {**e, **entry}  # unknown fields a person added to our entry survive
        kept.append(e)
    if not ours:
        kept.append(dict(entry))
    new_owners[model_id] = owner
    before = json.dumps(entries)
    _replace_entries(doc, kept)
    if json.dumps(kept) == before and new_owners == owners:
        return None, owners
    return _dump(doc, numbers, _style(text), key), new_owners


def remove(
    text: str | None, owners: dict[str, str], owner: str, key: str = "models.json"
) -> tuple[str | None, dict[str, str]]:
    """Remove every entry `owner` registered (never a person's entry of the same model_id).

    (None, owners) when there is nothing to remove.
    """
    mine = {m for m, o in owners.items() if o == owner}
    if not mine:
        return None, owners
    new_owners = {m: o for m, o in owners.items() if o != owner}
    doc, numbers = _load(text, key)
    entries = _entries(doc, key)
    url = owner_url(owner)
    drop = {i for m in mine for i in _mine(entries, m, url)}
    _replace_entries(doc, [e for i, e in enumerate(entries) if i not in drop])
    return _dump(doc, numbers, _style(text), key), new_owners


def _replace_entries(doc: Any, entries: list[Any]) -> None:
    if isinstance(doc, list):
        doc[:] = entries
    else:
        doc["models"] = entries
