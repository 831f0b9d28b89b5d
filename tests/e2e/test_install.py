"""Installing and operating the way platform teams do: Helm chart, least privilege, GitOps."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.cluster import ROOT, TOOLS_BIN, Cluster, Operator, start_operator, token_kubeconfig, wait_for

CHART = ROOT / "charts" / "minimax-operator"


def helm(*args: str) -> str:
    proc = subprocess.run([f"{TOOLS_BIN}/helm", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_chart_lints_clean() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out and "[WARNING]" not in out and "[ERROR]" not in out


def test_install_manifest_is_the_charts_output() -> None:
    rendered = helm("template", "minimax-operator", str(CHART), "-n", "minimax-system")
    committed = (ROOT / "docs" / "install" / "operator.yaml").read_text()
    assert committed.split("\n", 1)[1] == rendered, "run `make manifests`"


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "watchNamespaces={team-a,team-b}"],
        [
            "--set",
            "chatos.createConfigMap=true",
            "--set",
            "vllmImages.MiniMax-M2\\.5=registry.local/vllm:v0.20.0",
            "--set",
            "policy.enabled=true",
            "--set-json",
            'policy.tiers=[{"name": "s", "namespaceSelector": {"matchLabels": {"t": "s"}}, "maxGPUsPerReplica": 4}]',
        ],
    ],
    ids=["all-namespaces", "namespaced", "options"],
)
def test_chart_output_is_accepted_by_the_api_server(cluster: Cluster, values: list[str]) -> None:
    suffix = secrets.token_hex(2)
    release_ns = f"minimax-{suffix}"
    for ns in (release_ns, "team-a", "team-b"):
        cluster.kubectl("create", "namespace", ns, check=False)
    out = helm("template", f"mm-{suffix}", str(CHART), "-n", release_ns, *values)
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=out)
    assert "(server dry run)" in result and "error" not in result.lower(), result
    docs = [d for d in yaml.safe_load_all(out) if d]
    roles = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role")
    bindings = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding")
    # The leader-election Role in the operator's namespace, plus one per watched namespace.
    watched = ["team-a", "team-b"] if values and "watchNamespaces" in values[1] else []
    assert roles == bindings == sorted([release_ns, *watched])
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 2 and "--leader-elect" in dep["spec"]["template"]["spec"]["containers"][0]["args"]


def test_operator_cannot_read_secrets_or_write_outside_its_resources(cluster: Cluster, operator: Operator) -> None:
    sa = "system:serviceaccount:minimax-system:minimax-operator"

    def can(*args: str) -> bool:
        return cluster.kubectl("auth", "can-i", *args, "--as", sa, check=False).strip() == "yes"

    assert can("create", "deployments.apps", "-n", "anywhere")
    assert can("update", "configmaps", "-n", "anywhere")
    assert not can("get", "secrets", "-n", "default")
    assert not can("list", "secrets", "--all-namespaces")
    assert not can("delete", "persistentvolumeclaims", "-n", "default")  # weights are never deleted by it
    assert not can("create", "namespaces")
    assert not can("*", "*")


def test_a_lease_namespace_that_does_not_exist_is_said_at_once(operator_kubeconfig: Path) -> None:
    """Started outside a cluster with leader election on and no such namespace: an error naming
    what to do, not a retry loop logging 404 every 30 s."""
    missing = f"no-such-{secrets.token_hex(3)}"
    args = [sys.executable, "-m", "minimax_operator", "run", "--kubeconfig", str(operator_kubeconfig)]
    args += ["--leader-election-namespace", missing, "--metrics-port", "0", "--health-port", "0"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"kubectl create namespace {missing}" in proc.stderr and "--no-leader-elect" in proc.stderr


def test_namespaced_install_sees_only_its_namespaces(cluster: Cluster, tmp_path: Path) -> None:
    suffix = secrets.token_hex(2)
    watched, other, home = f"tenant-{suffix}", f"other-{suffix}", f"mm-system-{suffix}"
    for ns in (watched, other, home):
        cluster.kubectl("create", "namespace", ns)
    try:
        out = helm("template", "mm", str(CHART), "-n", home, "--set", f"watchNamespaces={{{watched}}}")
        rbac = [d for d in yaml.safe_load_all(out) if d and d["kind"] != "Deployment" and d["kind"] != "Service"]
        cluster.apply_docs(rbac)
        sa = f"system:serviceaccount:{home}:mm-minimax-operator"
        assert (
            cluster.kubectl("auth", "can-i", "list", "jobs.batch", "-n", other, "--as", sa, check=False).strip() == "no"
        )
        kubeconfig = token_kubeconfig(cluster, home, "mm-minimax-operator", tmp_path / "kubeconfig")
        op = start_operator(kubeconfig, tmp_path / "op.log", [watched], lease_namespace=home)
        try:
            for ns in (watched, other):
                cluster.chatos_configmap(ns, [])
                cluster.create_mmd(ns, "m", _tiny())
            cluster.wait_phase(watched, "m", "Ready")
            # By now the watched one is Ready; the other was never touched (no status, no Job, no finalizer).
            assert "status" not in cluster.mmd(other, "m")
            assert not cluster.mmd(other, "m")["metadata"].get("finalizers")
            assert not cluster.batch.list_namespaced_job(other).items
            assert "Forbidden" not in op.log.read_text()
            cluster.delete_mmd(watched, "m")
            wait_for(lambda: "m" not in cluster.kubectl("get", "mmd", "-n", watched, "-o", "name"), what="finalized")
        finally:
            op.stop()
    finally:
        for ns in (watched, other, home):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _tiny() -> dict:
    return {
        "repo": "test-org/tenant",
        "servedModelName": "tenant",
        "tensorParallelSize": 1,
        "storage": {"size": "1Gi"},
        "vllm": {"image": "vllm/vllm-openai:v0.20.0"},
    }


def test_gitops_applied_resource_stays_in_sync(cluster: Cluster, ns: str, operator: Operator) -> None:
    """Argo CD applies with its own field manager and compares: the operator never writes spec."""
    example = ROOT / "docs" / "examples" / "minimax-m2.5.yaml"
    cluster.kubectl("apply", "-n", ns, "-f", str(ROOT / "docs" / "examples" / "chatos-configmap.yaml"))
    cluster.kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-n", ns, "-f", str(example))
    cluster.wait_phase(ns, "m25", "Ready")
    kubectl = [f"{TOOLS_BIN}/kubectl", "--kubeconfig", cluster.kubeconfig]
    diff = subprocess.run(
        [*kubectl, "diff", "--server-side", "--field-manager=argocd-controller", "-n", ns, "-f", str(example)],
        capture_output=True,
        text=True,
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    obj = cluster.mmd(ns, "m25")
    for entry in obj["metadata"]["managedFields"]:
        if entry["manager"] != "argocd-controller":
            assert "f:spec" not in entry.get("fieldsV1", {}), entry


def test_every_example_in_the_docs_is_accepted(cluster: Cluster, ns: str) -> None:
    examples = sorted((ROOT / "docs" / "examples").glob("*.yaml"))
    assert len(examples) >= 5
    for example in examples:
        out = cluster.kubectl("apply", "--dry-run=server", "-n", ns, "-f", str(example), check=False)
        assert "(server dry run)" in out, f"{example.name}: {out}"
