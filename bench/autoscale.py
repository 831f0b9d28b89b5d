"""Autoscaling reaction: a load step, the scale decision, the new replica Ready; and a parked model's wake.

    .venv/bin/python -m bench.autoscale                # starts a REAL_NODE=1 cluster, deletes it after
    .venv/bin/python -m bench.autoscale --kubeconfig ~/.cache/minimax-operator/kubeconfig-NAME

Needs root (the node is this machine). The real parts as tests/realnode/test_autoscaling.py runs them
(hack/autoscaling.py: Prometheus, KEDA, its HTTP add-on), stand-in vLLM servers on the real node (1 s
from process start to /health: a simulated start; a GPU server takes minutes, which adds to
`ready_s` one for one). Figures, seconds from the load step (8 concurrent requests against 2 slots,
target 2 waiting per replica): `decision_s` when KEDA's HPA writes spec.replicas 2, `ready_s` when the
resource is Ready with 2 replicas, `scale_in_s` from the load's end to spec.replicas 1; then
`wake_s`, a parked model's first request held and answered.
Ends with one key=value line.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from tests.harness.autoscaling import (
    Load,
    advertise_gpus,
    point_operator_at,
    service_address,
    standin_spec,
    start_stack,
    stop_stack,
)
from tests.harness.cluster import Cluster, local_cluster, wait_for
from tests.harness.realnode import deploy_hub, install_operator

REPO = "MiniMaxAI/Real-Tiny"


def replicas(c: Cluster, ns: str) -> int:
    return int((c.mmd(ns, "tiny").get("spec") or {}).get("replicas", 1))


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--kubeconfig", help="an existing REAL_NODE=1 cluster (default: start one)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-autoscale-"))
    with local_cluster(args.kubeconfig, "mmbench", REAL_NODE="1") as kubeconfig:
        c = Cluster(kubeconfig, audit_log=None)
        install_operator(c)
        hub = deploy_hub(c)
        stack = start_stack(c, folder)
        figures: dict[str, float] = {}
        ns = f"bench-autoscale-{secrets.token_hex(2)}"
        try:
            point_operator_at(c, stack)
            advertise_gpus(c, 8)
            c.kubectl("create", "namespace", ns, check=False)
            spec = standin_spec(hub, REPO, minReplicas=1, maxReplicas=2, target={"waitingRequests": 2},
                                scaleDownDelaySeconds=30)  # fmt: skip
            c.create_mmd(ns, "tiny", {**spec, "chatos": {"enabled": False}})
            c.wait_phase(ns, "tiny", "Ready", timeout=300)
            c.wait_condition(ns, "tiny", "Autoscaling", "True", "Active", timeout=60)
            time.sleep(10)  # a few scrapes and KEDA polls of the idle model
            t0 = time.monotonic()
            with Load(service_address(c, ns, "tiny"), "tiny", concurrency=8) as load:
                wait_for(lambda: replicas(c, ns) == 2, 300, what="scale decision", interval=0.5)
                figures["decision_s"] = time.monotonic() - t0
                wait_for(lambda: (c.mmd(ns, "tiny").get("status") or {}).get("replicas") == 2, 120, interval=0.5)
                c.wait_phase(ns, "tiny", "Ready", timeout=120)
                figures["ready_s"] = time.monotonic() - t0
                time.sleep(30)  # the load holds 2 replicas
                t1 = time.monotonic()
                load.stop()  # no new requests; those running finish within 10 s
                wait_for(lambda: replicas(c, ns) == 1, 300, what="scale-in", interval=1)
                figures["scale_in_s"] = time.monotonic() - t1
            c.delete_mmd(ns, "tiny")

            c.chatos_configmap(ns, [])
            c.create_mmd(ns, "parked", standin_spec(hub, REPO, minReplicas=0, maxReplicas=1, idleSeconds=60))
            c.wait_phase(ns, "parked", "Parked", timeout=300)
            host = f"parked-wake.{ns}.svc.cluster.local"
            t2 = time.monotonic()
            status, _ = Load(stack.interceptor_address, "tiny", 1, max_tokens=5, host=host).one(timeout=300)
            figures["wake_s"] = time.monotonic() - t2
            assert status == 200, status
        finally:
            c.kubectl("delete", "mmd", "--all", "-n", ns, "--timeout=60s", check=False)
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
            advertise_gpus(c, 0)
            stop_stack(c, folder)
        for k, v in figures.items():
            print(f"{k}: {v:.1f}")
        print(" ".join(f"{k}={v:.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
