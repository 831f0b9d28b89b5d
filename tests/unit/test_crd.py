"""The CRD in crds/ is generated from the pydantic models and is a structural schema."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from minimax_operator.manifests import crd

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "minimax.chatos.io_minimaxdeployments.yaml"


def test_committed_crd_matches_the_models() -> None:
    assert CRD_FILE.read_text() == crd.crd_yaml(), "run `make crd` and commit crds/"


def test_schema_is_structural() -> None:
    text = json.dumps(crd.crd())
    assert "$ref" not in text and '"null"' not in text and "anyOf" not in text and '"title"' not in text


def test_printer_columns_are_the_ones_users_expect() -> None:
    version = crd.crd()["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == ["Model", "TP", "Layout", "Nodes", "Phase", "Ready", "Download", "Endpoint", "Age"]
    assert crd.crd()["spec"]["names"]["shortNames"] == ["mmd", "minimax"]


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    missing = [name for name, prop in spec["properties"].items() if not prop.get("description")]
    assert missing == []


def test_nested_objects_default_to_empty_so_their_field_defaults_apply() -> None:
    spec = yaml.safe_load(crd.crd_yaml())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["gpu"]["default"] == {}
    assert spec["properties"]["gpu"]["properties"]["perNode"]["default"] == 8


def test_every_generated_file_is_committed_as_generated() -> None:
    from minimax_operator.manifests import generate as manifests

    for rel, content in manifests.generated().items():
        assert (ROOT / rel).read_text() == content, f"{rel} is stale: run `make manifests`"


def test_every_cel_rule_says_what_is_wrong_and_where() -> None:
    def rules(node: object) -> list[dict]:
        if isinstance(node, dict):
            found = list(node.get("x-kubernetes-validations") or [])
            return found + [r for v in node.values() for r in rules(v)]
        if isinstance(node, list):
            return [r for v in node for r in rules(v)]
        return []

    found = rules(crd.crd())
    assert len(found) > 10
    for rule in found:
        assert len(rule.get("message", "")) > 20 and not rule["message"].startswith("."), rule
        assert rule.get("fieldPath", ".x").startswith("."), rule


def test_the_resource_scales_like_a_deployment() -> None:
    # kubectl scale, a HorizontalPodAutoscaler and KEDA act on spec.replicas through /scale.
    scale = crd.crd()["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
