"""The tenancy admission policy is generated from the presets and the MiniMaxPolicy type."""

from __future__ import annotations

from minimax_operator.api.presets import PRESETS
from minimax_operator.api.v1alpha1 import MiniMaxPolicySpec
from minimax_operator.manifests import policy


def test_every_presets_default_tensor_parallel_size_is_in_the_policy() -> None:
    tp = next(v["expression"] for v in policy.policy()["spec"]["variables"] if v["name"] == "tp")
    for name, preset in PRESETS.items():
        assert f"'{name}': {preset.tensor_parallel_size}" in tp


def test_every_rule_names_its_parameter_and_every_parameter_has_a_rule() -> None:
    rules = policy.policy()["spec"]["validations"]
    named = {
        f for f in MiniMaxPolicySpec.model_fields for r in rules if f"parameter spec.{f} " in r["messageExpression"]
    }
    assert named == set(MiniMaxPolicySpec.model_fields)
    assert all(f"params.spec.{f}" in " ".join(r["expression"] for r in rules) for f in MiniMaxPolicySpec.model_fields)


def test_the_parameters_are_a_crd_not_a_configmap() -> None:
    assert policy.policy()["spec"]["paramKind"] == {"apiVersion": "minimax.chatos.io/v1alpha1", "kind": "MiniMaxPolicy"}
