"""The informers' stores: newest version wins, label index, what is kept of an object."""

from __future__ import annotations

import io

from minimax_operator.runtime.informers import INSTANCE_LABEL, Store, _lines, namespace_filter
from minimax_operator.runtime.kinds import strip, strip_job, strip_pod


def obj(name: str, rv: str, uid: str = "u1", ns: str = "team", **labels: str) -> dict:
    meta = {"name": name, "namespace": ns, "uid": uid, "resourceVersion": rv, "labels": labels}
    return {"kind": "Pod", "metadata": meta}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    s = Store()
    assert s.put(obj("a", "10"))
    assert not s.put(obj("a", "9"))  # a watch event older than our own write's result
    assert not s.put(obj("a", "10"))  # our own write's event: nothing changed
    assert s.get("team", "a")["metadata"]["resourceVersion"] == "10"
    assert s.put(obj("a", "3", uid="u2"))  # another object of that name (deleted, created again)
    assert s.get("team", "a")["metadata"]["uid"] == "u2"


def test_list_by_instance_label_uses_the_index_and_matches_the_selector() -> None:
    s = Store()
    s.put(obj("a-0", "1", **{INSTANCE_LABEL: "a", "component": "server"}))
    s.put(obj("a-dl", "2", **{INSTANCE_LABEL: "a", "component": "download"}))
    s.put(obj("b-0", "3", **{INSTANCE_LABEL: "b", "component": "server"}))
    s.put(obj("a-other-ns", "4", ns="elsewhere", **{INSTANCE_LABEL: "a", "component": "server"}))
    names = [o["metadata"]["name"] for o in s.list("team", {INSTANCE_LABEL: "a", "component": "server"})]
    assert names == ["a-0"]
    # Relabelled: the index follows.
    s.put(obj("a-0", "5", **{INSTANCE_LABEL: "b", "component": "server"}))
    assert [o["metadata"]["name"] for o in s.list("team", {INSTANCE_LABEL: "a"})] == ["a-dl"]
    assert sorted(o["metadata"]["name"] for o in s.list("team", {"component": "server"})) == ["a-0", "b-0"]
    s.remove("team", "a-dl")
    assert s.list("team", {INSTANCE_LABEL: "a"}) == []


def test_replace_reports_what_is_gone() -> None:
    s = Store()
    s.put(obj("a", "1"))
    s.put(obj("b", "2"))
    gone = s.replace([obj("b", "3"), obj("c", "4")])
    assert [o["metadata"]["name"] for o in gone] == ["a"]
    assert sorted(k[1] for k in s.all_keys()) == ["b", "c"]


def test_what_is_kept_of_objects() -> None:
    o = obj("p", "1")
    o["metadata"]["managedFields"] = [{"manager": "x"}]
    o["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}
    o["spec"] = {"containers": [{"name": "big"}]}
    o["status"] = {"phase": "Running"}
    kept = strip_pod(o)
    assert kept == {
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "team",
            "uid": "u1",
            "resourceVersion": "1",
            "labels": {},
            "annotations": {"keep": "me"},
        },
        "status": {"phase": "Running"},
    }
    d = {"kind": "Deployment", "metadata": {"name": "d", "managedFields": []}, "spec": {"replicas": 1}}
    assert strip(d) == {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}}


def test_a_stored_pod_keeps_what_reconciles_read_of_its_status_and_nothing_unique() -> None:
    """The stored pod still tells why it waits, why it ended and whether it was scheduled."""
    o = obj("dl", "7")
    o["metadata"]["creationTimestamp"] = "2026-11-30T10:00:00Z"
    o["status"] = {
        "phase": "Pending",
        "hostIP": "10.0.0.7",
        "podIP": "10.244.1.9",
        "podIPs": [{"ip": "10.244.1.9"}],
        "startTime": "2026-11-30T10:00:01Z",
        "qosClass": "Burstable",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes",
             "lastProbeTime": None, "lastTransitionTime": "2026-11-30T10:00:01Z"},
        ],
        "containerStatuses": [
            {"name": "vllm", "ready": False, "restartCount": 3, "image": "vllm/vllm-openai:v0.20.2",
             "imageID": "docker.io/vllm@sha256:abc", "containerID": "containerd://123", "started": False,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "CUDA out of memory",
                                          "startedAt": "2026-11-30T10:01:00Z", "finishedAt": "2026-11-30T10:02:00Z",
                                          "containerID": "containerd://122"}}},
        ],
    }  # fmt: skip
    kept = strip_pod(o)
    assert kept["status"] == {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}],
        "containerStatuses": [
            {"name": "vllm", "ready": False, "restartCount": 3, "started": False,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
             "lastState": {"terminated": {"reason": "Error", "message": "CUDA out of memory", "exitCode": 1}}},
        ],
    }  # fmt: skip
    assert kept["metadata"]["creationTimestamp"] == "2026-11-30T10:00:00Z"  # the newest pod is chosen by it
    from minimax_operator.render import status as st

    assert st.pod_problem([kept]) == ("CrashLoopBackOff", "pod dl: back-off 40s")
    done = strip_pod(
        {**obj("dl2", "8"), "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "download", "state": {"terminated": {"exitCode": 0, "message": '{"files": 3}',
                                                          "finishedAt": "2026-11-30T10:09:00Z"}}}]}}
    )  # fmt: skip
    assert st.terminated_message([done], "Succeeded") == '{"files": 3}'


def test_a_stored_job_keeps_its_status_and_metadata_not_its_immutable_pod_template() -> None:
    from minimax_operator.controllers.download import job_condition

    job = {
        "kind": "Job",
        "metadata": {"name": "dl-0", "namespace": "team", "uid": "j1", "resourceVersion": "5", "labels": {"a": "b"}},
        "spec": {"backoffLimit": 2, "template": {"spec": {"containers": [{"name": "download", "args": ["x"] * 50}]}}},
        "status": {
            "succeeded": 1,
            "completionTime": "2026-11-30T10:09:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    kept = strip_job(job)
    assert kept["spec"] == {"backoffLimit": 2}
    assert kept["metadata"]["labels"] == {"a": "b"}
    assert job_condition(kept, "Complete") == {"type": "Complete", "status": "True"}
    assert kept["status"]["completionTime"] == "2026-11-30T10:09:00Z"  # when the weights were verified


def test_watch_lines_split_across_chunks() -> None:
    class Resp:
        def stream(self, amt: int, decode_content: bool) -> io.BytesIO:
            return iter([b'{"type":"ADDED"', b'}\n{"type":', b'"DELETED"}\n\n', b'{"type":"BOOKMARK"}'])  # type: ignore[return-value]

    assert list(_lines(Resp())) == [b'{"type":"ADDED"}', b'{"type":"DELETED"}', b'{"type":"BOOKMARK"}']


def test_namespace_globs() -> None:
    f = namespace_filter(["team-*", "prod"])
    assert f is not None and f("team-a") and f("prod") and not f("production") and not f("kube-system")
    assert namespace_filter([]) is None


def test_named_indexes_follow_every_version_of_an_object() -> None:
    from minimax_operator.controllers.watches import KINDS

    s = Store(dict(KINDS["MiniMaxDeployment"].indexers))

    def mmd(name: str, rv: str, ref: str | None = None, served: str | None = None) -> dict:
        spec = {"cacheRef": {"name": ref}} if ref else {}
        status = {"cache": served} if served else {}
        return {"metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": rv}, "spec": spec,
                "status": status}  # fmt: skip

    s.put(mmd("a", "1", ref="c1"))
    s.put(mmd("b", "2", served="c1"))
    assert [o["metadata"]["name"] for o in s.indexed("cache", "ns", "c1")] == ["a", "b"]
    s.put(mmd("b", "3", served="c2"))  # moved to another cache: found there only
    assert [o["metadata"]["name"] for o in s.indexed("cache", "ns", "c1")] == ["a"]
    assert [o["metadata"]["name"] for o in s.indexed("cache", "ns", "c2")] == ["b"]
    s.remove("ns", "a")
    assert s.indexed("cache", "ns", "c1") == [] and s.indexed("cache", "other", "c2") == []


def test_stored_objects_share_their_repeated_strings() -> None:
    """A thousand models keep thousands of objects: each parsed on its own would hold its own copy of
    every key and repeated value (bench/scale.py's RSS); after strip they are one string each."""
    import json

    text = json.dumps(
        {
            "kind": "Deployment",
            "metadata": {"name": "m1", "namespace": "team-a", "labels": {"app.kubernetes.io/name": "vllm"}},
            "spec": {"template": {"spec": {"containers": [{"image": "vllm/vllm-openai:v0.20.2", "args": ["--x"]}]}}},
            "status": {"message": "x" * 500},
        }
    )
    a, b = strip(json.loads(text)), strip(json.loads(text))
    assert a == b == json.loads(text)
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    container_a = a["spec"]["template"]["spec"]["containers"][0]
    container_b = b["spec"]["template"]["spec"]["containers"][0]
    assert container_a["image"] is container_b["image"]
    assert next(iter(container_a)) is next(iter(container_b))  # the keys too
    assert a["status"]["message"] is not b["status"]["message"]  # long, rarely repeated: left alone


def test_kopf_keeps_no_copy_of_the_spec_on_our_resources() -> None:
    """kopf's default diff-base wrote the spec into an annotation of every resource and cache (three writes a
    model); our handlers never compare with it. Objects of earlier releases carry it: the stores drop it."""
    import kopf

    from minimax_operator.app.kopf_handlers import NoDiffBase

    body = kopf.Body({"metadata": {"name": "m", "annotations": {}}, "spec": {"model": "MiniMax-M2.5"}})
    patch = kopf.Patch()
    storage = NoDiffBase()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch and storage.fetch(body=body) is None
    old = {
        "kind": "MiniMaxDeployment",
        "metadata": {
            "name": "m",
            "annotations": {"minimax.chatos.io/last-handled-configuration": '{"spec": {}}', "team": "a"},
        },
    }
    assert strip(old)["metadata"]["annotations"] == {"team": "a"}
