"""Pure rules behind reconcile safety: owned flag spellings, drift, names, storage layouts, placement."""

from __future__ import annotations

import argparse
import contextlib
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hyp
from pydantic import ValidationError

from minimax_operator.api.flags import OWNED_ENV, OWNED_LONG, OWNED_SHORT, owned_flag
from minimax_operator.api.presets import PRESETS
from minimax_operator.api.v1alpha1 import LOOPBACK_URL, MiniMaxDeploymentSpec, MiniMaxModelCacheSpec
from minimax_operator.api.vllm_cli import OPTIONS, VLLM_VERSIONS
from minimax_operator.manifests import policy
from minimax_operator.model.deployment import check_storage, resolve
from minimax_operator.model.errors import LayoutError
from minimax_operator.model.model_cache import implicit_cache, resolve_cache
from minimax_operator.render import meta
from minimax_operator.render import model_cache as render_cache
from minimax_operator.render import server as render_server
from minimax_operator.render.meta import Owner
from minimax_operator.runtime.drift import covers

OWNER = Owner("m", "uid-1")
CACHE_OWNER = render_cache.cache_owner("m", "uid-c")


def spec(**kw: object) -> MiniMaxDeploymentSpec:
    return MiniMaxDeploymentSpec.model_validate({"model": "MiniMax-M2.5", **kw})


# ---- flags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "owned"),
    [
        ("--tensor-parallel-size", "--tensor-parallel-size"),
        ("--tensor_parallel_size=8", "--tensor-parallel-size"),
        ("--tensor-par", "--tensor-parallel-size"),
        ("-tp", "--tensor-parallel-size"),
        ("-tp=8", "--tensor-parallel-size"),
        ("-t", "--tensor-parallel-size"),
        ("--served-model", "--served-model-name"),
        ("--port=9000", "--port"),
        ("--uds", "--uds"),
        ("--config", "--config"),
        ("-dpl", "--data-parallel-size-local"),
        ("--data_parallel_size_local", "--data-parallel-size-local"),
        ("--no-enable-expert-parallel", "--no-enable-expert-parallel"),
        ("--served-model-name.x", "--served-model-name"),
        ("--served_model_name.x=y", "--served-model-name"),
        ("-tp.x=1", "--tensor-parallel-size"),
        ("-n2", "--nnodes"),
        ("-r=1", "--node-rank"),
        ("-dpn", "--data-parallel-rank"),
        ("--master-addr", "--master-addr"),
    ],
)
def test_every_spelling_of_an_owned_flag_is_caught(arg: str, owned: str) -> None:
    assert owned_flag(arg) == owned


@pytest.mark.parametrize(
    "arg", ["--max-model-len", "-q", "-O3", "-cc", "--enable-prefix-caching", "-1", "8", "-", "--"]
)
def test_other_arguments_and_values_pass(arg: str) -> None:
    assert owned_flag(arg) is None


def test_every_short_alias_names_an_owned_long_flag() -> None:
    assert set(OWNED_SHORT.values()) <= set(OWNED_LONG)


def test_the_option_table_was_read_from_every_pinned_vllm() -> None:
    # A new image pin without `make vllm-flags` fails here, not in a user's cluster.
    pinned = {p.vllm_image.rsplit(":v", 1)[1] for p in PRESETS.values()}
    assert set(VLLM_VERSIONS) == pinned


def test_every_owned_flag_is_an_option_vllm_has() -> None:
    for long in OWNED_LONG:
        assert long in OPTIONS or "--" + long.removeprefix("--no-") in OPTIONS, long


def test_every_spelling_of_every_owned_option_is_refused() -> None:
    for long, why in OWNED_LONG.items():
        for spelling in [long, long + "=1", long + ".key", "--" + long[2:].replace("-", "_")]:
            assert owned_flag(spelling) == long, spelling
        for end in range(3, len(long)):  # every abbreviation argparse could expand
            assert owned_flag(long[:end]) is not None, long[:end]
        assert why
    for short, long in OWNED_SHORT.items():
        for spelling in [short, short + "=1", short + ".key"]:
            assert owned_flag(spelling) == long, spelling


def test_no_option_the_operator_does_not_own_is_refused() -> None:
    # Read from vLLM's own parser: the rule must not cost a user a flag they are entitled to.
    for long, shorts in OPTIONS.items():
        if long in OWNED_LONG:
            continue
        for spelling in [long, long + "=1", long + ".key=1", *shorts, *(s + "=1" for s in shorts)]:
            assert owned_flag(spelling) is None, spelling


def test_the_spec_refuses_owned_flags_too() -> None:
    with pytest.raises(ValidationError, match="sets --tensor-parallel-size"):
        spec(vllm={"extraArgs": ["-tp", "8"]})


# ---- drift --------------------------------------------------------------------------------


def test_covers_ignores_fields_others_add_and_sees_changed_owned_ones() -> None:
    want = {"spec": {"args": ["a", "b"], "env": [{"name": "X", "value": "1"}], "cpu": "500m"}}
    live = {
        "spec": {"args": ["a", "b"], "env": [{"name": "X", "value": "1"}, {"name": "INJECTED", "value": "y"}]},
        "status": {},
    }
    live["spec"]["cpu"] = "0.5"  # the API server's normal form of the same quantity
    assert covers(live, want)
    assert not covers({"spec": {**live["spec"], "args": ["a", "hijacked"]}}, want)
    assert not covers({"spec": {**live["spec"], "args": ["a", "b", "extra"]}}, want)  # args are atomic
    assert not covers({"spec": {**live["spec"], "env": [{"name": "X", "value": "2"}]}}, want)
    assert not covers({"spec": {**live["spec"], "cpu": "1"}}, want)


def test_atomic_maps_must_match_exactly() -> None:
    want = {"spec": {"selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "x"}}}}}
    assert covers(
        {"spec": {"selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "x", "o": "1"}}}}}, want
    )
    assert not covers({"spec": {"selector": {"app": "x", "extra": "y"}, "template": want["spec"]["template"]}}, want)


def test_an_unchanged_object_is_covered() -> None:
    r = resolve("m", "ns", spec())
    dep = render_server.deployment(r, OWNER)
    assert not covers({}, dep)
    assert covers(dep, dep)


# ---- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimax-m2.5", "m" * 64, "2m", "Upper"])
def test_names_that_cannot_name_a_service_are_refused_offline_too(name: str) -> None:
    with pytest.raises(LayoutError, match=r"metadata\.name: must be a DNS-1035 label") as e:
        resolve(name, "ns", spec())
    assert e.value.field == "metadata.name"


# ---- storage ------------------------------------------------------------------------------


def test_readwriteonce_replicas_must_fit_one_node() -> None:
    with pytest.raises(LayoutError, match="Multi-Attach") as e:
        resolve("m", "ns", spec(replicas=3))  # 3 x TP4 > 8 GPUs
    assert e.value.field == "spec.storage.accessMode"
    resolve("m", "ns", spec(replicas=2))
    resolve("m", "ns", spec(replicas=3, storage={"accessMode": "ReadWriteMany"}))


def test_a_custom_repo_on_an_existing_claim_needs_no_size() -> None:
    custom = {"repo": "org/x", "vllm": {"image": "i"}, "tensorParallelSize": 1}
    r = resolve("m", "ns", MiniMaxDeploymentSpec.model_validate({**custom, "storage": {"existingClaim": "c"}}))
    assert r.claim_name == "c"
    name, cache = implicit_cache(r.spec)
    assert render_cache.claim(resolve_cache(name, "ns", cache), CACHE_OWNER) is None


def test_readwriteoncepod_allows_one_replica() -> None:
    with pytest.raises(LayoutError, match="at most 1 replica"):
        resolve("m", "ns", spec(replicas=2, storage={"accessMode": "ReadWriteOncePod"}))


def test_an_existing_claim_is_checked_with_its_own_modes() -> None:
    r = resolve("m", "ns", spec(replicas=3, storage={"existingClaim": "shared"}))  # modes unknown offline
    with pytest.raises(LayoutError, match=r"spec\.storage\.existingClaim"):
        check_storage(r, ["ReadWriteOnce"])
    check_storage(r, ["ReadWriteMany", "ReadWriteOnce"])
    with pytest.raises(LayoutError, match="do not allow the download Job to write"):
        check_storage(r, ["ReadOnlyMany"])


# ---- rendering -----------------------------------------------------------------------------


def test_the_weights_claim_names_its_model() -> None:
    pvc = render_cache.claim(resolve_cache("c", "ns", MiniMaxModelCacheSpec(model="MiniMax-M2.5")), CACHE_OWNER)
    assert pvc is not None and pvc["metadata"]["labels"]["minimax.chatos.io/model"] == "MiniMaxAI.MiniMax-M2.5"
    assert meta.model_label("o/" + "x" * 80).startswith("sha256-")


def test_placement_follows_the_claims_access_mode() -> None:
    one = render_server.deployment(resolve("m", "ns", spec()), OWNER)
    assert "affinity" not in one["spec"]["template"]["spec"]
    assert one["spec"]["strategy"]["type"] == "RollingUpdate"
    pair = render_server.deployment(resolve("m", "ns", spec(replicas=2)), OWNER)
    term = pair["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["topologyKey"] == "kubernetes.io/hostname"
    rwx = render_server.deployment(resolve("m", "ns", spec(replicas=2, storage={"accessMode": "ReadWriteMany"})), OWNER)
    assert "affinity" not in rwx["spec"]["template"]["spec"]
    rwop = render_server.deployment(resolve("m", "ns", spec(storage={"accessMode": "ReadWriteOncePod"})), OWNER)
    assert rwop["spec"]["strategy"] == {"type": "Recreate"}


# ---- ownership ----------------------------------------------------------------------------


def test_only_a_controller_reference_or_the_claims_labels_make_an_object_ours() -> None:
    from minimax_operator.controllers.ownership import ours

    r = resolve("m", "ns", spec())
    want_pvc = render_cache.claim(resolve_cache("m", "ns", MiniMaxModelCacheSpec(model="MiniMax-M2.5")), CACHE_OWNER)
    want_svc = render_server.service(r, OWNER)
    assert want_pvc is not None

    def obj(labels: dict[str, str], refs: list[dict[str, object]] | None = None) -> dict[str, object]:
        return {"metadata": {"name": "x", "namespace": "ns", "labels": labels, "ownerReferences": refs or []}}

    mine = [meta.owner_reference(OWNER)]
    other = [{**meta.owner_reference(Owner("m", "uid-2"))}]
    assert ours(obj({}, mine), OWNER, want_svc)
    assert not ours(obj(want_svc["metadata"]["labels"], other), OWNER, want_svc)  # our labels, someone else's
    assert not ours(obj(want_svc["metadata"]["labels"]), OWNER, want_svc)  # labels alone never suffice
    retained = want_pvc["metadata"]["labels"]
    assert ours(obj(retained), CACHE_OWNER, want_pvc)
    assert not ours(obj({**retained, "minimax.chatos.io/model": "org.other"}), CACHE_OWNER, want_pvc)
    assert not ours(obj({**retained, "minimax.chatos.io/cache": "another"}), CACHE_OWNER, want_pvc)
    assert not ours(obj({"app": "postgres"}), CACHE_OWNER, want_pvc)


@pytest.mark.parametrize("name", sorted(OWNED_ENV))
def test_env_the_operator_sets_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ValueError, match=f"env {name} is set by the operator"):
        spec(vllm={"env": [{"name": name, "value": "x"}]})
    r = resolve("m", "ns", spec())
    rendered = {
        e["name"] for e in render_server.deployment(r, OWNER)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert name in rendered, "every owned name is one the server's container really gets"


@pytest.mark.parametrize("size", ["0", "0Gi", "0.0Ti", "00"])
def test_a_zero_size_is_refused(size: str) -> None:
    with pytest.raises(ValueError, match="should match pattern"):
        spec(storage={"size": size})
    with pytest.raises(ValueError, match="should match pattern"):
        spec(vllm={"shmSize": size})


@pytest.mark.parametrize("size", ["1", "0.5Gi", "260Gi", "1.5Ti", "10M"])
def test_positive_sizes_pass(size: str) -> None:
    assert spec(storage={"size": size}).storage.size == size


@pytest.mark.parametrize(
    ("endpoint", "refused"),
    [
        ("http://169.254.169.254", True),
        ("http://[fe80::1]:8080/x", True),
        ("http://user@169.254.1.1/", True),
        ("http://2852039166/", True),  # 169.254.169.254 written as one number
        ("https://hf-mirror.com", False),
        ("http://127.0.0.1:8080", False),  # loopback: the MiniMaxPolicy's rule (below), not the CRD's
        ("http://169.2544.example.com", False),
        ("https://10.1.2.3/x", False),
    ],
)
def test_a_link_local_mirror_is_refused(endpoint: str, refused: bool) -> None:
    if refused:
        with pytest.raises(ValueError, match="link-local"):
            spec(download={"endpoint": endpoint})
    else:
        assert spec(download={"endpoint": endpoint}).download.endpoint == endpoint


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("http://localhost", True),
        ("http://LOCALHOST.:8080/x", True),
        ("https://user:pw@127.3.2.1", True),
        ("http://[::1]:80/", True),
        ("http://[0:0:0:0:0:0:0:1]", True),
        ("http://[::]", True),
        ("http://0.0.0.0:5000", True),
        ("http://[::ffff:127.0.0.1]", True),
        ("http://localhost.example.com", False),
        ("http://0.0.0.0.nip.io", False),
        ("http://[::2]", False),
        ("https://hf-mirror.com", False),
        ("http://10.0.0.1:8080", False),
    ],
)
def test_loopback_mirrors_are_recognised_for_the_policy(endpoint: str, loopback: bool) -> None:
    # The regular expression the tenancy policy's CEL rule runs (RE2 reads it the same).
    assert bool(re.match(LOOPBACK_URL, endpoint)) is loopback
    rules = [v["expression"] for v in policy.policy()["spec"]["validations"]]
    assert any(LOOPBACK_URL.replace("\\", "\\\\") in r and "allowLoopbackMirrors" in r for r in rules)


# ---- owned flags, searched: an oracle built like vLLM's parser from the generated table ----------


def _vllm_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=True, exit_on_error=False)
    for long, shorts in OPTIONS.items():
        parser.add_argument(long, *shorts, dest=long, nargs="?", const="x")
    # A BooleanOptionalAction's negative form (the table lists the positive one only).
    parser.add_argument("--no-enable-expert-parallel", dest="--enable-expert-parallel", nargs="?", const="x")
    return parser


_PARSER = _vllm_parser()


def _what_vllm_sets(arg: str) -> set[str] | None:
    """The options `vllm serve` would set from `arg` (FlexibleArgumentParser's rewriting, then
    argparse with abbreviations); None when it would refuse the argument (ambiguous, unknown)."""
    key, eq, value = arg.partition("=")
    if key.startswith("--"):
        name, dot, rest = key[2:].partition(".")
        key = "--" + name.replace("_", "-") + dot + rest
    args = [key.split(".")[0], "{}"] if key.startswith("-") and "." in key else [key + eq + value]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ns, rest = _PARSER.parse_known_args(args)
    except (argparse.ArgumentError, SystemExit):
        return None
    if rest:
        return None
    return {dest for dest, v in vars(ns).items() if v is not None}


_SPELLINGS = sorted({*OPTIONS, *(s for shorts in OPTIONS.values() for s in shorts), "--no-enable-expert-parallel"})


@hyp.composite
def _vllm_arguments(draw: hyp.DrawFn) -> str:
    option = draw(hyp.sampled_from(_SPELLINGS))
    cut = draw(hyp.integers(min_value=2, max_value=len(option)))
    arg = option[:cut]
    if arg.startswith("--") and draw(hyp.booleans()):
        arg = arg.replace("-", "_").replace("__", "--", 1)
    if draw(hyp.booleans()):
        arg += "." + draw(hyp.sampled_from(["x", "a.b", "key"]))
    if not arg.startswith("--") and len(arg) == 2 and draw(hyp.booleans()):
        arg += draw(hyp.sampled_from(["2", "1", "x"]))  # a one-letter alias joined to its value
    if draw(hyp.booleans()):
        arg += "=" + draw(hyp.sampled_from(["1", "a=b", "x.y"]))
    return arg


@settings(max_examples=2000, deadline=None)
@given(arg=_vllm_arguments())
def test_an_argument_vllm_reads_as_an_owned_flag_is_always_refused(arg: str) -> None:
    sets = _what_vllm_sets(arg)
    if sets is None:
        return  # vLLM refuses it itself; refusing it here too costs nothing
    owned = sets & set(OWNED_LONG)
    assert (owned_flag(arg) is not None) == bool(owned), (arg, sets)
