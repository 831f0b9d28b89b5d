"""Conditions and phase from observed facts, and the reasons users act on.

Pure functions, so the rules users and Argo CD rely on (when is it Ready, when
Failed) are unit-tested without a cluster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

#: Reasons that need a person to act; they make the phase Failed (Argo CD: Degraded).
FAILURE_REASONS = frozenset(
    {
        "InvalidSpec",
        "LayoutInvalid",
        "DownloadFailed",
        "DownloadRetrying",
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "InvalidImageName",
        "ModelIdTaken",
        "InvalidChatOSConfig",
        "ConfigMapNotFound",
        "NamespaceNotAllowed",
        "ClaimNotFound",
        "ApplyFailed",
        "NameConflict",
        "QuotaExceeded",
        "PodSecurityViolation",
        "LimitRangeViolation",
        "AdmissionWebhookDenied",
        "PodCreationFailed",
        "MultiNodeUnavailable",
    }
)


#: Reasons that deserve a Warning Event without making the resource Failed: it still serves.
WARNING_REASONS = frozenset({"KEDANotInstalled", "WakeUnavailable", "ScalerNotReady"})


def iso(t: dt.datetime) -> str:
    """A timestamp as the API writes them (lastTransitionTime, lastFailureTime)."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Cond:
    """One condition as computed; timestamps are added by merge()."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "False" and self.reason in FAILURE_REASONS


def true(type_: str, reason: str, message: str = "") -> Cond:
    return Cond(type_, "True", reason, message)


def false(type_: str, reason: str, message: str = "") -> Cond:
    return Cond(type_, "False", reason, message)


def unknown(type_: str, reason: str, message: str = "") -> Cond:
    return Cond(type_, "Unknown", reason, message)


def merge(old: list[Obj], new: list[Cond], generation: int, now: str) -> list[Obj]:
    """Conditions to write: lastTransitionTime moves only when the status changes."""
    previous = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = previous.get(c.type)
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == c.status else now
        out.append(
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "observedGeneration": generation,
                "lastTransitionTime": since or now,
            }
        )
    return out


def transitions(old: list[Obj], new: list[Cond]) -> list[Cond]:
    """Conditions whose status or reason changed: each deserves an Event."""
    previous = {c.get("type"): (c.get("status"), c.get("reason")) for c in old}
    return [c for c in new if previous.get(c.type) != (c.status, c.reason)]


def ready_condition(parts: list[Cond]) -> Cond:
    """Ready summarises the others: the first one not True explains why."""
    for c in parts:
        if c.status != "True":
            return Cond("Ready", "False" if c.status == "False" else "Unknown", c.reason, c.message)
    return true("Ready", "Ready", "serving and registered")


#: Reasons that say only that a condition waits for the step before it (checks, the weights, the
#: server): entering one is no news, and gets no Event (controllers/base.py).
WAITING_REASONS = frozenset({"Pending", "WaitingForWeights", "WaitingForServer"})


#: Reasons of a cache's Ready (and so of a resource's WeightsReady) while its download pod runs or
#: has run: the phase is Downloading. Any other reason before the weights are verified (the pod
#: not scheduled yet, the quota full, the claim not found) is Pending, for both kinds alike.
DOWNLOADING_REASONS = frozenset({"Downloading", "DownloadFailed", "DownloadRetrying"})


def weights_phase(weights: Cond) -> str:
    """The phase while the weights are not verified: Downloading or Pending (one rule for both kinds)."""
    return "Downloading" if weights.reason in DOWNLOADING_REASONS else "Pending"


def phase(conds: list[Cond], replicas: int) -> str:
    """A MiniMaxDeployment's phase."""
    by_type = {c.type: c for c in conds}
    if any(c.failed for c in conds):
        return "Failed"
    weights = by_type.get("WeightsReady")
    if weights is None:
        return "Pending"
    if weights.status != "True":
        return weights_phase(weights)
    if replicas == 0:
        return "Stopped"
    if by_type.get("Ready", Cond("Ready", "False", "")).status == "True":
        return "Ready"
    return "Starting"


def pod_problem(pods: list[Obj]) -> tuple[str, str] | None:
    """The most telling reason a set of pods is not serving, as (reason, message)."""
    for pod in pods:
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FAILURE_REASONS:
                last = ((cs.get("lastState") or {}).get("terminated") or {}).get("message", "")
                msg = waiting.get("message") or last or waiting["reason"]
                return waiting["reason"], f"pod {pod['metadata']['name']}: {msg}"
    for pod in pods:
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return "Unschedulable", f"pod {pod['metadata']['name']}: {cond.get('message', '')}"
    return None


def terminated_message(pods: list[Obj], phase_: str) -> str:
    """The termination message of the newest pod in this phase (the downloader writes its reason there)."""
    chosen = sorted(
        (p for p in pods if p.get("status", {}).get("phase") == phase_),
        key=lambda p: p["metadata"].get("creationTimestamp", ""),
    )
    for pod in reversed(chosen):
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("message"):
                return str(term["message"]).strip()
    return ""


def creation_failure(message: str) -> tuple[str, str]:
    """A reason users can act on for the API server's refusal of a pod (a controller's FailedCreate)."""
    text = message.removeprefix("Error creating: ")
    if "exceeded quota" in text:
        return "QuotaExceeded", text
    if "PodSecurity" in text:
        return "PodSecurityViolation", text
    if "LimitRange" in text or ("maximum" in text and "per Container" in text):
        return "LimitRangeViolation", text
    if "admission webhook" in text:
        return "AdmissionWebhookDenied", text
    return "PodCreationFailed", text
