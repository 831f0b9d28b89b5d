"""Every state of a download Job and its pods, as the cache's reconcile decides it (controllers/download.py).

One row per outcome: what was observed, then the condition users see, the phase of
status.download, and what the operator does (create an attempt, delete a Job, look again).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from minimax_operator.controllers.download import Decision, Observed, decide, stale_jobs

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)
COMMIT = "a" * 40
JOB = "m25-download-0123abcd"


def job(*conditions: str, completion: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": c, "status": "True", "message": f"job {c}"} for c in conditions]}
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": JOB}, "status": status}


def pod(phase: str, message: str = "", created: str = "2026-11-30T11:00:00Z", **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, **extra}
    if message:
        status["containerStatuses"] = [{"state": {"terminated": {"message": message}}}]
    return {"metadata": {"name": f"p-{phase.lower()}-{created[-3:-1]}", "creationTimestamp": created}, "status": status}


def observed(**changes: Any) -> Observed:
    base = Observed(
        repo="MiniMaxAI/MiniMax-M2.5",
        revision="main",
        claim_name="m25-weights",
        job_name=JOB,
        next_job_name=f"{JOB}-r1",
        attempt=0,
        job=job(),
        pods=(),
        previous={"jobName": JOB, "attempt": 0},
        same_key=True,
        now=NOW,
    )
    return dataclasses.replace(base, **changes)


RESULT = json.dumps({"revision": COMMIT, "path": f"revisions/MiniMaxAI/MiniMax-M2.5/{COMMIT}", "filesTotal": 3,
                     "bytesTotal": 300, "found": [{"path": "MiniMaxAI/MiniMax-M2.5", "commit": "old"}]})  # fmt: skip
GATED = json.dumps({"reason": "GatedRepo", "message": "set spec.download.tokenSecretRef"})
RUNNING_PROGRESS = {"bytesDone": 40, "bytesTotal": 100, "progress": "40%"}

CASES: list[tuple[str, Observed, tuple[str, str], dict[str, Any]]] = [
    # (case, observed, (condition status, reason), what else must hold)
    ("no Job yet: it is created", observed(job=None), ("False", "Pending"), {"create_attempt": 0, "requeue_after": 5}),
    (
        "Job created, its pod refused by quota",
        observed(refused="Error creating: pods is forbidden: exceeded quota: q, requested: pods=1"),
        ("False", "QuotaExceeded"),
        {"requeue_after": 5},
    ),
    (
        "Job created, its pod refused by Pod Security",
        observed(refused='Error creating: violates PodSecurity "restricted:latest"'),
        ("False", "PodSecurityViolation"),
        {},
    ),
    ("Job created, no pod yet", observed(), ("False", "Pending"), {"requeue_after": 5}),
    ("pod pending", observed(pods=(pod("Pending"),)), ("False", "Pending"), {"requeue_after": None}),
    (
        "pod unschedulable",
        observed(pods=(pod("Pending", conditions=[{"type": "PodScheduled", "status": "False", "message": "0/3"}]),)),
        ("False", "Unschedulable"),
        {},
    ),
    (
        "pod cannot pull its image",
        observed(pods=(pod("Pending", containerStatuses=[{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]),)),
        ("False", "ImagePullBackOff"),
        {},
    ),
    (
        "pod running: progress from its log",
        observed(pods=(pod("Running"),), progress=RUNNING_PROGRESS),
        ("False", "Downloading"),
        {"requeue_after": 10.0, "download.progress": "40%"},
    ),
    (
        "pod running, log unreadable: the last progress is kept",
        observed(
            pods=(pod("Running"),), previous={"jobName": JOB, "bytesDone": 7, "bytesTotal": 10, "progress": "70%"}
        ),
        ("False", "Downloading"),
        {"download.progress": "70%"},
    ),
    (
        "a pod failed, the Job's next pod runs",
        observed(pods=(pod("Failed", GATED, "2026-11-30T11:00:00Z"), pod("Running", created="2026-11-30T11:01:00Z"))),
        ("False", "DownloadRetrying"),
        {"message~": "GatedRepo: set spec.download.tokenSecretRef"},
    ),
    (
        "a pod failed, the Job has not started the next",
        observed(pods=(pod("Failed", GATED),)),
        ("False", "DownloadRetrying"),
        {"message~": "the Job starts another"},
    ),
    (
        "pod succeeded, Job not yet Complete",
        observed(pods=(pod("Succeeded", RESULT),)),
        ("False", "Downloading"),
        {"message~": "completing"},
    ),
    (
        "Job complete: the result from the pod's termination message",
        observed(job=job("Complete", completion="2026-11-30T11:30:00Z"), pods=(pod("Succeeded", RESULT),)),
        ("True", "Downloaded"),
        {"verified.commit": COMMIT, "verified.commits": 2, "download.progress": "100%", "keep_older_attempts": False},
    ),
    (
        "Job complete from a mirror that lists no hash for some files: said, not hidden",
        observed(
            job=job("Complete"),
            pods=(pod("Succeeded", json.dumps({**json.loads(RESULT), "filesSizeOnly": 2})),),
        ),
        ("True", "Downloaded"),
        {"download.filesSizeOnly": 2, "message~": "2 of its files by size alone: the mirror lists no hash"},
    ),
    (
        "Job complete, result already in status (pods gone)",
        observed(
            job=job("Complete"),
            previous={"jobName": JOB, "path": f"revisions/o/n/{COMMIT}", "revision": COMMIT, "bytesTotal": 5},
        ),
        ("True", "Downloaded"),
        {"verified.commit": COMMIT},
    ),
    (
        "Job complete, its pod and result lost: run it again",
        observed(job=job("Complete")),
        ("False", "Downloading"),
        {"delete_job": JOB, "requeue_after": 1},
    ),
    (
        "Job failed: wait for the retry with its reason",
        observed(job=job("Failed"), pods=(pod("Failed", GATED),)),
        ("False", "DownloadFailed"),
        {"requeue_after": 61.0, "message~": "GatedRepo", "download.lastFailureTime": "2026-11-30T12:00:00Z"},
    ),
    (
        "Job failed, the back-off has passed: the next attempt",
        observed(
            job=job("Failed"),
            attempt=2,
            previous={"jobName": JOB, "attempt": 2, "lastFailureTime": "2026-11-30T11:55:00Z"},
        ),
        ("False", "Downloading"),
        {"create_attempt": 3, "download.jobName": f"{JOB}-r1", "message~": "retrying after: job Failed"},
    ),
    (
        "Job failed, back-off doubles with each attempt",
        observed(
            job=job("Failed"),
            attempt=3,
            previous={"jobName": JOB, "attempt": 3, "lastFailureTime": "2026-11-30T11:55:00Z"},
        ),
        ("False", "DownloadFailed"),
        {"requeue_after": 181.0},  # 60 s x 2^3 = 480 s after 11:55, i.e. 180 s from now, plus one
    ),
    (
        "a new revision downloads while servers keep the verified one",
        observed(pods=(pod("Running"),), serving_commit="b" * 40),
        ("False", "Downloading"),
        {"message~": "servers keep commit bbbbbbbbbbbb"},
    ),
]


def _get(decision: Decision, path: str) -> Any:
    obj: Any = decision
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
    return obj


@pytest.mark.parametrize(("case", "obs", "cond", "expect"), CASES, ids=[c[0] for c in CASES])
def test_download_decision(case: str, obs: Observed, cond: tuple[str, str], expect: dict[str, Any]) -> None:
    d = decide(obs)
    assert (d.ready.status, d.ready.reason) == cond, d.ready.message
    for key, want in expect.items():
        if key == "message~":
            assert want in d.ready.message
        elif key == "verified.commits":
            assert d.verified is not None and len(d.verified["commits"]) == want
        else:
            assert _get(d, key) == want, key


def test_failed_and_refused_reasons_are_what_users_act_on() -> None:
    """Every non-True outcome that needs a person makes the cache Failed; the others do not."""
    failing = {"QuotaExceeded", "PodSecurityViolation", "ImagePullBackOff", "DownloadFailed", "DownloadRetrying"}
    for _, obs, (_status, reason), _ in CASES:
        d = decide(obs)
        assert d.ready.failed == (reason in failing), reason


def test_stale_jobs_never_include_another_owners_job() -> None:
    def j(name: str, uid: str, key: str) -> dict[str, Any]:
        refs = [{"controller": True, "uid": uid}]
        meta = {"name": name, "ownerReferences": refs, "annotations": {"minimax.chatos.io/weights-key": key}}
        return {"metadata": meta}

    jobs = [j("cur", "me", "k"), j("older-attempt", "me", "k"), j("old-revision", "me", "other"), j("x", "them", "o")]
    assert stale_jobs(jobs, "cur", "k", "me", keep_older_attempts=True) == ["old-revision"]
    assert stale_jobs(jobs, "cur", "k", "me", keep_older_attempts=False) == ["older-attempt", "old-revision"]
