#!/usr/bin/env python3
"""Run the real autoscaling parts against the local real-node cluster: Prometheus, KEDA (operator and
metrics adapter) and KEDA's HTTP add-on (interceptor and scaler).

Built by `hack/tools.sh --autoscaling` at the versions pinned in hack/tools.env. Where each runs, and why:
- Prometheus, the KEDA operator and its metrics adapter run as processes on this machine, like the
  control plane (no registry serves their images here). They listen on the node's bridge
  (10.244.0.1), which pods, this machine and the API server all reach. Prometheus discovers the
  Services annotated prometheus.io/scrape (the vLLM servers, the operator) with kubernetes_sd.
- The adapter is registered as the external.metrics.k8s.io APIService behind a selector-less Service
  whose EndpointSlice points at the bridge, so the HorizontalPodAutoscaler that KEDA makes reads it as
  in a cluster.
- The HTTP add-on's interceptor and scaler run as pods on the real node (the base image, the binaries
  mounted from this machine): the interceptor forwards to `service.namespace:port`, which only
  cluster DNS resolves.

Usage: hack/autoscaling.py start --kubeconfig K --dir D   (prints a JSON line: prometheusUrl,
                                                          kedaHttpScaler, kedaHttpInterceptor)
       hack/autoscaling.py stop --kubeconfig K --dir D    (also removes the APIService: a registered one
                                                          that no longer answers blocks namespace deletion)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import devkit  # hack/devkit.py, beside this script
from devkit import free_port, kubectl, tools

HERE = Path(__file__).resolve().parent
BRIDGE = "10.244.0.1"  # hack/node.sh
NAMESPACE = "keda"
APISERVICE = "v1beta1.external.metrics.k8s.io"
BASE_IMAGE = "localhost/minimax-base:bookworm"  # hack/image.sh, in the node already


def apply(kubeconfig: str, docs: list[dict[str, Any]]) -> None:
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )


def certificates(folder: Path) -> bytes:
    """A CA and one certificate for every listener here (KEDA's gRPC needs ca.crt, tls.crt, tls.key)."""
    names = ["keda-metrics-apiserver.keda.svc", "keda-operator.keda.svc", "localhost"]
    sans = ["IP:127.0.0.1", f"IP:{BRIDGE}", *(f"DNS:{n}" for n in names)]
    return devkit.certificates(folder, "minimax-dev-keda-ca", "keda", sans)


def spawn(folder: Path, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = folder / f"{name}.log"
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    (folder / f"{name}.pid").write_text(str(proc.pid))
    return proc


def wait(what: str, check: Any, proc: subprocess.Popen[bytes] | None, log: Path | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:] if log else ''}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    sys.exit(f"{what} not ready within {timeout:.0f} s" + (f":\n{log.read_text()[-3000:]}" if log else ""))


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return bool(r.status == 200)


def prometheus_config(kubeconfig: str) -> dict[str, Any]:
    """Scrape every Service annotated prometheus.io/scrape (kubernetes_sd, endpoint slices), as the
    common scrape configurations do, with the namespace, service and pod as labels."""
    meta = "__meta_kubernetes_"
    operator = {"source_labels": [f"{meta}service_label_app_kubernetes_io_name"], "regex": "minimax-operator"}
    return {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s", "scrape_timeout": "2s"},
        "scrape_configs": [
            {
                "job_name": "annotated-services",
                "kubernetes_sd_configs": [{"role": "endpointslice", "kubeconfig_file": kubeconfig}],
                "relabel_configs": [
                    {
                        "source_labels": [f"{meta}service_annotation_prometheus_io_scrape"],
                        "action": "keep",
                        "regex": "true",
                    },
                    {**operator, "action": "drop"},
                    {
                        "source_labels": ["__address__", f"{meta}service_annotation_prometheus_io_port"],
                        "regex": r"([^:]+)(?::\d+)?;(\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {
                        "source_labels": [f"{meta}service_annotation_prometheus_io_path"],
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                    },
                    {"source_labels": [f"{meta}namespace"], "target_label": "namespace"},
                    {"source_labels": [f"{meta}service_name"], "target_label": "service"},
                    {"source_labels": [f"{meta}pod_name"], "target_label": "pod"},
                ],
            },
            {
                # The operator's per-model gauges carry the model's namespace: kept (honor_labels), as
                # kube-state-metrics is scraped, instead of renamed exported_namespace.
                "job_name": "minimax-operator",
                "honor_labels": True,
                "kubernetes_sd_configs": [{"role": "endpointslice", "kubeconfig_file": kubeconfig}],
                "relabel_configs": [
                    {**operator, "action": "keep"},
                    {"source_labels": [f"{meta}endpointslice_port_name"], "regex": "metrics", "action": "keep"},
                ],
            },
        ],
    }


def adapter_objects(port: int, ca: bytes) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/part-of": "minimax-dev"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "keda-metrics-apiserver", "namespace": NAMESPACE, "labels": labels},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "keda-metrics-apiserver-host",
                "namespace": NAMESPACE,
                "labels": {**labels, "kubernetes.io/service-name": "keda-metrics-apiserver"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [BRIDGE], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE, "labels": labels},
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "caBundle": base64.b64encode(ca).decode(),
                "service": {"namespace": NAMESPACE, "name": "keda-metrics-apiserver", "port": 443},
            },
        },
    ]


def http_addon_objects(home: Path) -> list[dict[str, Any]]:
    """The interceptor and the scaler as Deployments on the real node, with their Services and RBAC."""
    labels = {"app.kubernetes.io/part-of": "minimax-dev"}
    common_env = [{"name": "KEDA_HTTP_CURRENT_NAMESPACE", "value": NAMESPACE}]

    def deployment(name: str, binary: str, env: list[dict[str, str]], ports: list[int]) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "serviceAccountName": "keda-http-add-on",
                        "nodeSelector": {"minimax.chatos.io/real-node": "true"},
                        "containers": [
                            {
                                "name": name,
                                "image": BASE_IMAGE,
                                "imagePullPolicy": "Never",
                                "command": [f"/opt/keda/{binary}"],
                                "env": env,
                                "ports": [{"containerPort": p} for p in ports],
                                "volumeMounts": [{"name": "bin", "mountPath": "/opt/keda", "readOnly": True}],
                            }
                        ],
                        "volumes": [{"name": "bin", "hostPath": {"path": str(home / "bin"), "type": "Directory"}}],
                    },
                },
            },
        }

    def service(name: str, app: str, port: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": port}]},
        }

    read = ["get", "list", "watch"]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "keda-http-add-on", "namespace": NAMESPACE, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "minimax-dev-keda-http-add-on", "labels": labels},
            "rules": [
                {
                    "apiGroups": ["http.keda.sh"],
                    "resources": ["httpscaledobjects", "httpscaledobjects/status"],
                    "verbs": [*read, "update", "patch"],
                },
                {"apiGroups": [""], "resources": ["services", "endpoints", "configmaps"], "verbs": read},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": read},
                {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": read},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "minimax-dev-keda-http-add-on", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "minimax-dev-keda-http-add-on",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "keda-http-add-on", "namespace": NAMESPACE}],
        },
        deployment(
            "keda-add-ons-http-interceptor",
            "keda-http-interceptor",
            [
                *common_env,
                {"name": "KEDA_HTTP_PROXY_PORT", "value": "8080"},
                {"name": "KEDA_HTTP_ADMIN_PORT", "value": "9090"},
            ],
            [8080, 9090],
        ),
        deployment(
            "keda-add-ons-http-external-scaler",
            "keda-http-scaler",
            [
                {"name": "KEDA_HTTP_SCALER_PORT", "value": "9090"},
                {"name": "KEDA_HTTP_SCALER_TARGET_ADMIN_NAMESPACE", "value": NAMESPACE},
                {"name": "KEDA_HTTP_SCALER_TARGET_ADMIN_SERVICE", "value": "keda-add-ons-http-interceptor-admin"},
                {"name": "KEDA_HTTP_SCALER_TARGET_ADMIN_DEPLOYMENT", "value": "keda-add-ons-http-interceptor"},
                {"name": "KEDA_HTTP_SCALER_TARGET_ADMIN_PORT", "value": "9090"},
            ],
            [9090],
        ),
        service("keda-add-ons-http-interceptor-proxy", "keda-add-ons-http-interceptor", 8080),
        service("keda-add-ons-http-interceptor-admin", "keda-add-ons-http-interceptor", 9090),
        service("keda-add-ons-http-external-scaler", "keda-add-ons-http-external-scaler", 9090),
    ]


def stop(folder: Path, kubeconfig: str | None) -> None:
    for name in ("keda-adapter", "keda", "prometheus"):
        pid_file = folder / f"{name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()
    if kubeconfig:
        kubectl(kubeconfig, "delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def start(kubeconfig: str, folder: Path) -> dict[str, str]:
    home = tools("--autoscaling")
    bin_ = home / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    stop(folder, None)
    certs = folder / "keda-certs"
    ca = certificates(certs)
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(home / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(home / "crds"))
    kubectl(kubeconfig, "create", "namespace", NAMESPACE, check=False)
    for _ in range(60):  # a namespace still terminating from the last stop
        if "Terminating" not in kubectl(
            kubeconfig, "get", "namespace", NAMESPACE, "-o", "jsonpath={.status.phase}", check=False
        ):
            break
        time.sleep(1)
    kubectl(kubeconfig, "create", "namespace", NAMESPACE, check=False)

    prom_port = free_port(BRIDGE)
    (folder / "prometheus.yml").write_text(json.dumps(prometheus_config(kubeconfig)))
    prom = spawn(
        folder,
        "prometheus",
        [
            str(bin_ / "prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'prometheus-data'}",
            f"--web.listen-address={BRIDGE}:{prom_port}",
            "--storage.tsdb.retention.time=2h",
        ],
        {},
    )
    prom_url = f"http://{BRIDGE}:{prom_port}"

    grpc_port, health_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    env = {
        "KUBECONFIG": kubeconfig,
        "WATCH_NAMESPACE": "",
        "POD_NAMESPACE": NAMESPACE,
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
    }
    keda = spawn(
        folder,
        "keda",
        [
            str(bin_ / "keda"),
            "--leader-elect=false",
            "--metrics-bind-address=0",
            f"--health-probe-bind-address=127.0.0.1:{health_port}",
            f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
            f"--cert-dir={certs}",
            f"--ca-dir={certs}",
            "--enable-cert-rotation=false",
            "--enable-webhook-patching=false",
            "--enable-apiservice-patching=false",
            "--zap-log-level=info",
        ],
        env,
    )

    adapter_port = free_port(BRIDGE)
    adapter = spawn(
        folder,
        "keda-adapter",
        [
            str(bin_ / "keda-adapter"),
            f"--secure-port={adapter_port}",
            f"--bind-address={BRIDGE}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--metrics-service-address=127.0.0.1:{grpc_port}",
            "--metrics-service-grpc-authority=localhost",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--lister-kubeconfig={kubeconfig}",
            "--v=2",
        ],
        env,
    )

    wait("Prometheus", lambda: http_ok(f"{prom_url}/-/ready"), prom, folder / "prometheus.log")
    wait("KEDA", lambda: http_ok(f"http://127.0.0.1:{health_port}/readyz"), keda, folder / "keda.log")
    apply(kubeconfig, adapter_objects(adapter_port, ca))
    apply(kubeconfig, http_addon_objects(home))

    def available() -> bool:
        got = kubectl(
            kubeconfig,
            "get",
            "apiservice",
            APISERVICE,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Available')].status}",
        )
        return got == "True"

    wait("KEDA's metrics adapter (APIService Available)", available, adapter, folder / "keda-adapter.log")
    for d in ("keda-add-ons-http-interceptor", "keda-add-ons-http-external-scaler"):
        kubectl(kubeconfig, "rollout", "status", f"deployment/{d}", "-n", NAMESPACE, "--timeout=180s")

    def cluster_ip(name: str) -> str:
        return kubectl(kubeconfig, "get", "service", name, "-n", NAMESPACE, "-o", "jsonpath={.spec.clusterIP}")

    state = {
        "prometheusUrl": prom_url,
        # The KEDA operator runs on this machine, which resolves no cluster DNS: the Service's address.
        "kedaHttpScaler": f"{cluster_ip('keda-add-ons-http-external-scaler')}:9090",
        "kedaHttpInterceptor": f"keda-add-ons-http-interceptor-proxy.{NAMESPACE}:8080",
        "interceptorAddress": f"{cluster_ip('keda-add-ons-http-interceptor-proxy')}:8080",
    }
    (folder / "autoscaling.json").write_text(json.dumps(state))
    return state


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("command", choices=["start", "stop"])
    p.add_argument("--kubeconfig")
    p.add_argument("--dir", required=True, type=Path, help="folder for pids, logs, certificates, Prometheus data")
    a = p.parse_args()
    if a.command == "start":
        if not a.kubeconfig:
            p.error("start needs --kubeconfig")
        print(json.dumps(start(a.kubeconfig, a.dir)))
    else:
        stop(a.dir, a.kubeconfig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
