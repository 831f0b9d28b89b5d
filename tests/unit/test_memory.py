"""The memory releaser: the heap is trimmed after work, never while work waits or nothing happened."""

from __future__ import annotations

import threading

from minimax_operator.runtime.memory import Releaser, rss_mib


def test_trims_once_after_work_and_never_in_steady_state() -> None:
    state = {"done": 0, "queued": 0}
    calls: list[int] = []
    r = Releaser(done=lambda: state["done"], queued=lambda: state["queued"], trim=lambda pad: calls.append(pad) or 1)
    assert not r.check()  # nothing done since start: steady state costs nothing
    state["done"], state["queued"] = 40, 3
    assert not r.check()  # a burst still under way: not now
    state["queued"] = 0
    assert r.check()  # the burst is over: freed memory goes back
    assert calls == [0]
    assert not r.check() and not r.check()  # idle again: no more trims
    state["done"] = 41
    assert r.check()
    assert r.trims == 2


def test_without_malloc_trim_nothing_runs() -> None:
    r = Releaser(done=lambda: 1, queued=lambda: 0, trim=None)  # as on a libc without malloc_trim (musl, macOS)
    r.start()
    assert not any(t.name == "memory" for t in threading.enumerate())  # no thread started
    assert not r.check()


def test_rss_is_read() -> None:
    assert rss_mib() > 1
