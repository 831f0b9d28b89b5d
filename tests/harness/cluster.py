"""The local cluster under test: a handle on it, the operator as a process under its ServiceAccount,
waiting on conditions, and the stand-in that runs download containers of simulated pods."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = subprocess.run([str(ROOT / "hack" / "tools.sh")], check=True, capture_output=True, text=True).stdout.strip()
GROUP, VERSION, PLURAL = "minimax.chatos.io", "v1alpha1", "minimaxdeployments"
CACHE_PLURAL = "minimaxmodelcaches"
T = TypeVar("T")


READ_VERBS = frozenset({"get", "list", "watch"})


def wait_for(fn: Callable[[], T], timeout: float = 60, what: str = "condition", interval: float = 0.2) -> T:
    """Poll until fn returns something truthy (exceptions count as not yet); fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except (ApiException, KeyError, IndexError, TypeError, ValueError) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


@dataclass
class Cluster:
    kubeconfig: str
    audit_log: str | None
    api: kubernetes.client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = kubernetes.config.new_client_from_config(config_file=self.kubeconfig)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        self.batch = kubernetes.client.BatchV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [f"{TOOLS_BIN}/kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout + (proc.stderr if proc.returncode else "")

    def apply_docs(self, docs: list[dict[str, Any]], namespace: str | None = None) -> str:
        args = ["apply", "--server-side", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.kubectl(*args, stdin=yaml.safe_dump_all(docs))

    # MiniMaxDeployments --------------------------------------------------------------------

    def mmd(self, ns: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        return obj

    def create_mmd(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MiniMaxDeployment",
            "metadata": {"name": name},
            "spec": spec,
        }
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
        return obj

    def patch_mmd(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"spec": spec})

    def delete_mmd(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    # MiniMaxModelCaches ---------------------------------------------------------------------

    def mmc(self, ns: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, CACHE_PLURAL, name)
        return obj

    def create_mmc(self, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MiniMaxModelCache", "metadata": {"name": name}}
        obj: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, CACHE_PLURAL, {**body, "spec": spec}
        )
        return obj

    def patch_mmc(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, CACHE_PLURAL, name, {"spec": spec})

    def delete_mmc(self, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, CACHE_PLURAL, name)

    def mmcs(self, ns: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, CACHE_PLURAL)[
            "items"
        ]
        return items

    def cache_of(self, ns: str, mmd: str) -> str:
        """The MiniMaxModelCache a resource serves from (once it says so)."""
        return str(wait_for(lambda: (self.mmd(ns, mmd).get("status") or {}).get("cache"), what=f"{mmd}'s cache"))

    def claim_of(self, ns: str, mmd: str) -> str:
        """The weights claim a resource's server mounts."""
        cache = self.cache_of(ns, mmd)
        return str(wait_for(lambda: (self.mmc(ns, cache).get("status") or {}).get("claimName"), what="claim"))

    def cache_condition(self, ns: str, name: str, type_: str) -> dict[str, Any]:
        for c in (self.mmc(ns, name).get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return {}

    def condition(self, ns: str, name: str, type_: str) -> dict[str, Any]:
        for c in (self.mmd(ns, name).get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return {}

    def wait_phase(self, ns: str, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.mmd(ns, name)
            status = obj.get("status") or {}
            ok = status.get("phase") == phase and status.get("observedGeneration") == obj["metadata"]["generation"]
            return obj if ok else None

        return wait_for(check, timeout, what=f"{ns}/{name} phase {phase}")

    def wait_rolled_out(self, ns: str, name: str, timeout: float = 60) -> None:
        """The Deployment's latest spec is observed and all its replicas are updated and ready (no old pods)."""

        def check() -> bool:
            d = self.apps.read_namespaced_deployment(name, ns)
            s = d.status
            want = d.spec.replicas or 0
            return bool(
                (s.observed_generation or 0) >= d.metadata.generation
                and (s.updated_replicas or 0) == want
                and (s.ready_replicas or 0) == want
                and (s.replicas or 0) == want
            )

        wait_for(check, timeout, what=f"{ns}/{name} rolled out")

    def wait_condition(self, ns: str, name: str, type_: str, status: str, reason: str, timeout: float = 60) -> dict:
        def check() -> dict[str, Any] | None:
            c = self.condition(ns, name, type_)
            return c if c.get("status") == status and c.get("reason") == reason else None

        return wait_for(check, timeout, what=f"{ns}/{name} {type_}={status} ({reason})")

    # ChatOS ----------------------------------------------------------------------------------

    def chatos_configmap(self, ns: str, content: Any, name: str = "chatos-models", key: str = "models.json") -> None:
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        body = {"metadata": {"name": name}, "data": {key: text}}
        self.core.create_namespaced_config_map(ns, body)

    def chatos_text(self, ns: str, name: str = "chatos-models", key: str = "models.json") -> str:
        return str(self.core.read_namespaced_config_map(name, ns).data[key])

    def chatos_models(self, ns: str, name: str = "chatos-models") -> list[dict[str, Any]]:
        doc = json.loads(self.chatos_text(ns, name))
        return list(doc["models"] if isinstance(doc, dict) else doc)

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
        return [{"type": e.type, "reason": e.reason, "message": e.message} for e in items]

    def wait_events(self, ns: str, name: str, *reasons: str, type_: str | None = None, timeout: float = 30) -> None:
        """Until Events of all these reasons (of this type) are there: the operator posts them right after
        the status that shows the condition, so a test that saw the condition may list them a moment early."""

        def there() -> bool:
            seen = {e["reason"] for e in self.events(ns, name) if type_ is None or e["type"] == type_}
            return set(reasons) <= seen

        wait_for(there, timeout, what=f"Events {', '.join(reasons)} of {name}")

    def audit_writes(self, user: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Mutating requests by `user` in the audit log (the policy logs writes, and the operator's reads)."""
        return [e for e in self.audit_requests(user, namespace) if e["verb"] not in READ_VERBS]

    def audit_reads(self, user: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Reads (get, list, watch) by the operator's ServiceAccount (hack/kwok/audit-policy.yaml)."""
        return [e for e in self.audit_requests(user, namespace) if e["verb"] in READ_VERBS]

    def audit_requests(self, user: str, namespace: str | None = None) -> list[dict[str, Any]]:
        assert self.audit_log, "this cluster has no audit log (CLUSTER=existing without AUDIT_LOG)"
        out = []
        for line in Path(self.audit_log).read_text().splitlines():
            ev = json.loads(line)
            if ev.get("user", {}).get("username") != user or ev.get("stage") != "ResponseComplete":
                continue
            if namespace and ev.get("objectRef", {}).get("namespace") != namespace:
                continue
            out.append(ev)
        return out


@dataclass
class Operator:
    """`minimax-operator run` as a subprocess, as it runs in its pod."""

    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    health_port: int

    @classmethod
    def start(
        cls, kubeconfig: Path, log: Path, namespaces: list[str], metrics: int, health: int, extra: list[str]
    ) -> Operator:
        args = [sys.executable, "-m", "minimax_operator", "run", "--kubeconfig", str(kubeconfig)]
        for ns in namespaces:
            args += ["--namespace", ns]
        args += ["--resync-seconds", "1", "--retry-base-seconds", "3", "--download-backoff-limit", "1"]
        args += ["--log-format", "plain"]
        args += ["--metrics-port", str(metrics), "--health-port", str(health), *extra]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        with log.open("ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        op = cls(proc, log, metrics, health)
        wait_for(op.healthy, 30, what="operator /healthz")
        return op

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"operator exited; log:\n{self.log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def leading(self) -> bool:
        return self.metric("minimax_operator_leader") == 1

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a node dies."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def release_hold(cluster: Cluster, ns: str) -> None:
    """Let held download pods finish (kwok completes a pod once its Hold annotation is gone)."""
    patch = {"metadata": {"annotations": {"sim.minimax.chatos.io/behavior": None}}}
    for pod in cluster.core.list_namespaced_pod(
        ns, label_selector="app.kubernetes.io/component=weights-download"
    ).items:
        if (pod.metadata.annotations or {}).get("sim.minimax.chatos.io/behavior") == "Hold":
            cluster.core.patch_namespaced_pod(pod.metadata.name, ns, patch)


def assert_quiet(cluster: Cluster, operator: Operator, user: str, ns: str, resyncs: int = 5) -> None:
    """The operator writes nothing in `ns` over `resyncs` resyncs, after two to let the last writes settle."""
    assert cluster.audit_log, "this check needs the API server's audit log (CLUSTER=kwok, or AUDIT_LOG)"
    start = operator.metric("minimax_operator_reconciles_total")
    wait_for(lambda: operator.metric("minimax_operator_reconciles_total") >= start + 2, what="two resyncs")
    before = len(cluster.audit_writes(user, ns))
    start = operator.metric("minimax_operator_reconciles_total")
    wait_for(lambda: operator.metric("minimax_operator_reconciles_total") >= start + resyncs, what="quiet resyncs")
    writes = cluster.audit_writes(user, ns)[before:]
    assert writes == [], [(w["verb"], w["objectRef"]) for w in writes]


#: The benchmarks' resource: one GPU, a tiny custom repo, no ChatOS entry.
BENCH_SPEC: dict[str, Any] = {
    "repo": "bench-org/tiny",
    "servedModelName": "tiny",
    "tensorParallelSize": 1,
    "storage": {"size": "1Gi"},
    "vllm": {"image": "vllm/vllm-openai:v0.20.0"},
    "chatos": {"enabled": False},
}


@contextlib.contextmanager
def local_cluster(given: str | None, prefix: str, name: str | None = None, **env: str) -> Iterator[str]:
    """The kubeconfig of `given`, or of a local cluster started for the block and deleted after it.

    `name`: the cluster's (default: `prefix` and a random suffix). `env` goes to hack/cluster.sh
    (for example SERVICE_CIDR). For the benchmarks.
    """
    if given:
        yield given
        return
    name = name or f"{prefix}-{secrets.token_hex(3)}"
    environ = {**os.environ, "PYTHON": sys.executable, **env}
    script = str(ROOT / "hack" / "cluster.sh")
    out = subprocess.run([script, "up", name], capture_output=True, text=True, env=environ)
    if out.returncode:  # the reason is in what the script printed, not in the exit code
        subprocess.run([script, "down", name], check=False, env=environ)
        raise RuntimeError(f"hack/cluster.sh up {name} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    try:
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "down", name], check=False, env=environ)


class Executor(threading.Thread):
    """Run the download container of every Running download pod in a namespace, once."""

    def __init__(self, cluster: Cluster, ns: str, volumes: Path):
        super().__init__(daemon=True)
        self.cluster, self.ns, self.volumes = cluster, ns, volumes
        self.stop = threading.Event()
        self.done: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            pods = self.cluster.core.list_namespaced_pod(
                self.ns, label_selector="app.kubernetes.io/component=weights-download"
            ).items
            for pod in pods:
                if pod.status.phase == "Running" and pod.metadata.name not in self.done:
                    self.done.add(pod.metadata.name)
                    self.execute(pod)

    def env_of(self, container) -> dict[str, str]:  # type: ignore[no-untyped-def]
        env = {}
        for e in container.env or []:
            if e.value is not None:
                env[e.name] = e.value
            elif e.value_from and e.value_from.secret_key_ref:
                ref = e.value_from.secret_key_ref
                secret = self.cluster.core.read_namespaced_secret(ref.name, self.ns)
                env[e.name] = base64.b64decode(secret.data[ref.key]).decode()
        return env

    def execute(self, pod) -> None:  # type: ignore[no-untyped-def]
        container = pod.spec.containers[0]
        claim = pod.spec.volumes[0].persistent_volume_claim.claim_name
        mount = container.volume_mounts[0].mount_path
        root = self.volumes / claim
        root.mkdir(parents=True, exist_ok=True)
        args = [a.replace(mount, str(root), 1) if a.startswith(mount) else a for a in container.args]
        term = self.volumes / f"{pod.metadata.name}.termination"
        env = {
            "PATH": os.environ["PATH"],
            "HF_HOME": str(self.volumes / "hf-home"),
            "MINIMAX_TERMINATION_LOG": str(term),
            **self.env_of(container),
        }
        proc = subprocess.run([sys.executable, "-m", "minimax_operator", *args], env=env, capture_output=True)
        message = term.read_text() if term.exists() else proc.stderr.decode()[-1000:]
        state = {
            "terminated": {
                "exitCode": proc.returncode,
                "reason": "Completed" if proc.returncode == 0 else "Error",
                "message": message,
            }
        }
        status = {
            "phase": "Succeeded" if proc.returncode == 0 else "Failed",
            "containerStatuses": [
                {"name": container.name, "image": container.image, "ready": False, "restartCount": 0, "state": state}
            ],
        }
        self.cluster.core.patch_namespaced_pod_status(pod.metadata.name, self.ns, {"status": status})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def operator_identity_kubeconfig(admin: Cluster, path: Path) -> Path:
    """The operator's identity: the ServiceAccount and ClusterRole of the install manifest (the chart's output).

    So every e2e test also proves the RBAC suffices, and the audit log can tell its requests apart.
    """
    admin.kubectl("create", "namespace", "minimax-system", check=False)
    install = yaml.safe_load_all((ROOT / "docs" / "install" / "operator.yaml").read_text())
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    admin.apply_docs([d for d in install if d and d["kind"] in kinds])
    return token_kubeconfig(admin, "minimax-system", "minimax-operator", path)


def token_kubeconfig(admin: Cluster, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount, as the operator's pod would."""
    token = admin.kubectl("create", "token", service_account, "-n", namespace, "--duration=24h").strip()
    config = yaml.safe_load(Path(admin.kubeconfig).read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


def start_operator(
    kubeconfig: Path,
    log: Path,
    namespaces: list[str],
    *extra: str,
    lease: str | None = None,
    leader: bool = True,
    lease_namespace: str = "minimax-system",
) -> Operator:
    """An operator process campaigning for its own Lease (or `lease`, shared by an HA pair).

    `leader`: wait until it leads (a follower of a shared Lease is only healthy, not leading).
    """
    lease = lease or f"e2e-{secrets.token_hex(3)}"
    args = ["--leader-election-namespace", lease_namespace, "--leader-election-id", lease, *extra]
    op = Operator.start(kubeconfig, log, namespaces, free_port(), free_port(), args)
    if leader:
        wait_for(op.leading, 30, what="operator leads its Lease")
    return op
