"""Give the memory a burst of work freed back to the system, once the burst is over.

Why: a thousand models applied at once parse thousands of list and watch bodies and run
thousands of reconciles; CPython frees those objects, but glibc's allocator keeps the freed
heap pages for later, so the operator's RSS stays at the burst's peak for the rest of its
life (bench/scale.py measures RSS once all models are Ready and the operator is idle).
`malloc_trim(0)` hands free pages back (those at the top of the heap, and since glibc 2.8
whole free pages inside it). It is called only when work was done since the last look and
none is queued: a steady state does nothing, and a busy operator is not slowed.

Why our own: neither kopf nor the kubernetes client does this; it is one libc call.
Where libc has no malloc_trim (musl, macOS), there is nothing to trim and this does nothing.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


#: glibc's malloc_trim, or None where libc has none.
LIBC_TRIM = _malloc_trim()


def rss_mib() -> float:
    """This process's resident set, in MiB (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class Releaser:
    """Trims the heap after work: when `done()` moved since the last look and `queued()` is 0."""

    def __init__(
        self,
        done: Callable[[], int],
        queued: Callable[[], int],
        interval: float = 30.0,
        trim: Callable[[int], int] | None = LIBC_TRIM,
    ):
        self.done = done
        self.queued = queued
        self.interval = interval
        #: None: nothing to trim with, and no thread is started.
        self.trim = trim
        self._seen = done()
        self._stop = threading.Event()
        #: How many times the heap was trimmed (for tests and the log).
        self.trims = 0

    def start(self) -> None:
        if self.trim is not None:
            threading.Thread(target=self._run, name="memory", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """One look: trim if work was done since the last look and none waits. True when it trimmed."""
        done = self.done()
        if done == self._seen or self.queued() or self.trim is None:
            return False
        self._seen = done
        before = rss_mib()
        gc.collect()
        self.trim(0)
        self.trims += 1
        log.info("work done: %.0f MiB resident before giving freed memory back, %.0f after", before, rss_mib())
        return True
