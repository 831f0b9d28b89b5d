"""Measure leader failover: two operator replicas share a Lease; the leader is SIGKILLed.

For each of --runs kills: the time until the follower holds the Lease (its
minimax_operator_leader metric turns 1), and the time until a resource created at
the moment of the kill has its first status (the work actually resumed). The killed
replica is started again as the new follower. Also measures a graceful handover
(SIGTERM: the leader gives the Lease back). Ends with one line:
  failover_median_s=<s> first_status_after_kill_median_s=<s> graceful_handover_s=<s>

Usage: .venv/bin/python -m bench.failover [--runs 5] [--kubeconfig PATH]
Without --kubeconfig it starts its own local cluster (hack/cluster.sh) and deletes it after.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from tests.harness.cluster import BENCH_SPEC as SPEC
from tests.harness.cluster import (
    Cluster,
    Operator,
    local_cluster,
    operator_identity_kubeconfig,
    start_operator,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="failover-"))
    ops: list[Operator] = []
    with contextlib.ExitStack() as stack:
        kubeconfig = stack.enter_context(local_cluster(args.kubeconfig, "bench"))
        stack.callback(lambda: [op.stop() for op in ops])
        cluster = Cluster(kubeconfig, audit_log=None)
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/minimaxdeployments.minimax.chatos.io")
        op_kubeconfig = operator_identity_kubeconfig(cluster, work / "kubeconfig")
        ns = f"bench-failover-{secrets.token_hex(2)}"
        cluster.kubectl("create", "namespace", ns)
        lease = f"bench-{secrets.token_hex(3)}"
        leader = start_operator(op_kubeconfig, work / "op0.log", [ns], lease=lease)
        follower = start_operator(op_kubeconfig, work / "op1.log", [ns], lease=lease, leader=False)
        ops += [leader, follower]
        takeovers, first_status = [], []
        for run in range(args.runs):
            leader.kill()
            t0 = time.monotonic()
            cluster.create_mmd(ns, f"r{run}", SPEC)
            wait_for(follower.leading, 60, what="takeover", interval=0.05)
            takeovers.append(time.monotonic() - t0)
            wait_for(lambda r=run: cluster.mmd(ns, f"r{r}").get("status"), 60, what="first status", interval=0.05)
            first_status.append(time.monotonic() - t0)
            print(f"run {run + 1}: takeover {takeovers[-1]:.1f} s, first status {first_status[-1]:.1f} s", flush=True)
            leader, follower = (
                follower,
                start_operator(op_kubeconfig, work / f"op{run + 2}.log", [ns], lease=lease, leader=False),
            )
            ops.append(follower)
        t0 = time.monotonic()
        leader.stop()  # SIGTERM: kopf stops, the Lease is given back
        wait_for(follower.leading, 60, what="graceful handover", interval=0.05)
        graceful = time.monotonic() - t0
        print(f"graceful handover (SIGTERM) {graceful:.1f} s")
        print(
            f"failover_median_s={statistics.median(takeovers):.1f} "
            f"first_status_after_kill_median_s={statistics.median(first_status):.1f} graceful_handover_s={graceful:.1f}"
        )
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
