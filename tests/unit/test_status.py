"""Conditions, phase and progress from observed facts."""

from __future__ import annotations

import json

from minimax_operator.protocol import parse_progress, progress_line
from minimax_operator.render import status as st


def test_transition_time_moves_only_when_status_changes() -> None:
    first = st.merge([], [st.false("ServerReady", "Starting")], 1, "T1")
    same = st.merge(first, [st.false("ServerReady", "Unschedulable", "no GPUs")], 2, "T2")
    assert same[0]["lastTransitionTime"] == "T1" and same[0]["observedGeneration"] == 2
    flipped = st.merge(same, [st.true("ServerReady", "Available")], 2, "T3")
    assert flipped[0]["lastTransitionTime"] == "T3"


def test_transitions_are_changes_of_status_or_reason() -> None:
    old = st.merge([], [st.false("ServerReady", "Starting", "0/1")], 1, "T")
    assert st.transitions(old, [st.false("ServerReady", "Starting", "still 0/1")]) == []
    assert st.transitions(old, [st.false("ServerReady", "CrashLoopBackOff")])[0].reason == "CrashLoopBackOff"


def conds(weights: st.Cond, server: st.Cond, registered: st.Cond) -> list[st.Cond]:
    parts = [weights, server, registered]
    return [*parts, st.ready_condition(parts)]


def test_phases() -> None:
    ok_w, ok_s, ok_r = st.true("WeightsReady", "Downloaded"), st.true("ServerReady", "A"), st.true("Registered", "R")
    assert st.phase(conds(ok_w, ok_s, ok_r), 1) == "Ready"
    assert st.phase(conds(st.false("WeightsReady", "Downloading"), ok_s, ok_r), 1) == "Downloading"
    assert st.phase(conds(st.false("WeightsReady", "Pending"), ok_s, ok_r), 1) == "Pending"
    assert st.phase(conds(st.false("WeightsReady", "DownloadFailed"), ok_s, ok_r), 1) == "Failed"
    assert st.phase(conds(ok_w, st.false("ServerReady", "Starting"), ok_r), 1) == "Starting"
    assert st.phase(conds(ok_w, st.false("ServerReady", "Unschedulable"), ok_r), 1) == "Starting"
    assert st.phase(conds(ok_w, st.false("ServerReady", "CrashLoopBackOff"), ok_r), 1) == "Failed"
    assert st.phase(conds(ok_w, ok_s, st.false("Registered", "ModelIdTaken")), 1) == "Failed"
    assert st.phase(conds(ok_w, st.false("ServerReady", "Stopped"), st.false("Registered", "Stopped")), 0) == "Stopped"


def test_ready_explains_the_first_missing_part() -> None:
    ready = st.ready_condition([st.true("WeightsReady", "D"), st.false("ServerReady", "Starting", "1/2 ready")])
    assert (ready.status, ready.reason, ready.message) == ("False", "Starting", "1/2 ready")


def test_progress_from_a_progress_line() -> None:
    raw = progress_line(bytesDone=50, bytesTotal=200, filesDone=1, filesTotal=4, etaSeconds=30)
    assert parse_progress(raw) == {
        "bytesDone": 50,
        "bytesTotal": 200,
        "filesDone": 1,
        "filesTotal": 4,
        "etaSeconds": 30,
        "progress": "25%",
    }
    assert parse_progress("not json") == {} and parse_progress(None) == {}


def pod(name: str, **status: object) -> dict:
    return {"metadata": {"name": name, "creationTimestamp": name}, "status": status}


def test_pod_problem_prefers_container_failures_over_scheduling() -> None:
    crash = pod("a", containerStatuses=[{"state": {"waiting": {"reason": "CrashLoopBackOff", "message": "OOM"}}}])
    pending = pod(
        "b", conditions=[{"type": "PodScheduled", "status": "False", "message": "Insufficient nvidia.com/gpu"}]
    )
    assert st.pod_problem([pending, crash]) == ("CrashLoopBackOff", "pod a: OOM")
    assert st.pod_problem([pending]) == ("Unschedulable", "pod b: Insufficient nvidia.com/gpu")
    assert st.pod_problem([pod("c", phase="Running")]) is None


def test_termination_message_of_the_newest_pod() -> None:
    def term(name: str, msg: str) -> dict:
        return pod(name, phase="Failed", containerStatuses=[{"state": {"terminated": {"message": msg}}}])

    assert st.terminated_message([term("1", "old"), term("2", "new")], "Failed") == "new"
    assert st.terminated_message([term("1", "old")], "Succeeded") == ""


def test_reconciler_reads_progress_from_the_last_progress_line_of_the_log() -> None:
    from minimax_operator.controllers.model_cache import CacheReconciler
    from minimax_operator.controllers.settings import Settings

    class Logs:
        calls = 0

        def log_tail(self, namespace: str, pod: str, container: str) -> str:
            assert (namespace, pod, container) == ("ns", "p", "download")
            self.calls += 1
            return "\n".join(
                [
                    json.dumps({"event": "progress", "bytesDone": 10, "bytesTotal": 100}),
                    json.dumps({"event": "progress", "bytesDone": 40, "bytesTotal": 100, "etaSeconds": 9}),
                    "Fetching 4 files: 40%",
                ]
            )

    logs = Logs()
    r = CacheReconciler(logs, Settings())  # type: ignore[arg-type]
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"}}
    want = {"bytesDone": 40, "bytesTotal": 100, "etaSeconds": 9, "progress": "40%"}
    assert r._progress(pod) == want
    # The log is the one thing no watch carries: read at most once per progress_seconds per pod.
    assert r._progress(pod) == want
    assert logs.calls == 1


def test_status_patches_null_what_a_nested_object_lost() -> None:
    from minimax_operator.controllers.base import merge_patch

    old = {"phase": "Ready", "download": {"jobName": "a", "revision": "r1", "path": "p1"}, "gone": 1}
    new = {"phase": "Downloading", "download": {"jobName": "b"}}
    assert merge_patch(old, new) == {
        "phase": "Downloading",
        "download": {"jobName": "b", "revision": None, "path": None},
        "gone": None,
    }
    assert merge_patch(new, new) == {}
    assert merge_patch({}, {"download": {"x": 1}}) == {"download": {"x": 1}}


def test_a_resource_and_its_cache_agree_on_pending_and_downloading() -> None:
    """`kubectl get mmd` and `kubectl get mmc` never disagree about whether the download runs (a test
    that waited for the resource's Downloading and then read the cache's phase saw Pending: the pod
    was not scheduled yet, which the resource called Downloading)."""
    from minimax_operator.controllers.model_cache import phase as cache_phase

    for reason in ("Pending", "Unschedulable", "QuotaFull", "ClaimPending", "Downloading", "ImagePullBackOff"):
        ready = st.false("Ready", reason, "")
        weights = st.false("WeightsReady", reason, "")
        conds = [weights, st.unknown("ServerReady", "WaitingForWeights"), st.unknown("Registered", "WaitingForServer")]
        assert st.phase([*conds, st.ready_condition(conds)], 1) == cache_phase(ready), reason
    assert st.phase([st.false("WeightsReady", "Unschedulable", "")], 1) == "Pending"
    assert st.phase([st.false("WeightsReady", "Downloading", "")], 1) == "Downloading"
