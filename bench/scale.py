"""Measure the operator at scale: N resources of one GPU each on one operator.

For each --n (default 1000; e.g. --n 100 --n 300 --n 1000 to see growth), in a fresh
local cluster (or the one given) with enough simulated 8-GPU nodes and a Service IP
range wide enough for thousands of Services:

1. the floor: the same children created directly, as fast as the API server allows:
   each model in sequence as the operator must (its PVC and download Job, the Job
   complete, then Deployment and Service, the Deployment available), models in
   parallel on as many clients as the operator has workers (`floor`);
2. the operator (`minimax-operator run` as shipped, under its ServiceAccount) and N
   MiniMaxDeployments of N different models (N caches, N downloads) applied at once:
   time until all are Ready (ratio to the floor), and per resource the time from its
   creation to its first status (p50, p99);
3. idle, once all are Ready: the operator's API reads and writes per minute, from
   the API server's own metrics (apiserver_flowcontrol_dispatched_requests_total of
   FlowSchemas that single out the operator's ServiceAccount: reads, writes, and its
   leader-election Lease apart), its RSS, and its CPU.

Ends with one line per N, the last for the largest N:
  n= ratio_to_floor= first_status_p50_s= first_status_p99_s= idle_reads_per_min=
  idle_writes_per_min= rss_mib= idle_cpu_pct= writes_per_model=
(writes_per_model: the operator's writes from `kubectl apply` to all Ready, over N: creates,
applies, status writes and Events.)
(idle_*_per_min exclude the Lease renewals of leader election, printed as lease_per_min.)

Usage: .venv/bin/python -m bench.scale [--n 1000 ...] [--idle-seconds 180] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from tests.harness.cluster import BENCH_SPEC as SPEC
from tests.harness.cluster import Cluster, free_port, local_cluster, operator_identity_kubeconfig, wait_for

from minimax_operator.api.names import GROUP, PLURAL, VERSION
from minimax_operator.api.v1alpha1 import MiniMaxDeploymentSpec
from minimax_operator.model.deployment import WeightsSource, resolve
from minimax_operator.model.model_cache import implicit_cache, resolve_cache
from minimax_operator.protocol import commit_folder
from minimax_operator.render import model_cache as render_cache
from minimax_operator.render import server as render_server
from minimax_operator.render.meta import OperatorSettings

ROOT = Path(__file__).resolve().parents[1]

SA = {"kind": "ServiceAccount", "serviceAccount": {"name": "minimax-operator", "namespace": "minimax-system"}}
READ_VERBS = ["get", "list", "watch"]


def flow_schemas() -> list[dict[str, Any]]:
    """FlowSchemas that count the operator's requests apart (matched before the built-in ones)."""

    def schema(name: str, precedence: int, verbs: list[str], resources: list[str]) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "subjects": [SA],
            "resourceRules": [
                {"verbs": verbs, "apiGroups": ["*"], "resources": resources, "namespaces": ["*"], "clusterScope": True}
            ],
        }
        if resources == ["*"]:
            rule["nonResourceRules"] = [{"verbs": verbs, "nonResourceURLs": ["*"]}]
        return {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": name},
            "spec": {
                "priorityLevelConfiguration": {"name": "workload-low"},
                "matchingPrecedence": precedence,
                "rules": [rule],
            },
        }

    return [
        schema("bench-operator-lease", 900, ["*"], ["leases"]),
        schema("bench-operator-reads", 901, READ_VERBS, ["*"]),
        schema("bench-operator-writes", 902, ["*"], ["*"]),
    ]


def dispatched(cluster: Cluster) -> dict[str, float]:
    """Requests the API server dispatched per bench FlowSchema so far."""
    out: dict[str, float] = {}
    for line in cluster.kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("apiserver_flowcontrol_dispatched_requests_total{") and "bench-operator-" in line:
            schema = line.split('flow_schema="', 1)[1].split('"', 1)[0]
            out[schema] = out.get(schema, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def nodes(prefix: str, gpu: int, cpu: int) -> list[dict[str, Any]]:
    base = list(yaml.safe_load_all((ROOT / "hack" / "kwok" / "nodes.yaml").read_text()))
    gpu_node = next(n for n in base if "nvidia.com/gpu" in n["status"]["capacity"])
    cpu_node = next(n for n in base if "nvidia.com/gpu" not in n["status"]["capacity"])
    out = []
    for kind, template, count in (("gpu", gpu_node, gpu), ("cpu", cpu_node, cpu)):
        for i in range(count):
            node = json.loads(json.dumps(template))
            node["metadata"]["name"] = node["metadata"]["labels"]["kubernetes.io/hostname"] = f"{prefix}-{kind}-{i}"
            if kind == "cpu":
                node["status"]["capacity"]["pods"] = "1000"  # download pods of many models at once
            out.append(node)
    return out


def apply(cluster: Cluster, docs: list[dict[str, Any]], *args: str) -> None:
    """kubectl apply in batches, as JSON (a hex hash such as 12e45 must stay a string, which YAML 1.1 breaks)."""
    for i in range(0, len(docs), 500):
        batch = {"apiVersion": "v1", "kind": "List", "items": docs[i : i + 500]}
        cluster.kubectl("apply", "--server-side", *args, "-f", "-", stdin=json.dumps(batch))


def model_spec(i: int) -> dict[str, Any]:
    """A model of its own for each resource: n caches, n downloads, n servers (the work of n models)."""
    return {**SPEC, "repo": f"{SPEC['repo']}-{i}"}


def job_done(s: dict[str, Any]) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True" for c in s.get("conditions") or [])


class Finished(threading.Thread):
    """Watches one kind in a namespace and sets an Event per object once `done(status)` holds.

    One watch for all n objects, as an operator's informer would: polling each object
    would load the API server with reads the operator does not make.
    """

    def __init__(self, list_fn: Any, ns: str, done: Any):
        super().__init__(daemon=True)
        self.list_fn, self.ns, self.done = list_fn, ns, done
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.started = threading.Event()

    def event(self, name: str) -> threading.Event:
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def run(self) -> None:
        rv = None
        while True:
            kwargs: dict[str, Any] = {"timeout_seconds": 300, "deserialize": False}
            if rv:
                kwargs["resource_version"] = rv
            self.started.set()
            try:
                for ev in watch.Watch().stream(self.list_fn, self.ns, **kwargs):
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    if self.done(obj.get("status") or {}):
                        self.event(obj["metadata"]["name"]).set()
            except Exception:  # a watch cut by the server (or the end of the run): start again
                rv = None
                time.sleep(0.5)


def floor(cluster: Cluster, n: int, workers: int) -> float:
    """Seconds the cluster itself needs to run the children of n resources, created as fast as it allows.

    Each model in sequence, as the operator must (its claim and download Job, the Job
    complete, then its Deployment and Service, the Deployment available); models in
    parallel on `workers` clients, as many as the operator has workers. Plain creates
    from prepared objects, watches for completion: no reconcile, no status, no Event,
    no shared ConfigMap. An operator cannot beat this, so the ratio says what it costs.
    """
    ns = f"bench-floor-{secrets.token_hex(2)}"
    cluster.kubectl("create", "namespace", ns)
    models = []
    for i in range(n):
        spec = MiniMaxDeploymentSpec.model_validate(model_spec(i))
        cache_name, cache_spec = implicit_cache(spec)
        rc = resolve_cache(cache_name, ns, cache_spec)
        path = commit_folder(rc.repo, "0" * 40)
        w = WeightsSource(cache_name, cache_spec, rc.claim_name, rc.access_mode, path=path)
        r = resolve(f"m{i}", ns, spec, {}, w)
        pvc, job = render_cache.render_cache(rc, None, OperatorSettings())
        deployment, service = render_server.render_server(r, None)
        models.append((pvc, job, deployment, service))

    cfg = client.Configuration()
    config.load_kube_config(cluster.kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = workers + 4
    api = client.ApiClient(cfg)
    core, batch, apps = client.CoreV1Api(api), client.BatchV1Api(api), client.AppsV1Api(api)
    jobs = Finished(batch.list_namespaced_job, ns, job_done)
    available = Finished(apps.list_namespaced_deployment, ns, lambda s: s.get("availableReplicas") == 1)
    for watcher in (jobs, available):
        watcher.start()
        watcher.started.wait(10)

    queue = list(range(n))
    qlock = threading.Lock()
    errors: list[BaseException] = []

    def one(i: int) -> None:
        pvc, job, deployment, service = models[i]
        core.create_namespaced_persistent_volume_claim(ns, pvc)
        batch.create_namespaced_job(ns, job)
        if not jobs.event(job["metadata"]["name"]).wait(3600):
            raise TimeoutError(f"floor Job {job['metadata']['name']}")
        apps.create_namespaced_deployment(ns, deployment)
        core.create_namespaced_service(ns, service)
        if not available.event(deployment["metadata"]["name"]).wait(3600):
            raise TimeoutError(f"floor Deployment {deployment['metadata']['name']}")

    def worker() -> None:
        while not errors:
            with qlock:
                if not queue:
                    return
                i = queue.pop(0)
            try:
                one(i)
            except BaseException as e:  # reported after the join
                errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise errors[0]
    return elapsed


class Recorder(threading.Thread):
    """Watches the resources; records when each was created, first had a status, and became Ready."""

    def __init__(self, kubeconfig: str, ns: str):
        super().__init__(daemon=True)
        self.api = client.CustomObjectsApi(config.new_client_from_config(kubeconfig))
        self.ns = ns
        self.created: dict[str, float] = {}
        self.first_status: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.started = threading.Event()

    def run(self) -> None:
        try:
            self._watch()
        except Exception:  # the cluster went away at the end of a run
            return

    def _watch(self) -> None:
        rv = None
        while True:
            w = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": 300}
            if rv:
                kwargs["resource_version"] = rv
            self.started.set()
            for ev in w.stream(self.api.list_namespaced_custom_object, GROUP, VERSION, self.ns, PLURAL, **kwargs):
                now = time.monotonic()
                obj = ev["object"]
                rv = obj["metadata"]["resourceVersion"]
                name = obj["metadata"]["name"]
                self.created.setdefault(name, now)
                status = obj.get("status") or {}
                if status:
                    self.first_status.setdefault(name, now)
                if status.get("phase") == "Ready":
                    self.ready.setdefault(name, now)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(
    kubeconfig: str, n: int, idle_seconds: float, extra_args: list[str], work: Path, workers: int
) -> dict[str, Any]:
    cluster = Cluster(kubeconfig, audit_log=None)
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/minimaxdeployments.minimax.chatos.io")
    tag = secrets.token_hex(2)
    apply(cluster, nodes(f"bench-{tag}", gpu=2 * math.ceil(n / 8) + 2, cpu=math.ceil(n / 250) + 1))
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=300s")
    apply(cluster, flow_schemas())

    t_floor = floor(cluster, n, workers)
    print(f"n={n}: floor {t_floor:.1f} s", flush=True)

    ns = f"bench-op-{tag}"
    cluster.kubectl("create", "namespace", ns)
    op_kubeconfig = operator_identity_kubeconfig(cluster, work / "kubeconfig")
    metrics, health = free_port(), free_port()
    args = [sys.executable, "-m", "minimax_operator", "run", "--kubeconfig", str(op_kubeconfig)]
    args += ["--namespace", ns, "--leader-election-namespace", "minimax-system", "--leader-election-id", f"bench-{tag}"]
    args += ["--metrics-port", str(metrics), "--health-port", str(health), "--log-format", "plain"]
    args += ["--workers", str(workers), *extra_args]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["PYTHONPATH"] = str(ROOT / "operator")
    with (work / f"operator-{n}.log").open("ab") as log:
        op = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: b"minimax_operator_leader 1.0" in _get(f"http://127.0.0.1:{metrics}/metrics"), 60, "leading")
        rec = Recorder(kubeconfig, ns)
        rec.start()
        rec.started.wait(10)
        docs = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MiniMaxDeployment",
                "metadata": {"name": f"m{i}"},
                "spec": model_spec(i),
            }
            for i in range(n)
        ]
        busy0 = dispatched(cluster)
        t0 = time.monotonic()
        apply(cluster, docs, "-n", ns)
        wait_for(lambda: len(rec.ready) == n, 3600, what="all Ready", interval=1)
        busy1 = dispatched(cluster)
        t_ready = max(rec.ready.values()) - t0
        first = [rec.first_status[k] - rec.created[k] for k in rec.created if k in rec.first_status]
        print(f"n={n}: all Ready after {t_ready:.1f} s", flush=True)

        time.sleep(30)  # let the last writes and watch events settle
        before, cpu0, w0 = dispatched(cluster), cpu_seconds(op.pid), time.monotonic()
        time.sleep(idle_seconds)
        after, cpu1, w1 = dispatched(cluster), cpu_seconds(op.pid), time.monotonic()
        minutes = (w1 - w0) / 60

        def rate(schema: str) -> float:
            return (after.get(schema, 0.0) - before.get(schema, 0.0)) / minutes

        return {
            "n": n,
            "ratio_to_floor": round(t_ready / t_floor, 2),
            "first_status_p50_s": round(statistics.median(first), 2),
            "first_status_p99_s": round(percentile(first, 0.99), 2),
            "idle_reads_per_min": round(rate("bench-operator-reads"), 1),
            "idle_writes_per_min": round(rate("bench-operator-writes"), 1),
            "rss_mib": round(rss_mib(op.pid)),
            "idle_cpu_pct": round(100 * (cpu1 - cpu0) / (w1 - w0), 1),
            "floor_s": round(t_floor, 1),
            "all_ready_s": round(t_ready, 1),
            "lease_per_min": round(rate("bench-operator-lease"), 1),
            # Requests per model on the way to Ready (creates, applies, status writes, Events; reads apart).
            "writes_per_model": round(
                (busy1.get("bench-operator-writes", 0.0) - busy0.get("bench-operator-writes", 0.0)) / n, 1
            ),
            "reads_per_model": round(
                (busy1.get("bench-operator-reads", 0.0) - busy0.get("bench-operator-reads", 0.0)) / n, 1
            ),
        }
    finally:
        op.terminate()
        try:
            op.wait(20)
        except subprocess.TimeoutExpired:
            op.kill()


def _get(url: str) -> bytes:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bytes(r.read())
    except OSError:
        return b""


MAIN_KEYS = (
    "n",
    "ratio_to_floor",
    "first_status_p50_s",
    "first_status_p99_s",
    "idle_reads_per_min",
    "idle_writes_per_min",
    "rss_mib",
    "idle_cpu_pct",
    "writes_per_model",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, action="append", help="resources per run (repeat; default 1000)")
    p.add_argument("--idle-seconds", type=float, default=180)
    p.add_argument("--kubeconfig", help="use this cluster (its Service range must hold 2N Services)")
    p.add_argument("--operator-arg", action="append", default=[], help="extra argument to `minimax-operator run`")
    p.add_argument("--workers", type=int, default=8, help="the operator's workers, and the floor's clients")
    args = p.parse_args()
    results = []
    for n in sorted(args.n or [1000]):
        work = Path(tempfile.mkdtemp(prefix=f"scale-{n}-"))
        # A fresh cluster per N, with a Service range for thousands of Services.
        with local_cluster(args.kubeconfig, "bench-scale", SERVICE_CIDR="10.96.0.0/16") as kubeconfig:
            res = measure(kubeconfig, n, args.idle_seconds, args.operator_arg, work, args.workers)
        print(json.dumps(res), flush=True)
        results.append(res)
    for res in results:
        print(" ".join(f"{k}={res[k]}" for k in MAIN_KEYS), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
