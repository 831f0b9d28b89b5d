"""The servers' compile-cache folder on a real claim: two resources of one model, a default server (the image's
root) and a restricted one (uid 1000), each write their caches where they may, and never into the other's.

The servers are the stand-in vLLM (hack/standin/vllm.py), which writes under XDG_CACHE_HOME at start as vLLM
does; the GPUs are advertised as an extended resource on the real node.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from minimax_operator.render.server import compile_folder
from tests.harness.autoscaling import advertise_gpus, standin_image, standin_spec
from tests.harness.cluster import Cluster, wait_for
from tests.harness.realnode import Hub, volume_path


@pytest.fixture
def gpus(real_cluster: Cluster, operator: str) -> Iterator[None]:
    advertise_gpus(real_cluster, 8)
    yield
    advertise_gpus(real_cluster, 0)


def test_default_and_restricted_servers_of_one_model_keep_their_caches_apart(
    real_cluster: Cluster, hub: Hub, ns: str, gpus: None
) -> None:
    c = real_cluster
    spec = {**standin_spec(hub, "MiniMaxAI/Real-Tiny"), "chatos": {"enabled": False}}
    spec.pop("autoscaling")
    c.create_mmd(ns, "plain", spec)
    restricted = {**spec, "servedModelName": "tiny-restricted",
                  "vllm": {**spec["vllm"], "podSecurity": "restricted"}}  # fmt: skip
    c.create_mmd(ns, "strict", restricted)
    c.wait_phase(ns, "plain", "Ready", timeout=300)
    c.wait_phase(ns, "strict", "Ready", timeout=300)
    assert c.cache_of(ns, "plain") == c.cache_of(ns, "strict"), "one model, one cache"

    folder = volume_path(c, c.claim_of(ns, "plain"), ns) / compile_folder(standin_image())
    root_cache = folder / "vllm" / "torch_compile_cache" / "standin"
    user_cache = folder / "uid1000" / "vllm" / "torch_compile_cache" / "standin"
    assert root_cache.read_text() == "written by uid 0\n"
    assert user_cache.read_text() == "written by uid 1000\n"
    assert (folder / "uid1000").stat().st_uid == 1000
    assert folder.stat().st_mode & 0o1777 == 0o1777, "the shared folder: writable by any user, sticky"
    cache = c.cache_of(ns, "plain")
    want = [compile_folder(standin_image())]
    wait_for(lambda: c.mmc(ns, cache)["status"].get("compileFolders") == want, 60, what="status.compileFolders")
