"""The operator under faults: SIGKILLed at random points, and the API server restarted once, while
resources download, serve and are deleted. Shared by tests/e2e/test_faults.py (a fixed seed) and
bench/faults.py (any seed): the same scenario, the same checks.

What must hold afterwards, whatever the seed: every resource left is Ready, every deleted one is
gone, each has exactly one Deployment, Service and download Job, ChatOS lists each model_id once,
and no hand-written entry is lost.
"""

from __future__ import annotations

import random
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from .cluster import ROOT, Cluster, Operator, free_port, wait_for

HAND_WRITTEN = {"name": "By hand", "provider": "openai", "base_url": "http://gpt", "model_id": "gpt-x", "x": 1}


def tiny(i: int) -> dict[str, Any]:
    return {
        "repo": f"fault-org/tiny-{i}",
        "servedModelName": f"tiny-{i}",
        "tensorParallelSize": 1,
        "storage": {"size": "1Gi"},
        "vllm": {"image": "vllm/vllm-openai:v0.20.0"},
    }


@dataclass
class Report:
    seed: int
    resources: int
    deleted: int
    kills: int = 0
    apiserver_restarts: int = 0
    #: Seconds from the last fault to every resource settled.
    converged_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"seed={self.seed} resources={self.resources} deleted={self.deleted} kills={self.kills} "
            f"apiserver_restarts={self.apiserver_restarts} converged_s={self.converged_s:.1f} "
            f"problems={len(self.problems)}"
        )


class Killer(threading.Thread):
    """SIGKILLs the operator at random moments and starts it again at once; restarts the API server once."""

    def __init__(self, rng: random.Random, start: Any, cluster_name: str, kills: int, report: Report):
        super().__init__(daemon=True)
        self.rng, self.start_operator, self.cluster_name, self.kills, self.report = (
            rng,
            start,
            cluster_name,
            kills,
            report,
        )
        self.operator: Operator = start()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for k in range(self.kills):
                time.sleep(self.rng.uniform(0.3, 3.0))
                self.operator.kill()
                self.report.kills += 1
                if k == self.kills // 2:  # mid-reconcile: the API server goes away and comes back
                    script = str(ROOT / "hack" / "cluster.sh")
                    subprocess.run([script, "restart", self.cluster_name], check=True, capture_output=True)
                    self.report.apiserver_restarts += 1
                self.operator = self.start_operator()
        except BaseException as e:  # surfaced by the scenario
            self.error = e


def run(
    cluster: Cluster,
    cluster_name: str,
    kubeconfig: Path,
    logs: Path,
    seed: int,
    resources: int = 30,
    kills: int = 20,
    settle_timeout: float = 600,
) -> Report:
    rng = random.Random(seed)
    ns = f"faults-{seed}-{secrets.token_hex(2)}"
    cluster.kubectl("create", "namespace", ns)
    cluster.chatos_configmap(ns, [HAND_WRITTEN])
    doomed = set(rng.sample(range(resources), resources // 3))
    report = Report(seed=seed, resources=resources, deleted=len(doomed))
    runs = iter(range(1000))

    def start() -> Operator:
        log = logs / f"operator-{next(runs)}.log"
        # One replica without a Lease: restarted at once (the HA test covers the Lease's takeover).
        return Operator.start(kubeconfig, log, [ns], free_port(), free_port(), ["--no-leader-elect"])

    killer = Killer(rng, start, cluster_name, kills, report)
    killer.start()
    try:
        for i in range(resources):
            _retry(lambda i=i: cluster.create_mmd(ns, f"m{i}", tiny(i)))
            time.sleep(rng.uniform(0, 0.4))
        time.sleep(rng.uniform(1, 5))
        for i in sorted(doomed):  # some while downloading or registering, some once serving
            _retry(
                lambda i=i: cluster.kubectl("delete", "mmd", f"m{i}", "-n", ns, "--wait=false", "--ignore-not-found")
            )
            time.sleep(rng.uniform(0, 0.5))
        killer.join()
        if killer.error:
            raise killer.error
        settled = time.monotonic()
        kept = [i for i in range(resources) if i not in doomed]
        wait_for(lambda: _settled(cluster, ns, kept), settle_timeout, what="every resource settled", interval=1)
        report.converged_s = time.monotonic() - settled
        report.problems = _problems(cluster, ns, kept)
    finally:
        killer.operator.stop()
    return report


def _retry(action: Any, attempts: int = 30) -> None:
    """An API call while the API server restarts: try again for a while (a create that went through
    before the answer was lost is done)."""
    for n in range(attempts):
        try:
            action()
            return
        except ApiException as e:
            if e.status == 409:
                return
            if n == attempts - 1:
                raise
        except Exception:
            if n == attempts - 1:
                raise
        time.sleep(1)


def prepare(cluster: Cluster, gpu_nodes: int = 2) -> None:
    """The CRDs, and more 8-GPU nodes so that dozens of one-GPU models fit at once."""
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for crd in ("minimaxdeployments", "minimaxmodelcaches", "minimaxpolicies"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.minimax.chatos.io")
    nodes = []
    for i in range(gpu_nodes):
        node = next(iter(yaml.safe_load_all((ROOT / "hack" / "kwok" / "nodes.yaml").read_text())))
        node["metadata"]["name"] = node["metadata"]["labels"]["kubernetes.io/hostname"] = f"gpu-fault-{i}"
        nodes.append(node)
    cluster.apply_docs(nodes)


def _settled(cluster: Cluster, ns: str, kept: list[int]) -> bool:
    names = set(cluster.kubectl("get", "mmd", "-n", ns, "-o", "name").split())
    if names != {f"minimaxdeployment.minimax.chatos.io/m{i}" for i in kept}:
        return False
    return all((cluster.mmd(ns, f"m{i}").get("status") or {}).get("phase") == "Ready" for i in kept)


def _problems(cluster: Cluster, ns: str, kept: list[int]) -> list[str]:
    problems = []
    want = {f"m{i}" for i in kept}
    deployments = [d.metadata.name for d in cluster.apps.list_namespaced_deployment(ns).items]
    services = [s.metadata.name for s in cluster.core.list_namespaced_service(ns).items]
    if sorted(deployments) != sorted(want):
        problems.append(f"Deployments {sorted(deployments)}, want {sorted(want)}")
    if sorted(services) != sorted(want):
        problems.append(f"Services {sorted(services)}, want {sorted(want)}")
    jobs: dict[str, int] = {}
    for job in cluster.batch.list_namespaced_job(ns).items:
        cache = (job.metadata.labels or {}).get("minimax.chatos.io/cache", "")
        jobs[cache] = jobs.get(cache, 0) + 1
    if any(n > 1 for n in jobs.values()):
        problems.append(f"more than one download Job for a cache: {jobs}")
    ids = [m.get("model_id") for m in cluster.chatos_models(ns)]
    if sorted(ids) != sorted(["gpt-x", *(f"tiny-{i}" for i in kept)]):
        problems.append(f"ChatOS model_ids {sorted(ids)}")
    if HAND_WRITTEN not in cluster.chatos_models(ns):
        problems.append("the hand-written entry is gone or changed")
    return problems
