"""Process-wide settings the operator makes before it starts any thread."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: glibc's mallopt() parameter for the number of malloc arenas.
_M_ARENA_MAX = -8


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (what MALLOC_ARENA_MAX does), before the threads start.

    Why: glibc gives each thread that allocates concurrently an arena of its own, up to 8 per
    core, and memory freed in one stays there. The operator's informers parse large list and watch
    bodies on their threads and its workers build objects on theirs, so at a thousand models the
    freed memory of a dozen arenas was resident (bench/scale.py's RSS). Python's small objects
    come from its own allocator and are not affected. Nothing to do (False) where the C library is
    not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok
