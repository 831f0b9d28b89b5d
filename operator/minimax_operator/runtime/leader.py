"""Leader election on a coordination.k8s.io/v1 Lease, as Kubernetes' own controllers do.

Why: two operator replicas must never reconcile at once (they would race on the
ChatOS ConfigMap and on status), yet a dead leader must be replaced within seconds.
The kubernetes client's `leaderelection` package implements client-go's algorithm
(a follower takes the Lease once it has not been renewed for `lease_duration`); we
add what it lacks: giving the Lease back on a graceful stop, so a rolling update
hands over as soon as kopf has stopped (seconds) instead of after a full lease duration.

A leader that cannot renew within `renew_deadline` exits the process (as
controller-runtime does): it may no longer be the only one reconciling, and its pod
restarts as a follower.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from .metrics import LEADER

log = logging.getLogger(__name__)
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace() -> str:
    """The operator pod's namespace: $POD_NAMESPACE, else its ServiceAccount's, else minimax-system."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SA_NAMESPACE_FILE.read_text().strip()
    except OSError:
        return "minimax-system"


class LeaseNamespaceMissing(Exception):
    """The Lease's namespace does not exist: no replica could ever lead."""


class _Lock(LeaseLock):
    """The library's Lease lock, which writes nothing once closed (after release, before exit)."""

    closed = False

    def create(self, name: str, namespace: str, election_record: object) -> bool:
        return False if self.closed else bool(super().create(name, namespace, election_record))

    def update(self, name: str, namespace: str, updated_record: object) -> bool:
        return False if self.closed else bool(super().update(name, namespace, updated_record))


class Elector:
    """Campaign for one Lease in a background thread; `leading` is set once this replica leads."""

    def __init__(
        self,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: int = 15,
        renew_deadline: int = 10,
        retry_period: int = 2,
        on_lost: Callable[[], None] | None = None,
    ):
        self.name, self.namespace, self.identity = name, namespace, identity
        self.leading = threading.Event()
        self._on_lost = on_lost or _exit_on_lost
        self._lock = lock = _Lock(name, namespace, identity)
        self._config = electionconfig.Config(
            lock, lease_duration, renew_deadline, retry_period, self._started, self._stopped
        )

    def check(self) -> None:
        """Refuse at once a Lease that can never be taken: its namespace does not exist.

        Otherwise the campaign would retry for ever, saying only "404" every 30 s (seen when the
        operator runs outside a cluster without the minimax-system namespace).
        """
        try:
            client.CoreV1Api().read_namespace(self.namespace)
        except ApiException as e:
            if e.status == 404:
                raise LeaseNamespaceMissing(
                    f"the leader-election Lease {self.name} lives in namespace {self.namespace}, which does not "
                    f"exist: create it (kubectl create namespace {self.namespace}), choose another with "
                    "--leader-election-namespace, or run a single replica with --no-leader-elect"
                ) from e
            # 403 and others: the campaign itself will say what is wrong

    def start(self) -> None:
        log.info("campaigning for Lease %s/%s as %s", self.namespace, self.name, self.identity)
        election = leaderelection.LeaderElection(self._config)
        threading.Thread(target=election.run, name="leader-election", daemon=True).start()

    def _started(self) -> None:
        log.info("leading: Lease %s/%s held by %s", self.namespace, self.name, self.identity)
        LEADER.set(1)
        self.leading.set()

    def _stopped(self) -> None:
        LEADER.set(0)
        if self.leading.is_set():
            log.error("lost Lease %s/%s: stopping so that only one replica reconciles", self.namespace, self.name)
            self._on_lost()

    def describe(self) -> str:
        """Why this replica is not leading, for the log: who holds the Lease, or the API's answer."""
        try:
            lease = client.CoordinationV1Api().read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            return f"cannot read Lease {self.namespace}/{self.name}: {e.status} {e.reason}"
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        renewed = spec.renew_time if spec else None
        return f"Lease {self.namespace}/{self.name} is held by {holder or 'nobody'} (renewed {renewed})"

    def release(self) -> None:
        """Give the Lease back if this replica holds it, so a follower takes over at its next try."""
        self._lock.closed = True
        if not self.leading.is_set():
            return
        self.leading.clear()
        api = client.CoordinationV1Api()
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                lease.spec.acquire_time = None
                api.replace_namespaced_lease(self.name, self.namespace, lease)
                log.info("released Lease %s/%s", self.namespace, self.name)
        except ApiException as e:  # the Lease expires by itself anyway
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, e.reason)
        LEADER.set(0)


def _exit_on_lost() -> None:
    os._exit(1)  # no cleanup on purpose: another replica may already be reconciling
