"""What to do with a cache's download Job and its pods: a pure decision over what was observed.

Why apart from the reconciler: this is the hardest rule of the operator (a Job that
completed, failed, retries, lost its pods, or whose pods the API server refused), and
as a pure function every state is a table row in a unit test (tests/unit/test_download_decision.py)
instead of an end-to-end test. The reconciler observes (reads the Job, its pods, the
progress line of the running pod's log, a FailedCreate Event), calls `decide`, then acts
(creates or deletes Jobs) and writes status.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..api.names import WEIGHTS_KEY_ANNOTATION
from ..protocol import PROGRESS_KEYS, failure_text, parse_result
from ..render import status as st
from ..render.status import iso, parse_time

Obj = dict[str, Any]


@dataclass(frozen=True)
class Observed:
    """Everything the decision reads, as it was read."""

    repo: str
    revision: str
    claim_name: str
    #: The Job of this attempt, its name, and the name of the next attempt's.
    job_name: str
    next_job_name: str
    attempt: int
    job: Obj | None
    #: Its pods.
    pods: tuple[Obj, ...]
    #: status.download as it was, and whether it is of the same download (same repo, revision, claim, ...).
    previous: Obj
    same_key: bool
    #: status.commits as they were; the commit servers load now (None before the first).
    commits: tuple[Obj, ...] = ()
    serving_commit: str | None = None
    #: The running pod's last progress line ({} when unread or unreadable).
    progress: Obj = field(default_factory=dict)
    #: The newest FailedCreate Event's message of the Job ("" when none: its pods were admitted).
    refused: str = ""
    now: dt.datetime = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    retry_base_seconds: int = 60
    retry_max_seconds: int = 1800
    progress_seconds: float = 10.0


@dataclass(frozen=True)
class Decision:
    """The Ready condition, status.download, and what to do."""

    ready: st.Cond
    download: Obj
    #: Once verified: {"commit", "path", "commits"} for the cache's status.
    verified: Obj | None = None
    #: Create the Job of this attempt (the current one when missing, the next one after a failure).
    create_attempt: int | None = None
    #: Delete this Job (a completed one whose result is lost: it runs again and finds the folder).
    delete_job: str | None = None
    requeue_after: float | None = None
    #: Older attempts' Jobs (and their pods' logs) are kept until a download succeeds.
    keep_older_attempts: bool = True


def job_condition(job: Obj | None, type_: str) -> Obj | None:
    for c in ((job or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def kept_progress(previous: Obj) -> Obj:
    """The last known progress, when the log cannot be read this time."""
    return {k: previous[k] for k in (*PROGRESS_KEYS, "progress") if k in previous}


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def decide(o: Observed) -> Decision:
    """The download's state and the next step, from one observation."""
    dl: Obj = {"jobName": o.job_name, "attempt": o.attempt}
    last_failure = o.previous.get("lastFailureTime") if o.same_key else None
    if last_failure:
        dl["lastFailureTime"] = last_failure
    serving = f"; servers keep commit {o.serving_commit[:12]} until it is verified" if o.serving_commit else ""
    doing = f"{o.repo} {o.revision}"

    if o.job is None:
        return Decision(
            st.false("Ready", "Pending", f"download Job {o.job_name} is waiting for its pod{serving}"),
            dl,
            create_attempt=o.attempt,
            requeue_after=5,  # a refused pod leaves only an Event, which is not watched
        )

    done = job_condition(o.job, "Complete")
    if done:
        return _completed(o, dl)

    failed = job_condition(o.job, "Failed")
    if failed:
        reason_text = failure_text(st.terminated_message(list(o.pods), "Failed")) or failed.get(
            "message", "the download Job failed"
        )
        failed_at = last_failure or iso(o.now)
        wait = min(o.retry_max_seconds, o.retry_base_seconds * 2**o.attempt)
        retry_at = parse_time(failed_at) + dt.timedelta(seconds=wait)
        if o.now >= retry_at:
            return Decision(
                st.false("Ready", "Downloading", f"retrying after: {reason_text}{serving}"),
                {"jobName": o.next_job_name, "attempt": o.attempt + 1},
                create_attempt=o.attempt + 1,
            )
        return Decision(
            st.false("Ready", "DownloadFailed", f"{reason_text} (retry {o.attempt + 1} at {iso(retry_at)}){serving}"),
            {**dl, "lastFailureTime": failed_at},
            requeue_after=(retry_at - o.now).total_seconds() + 1,
        )

    pods = list(o.pods)
    problem = st.pod_problem(pods)
    if problem:
        return Decision(st.false("Ready", problem[0], problem[1] + serving), dl)
    requeue: float | None = None
    if not pods:
        requeue = 5  # a refused pod leaves only an Event, which is not watched
        if o.refused:
            reason, text = st.creation_failure(o.refused)
            return Decision(
                st.false("Ready", reason, f"download Job {o.job_name} cannot create its pod: {text}"),
                dl,
                requeue_after=requeue,
            )
    # A pod that failed while the Job still retries (backoffLimit): its reason now, not once
    # the Job gives up minutes later (a gated repo took 2.5 min to say so on the real node).
    failed_pod = failure_text(st.terminated_message(pods, "Failed"))
    succeeded = any(_phase(p) == "Succeeded" for p in pods)
    if any(_phase(p) == "Running" for p in pods):
        dl.update(o.progress or kept_progress(o.previous if o.same_key else {}))
        pct = f" ({dl['progress']})" if dl.get("progress") else ""
        text = f"downloading {doing} into PVC {o.claim_name}{pct}"
        if failed_pod:
            cond = st.false("Ready", "DownloadRetrying", f"{text} after a failed pod: {failed_pod}{serving}")
        else:
            cond = st.false("Ready", "Downloading", f"{text}{serving}")
        return Decision(cond, dl, requeue_after=o.progress_seconds)
    if failed_pod and not succeeded:
        text = f"a pod of Job {o.job_name} failed: {failed_pod}; the Job starts another{serving}"
        return Decision(st.false("Ready", "DownloadRetrying", text), dl)
    if succeeded:
        # The pod is done; the Job controller marks the Job Complete a moment later. Not "waiting".
        dl.update(kept_progress(o.previous if o.same_key else {}))
        return Decision(
            st.false("Ready", "Downloading", f"download of {o.repo} finished; Job {o.job_name} completing"), dl
        )
    return Decision(
        st.false("Ready", "Pending", f"download Job {o.job_name} is waiting for its pod{serving}"),
        dl,
        requeue_after=requeue,
    )


def _completed(o: Observed, dl: Obj) -> Decision:
    if o.same_key and o.previous.get("jobName") == o.job_name and o.previous.get("path"):
        keys = ("revision", "path", "filesTotal", "bytesTotal", "filesSizeOnly")
        result: Obj = {k: o.previous[k] for k in keys if k in o.previous}
    else:  # read once: the pods (and their termination messages) may be gone later
        result = parse_result(st.terminated_message(list(o.pods), "Succeeded"))
    if not result.get("path"):
        # Its pod is gone with the result (node lost, pod collected): run it again; it finds
        # the verified folder and says where it is, without downloading a byte.
        return Decision(
            st.false("Ready", "Downloading", f"checking the download of {o.repo} {o.revision} again"),
            dl,
            delete_job=o.job_name,
            requeue_after=1,
            keep_older_attempts=False,
        )
    path = str(result["path"])
    commit = result.get("revision")
    dl.update({k: result[k] for k in ("revision", "filesTotal", "bytesTotal") if result.get(k) is not None})
    size_only = result.get("filesSizeOnly")
    if isinstance(size_only, int) and size_only > 0:
        dl["filesSizeOnly"] = size_only
    else:
        dl.pop("filesSizeOnly", None)
    dl["path"] = path
    dl.pop("lastFailureTime", None)
    if dl.get("bytesTotal"):
        dl.update(bytesDone=dl["bytesTotal"], progress="100%")
    if dl.get("filesTotal"):
        dl["filesDone"] = dl["filesTotal"]
    verified_at = ((o.job or {}).get("status") or {}).get("completionTime")
    found = [f for f in result.get("found") or [] if isinstance(f, dict) and f.get("path")]
    commits = merge_commits(
        list(o.commits),
        [*found, {"commit": commit, "path": path, "bytes": dl.get("bytesTotal"), "files": dl.get("filesTotal")}],
        verified_at,
    )
    verified: Obj = {"path": path, "commits": commits}
    if commit is not None:
        verified["commit"] = commit
    at = f" commit {commit[:12]}" if commit else ""
    weak = (
        f"; {dl['filesSizeOnly']} of its files by size alone: the mirror lists no hash for them"
        if dl.get("filesSizeOnly")
        else ""
    )
    return Decision(
        st.true(
            "Ready", "Downloaded", f"{o.repo} {o.revision}{at} verified in PVC {o.claim_name}, folder {path}{weak}"
        ),
        dl,
        verified=verified,
        keep_older_attempts=False,
    )


def merge_commits(have: list[Obj], seen: list[Obj], verified_at: str | None) -> list[Obj]:
    """The verified commits, by folder: what the last download found or made is added, nothing is lost."""
    by_path = {c["path"]: c for c in have if c.get("path")}
    for c in seen:
        path = c.get("path")
        if not path or path in by_path:
            continue
        entry = {"path": path, **{k: c[k] for k in ("commit", "bytes", "files") if c.get(k) is not None}}
        if verified_at:
            entry["verifiedAt"] = verified_at
        by_path[path] = entry
    return sorted(by_path.values(), key=lambda c: (c.get("verifiedAt") or "", c["path"]))


def stale_jobs(jobs: list[Obj], current: str, key: str, owner_uid: str, keep_older_attempts: bool) -> list[str]:
    """Download Jobs of this cache to delete: other downloads' (a changed revision), and older attempts'
    once one succeeded. Never a Job the cache does not control, even one with our labels."""
    out = []
    for job in jobs:
        meta = job["metadata"]
        refs = meta.get("ownerReferences") or []
        if meta["name"] == current or not any(r.get("controller") and r.get("uid") == owner_uid for r in refs):
            continue
        same_key = (meta.get("annotations") or {}).get(WEIGHTS_KEY_ANNOTATION) == key
        if same_key and keep_older_attempts:
            continue
        out.append(str(meta["name"]))
    return out
