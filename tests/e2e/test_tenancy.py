"""Namespaces with quotas and Pod Security levels, enforced by the real API server."""

from __future__ import annotations

import json
import secrets
from typing import Any

import yaml

from tests.harness.cluster import CACHE_PLURAL, GROUP, VERSION, Cluster, Operator, wait_for

from .test_install import CHART, helm
from .test_operator import tiny
from .test_safety import MMD

CACHE = "apiVersion: minimax.chatos.io/v1alpha1\nkind: MiniMaxModelCache\n"

POLICY_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MiniMaxPolicy"]

IMAGE = {"image": "vllm/vllm-openai:v0.20.0"}


def _quota(cluster: Cluster, ns: str, hard: dict[str, str]) -> None:
    cluster.core.create_namespaced_resource_quota(ns, {"metadata": {"name": "team"}, "spec": {"hard": hard}})
    wait_for(lambda: cluster.core.read_namespaced_resource_quota("team", ns).status.hard, what="quota status")


def test_a_model_that_can_never_fit_the_quota_costs_nothing(cluster: Cluster, ns: str, operator: Operator) -> None:
    _quota(cluster, ns, {"requests.nvidia.com/gpu": "4", "requests.storage": "100Gi"})
    cluster.create_mmd(ns, "big", tiny("big", tensorParallelSize=8))
    cond = cluster.wait_condition(ns, "big", "Ready", "False", "QuotaExceeded")
    assert "ResourceQuota team: requests.nvidia.com/gpu needs 8, 0 of 4 already used" in cond["message"]
    assert cluster.mmd(ns, "big")["status"]["phase"] == "Failed"
    assert not cluster.batch.list_namespaced_job(ns).items  # no download
    assert not cluster.core.list_namespaced_persistent_volume_claim(ns).items
    cluster.wait_events(ns, "big", "QuotaExceeded", type_="Warning")


def test_a_full_quota_waits_with_the_numbers_then_proceeds(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.chatos_configmap(ns, [])
    _quota(cluster, ns, {"requests.nvidia.com/gpu": "2"})
    cluster.create_mmd(ns, "first", tiny("first", tensorParallelSize=2))
    cluster.wait_phase(ns, "first", "Ready")
    cluster.create_mmd(ns, "second", tiny("second", tensorParallelSize=2))
    cond = cluster.wait_condition(ns, "second", "ServerReady", "False", "QuotaFull", timeout=90)
    assert "requests.nvidia.com/gpu needs 2, 2 of 2 already used" in cond["message"]
    assert cluster.condition(ns, "second", "WeightsReady")["status"] == "True"  # the download did not wait
    assert cluster.mmd(ns, "second")["status"]["phase"] != "Failed"  # waiting, not broken
    cluster.delete_mmd(ns, "first")
    cluster.wait_phase(ns, "second", "Ready", timeout=120)


def test_restricted_namespace_serves_restricted_and_refuses_baseline_before_any_download(
    cluster: Cluster, ns: str, operator: Operator
) -> None:
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    # A server the namespace would refuse: said at once, naming the field; nothing downloaded.
    cluster.create_mmd(ns, "b", tiny("b", vllm={**IMAGE, "podSecurity": "baseline"}))
    cond = cluster.wait_condition(ns, "b", "WeightsReady", "False", "PodSecurityViolation", timeout=60)
    assert "spec.vllm.podSecurity" in cond["message"] and "enforces Pod Security restricted" in cond["message"]
    assert cluster.mmd(ns, "b")["status"]["phase"] == "Failed"
    assert not cluster.batch.list_namespaced_job(ns).items
    assert not cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, CACHE_PLURAL)["items"]
    # Left out, the server meets the namespace's level (non-root, caches on an emptyDir) and serves.
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "r", tiny("r", vllm=IMAGE))
    cluster.wait_phase(ns, "r", "Ready", timeout=120)
    pod_spec = cluster.apps.read_namespaced_deployment("r", ns).spec.template.spec
    assert pod_spec.security_context.run_as_non_root is True


def test_baseline_namespace_serves(cluster: Cluster, ns: str, operator: Operator) -> None:
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=baseline")
    cluster.chatos_configmap(ns, [])
    cluster.create_mmd(ns, "b", tiny("b", vllm=IMAGE))
    cluster.wait_phase(ns, "b", "Ready", timeout=90)


def test_a_download_job_whose_pods_are_refused_says_why(cluster: Cluster, ns: str, operator: Operator) -> None:
    # A LimitRange smaller than the download container's limit: the Job controller's pods are refused.
    limits = {"type": "Container", "max": {"memory": "1Gi"}}
    cluster.core.create_namespaced_limit_range(ns, {"metadata": {"name": "small"}, "spec": {"limits": [limits]}})
    cluster.create_mmd(ns, "refused", tiny("refused"))
    cond = cluster.wait_condition(ns, "refused", "WeightsReady", "False", "LimitRangeViolation", timeout=90)
    assert "cannot create its pod" in cond["message"] and "maximum memory usage per Container is 1Gi" in cond["message"]


def test_the_admission_policy_allows_and_denies_each_rule(cluster: Cluster, ns: str) -> None:
    tier = f"t-{secrets.token_hex(3)}"
    tiers = [
        {
            "name": tier,
            "namespaceSelector": {"matchLabels": {"minimax.chatos.io/tier": tier}},
            "allowedModels": ["MiniMax-M2.5", "MiniMax-M2.7"],
            "allowCustomRepos": False,
            "allowMirrors": False,
            "maxGPUsPerReplica": 4,
            "maxGPUsPerResource": 8,
            "allowedChatOSConfigMaps": ["chatos-models", "chatos/shared"],
        }
    ]
    out = helm(
        "template", "mm", str(CHART), "-n", "minimax-system",
        "--set", "policy.enabled=true", "--set-json", f"policy.tiers={json.dumps(tiers)}",
    )  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out) if d and d["kind"] in POLICY_KINDS]
    assert sorted(d["kind"] for d in docs) == sorted(POLICY_KINDS)
    cluster.kubectl("create", "namespace", "minimax-system", check=False)
    cluster.apply_docs(docs)
    try:
        cluster.kubectl("label", "namespace", ns, f"minimax.chatos.io/tier={tier}")

        def verdict(spec: dict[str, Any], head: str = MMD) -> str:
            doc = head + f"metadata: {{name: p}}\nspec: {json.dumps(spec)}\n"
            return cluster.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", stdin=doc, check=False)

        m25 = {"model": "MiniMax-M2.5"}
        wait_for(lambda: "allowedModels" in verdict({"model": "MiniMax-M1-40k"}), what="the policy in force")
        denied = {
            "allowedModels": {"model": "MiniMax-M1-40k"},
            "allowCustomRepos": tiny("x"),
            "allowMirrors": {**m25, "download": {"endpoint": "https://mirror.example.com"}},
            "maxGPUsPerReplica": {**m25, "tensorParallelSize": 8, "expertParallel": True},
            "maxGPUsPerResource": {**m25, "replicas": 3},
            "allowedChatOSConfigMaps": {**m25, "chatos": {"configMapRef": {"name": "other"}}},
        }
        for rule, spec in denied.items():
            out = verdict(spec)
            assert f"parameter spec.{rule} of MiniMaxPolicy" in out and "minimax-operator-tenancy" in out, (rule, out)
        allowed = [
            m25,
            {**m25, "replicas": 2},
            {"model": "MiniMax-M2.7", "chatos": {"configMapRef": {"name": "shared", "namespace": "chatos"}}},
            {**m25, "chatos": {"enabled": False, "configMapRef": {"name": "other"}}},
        ]
        for spec in allowed:
            assert "(server dry run)" in verdict(spec), (spec, verdict(spec))
        # A model cache fetches weights too: the same model, repo and mirror rules; no GPU or ChatOS rule.
        for rule in ("allowedModels", "allowCustomRepos", "allowMirrors"):
            spec = {k: v for k, v in denied[rule].items() if k in ("model", "repo", "download", "storage")}
            out = verdict(spec, CACHE)
            assert f"parameter spec.{rule} of MiniMaxPolicy" in out, (rule, out)
        cache = {"model": "MiniMax-M2.5", "storage": {"accessMode": "ReadWriteMany"}}
        assert "(server dry run)" in verdict(cache, CACHE), verdict(cache, CACHE)
        # The platform opens custom repos and mirrors for the tier: the same specs now pass.
        policy_name = next(d["metadata"]["name"] for d in docs if d["kind"] == "MiniMaxPolicy")
        opened = json.dumps({"spec": {"allowCustomRepos": True, "allowMirrors": True}})
        cluster.kubectl("patch", "mmpolicy", policy_name, "--type=merge", "-p", opened)
        for rule in ("allowCustomRepos", "allowMirrors"):
            wait_for(lambda r=rule: "(server dry run)" in verdict(denied[r]), what=f"{rule} opened")
        # A mirror on loopback needs its own switch: in a download pod that address is the pod itself.
        loopback = {**m25, "download": {"endpoint": "http://127.0.0.1:8080"}}
        assert "parameter spec.allowLoopbackMirrors of MiniMaxPolicy" in verdict(loopback), verdict(loopback)
        assert "is on loopback" in verdict(loopback)
        cluster.kubectl(
            "patch", "mmpolicy", policy_name, "--type=merge", "-p", '{"spec": {"allowLoopbackMirrors": true}}'
        )
        wait_for(lambda: "(server dry run)" in verdict(loopback), what="allowLoopbackMirrors opened")
        custom_cache = {"repo": "test-org/x", "storage": {"size": "1Gi"}}
        wait_for(lambda: "(server dry run)" in verdict(custom_cache, CACHE), what="custom repo cache allowed")
        # GPUs per replica are what the layout uses: MiniMax-M3 in BF16 spans two 8-GPU nodes on 80 GB GPUs.
        m3 = json.dumps({"spec": {"allowedModels": None, "maxGPUsPerReplica": 8, "maxGPUsPerResource": 16}})
        cluster.kubectl("patch", "mmpolicy", policy_name, "--type=merge", "-p", m3)
        wait_for(lambda: "(server dry run)" in verdict({"model": "MiniMax-M1-40k"}), what="allowedModels opened")
        out = verdict({"model": "MiniMax-M3"})
        assert "16 GPUs per replica exceed the limit of 8" in out, out
        assert "(server dry run)" in verdict({"model": "MiniMax-M3", "gpu": {"memoryGiB": 141}})  # one node: 8
        out = verdict({"model": "MiniMax-M3", "tensorParallelSize": 8, "pipelineParallelSize": 2, "nodes": 2})
        assert "16 GPUs per replica" in out, out
        dp = {"model": "MiniMax-M2.5", "tensorParallelSize": 1, "dataParallelSize": 8, "expertParallel": True}
        assert "(server dry run)" in verdict(dp), verdict(dp)  # DP8: 8 GPUs
        out = verdict({**dp, "tensorParallelSize": 2, "gpu": {"perNode": 16}})
        assert "16 GPUs per replica" in out, out
        # A namespace outside the tier is not limited.
        cluster.kubectl("label", "namespace", ns, "minimax.chatos.io/tier-")
        wait_for(lambda: "(server dry run)" in verdict({"model": "MiniMax-M1-40k"}), what="the tier no longer applies")
    finally:
        for d in docs:
            cluster.kubectl("delete", d["kind"], d["metadata"]["name"], "-n", "minimax-system", check=False)
