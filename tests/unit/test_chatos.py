"""Editing models.json: one entry changes, nothing else is lost."""

from __future__ import annotations

import json

import pytest

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
