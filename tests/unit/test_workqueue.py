"""The work queue: each key once, one worker per key, events before resyncs, delays honoured."""

from __future__ import annotations

import threading
import time

from minimax_operator.runtime.workqueue import WorkQueue


def test_a_burst_for_one_key_is_one_item() -> None:
    q = WorkQueue()
    for _ in range(50):
        q.add(("ns", "a"))
    q.add(("ns", "a"), urgent=False)
    assert len(q) == 1
    assert q.get() == ("ns", "a")
    assert len(q) == 0


def test_events_are_served_before_resyncs() -> None:
    q = WorkQueue()
    for i in range(100):
        q.add(("ns", f"idle-{i}"), urgent=False)
    q.add(("ns", "new"))
    assert q.get() == ("ns", "new")
    # A key waiting for its resync that gets an event jumps ahead, and is served once.
    q.add(("ns", "idle-99"))
    assert q.get() == ("ns", "idle-99")
    served = []
    while len(q):
        key = q.get()
        served.append(key)
        q.done(key)
    assert ("ns", "idle-99") not in served
    assert len(served) == 99


def test_a_key_added_while_processed_runs_once_more_after() -> None:
    q = WorkQueue()
    q.add("k")
    assert q.get() == "k"
    q.add("k")
    q.add("k")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    q.done("k")
    assert len(q) == 1
    assert q.get() == "k"
    q.done("k")
    assert len(q) == 0


def test_add_after_waits_and_the_earliest_request_wins() -> None:
    q = WorkQueue()
    q.add_after("late", 30)
    q.add_after("soon", 0.2)
    q.add_after("soon", 10)  # a later request does not postpone an earlier one
    t0 = time.monotonic()
    assert q.get() == "soon"
    assert 0.15 <= time.monotonic() - t0 < 5
    assert len(q) == 0


def test_workers_never_share_a_key() -> None:
    q = WorkQueue()
    active: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    handled = []

    def work() -> None:
        while (key := q.get()) is not None:
            assert isinstance(key, str)
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            time.sleep(0.001)
            with lock:
                active.discard(key)
                handled.append(key)
            q.done(key)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for _ in range(200):
        for k in "abc":
            q.add(k)
    deadline = time.monotonic() + 10
    while (len(q) or any(k in active for k in "abc")) and time.monotonic() < deadline:
        time.sleep(0.01)
    q.shutdown()
    for w in workers:
        w.join(5)
    done.set()
    assert overlaps == []
    assert 3 <= len(handled) < 600  # coalesced: far fewer runs than the 600 adds
