"""Preset defaults and the layout checks that run before anything is created."""

from __future__ import annotations

import pytest

from minimax_operator.api.presets import PRESETS
from minimax_operator.api.v1alpha1 import MiniMaxDeploymentSpec
from minimax_operator.model.deployment import resolve
from minimax_operator.model.errors import LayoutError


def spec(**kw: object) -> MiniMaxDeploymentSpec:
    return MiniMaxDeploymentSpec.model_validate(kw)


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "MiniMax-M3"])
def test_every_preset_resolves_with_its_defaults_on_80gb_gpus(name: str) -> None:
    r = resolve("m", "ns", spec(model=name))
    p = PRESETS[name]
    assert r.tensor_parallel_size == p.tensor_parallel_size
    assert r.served_model_name == name
    assert r.repo == p.repo
    assert r.image == p.vllm_image
    assert r.storage_size.endswith("Gi") and int(r.storage_size[:-2]) * 2**30 > p.disk_gb * 1e9


def test_m3_bf16_spans_two_80gb_nodes_unless_told_otherwise() -> None:
    # About 801 GiB of weights: one node of 8 x 80 GB holds 576 GiB at 90 %, two hold 1,152.
    r = resolve("m", "ns", spec(model="MiniMax-M3"))
    assert (r.layout.tensor, r.layout.pipeline, r.layout.nodes, r.layout.chosen) == (8, 2, 2, True)
    assert r.layout.gpus_per_pod == 8 and r.layout.describe() == "TP8xPP2 2 nodes"
    assert r.claim_access_mode == "ReadWriteMany"  # every pod of the group mounts the weights
    # On 141 GB GPUs one node holds it: the preset's layout, a Deployment.
    one = resolve("m", "ns", spec(model="MiniMax-M3", gpu={"memoryGiB": 141}))
    assert (one.layout.nodes, one.layout.gpus_per_pod) == (1, 8)
    # A layout the spec names is kept and checked, not replaced.
    with pytest.raises(LayoutError, match="GiB of GPU memory") as e:
        resolve("m", "ns", spec(model="MiniMax-M3", tensorParallelSize=8))
    assert e.value.field == "spec.tensorParallelSize"
    tp16 = resolve("m", "ns", spec(model="MiniMax-M3", tensorParallelSize=16, nodes=2))
    assert (tp16.layout.gpus_per_pod, tp16.layout.pipeline) == (8, 1)


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"tensorParallelSize": 1, "pipelineParallelSize": 3, "nodes": 2}, "spec.nodes", "split evenly"),
        ({"tensorParallelSize": 16, "nodes": 1}, "spec.tensorParallelSize", "spec.nodes"),
        ({"tensorParallelSize": 16, "pipelineParallelSize": 2, "nodes": 2}, "spec.nodes", "use more nodes"),
        ({"tensorParallelSize": 16, "nodes": 2, "storage": {"accessMode": "ReadWriteOnce"}},
         "spec.storage.accessMode", "ReadWriteMany"),
    ],
)  # fmt: skip
def test_impossible_layouts_name_the_field(fields: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(LayoutError, match=says) as e:
        resolve("m", "ns", spec(model="MiniMax-M3", **fields))
    assert e.value.field == field


def test_a_multi_node_name_fits_lws_labels() -> None:
    with pytest.raises(LayoutError, match="at most 43 characters") as e:
        resolve("m" * 44, "ns", spec(model="MiniMax-M3"))
    assert e.value.field == "metadata.name"
    assert resolve("m" * 43, "ns", spec(model="MiniMax-M3")).layout.nodes == 2


def test_m2_tp8_needs_expert_parallel() -> None:
    with pytest.raises(LayoutError, match=r"spec\.expertParallel: true"):
        resolve("m", "ns", spec(model="MiniMax-M2.5", tensorParallelSize=8))
    r = resolve("m", "ns", spec(model="MiniMax-M2.5", tensorParallelSize=8, expertParallel=True))
    assert r.expert_parallel


def test_m2_on_two_gpus_does_not_fit() -> None:
    with pytest.raises(LayoutError, match="GPU memory"):
        resolve("m", "ns", spec(model="MiniMax-M2.5", tensorParallelSize=2))


def test_tp_must_fit_a_node() -> None:
    with pytest.raises(LayoutError, match="cannot be placed on nodes with 4 GPUs"):
        resolve("m", "ns", spec(model="MiniMax-M1-40k", gpu={"perNode": 4}))


def test_context_longer_than_the_model_is_refused() -> None:
    with pytest.raises(LayoutError, match="maxModelLen") as e:
        resolve("m", "ns", spec(model="MiniMax-M1-40k", maxModelLen=100000))
    assert e.value.field == "spec.maxModelLen"


def test_custom_repo_needs_size_and_image() -> None:
    with pytest.raises(LayoutError, match=r"spec\.vllm\.image"):
        resolve("m", "ns", spec(repo="org/model", storage={"size": "1Gi"}))
    with pytest.raises(LayoutError, match=r"spec\.storage\.size"):
        resolve("m", "ns", spec(repo="org/model", vllm={"image": "vllm/vllm-openai:v0.20.0"}))
    r = resolve("m", "ns", spec(repo="org/model", storage={"size": "1Gi"}, vllm={"image": "i"}))
    assert r.served_model_name == "model" and r.tensor_parallel_size == 1


def test_weights_key_changes_with_revision_but_not_with_server_settings() -> None:
    a = resolve("m", "ns", spec(model="MiniMax-M2.5"))
    b = resolve("m", "ns", spec(model="MiniMax-M2.5", maxModelLen=32768, replicas=2))
    c = resolve("m", "ns", spec(model="MiniMax-M2.5", revision="abc123"))
    assert a.weights_key == b.weights_key != c.weights_key


def test_operator_image_override_per_preset() -> None:
    r = resolve("m", "ns", spec(model="MiniMax-M2.5"), {"MiniMax-M2.5": "registry.local/vllm:x"})
    assert r.image == "registry.local/vllm:x"
    assert resolve("m", "ns", spec(model="MiniMax-M2.5", vllm={"image": "mine"}), {"MiniMax-M2.5": "x"}).image == "mine"


@pytest.mark.parametrize(
    ("asked", "enforced", "level"),
    [
        (None, None, "baseline"),
        (None, "baseline", "baseline"),
        (None, "restricted", "restricted"),
        ("restricted", None, "restricted"),
        ("restricted", "restricted", "restricted"),
        ("baseline", "privileged", "baseline"),
    ],
)
def test_the_servers_pod_security_follows_the_namespace_unless_the_spec_says(
    asked: str | None, enforced: str | None, level: str
) -> None:
    vllm = {"podSecurity": asked} if asked else {}
    r = resolve(
        "m", "ns", MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", "vllm": vllm}), enforced=enforced
    )
    assert r.pod_security == level


def test_a_baseline_server_in_a_restricted_namespace_is_refused_naming_the_field() -> None:
    spec = MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", "vllm": {"podSecurity": "baseline"}})
    with pytest.raises(LayoutError) as e:
        resolve("m", "team-a", spec, enforced="restricted")
    assert e.value.field == "spec.vllm.podSecurity" and e.value.reason == "PodSecurityViolation"
    assert "namespace team-a enforces Pod Security restricted" in str(e.value)


def test_m2_dp8_with_expert_parallel_is_vllms_recipe_on_one_node() -> None:
    r = resolve("m", "ns", spec(model="MiniMax-M2.5", tensorParallelSize=1, dataParallelSize=8, expertParallel=True))
    assert (r.layout.gpus, r.layout.gpus_per_pod, r.layout.multi_node) == (8, 8, False)
    assert r.layout.describe() == "TP1xDP8"
    with pytest.raises(LayoutError, match="one node") as e:
        resolve(
            "m",
            "ns",
            spec(model="MiniMax-M2.5", tensorParallelSize=8, dataParallelSize=2, nodes=2, expertParallel=True),
        )
    assert e.value.field == "spec.dataParallelSize"


def test_a_surge_rollout_needs_a_claim_two_pods_can_mount() -> None:
    with pytest.raises(LayoutError, match="one pod at a time") as e:
        resolve(
            "m", "ns", spec(model="MiniMax-M2.5", storage={"accessMode": "ReadWriteOncePod"}, rollout={"maxSurge": 1})
        )
    assert e.value.field == "spec.rollout.maxSurge"
