"""What a namespace may run: a ValidatingAdmissionPolicy the API server enforces itself.

Why a ValidatingAdmissionPolicy (CEL) and not a webhook or an operator check: it
answers at `kubectl apply` (and in Argo CD's sync), names the rule in the denial,
needs no server of ours to be up, and the platform team edits plain ConfigMaps.

One policy, for MiniMaxDeployments and MiniMaxModelCaches (a cache could otherwise fetch
a repo or use a mirror its namespace may not: the repo, model and mirror rules apply to
both; GPU and ChatOS rules to deployments only); one binding per tier (a namespace label
selector) whose parameters are a MiniMaxPolicy object (api/v1alpha1.MiniMaxPolicySpec:
allowed presets, custom repos, mirrors (on loopback or not), GPUs per replica and per resource, ChatOS
ConfigMaps). A list field that is absent allows everything; custom repos and mirrors are
refused unless allowed. The presets' default tensor-parallel sizes are written into the
policy from api/presets.py, so a spec that leaves tensorParallelSize out is judged by
what it will really use.
"""

from __future__ import annotations

from typing import Any

from ..api.names import CACHE_KIND, CACHE_PLURAL, GROUP, PLURAL, POLICY_KIND, VERSION
from ..api.presets import PRESETS
from ..api.v1alpha1 import LOOPBACK_URL
from ..model import layout

POLICY_NAME = "minimax-operator-tenancy"
Obj = dict[str, Any]


def _tail(key: str) -> str:
    """Every denial ends by naming the policy and the parameter that denied it."""
    return f" + ' (policy {POLICY_NAME}, parameter spec.{key} of MiniMaxPolicy ' + params.metadata.name + ')'"


def policy() -> Obj:
    needs = "{" + ", ".join(f"'{n}': {layout.needed_with_headroom(p)!r}" for n, p in PRESETS.items()) + "}"
    tp_defaults = "{" + ", ".join(f"'{n}': {p.tensor_parallel_size}" for n, p in PRESETS.items()) + "}"
    chatos = "object.spec.chatos"
    variables = [
        {"name": "cache", "expression": f"object.kind == '{CACHE_KIND}'"},
        {"name": "model", "expression": "has(object.spec.model) ? object.spec.model : ''"},
        {
            "name": "tp",
            "expression": "has(object.spec.tensorParallelSize) ? object.spec.tensorParallelSize : "
            f"(variables.model in {tp_defaults} ? {tp_defaults}[variables.model] : 1)",
        },
        # The most replicas it may run: spec.replicas, or what KEDA may set (spec.autoscaling.maxReplicas).
        {
            "name": "replicas",
            "expression": "has(object.spec.autoscaling) && has(object.spec.autoscaling.maxReplicas) && "
            "object.spec.autoscaling.maxReplicas > (has(object.spec.replicas) ? object.spec.replicas : 1) ? "
            "object.spec.autoscaling.maxReplicas : (has(object.spec.replicas) ? object.spec.replicas : 1)",
        },
        # GPUs per replica, as model/layout.py decides them: tensor x pipeline as the spec names them,
        # else the preset's, else (weights bigger than that) whole nodes: every pod of a group counts.
        {
            "name": "pp",
            "expression": "(has(object.spec.pipelineParallelSize) ? object.spec.pipelineParallelSize : 1) * "
            "(has(object.spec.dataParallelSize) ? object.spec.dataParallelSize : 1)",
        },
        {
            "name": "named",
            "expression": "has(object.spec.tensorParallelSize) || has(object.spec.pipelineParallelSize) || "
            "has(object.spec.nodes) || has(object.spec.dataParallelSize)",
        },
        {
            "name": "perNode",
            "expression": "has(object.spec.gpu) && has(object.spec.gpu.perNode) ? object.spec.gpu.perNode : 8",
        },
        {
            "name": "capacity",
            "expression": "double(has(object.spec.gpu) && has(object.spec.gpu.memoryGiB) ? object.spec.gpu.memoryGiB "
            ": 80) * (has(object.spec.gpuMemoryUtilization) ? object.spec.gpuMemoryUtilization : 0.9)",
        },
        {"name": "need", "expression": f"variables.model in {needs} ? {needs}[variables.model] : 0.0"},
        {
            "name": "gpus",
            "expression": "variables.named || variables.need <= double(variables.tp) * variables.capacity ? "
            "variables.tp * variables.pp : variables.perNode * "
            "(int(variables.need / (double(variables.perNode) * variables.capacity)) + 1)",
        },
        {
            "name": "registers",
            "expression": f"!variables.cache && (!has({chatos}) || !has({chatos}.enabled) || {chatos}.enabled)",
        },
        {
            "name": "configMap",
            "expression": f"(has({chatos}) && has({chatos}.configMapRef) && has({chatos}.configMapRef.namespace) "
            f"? {chatos}.configMapRef.namespace : object.metadata.namespace) + '/' + "
            f"(has({chatos}) && has({chatos}.configMapRef) && has({chatos}.configMapRef.name) "
            f"? {chatos}.configMapRef.name : 'chatos-models')",
        },
    ]
    p = "params.spec"
    validations = [
        {
            "expression": f"!has({p}.allowedModels) || variables.model == '' || variables.model in {p}.allowedModels",
            "messageExpression": "'spec.model: ' + variables.model + ' is not allowed in namespace ' + "
            f"object.metadata.namespace + '; allowed: ' + {p}.allowedModels.join(', ')" + _tail("allowedModels"),
            "reason": "Forbidden",
        },
        {
            "expression": f"!has(object.spec.repo) || (has({p}.allowCustomRepos) && {p}.allowCustomRepos)",
            "messageExpression": "'spec.repo: custom repositories (' + object.spec.repo + ') are not allowed in "
            "namespace ' + object.metadata.namespace + '; use a preset in spec.model'" + _tail("allowCustomRepos"),
            "reason": "Forbidden",
        },
        {
            "expression": "!has(object.spec.download) || !has(object.spec.download.endpoint) || "
            f"(has({p}.allowMirrors) && {p}.allowMirrors)",
            "messageExpression": "'spec.download.endpoint: mirrors are not allowed in namespace ' + "
            "object.metadata.namespace" + _tail("allowMirrors"),
            "reason": "Forbidden",
        },
        {
            "expression": "!has(object.spec.download) || !has(object.spec.download.endpoint) || "
            f"!object.spec.download.endpoint.matches('{LOOPBACK_URL.replace(chr(92), chr(92) * 2)}') || "
            f"(has({p}.allowLoopbackMirrors) && {p}.allowLoopbackMirrors)",
            "messageExpression": "'spec.download.endpoint: ' + object.spec.download.endpoint + ' is on loopback (in "
            "a download pod, the pod itself); name the mirror by its Service or host name'"
            + _tail("allowLoopbackMirrors"),
            "reason": "Forbidden",
        },
        {
            "expression": f"variables.cache || !has({p}.maxGPUsPerReplica) || variables.gpus <= {p}.maxGPUsPerReplica",
            "messageExpression": "'spec.tensorParallelSize: ' + string(variables.gpus) + ' GPUs per replica exceed the "
            f"limit of ' + string({p}.maxGPUsPerReplica) + ' in namespace ' + object.metadata.namespace"
            + _tail("maxGPUsPerReplica"),
            "reason": "Forbidden",
        },
        {
            "expression": f"variables.cache || !has({p}.maxGPUsPerResource) || "
            f"variables.gpus * variables.replicas <= {p}.maxGPUsPerResource",
            "messageExpression": "'spec.replicas (or spec.autoscaling.maxReplicas): ' + string(variables.replicas) + "
            "' x ' + string(variables.gpus) + "
            f"' GPUs exceed the limit of ' + string({p}.maxGPUsPerResource) + ' GPUs per resource in namespace ' "
            "+ object.metadata.namespace" + _tail("maxGPUsPerResource"),
            "reason": "Forbidden",
        },
        {
            "expression": f"!has({p}.allowedChatOSConfigMaps) || !variables.registers || "
            f"variables.configMap in {p}.allowedChatOSConfigMaps || "
            "(variables.configMap.startsWith(object.metadata.namespace + '/') && "
            f"variables.configMap.substring(size(object.metadata.namespace) + 1) in {p}.allowedChatOSConfigMaps)",
            "messageExpression": "'spec.chatos.configMapRef: ' + variables.configMap + ' is not an allowed ChatOS "
            f"ConfigMap; allowed: ' + {p}.allowedChatOSConfigMaps.join(', ')" + _tail("allowedChatOSConfigMaps"),
            "reason": "Forbidden",
        },
    ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            # A CRD, not a ConfigMap: see crd.policy_crd for the kube-apiserver bug that rules ConfigMaps out.
            "paramKind": {"apiVersion": f"{GROUP}/{VERSION}", "kind": POLICY_KIND},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [PLURAL, CACHE_PLURAL],
                    }
                ]
            },
            "variables": variables,
            "validations": validations,
        },
    }
