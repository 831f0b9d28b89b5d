"""Autoscaling with the real parts: Prometheus scraping stand-in vLLM servers on the real node, KEDA (its
operator, its metrics adapter behind the external metrics API, the HorizontalPodAutoscaler it makes in the
controller-manager) and KEDA's HTTP add-on holding a parked model's first request. Only the GPUs are not
real: the real node advertises 8 (no device plugin), and vLLM is hack/standin/vllm.py.

What a user sees: load scales a model 1 -> 2 within its bounds and idle brings it back; a model with
minReplicas 0 parks, stays in ChatOS, and a request to it is held until a server is ready, then answered;
every dashboard panel's query returns series from what was scraped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minimax_operator.manifests.observability import PANELS
from tests.harness.autoscaling import (
    Load,
    Stack,
    advertise_gpus,
    point_operator_at,
    service_address,
    standin_spec,
    start_stack,
    stop_stack,
)
from tests.harness.cluster import Cluster, wait_for
from tests.harness.realnode import Hub

REPO = "MiniMaxAI/Real-Tiny"  # hack/hub/hub.yaml generates it
#: Where the dashboard's queries and their answers are written, for the closing note.
PANELS_OUT = Path("/tmp/minimax-dashboard-panels.json")


@pytest.fixture(scope="module")
def stack(real_cluster: Cluster, operator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("autoscaling")
    s = start_stack(real_cluster, folder)
    point_operator_at(real_cluster, s)
    advertise_gpus(real_cluster, 8)
    yield s
    advertise_gpus(real_cluster, 0)
    stop_stack(real_cluster, folder)


def spec_replicas(c: Cluster, ns: str, name: str) -> int:
    return int((c.mmd(ns, name).get("spec") or {}).get("replicas", 1))


def test_load_scales_out_within_bounds_and_idle_scales_back(
    real_cluster: Cluster, stack: Stack, hub: Hub, ns: str
) -> None:
    c = real_cluster
    spec = standin_spec(hub, REPO, minReplicas=1, maxReplicas=2, target={"waitingRequests": 2},
                        scaleDownDelaySeconds=30)  # fmt: skip
    c.create_mmd(ns, "tiny", {**spec, "chatos": {"enabled": False}})
    c.wait_phase(ns, "tiny", "Ready", timeout=300)
    c.wait_condition(ns, "tiny", "Autoscaling", "True", "Active", timeout=60)

    def keda_ready() -> bool:
        so = c.custom.get_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects", "tiny")
        conds = {x["type"]: x["status"] for x in (so.get("status") or {}).get("conditions") or []}
        return conds.get("Ready") == "True"

    wait_for(keda_ready, 120, what="KEDA's ScaledObject Ready")
    assert spec_replicas(c, ns, "tiny") == 1

    # 8 requests at once against 2 slots: 6 wait, 3 a replica above the target of 2.
    address = service_address(c, ns, "tiny")
    t0 = time.monotonic()
    with Load(address, "tiny", concurrency=8, max_tokens=200) as load:
        wait_for(lambda: spec_replicas(c, ns, "tiny") == 2, 240, what="KEDA scaling to 2", interval=1)
        decided = time.monotonic() - t0
        wait_for(lambda: (c.mmd(ns, "tiny").get("status") or {}).get("replicas") == 2, 120, what="2 replicas")
        c.wait_phase(ns, "tiny", "Ready", timeout=120)
        ready = time.monotonic() - t0
        time.sleep(20)  # hold the load: the bound of 2 must hold under it
        assert spec_replicas(c, ns, "tiny") == 2, "maxReplicas is 2"
        panels = {p.title: stack.query(p.query) for p in PANELS}
    assert load.ok > 0 and not load.failed, load.failed[:3]
    print(f"scale decision {decided:.0f} s after the load step, second replica Ready at {ready:.0f} s")

    # Idle: back to minReplicas (after the scale-down delay of 30 s, one replica a minute at most). A delay of 0
    # flaked: a scrape between one wave of requests finishing and the next arriving reads an empty queue.
    wait_for(lambda: spec_replicas(c, ns, "tiny") == 1, 240, what="KEDA scaling back to 1", interval=2)

    # Every dashboard panel returns series from what Prometheus scraped (the stand-in, the operator).
    PANELS_OUT.write_text(json.dumps({t: r for t, r in panels.items()}, indent=1))
    empty = [t for t, r in panels.items() if not r]
    assert not empty, f"dashboard panels without series: {empty}"
    ours = [r for r in panels["Replicas"] if r["metric"].get("namespace") == ns]
    assert ours and ours[0]["value"][1] in ("1", "2")


def test_a_parked_model_stays_in_chatos_and_its_first_request_is_held_until_it_serves(
    real_cluster: Cluster, stack: Stack, hub: Hub, ns: str
) -> None:
    c = real_cluster
    c.chatos_configmap(ns, [])
    spec = standin_spec(hub, REPO, minReplicas=0, maxReplicas=1, idleSeconds=60, wakeTimeoutSeconds=300)
    c.create_mmd(ns, "tiny", spec)
    c.wait_phase(ns, "tiny", "Ready", timeout=300)
    wake_url = f"http://tiny-wake.{ns}.svc.cluster.local:8080"
    assert c.chatos_models(ns)[0]["base_url"] == wake_url
    assert c.mmd(ns, "tiny")["status"]["autoscaling"]["wakeEndpoint"] == wake_url + "/v1"

    # Idle for idleSeconds: KEDA parks it; the entry stays.
    c.wait_phase(ns, "tiny", "Parked", timeout=240)
    assert spec_replicas(c, ns, "tiny") == 0
    assert c.chatos_models(ns)[0]["base_url"] == wake_url, "a parked model stays in ChatOS"
    c.wait_condition(ns, "tiny", "ServerReady", "False", "Parked")

    # A request as ChatOS sends it (to the wake host, which is the interceptor): held, then answered.
    load = Load(
        stack.interceptor_address, "tiny", concurrency=1, max_tokens=5, host=f"tiny-wake.{ns}.svc.cluster.local"
    )
    t0 = time.monotonic()
    status, body = load.one(timeout=300)
    waited = time.monotonic() - t0
    assert status == 200, body[:300]
    assert json.loads(body)["choices"][0]["message"]["content"] == "xxxxx"
    print(f"first request to the parked model answered after {waited:.0f} s")
    mmd = c.wait_phase(ns, "tiny", "Ready", timeout=120)
    assert mmd["status"]["autoscaling"].get("lastStartSeconds") is not None
    phases = [e["reason"] for e in c.events(ns, "tiny")]
    assert "Parked" in phases
