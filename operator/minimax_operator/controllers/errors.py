"""Errors that end a reconcile with a condition: each carries the reason users see."""

from __future__ import annotations


class ReconcileError(Exception):
    """A reconcile cannot go on; `reason` becomes the condition's reason and the Event's."""

    reason = "Failed"


class NameConflict(ReconcileError):
    """A child's name is taken by an object this resource does not control."""

    reason = "NameConflict"


class QuotaExceeded(ReconcileError):
    """The namespace's quota can never hold this resource."""

    reason = "QuotaExceeded"


class CacheNotFound(ReconcileError):
    """spec.cacheRef names a cache that does not exist."""

    reason = "CacheNotFound"


class MultiNodeUnavailable(ReconcileError):
    """A replica over several nodes needs the LeaderWorkerSet API, which the cluster does not serve."""

    reason = "MultiNodeUnavailable"
