"""Editing models.json: one entry changes, nothing else is lost."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hyp

from minimax_operator.render import chatos

HAND = {"name": "GPT", "provider": "openai", "base_url": "http://gpt", "model_id": "gpt-x", "extra": {"a": 1}}
ENTRY = {"name": "MiniMax M2.5", "provider": "minimax", "base_url": "http://m25:8000", "model_id": "MiniMax-M2.5"}


def test_adds_to_a_list_and_keeps_hand_written_entries() -> None:
    text, owners = chatos.upsert(json.dumps([HAND]), {}, ENTRY, "a/m25")
    assert text is not None
    assert json.loads(text) == [HAND, ENTRY]
    assert owners == {"MiniMax-M2.5": "a/m25"}


def test_keeps_the_object_shape_and_its_other_keys() -> None:
    doc = {"version": 2, "models": [HAND], "defaults": {"temperature": 1}}
    text, _ = chatos.upsert(json.dumps(doc), {}, ENTRY, "a/m25")
    assert text is not None
    assert json.loads(text) == {"version": 2, "models": [HAND, ENTRY], "defaults": {"temperature": 1}}


def test_unchanged_entry_means_no_write() -> None:
    text, owners = chatos.upsert(json.dumps([HAND]), {}, ENTRY, "a/m25")
    again, owners2 = chatos.upsert(text, owners, ENTRY, "a/m25")
    assert again is None and owners2 == owners


def test_update_keeps_fields_a_person_added_to_our_entry() -> None:
    start = json.dumps([{**ENTRY, "max_tokens": 4096}])
    text, _ = chatos.upsert(start, {"MiniMax-M2.5": "a/m25"}, {**ENTRY, "base_url": "http://new:8000"}, "a/m25")
    assert text is not None
    assert json.loads(text) == [{**ENTRY, "base_url": "http://new:8000", "max_tokens": 4096}]


def test_model_id_of_another_resource_is_refused() -> None:
    start, owners = chatos.upsert("[]", {}, ENTRY, "a/m25")
    with pytest.raises(chatos.ModelIdTaken, match="a/m25"):
        chatos.upsert(start, owners, ENTRY, "b/other")


def test_model_id_of_a_hand_written_entry_is_refused() -> None:
    with pytest.raises(chatos.ModelIdTaken, match="did not write"):
        chatos.upsert(json.dumps([{**HAND, "model_id": "MiniMax-M2.5"}]), {}, ENTRY, "a/m25")


def test_renamed_model_replaces_its_old_entry_only() -> None:
    text, owners = chatos.upsert(json.dumps([HAND]), {}, ENTRY, "a/m25")
    renamed = {**ENTRY, "model_id": "m25-fast"}
    text2, owners2 = chatos.upsert(text, owners, renamed, "a/m25")
    assert text2 is not None
    assert json.loads(text2) == [HAND, renamed]
    assert owners2 == {"m25-fast": "a/m25"}


def test_remove_takes_only_the_owners_entries() -> None:
    text, owners = chatos.upsert(json.dumps([HAND]), {}, ENTRY, "a/m25")
    other = {**ENTRY, "model_id": "other"}
    text, owners = chatos.upsert(text, owners, other, "b/x")
    removed, left = chatos.remove(text, owners, "a/m25")
    assert removed is not None
    assert json.loads(removed) == [HAND, other]
    assert left == {"other": "b/x"}
    assert chatos.remove(removed, left, "a/m25") == (None, left)


@pytest.mark.parametrize("bad", ['[{"model_id": "x",', '"a string"', '{"models": 3}', "42"])
def test_content_that_is_not_a_models_list_is_refused(bad: str) -> None:
    with pytest.raises(chatos.ChatOSConfigError):
        chatos.upsert(bad, {}, ENTRY, "a/m25")


def test_empty_or_missing_key_starts_a_list() -> None:
    for start in (None, "", "  \n"):
        text, _ = chatos.upsert(start, {}, ENTRY, "a/m25")
        assert text is not None and json.loads(text) == [ENTRY]


def test_owners_annotation_round_trip_and_validation() -> None:
    assert chatos.parse_owners(chatos.dump_owners({"b": "x/y", "a": "z/w"})) == {"a": "z/w", "b": "x/y"}
    with pytest.raises(chatos.ChatOSConfigError):
        chatos.parse_owners("[1, 2]")


# ---- edited in place, never rewritten --------------------------------------------------------

OURS = {**ENTRY, "base_url": "http://m25.a.svc.cluster.local:8000"}


def test_a_persons_entry_of_our_model_id_survives_delete_and_rename() -> None:
    text, owners = chatos.upsert("[]", {}, OURS, "a/m25")
    theirs = {
        "name": "M2.5 via the API",
        "provider": "minimax",
        "base_url": "https://api.minimax.io",
        "model_id": OURS["model_id"],
    }
    assert text is not None
    doc = [theirs, *json.loads(text)]  # a person adds theirs, same model_id, above ours
    renamed, _ = chatos.upsert(json.dumps(doc), owners, {**OURS, "model_id": "m25-fast"}, "a/m25")
    assert renamed is not None and json.loads(renamed) == [theirs, {**OURS, "model_id": "m25-fast"}]
    text3, _ = chatos.upsert(json.dumps(doc), owners, {**OURS, "name": "New name"}, "a/m25")
    assert text3 is not None and json.loads(text3) == [theirs, {**OURS, "name": "New name"}]
    removed, _ = chatos.remove(json.dumps(doc), owners, "a/m25")
    assert removed is not None and json.loads(removed) == [theirs]


def test_the_files_style_and_key_order_are_kept() -> None:
    compact = json.dumps([HAND], separators=(",", ":"))
    text, _ = chatos.upsert(compact, {}, OURS, "a/m25")
    assert text is not None and "\n" not in text.strip() and text.startswith(compact[:-1])
    four = json.dumps({"z": 1, "models": [HAND], "a": 2}, indent=4)
    text, _ = chatos.upsert(four, {}, OURS, "a/m25")
    assert text is not None and '\n    "z": 1' in text and list(json.loads(text)) == ["z", "models", "a"]


def test_a_compact_file_with_a_unicode_line_break_in_a_string_stays_compact() -> None:
    # Found by the hypothesis test below: str.splitlines() splits on U+0085 inside a key, so the
    # compact file was taken for an indented one and re-indented.
    compact = json.dumps([{"\x85 ": None}], separators=(",", ":"), ensure_ascii=False)
    text, owners = chatos.upsert(compact, {}, OURS, "a/m25")
    assert text is not None and "\n" not in text.strip()
    back, _ = chatos.remove(text, owners, "a/m25")
    assert back == compact + "\n"


def test_numbers_are_written_back_as_they_were_written() -> None:
    # Python would print 1.10 as 1.1, 1e5 as 100000.0, 1e400 as Infinity (strict readers refuse it),
    # -0 as 0, and refuse an integer of 5,000 digits with a ValueError.
    numbers = ["1.10", "1e5", "1E+05", "1e400", "-0", "-0.0", "12345678901234567890123", "9" * 5000, "0.1e-7"]
    hand = "[{" + ",".join(f'"n{i}":{n}' for i, n in enumerate(numbers)) + ',"model_id":"theirs"}]'
    text, owners = chatos.upsert(hand, {}, OURS, "a/m25")
    assert text is not None
    for i, n in enumerate(numbers):
        assert f'"n{i}":{n},' in text, n
    removed, _ = chatos.remove(text, owners, "a/m25")
    assert removed is not None and all(n in removed for n in numbers)

    def plain(t: str) -> object:
        return json.loads(t.replace("1e400", "1").replace("9" * 5000, "9"))

    assert plain(removed) == plain(hand)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('[{"model_id": "x", "t": NaN}]', "NaN is not JSON"),
        ('[{"model_id": "x", "model_id": "y"}]', "appears twice"),
        ("[" * 5000 + "]" * 5000, "nests deeper"),
    ],
)
def test_what_cannot_be_kept_exactly_is_refused_and_changes_nothing(bad: str, says: str) -> None:
    with pytest.raises(chatos.ChatOSConfigError, match=says):
        chatos.upsert(bad, {}, OURS, "a/m25")
    with pytest.raises(chatos.ChatOSConfigError, match=says):
        chatos.remove(bad, {"MiniMax-M2.5": "a/m25"}, "a/m25")


def test_a_write_past_what_a_configmap_holds_is_refused() -> None:
    """A compact file near the limit, as a person keeps it: re-indenting it would pass 1 MiB."""
    entries = [{"model_id": f"m{i}", "notes": "x" * 900} for i in range(1000)]
    compact = json.dumps(entries, separators=(",", ":"))
    assert len(compact) < chatos.CONFIGMAP_MAX_BYTES
    text, _ = chatos.upsert(compact, {}, OURS, "a/m25")  # kept compact: it fits
    assert text is not None and len(text) < chatos.CONFIGMAP_MAX_BYTES
    full = json.dumps([{**e, "notes": "x" * 975} for e in entries], separators=(",", ":"))
    assert len(full) < chatos.CONFIGMAP_MAX_BYTES  # a ConfigMap that exists holds it
    with pytest.raises(chatos.ChatOSConfigError, match="1 MiB"):
        chatos.upsert(full, {}, OURS, "a/m25")


JSON_SCALARS = hyp.one_of(
    hyp.none(), hyp.booleans(), hyp.integers(), hyp.floats(allow_nan=False, allow_infinity=False), hyp.text(max_size=8)
)
HAND_ENTRIES = hyp.lists(
    hyp.dictionaries(
        hyp.text(min_size=1, max_size=6),
        hyp.recursive(
            JSON_SCALARS,
            lambda c: hyp.lists(c, max_size=3) | hyp.dictionaries(hyp.text(max_size=4), c, max_size=3),
            max_leaves=6,
        ),
        max_size=4,
    ),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(hand=HAND_ENTRIES, indent=hyp.sampled_from([None, 2, 4]), wrapped=hyp.booleans())
def test_register_then_unregister_gives_back_every_hand_written_entry(
    hand: list[dict[str, object]], indent: int | None, wrapped: bool
) -> None:
    hand = [e for e in hand if e.get("model_id") != OURS["model_id"]]
    doc: object = {"version": 1, "models": hand} if wrapped else hand
    start = json.dumps(doc, indent=indent, separators=(",", ":") if indent is None else None, ensure_ascii=False)
    text, owners = chatos.upsert(start, {}, OURS, "a/m25")
    assert text is not None
    back, left = chatos.remove(text, owners, "a/m25")
    assert back is not None and left == {}
    assert back == start + "\n"  # the very text: style, key order and every number as written
    assert [list(e) for e in chatos._entries(json.loads(back), "k")] == [list(e) for e in hand]  # key order
