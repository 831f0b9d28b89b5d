"""A de-duplicating work queue of resource keys, as controller-runtime's.

Why: a resource's Job, pods, Deployment, its own status write and the resync timer
all say "look at this resource again". The queue holds each key at most once, hands
it to one worker at a time (a key added while it is being processed runs once more
afterwards), and serves keys from events before keys from the periodic resync, so a
newly applied resource is not queued behind hundreds of idle ones. Delayed keys
(download progress, retry back-off) wait in a heap until due.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Hashable

from .metrics import QUEUE_DEPTH


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._urgent: deque[Hashable] = deque()
        self._background: deque[Hashable] = deque()
        #: key -> urgent? for keys waiting in a deque (a deque may hold stale copies: skipped).
        self._queued: dict[Hashable, bool] = {}
        self._processing: set[Hashable] = set()
        #: Keys added while processed: queued again (urgent?) when done.
        self._dirty: dict[Hashable, bool] = {}
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._shutdown = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._queued)

    def add(self, key: Hashable, urgent: bool = True) -> None:
        with self._cond:
            self._add(key, urgent)

    def _add(self, key: Hashable, urgent: bool) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is not None and (queued or not urgent):
            return  # already waiting, at least as early
        self._queued[key] = urgent
        (self._urgent if urgent else self._background).append(key)
        QUEUE_DEPTH.set(len(self._queued))
        self._cond.notify()

    def add_after(self, key: Hashable, seconds: float) -> None:
        """Queue `key` (behind events) once `seconds` have passed; the earliest request wins."""
        if seconds <= 0:
            self.add(key, urgent=False)
            return
        due = time.monotonic() + seconds
        with self._cond:
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            heapq.heappush(self._delayed, (due, next(self._seq), key))
            self._cond.notify()

    def get(self) -> Hashable | None:
        """The next key to process (blocks); None once shut down."""
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                self._promote_due()
                key = self._pop()
                if key is not None:
                    self._processing.add(key)
                    QUEUE_DEPTH.set(len(self._queued))
                    return key
                timeout = self._delayed[0][0] - time.monotonic() if self._delayed else None
                self._cond.wait(timeout)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._add(key, self._dirty.pop(key))

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def _pop(self) -> Hashable | None:
        for dq, urgent in ((self._urgent, True), (self._background, False)):
            while dq:
                key = dq.popleft()
                if self._queued.get(key) is urgent:
                    del self._queued[key]
                    return key
        return None

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self._add(key, urgent=False)
