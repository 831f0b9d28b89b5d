"""Bad specs are rejected by `kubectl apply` itself, with the field named."""

from __future__ import annotations

import pytest
import yaml

from tests.harness.cluster import Cluster


def _apply(cluster: Cluster, ns: str, spec: dict) -> str:
    doc = {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxDeployment", "metadata": {"name": "m"}}
    return cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump({**doc, "spec": spec}), check=False)


BAD_SPECS = [
    ({"model": "MiniMax-M2.5", "tensorParallelSize": 3}, "spec.tensorParallelSize: Unsupported value: 3"),
    ({"model": "MiniMax-M2.5", "storage": {"size": "-5Gi"}}, "spec.storage.size"),
    ({"model": "MiniMax-M9"}, 'spec.model: Unsupported value: "MiniMax-M9"'),
    ({"servedModelName": "x"}, "spec.model: Invalid value"),
    ({"model": "MiniMax-M2.5", "servedModelName": "has spaces"}, "spec.servedModelName"),
    ({"model": "MiniMax-M2.5", "replicas": -1}, "spec.replicas"),
    ({"model": "MiniMax-M2.5", "tensorParallelSize": 16}, "spec.tensorParallelSize: Invalid value"),
    ({"model": "MiniMax-M2.5", "vllm": {"extraArgs": ["--served-model-name=x"]}}, "spec.vllm.extraArgs"),
    ({"model": "MiniMax-M2.5", "vllm": {"resources": {"limits": {"nvidia.com/gpu": 2}}}}, "spec.vllm.resources"),
    ({"model": "MiniMax-M2.5", "storage": {"existingClaim": "w", "size": "1Ti"}}, "spec.storage.existingClaim"),
    ({"model": "MiniMax-M2.5", "download": {"endpoint": "ftp://mirror"}}, "spec.download.endpoint"),
    ({"model": "MiniMax-M2.5", "download": {"tokenSecretRef": {"key": "t"}}}, "spec.download.tokenSecretRef.name"),
    ({"repo": "no-slash"}, "spec.repo"),
    ({"model": "MiniMax-M2.5", "maxModelLen": 10}, "spec.maxModelLen"),
    ({"model": "MiniMax-M2.5", "chatos": {"key": "bad key"}}, "spec.chatos.key"),
    ({"model": "MiniMax-M2.5", "gpuMemoryUtilization": 1.5}, "spec.gpuMemoryUtilization"),
    ({"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadOnlyMany"}}, "spec.storage.accessMode"),
    ({"model": "MiniMax-M2.5", "storage": {"size": "0Gi"}}, "spec.storage.size"),
    ({"model": "MiniMax-M2.5", "vllm": {"shmSize": "0"}}, "spec.vllm.shmSize"),
    ({"model": "MiniMax-M2.5", "vllm": {"env": [{"name": "HF_HUB_OFFLINE", "value": "0"}]}}, "spec.vllm.env"),
    ({"model": "MiniMax-M2.5", "vllm": {"env": [{"name": "1BAD=NAME", "value": "x"}]}}, "spec.vllm.env[0].name"),
    ({"model": "MiniMax-M2.5", "download": {"endpoint": "http://169.254.169.254"}}, "spec.download.endpoint"),
    ({"model": "MiniMax-M2.5", "download": {"endpoint": "http://[fe80::1]:8080/x"}}, "spec.download.endpoint"),
    ({"repo": "bad--org/model", "storage": {"size": "1Gi"}}, "spec.repo"),
    ({"model": "MiniMax-M2.5", "chatos": {"key": "..data"}}, "spec.chatos.key"),
    # Layouts: GPUs per replica split over nodes, each share dividing the node's GPUs; DP on one node.
    ({"model": "MiniMax-M3", "nodes": 2}, "spec.nodes"),
    (
        {"model": "MiniMax-M3", "tensorParallelSize": 8, "pipelineParallelSize": 3, "nodes": 2},
        "spec.tensorParallelSize",
    ),
    ({"model": "MiniMax-M3", "tensorParallelSize": 8, "dataParallelSize": 2, "nodes": 2}, "spec.dataParallelSize"),
    ({"model": "MiniMax-M3", "nodes": 17, "tensorParallelSize": 8}, "spec.nodes"),
]


@pytest.mark.parametrize(("spec", "expected"), BAD_SPECS, ids=[e for _, e in BAD_SPECS])
def test_bad_spec_is_rejected_naming_the_field(cluster: Cluster, ns: str, spec: dict, expected: str) -> None:
    out = _apply(cluster, ns, spec)
    assert "is invalid" in out, out
    assert expected in out, out
    assert "m" not in cluster.kubectl("get", "mmd", "-n", ns, "-o", "name")


def test_good_spec_is_accepted_with_defaults_from_the_crd(cluster: Cluster, ns: str) -> None:
    out = _apply(cluster, ns, {"model": "MiniMax-M2.5"})
    assert "created" in out, out
    spec = cluster.mmd(ns, "m")["spec"]
    assert spec["storage"]["retainOnDelete"] is True
    assert spec["chatos"] == {"enabled": True, "configMapRef": {"name": "chatos-models"}, "key": "models.json"}
    assert spec["replicas"] == 1
