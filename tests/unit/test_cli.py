"""`minimax-operator render` and `crd`, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    *sorted((ROOT / "docs" / "examples").glob("minimax-*.yaml")),
    ROOT / "docs/examples/custom-repo.yaml",
    ROOT / "docs/examples/shared-cache.yaml",
]


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minimax_operator", *args], input=stdin, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_every_example_renders(example: Path) -> None:
    out = cli("render", "-f", str(example), "-n", "team-a")
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    kinds = [d["kind"] for d in docs]
    if example.name == "shared-cache.yaml":  # one cache, its claim and Job; two servers
        assert kinds == ["PersistentVolumeClaim", "Job", "Deployment", "Service", "Deployment", "Service"]
    elif example.name == "minimax-m3-two-nodes.yaml":  # a replica over two nodes: one LeaderWorkerSet
        assert kinds == ["MiniMaxModelCache", "PersistentVolumeClaim", "Job", "LeaderWorkerSet", "Service"]
    else:  # the implicit cache the resource shares, its claim and Job, then the server
        assert kinds == ["MiniMaxModelCache", "PersistentVolumeClaim", "Job", "Deployment", "Service"]
    assert all(d["metadata"]["namespace"] == "team-a" for d in docs)
    assert "# ChatOS: once" in out.stdout


def test_render_needs_the_cache_a_resource_names() -> None:
    cr = "apiVersion: minimax.chatos.io/v1alpha1\nkind: MiniMaxDeployment\nmetadata: {name: x}\n"
    out = cli("render", "-f", "-", stdin=cr + "spec: {model: MiniMax-M2.5, cacheRef: {name: nope}}\n")
    assert out.returncode == 1 and "spec.cacheRef: MiniMaxModelCache nope is not in -" in out.stderr


def test_render_reports_an_impossible_layout() -> None:
    cr = yaml.safe_dump(
        {
            "apiVersion": "minimax.chatos.io/v1alpha1",
            "kind": "MiniMaxDeployment",
            "metadata": {"name": "bad"},
            "spec": {"model": "MiniMax-M2.5", "tensorParallelSize": 8},
        }
    )
    out = cli("render", "-f", "-", stdin=cr)
    assert out.returncode == 1
    assert "spec.tensorParallelSize" in out.stderr and "expertParallel" in out.stderr


def test_render_refuses_what_the_api_server_refuses() -> None:
    """A name no Service can carry, and an owned flag in another spelling: same verdict as `kubectl apply`."""
    head = "apiVersion: minimax.chatos.io/v1alpha1\nkind: MiniMaxDeployment\n"
    out = cli("render", "-f", "-", stdin=head + "metadata: {name: minimax-m2.5}\nspec: {model: MiniMax-M2.5}\n")
    assert out.returncode == 1 and "metadata.name: must be a DNS-1035 label" in out.stderr and not out.stdout
    flags = "spec: {model: MiniMax-M2.5, vllm: {extraArgs: [--tensor_parallel_size=8]}}\n"
    out = cli("render", "-f", "-", stdin=head + "metadata: {name: m25}\n" + flags)
    assert out.returncode == 1 and "--tensor-parallel-size" in out.stderr


def test_render_rejects_unknown_fields() -> None:
    cr = "apiVersion: minimax.chatos.io/v1alpha1\nkind: MiniMaxDeployment\nmetadata: {name: x}\nspec: {modle: x}\n"
    out = cli("render", "-f", "-", stdin=cr)
    assert out.returncode == 1 and "modle" in out.stderr


def test_crd_command_prints_the_committed_crd() -> None:
    out = cli("crd")
    assert out.stdout == (ROOT / "crds" / "minimax.chatos.io_minimaxdeployments.yaml").read_text()


def test_models_page_lists_every_preset_with_its_image() -> None:
    from minimax_operator.api.presets import PRESETS

    page = (ROOT / "docs" / "models.md").read_text()
    for p in PRESETS.values():
        row = next(line for line in page.splitlines() if line.startswith(f"| {p.name} |"))
        assert p.repo in row and p.vllm_image in row, row
