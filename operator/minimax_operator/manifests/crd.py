"""Generate the CRDs from the pydantic models in api/v1alpha1.py.

Why: one source of truth. pydantic's JSON schema is close to what Kubernetes
wants, but a structural schema must be self-contained (no $ref), must not use
`null` for optional fields, and carries Kubernetes extensions (CEL rules,
int-or-string, printer columns). `minimax-operator crd` prints the result and a
test fails when crds/ differs from it.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..api import names
from ..api import v1alpha1 as api

#: A field whose default the operator applies, not the API server: the operator must see whether the
#: user set it (a replica over several nodes defaults the claim's access mode to ReadWriteMany).
NO_CRD_DEFAULT = "x-minimax-no-crd-default"
_DROP = {"title", "discriminator"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one pydantic schema node into a structural OpenAPI v3 node."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:  # Optional[X]: absent, never null
            return _structural({**options[0], **rest}, defs)
        if {o.get("type") for o in options} == {"integer", "string"}:  # a quantity
            rest.pop("type", None)
            return {**_structural(rest, defs), "x-kubernetes-int-or-string": True}
        raise ValueError(f"unsupported anyOf in CRD schema: {node}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "default" and (value is None or node.get(NO_CRD_DEFAULT)):
            continue
        if key == NO_CRD_DEFAULT:
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value  # OpenAPI 3.0 form
            out[key] = True
            continue
        if key == "const":  # pydantic renders one-value Literals as const
            out["enum"] = [value]
            continue
        if key == "additionalProperties" and value is False:
            continue  # unknown fields are pruned by the API server anyway
        if key in ("properties",):
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if "enum" in out and "type" not in out:
        kinds = {type(v) for v in out["enum"]}
        out["type"] = "integer" if kinds == {int} else "string"
    if "x-kubernetes-preserve-unknown-fields" in out:
        out["type"] = "object"
        out.pop("additionalProperties", None)
    return out


def openapi_schema(model: type[api._Model]) -> dict[str, Any]:
    """Structural schema of one model."""
    raw = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    result: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return result


def _definition(
    kind: str, plural: str, singular: str, short_names: list[str], scope: str, versions: list[dict[str, Any]]
) -> dict[str, Any]:
    """A CustomResourceDefinition of this API group, labelled like the rest of the install."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{names.GROUP}",
            "labels": {"app.kubernetes.io/name": "minimax-operator", "app.kubernetes.io/part-of": "minimax-operator"},
        },
        "spec": {
            "group": names.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": names.CATEGORIES,
            },
            "versions": versions,
        },
    }


READY_COLUMN = '.status.conditions[?(@.type=="Ready")].status'


def _served_version(
    spec_model: type[api._Model],
    status_model: type[api._Model],
    description: str,
    columns: list[dict[str, Any]],
    name_max: int,
    name_message: str,
) -> dict[str, Any]:
    """The one served and stored version of a namespaced kind with a status subresource."""
    status_schema = openapi_schema(status_model)
    # Status is written by the operator only; it carries no defaults that the API server would add.
    _strip_defaults(status_schema)
    return {
        "name": names.VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            *columns,
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": description,
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": openapi_schema(spec_model),
                    "status": status_schema,
                },
                "required": ["spec"],
                "x-kubernetes-validations": [
                    {
                        "rule": f"size(self.metadata.name) <= {name_max} && "
                        f"self.metadata.name.matches('{api.NAME_PATTERN}')",
                        "message": name_message,
                    }
                ],
            }
        },
    }


def crd() -> dict[str, Any]:
    """The MiniMaxDeployment CRD."""
    version = _served_version(
        api.MiniMaxDeploymentSpec,
        api.MiniMaxDeploymentStatus,
        "MiniMaxDeployment serves a MiniMax open-weight model with vLLM on the cluster's GPUs and registers it in "
        "ChatOS.",
        [
            {"name": "Model", "type": "string", "jsonPath": ".status.model"},
            {"name": "TP", "type": "integer", "jsonPath": ".status.tensorParallelSize"},
            {"name": "Layout", "type": "string", "jsonPath": ".status.layout", "priority": 1},
            {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Ready", "type": "string", "jsonPath": READY_COLUMN},
            {"name": "Download", "type": "string", "jsonPath": ".status.download.progress"},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
        ],
        api.NAME_MAX,
        api.NAME_RULE_MESSAGE,
    )
    # `kubectl scale mmd`, a HorizontalPodAutoscaler and KEDA act on the resource itself: spec.replicas
    # stays the one place replicas are decided (the operator never writes it, and the server follows it).
    version["subresources"]["scale"] = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    return _definition(names.KIND, names.PLURAL, names.SINGULAR, names.SHORT_NAMES, "Namespaced", [version])


def cache_crd() -> dict[str, Any]:
    """The MiniMaxModelCache CRD."""
    version = _served_version(
        api.MiniMaxModelCacheSpec,
        api.MiniMaxModelCacheStatus,
        "MiniMaxModelCache holds the verified weights of one model in a PersistentVolumeClaim, one folder per "
        "commit, shared by the MiniMaxDeployments of its namespace.",
        [
            {"name": "Repo", "type": "string", "jsonPath": ".status.repo"},
            {"name": "Revision", "type": "string", "jsonPath": ".status.revision"},
            {"name": "Commit", "type": "string", "jsonPath": ".status.commit", "priority": 1},
            {"name": "Size", "type": "string", "jsonPath": ".status.size"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.download.progress"},
            {"name": "Users", "type": "integer", "jsonPath": ".status.userCount"},
            {"name": "Ready", "type": "string", "jsonPath": READY_COLUMN},
        ],
        api.NAME_MAX - 8,
        "metadata.name must be a DNS-1035 label of at most 55 characters, because it names the cache's claim "
        "(NAME-weights) and labels",
    )
    return _definition(
        names.CACHE_KIND, names.CACHE_PLURAL, names.CACHE_SINGULAR, names.CACHE_SHORT_NAMES, "Namespaced", [version]
    )


def cache_crd_yaml() -> str:
    header = (
        "# Generated by `minimax-operator manifests` from operator/minimax_operator/api/v1alpha1.py. Do not edit.\n"
    )
    return header + yaml.safe_dump(cache_crd(), sort_keys=False, width=120)


def policy_crd() -> dict[str, Any]:
    """The MiniMaxPolicy CRD: parameters of the tenancy admission policy (cluster-scoped, spec only).

    A CRD and not a ConfigMap: with a built-in paramKind, kube-apiserver 1.36 loses the
    parameters for good once no binding uses them (kubernetes/kubernetes#130887); CRD
    paramKinds are not affected, and typed fields make the rules plain CEL.
    """
    return _definition(
        names.POLICY_KIND,
        names.POLICY_PLURAL,
        names.POLICY_KIND.lower(),
        ["mmpolicy"],
        "Cluster",
        [
            {
                "name": names.VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "MiniMaxPolicy says what the namespaces bound to it may run.",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": openapi_schema(api.MiniMaxPolicySpec),
                        },
                        "required": ["spec"],
                    }
                },
            }
        ],
    )


def policy_crd_yaml() -> str:
    header = (
        "# Generated by `minimax-operator manifests` from operator/minimax_operator/api/v1alpha1.py. Do not edit.\n"
    )
    return header + yaml.safe_dump(policy_crd(), sort_keys=False, width=120)


def _strip_defaults(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("default", None)
        for value in node.values():
            _strip_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _strip_defaults(value)


def crd_yaml() -> str:
    header = "# Generated by `minimax-operator crd` from operator/minimax_operator/api/v1alpha1.py. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)
