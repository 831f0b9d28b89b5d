"""ChatOS edits of one ConfigMap made at once go out as one write (controllers/chatos.py's group commit).

Why it matters: at a thousand models becoming ready together, one write per model rewrites
a models.json of a thousand entries a thousand times and our own workers conflict with
each other; batched, each write carries every edit waiting, and one edit's refusal (its
model_id taken) is its caller's alone.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from minimax_operator.controllers.chatos import Registrar, _Edit, _GroupCommit
from minimax_operator.render import chatos
from tests.harness.fake_client import FakeKube


def until(fn: object, timeout: float = 10) -> None:
    """Wait for another thread to reach a state (no sleep stands in for it)."""
    deadline = time.monotonic() + timeout
    while not fn():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_edits_waiting_while_a_write_is_in_flight_go_out_as_one_batch() -> None:
    gate = threading.Event()
    batches: list[list[str]] = []

    def commit(edits: list[_Edit]) -> None:
        batches.append([e.key for e in edits])
        if len(batches) == 1:
            gate.wait(10)  # the first write is slow: the others queue behind it

    group = _GroupCommit(commit)
    noop = lambda text, owners: (None, owners)  # noqa: E731
    threads = [threading.Thread(target=group.submit, args=(_Edit(f"k{i}", noop, False, False),)) for i in range(8)]
    threads[0].start()
    until(lambda: len(batches) == 1)
    for t in threads[1:]:
        t.start()
    until(lambda: len(group._queue) == 7)
    gate.set()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert batches[0] == ["k0"]
    assert sorted(batches[1]) == [f"k{i}" for i in range(1, 8)] and len(batches) == 2


def test_a_refused_edit_fails_its_caller_only_and_a_failed_write_fails_the_whole_batch() -> None:
    def commit(edits: list[_Edit]) -> None:
        for e in edits:
            if e.key == "bad":
                e.error = chatos.ModelIdTaken("model_id x is taken")

    group = _GroupCommit(commit)
    noop = lambda text, owners: (None, owners)  # noqa: E731
    group.submit(_Edit("good", noop, False, False))
    with pytest.raises(chatos.ModelIdTaken):
        group.submit(_Edit("bad", noop, False, False))

    def broken(edits: list[_Edit]) -> None:
        raise RuntimeError("API server down")

    with pytest.raises(RuntimeError, match="down"):
        _GroupCommit(broken).submit(_Edit("any", noop, False, False))


def test_eight_models_registered_at_once_are_all_in_models_json_with_fewer_writes_than_models() -> None:
    kube = FakeKube()
    kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chatos-models"}, "data": {}})
    gate = threading.Event()
    replace = kube.replace

    def slow_replace(obj: dict[str, object]) -> dict[str, object]:
        gate.wait(10)  # the first write waits until every model has asked
        return replace(obj)

    kube.replace = slow_replace  # type: ignore[method-assign]
    registrar = Registrar(kube, frozenset(), False)  # type: ignore[arg-type]
    target = {"configMap": "chatos-models", "namespace": "ns", "key": "models.json"}

    def register(i: int) -> None:
        entry = {"title": f"m{i}", "provider": "minimax", "base_url": f"http://m{i}:8000", "model_id": f"m{i}"}
        registrar.register(target, entry, f"ns/m{i}")

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    until(lambda: sum(len(g._queue) for g in registrar._groups.values()) == 7)
    gate.set()
    for t in threads:
        t.join(10)
    cm = kube.object("ConfigMap", "chatos-models")
    assert cm is not None
    assert sorted(e["model_id"] for e in json.loads(cm["data"]["models.json"])) == [f"m{i}" for i in range(8)]
    assert [w for w in kube.writes if w[1] == "ConfigMap"] == [("replace", "ConfigMap", "chatos-models")] * 2
