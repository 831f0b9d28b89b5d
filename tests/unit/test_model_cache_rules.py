"""The rules a cache decides by: who uses it, when a server has left an old commit, what is kept."""

from __future__ import annotations

from minimax_operator.controllers.download import merge_commits
from minimax_operator.controllers.model_cache import rolled_out, served_part
from minimax_operator.controllers.watches import caches_named, served_weights


def dep(want: int, generation: int, **status: int) -> dict:
    annotations = {"minimax.chatos.io/serves": '{"cache":"c","claim":"c-weights","path":"revisions/o/n/a"}'}
    return {
        "metadata": {"name": "m", "generation": generation, "annotations": annotations},
        "spec": {"replicas": want},
        "status": status,
    }


def test_a_server_has_left_an_old_commit_only_when_no_old_pod_is_left() -> None:
    assert rolled_out(dep(1, 2, observedGeneration=2, updatedReplicas=1, replicas=1))
    assert not rolled_out(dep(1, 2, observedGeneration=1, updatedReplicas=1, replicas=1))  # not yet seen
    assert not rolled_out(dep(1, 2, observedGeneration=2, updatedReplicas=1, replicas=2))  # an old pod is left
    assert not rolled_out(dep(2, 2, observedGeneration=2, updatedReplicas=1, replicas=2))  # half way
    assert rolled_out(dep(0, 3, observedGeneration=3))  # parked: no pod loads anything


def test_what_a_server_loads_is_read_from_its_deployment() -> None:
    assert served_weights(dep(1, 1)) == {"cache": "c", "claim": "c-weights", "path": "revisions/o/n/a"}
    assert served_weights({"metadata": {"annotations": {"minimax.chatos.io/serves": "not json"}}}) == {}
    assert served_weights({"metadata": {}}) == {}


def test_users_name_the_cache_in_spec_or_serve_from_it() -> None:
    assert "c" in caches_named({"spec": {"cacheRef": {"name": "c"}}})
    assert "c" in caches_named({"spec": {}, "status": {"cache": "c"}})
    assert "c" not in caches_named({"spec": {"cacheRef": {"name": "d"}}, "status": {"cache": "d"}})


def test_verified_commits_are_kept_by_folder_and_never_lost() -> None:
    have = [{"path": "revisions/o/n/a", "commit": "a", "verifiedAt": "2026-01-01T00:00:00Z"}]
    seen = [
        {"commit": "a", "path": "revisions/o/n/a", "bytes": 9},  # known: unchanged
        {"commit": "l", "path": "o/n", "bytes": 5},  # an older release's folder the downloader found
        {"commit": "b", "path": "revisions/o/n/b", "bytes": 7, "files": 3},
        {"commit": "x"},  # no folder: ignored
    ]
    out = merge_commits(have, seen, "2026-02-01T00:00:00Z")
    assert [c["path"] for c in out] == ["revisions/o/n/a", "o/n", "revisions/o/n/b"]
    assert out[0] == have[0]
    assert out[2] == {
        "path": "revisions/o/n/b",
        "commit": "b",
        "bytes": 7,
        "files": 3,
        "verifiedAt": "2026-02-01T00:00:00Z",
    }
    assert merge_commits(out, seen, "2026-03-01T00:00:00Z") == out  # idempotent


def test_a_new_user_alone_does_not_wake_the_other_users() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    one = {"commit": "a", "path": "p", "users": ["x"], "userCount": 1, "conditions": [*ready, {"type": "InUse"}]}
    two = {**one, "users": ["x", "y"], "userCount": 2, "conditions": [*ready, {"type": "InUse", "reason": "y"}]}
    assert served_part(one) == served_part(two)
    assert served_part(one) != served_part({**one, "commit": "b"})
