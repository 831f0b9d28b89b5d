"""The Argo CD health check (docs/argocd/health.lua), run in Lua on Argo CD-style fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

HERE = Path(__file__).resolve().parents[2] / "docs" / "argocd"
CASES = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]
CACHE_CASES = yaml.safe_load((HERE / "cache-health_test.yaml").read_text())["tests"]


def to_lua(runtime: lupa.LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def health(obj: dict[str, Any], script: str = "health.lua") -> dict[str, str]:
    """Run the script as Argo CD does: a chunk with `obj` in scope that returns a table."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    check = runtime.eval("function(obj) " + (HERE / script).read_text() + "\nend")
    result = check(to_lua(runtime, obj))
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_health(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HERE / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


@pytest.mark.parametrize("case", CACHE_CASES, ids=[c["inputPath"] for c in CACHE_CASES])
def test_cache_health(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HERE / case["inputPath"]).read_text())
    assert health(obj, "cache-health.lua") == case["healthStatus"]


def test_chart_ships_the_same_scripts() -> None:
    files = HERE.parents[1] / "charts" / "minimax-operator" / "files"
    assert (files / "argocd-health.lua").read_text() == (HERE / "health.lua").read_text(), "run `make manifests`"
    assert (files / "argocd-cache-health.lua").read_text() == (HERE / "cache-health.lua").read_text()
