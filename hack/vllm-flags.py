#!/usr/bin/env python3
"""Generate operator/minimax_operator/api/vllm_cli.py: every option `vllm serve` accepts, by version.

Why a generator and not a list kept by hand: the operator refuses `extraArgs` that would set a
flag it owns (the served name, the parallel sizes, the port, ...), in every spelling vLLM
accepts. Short aliases (`-tp`, `-n`) and the set of options (argparse abbreviates any unique
prefix) change between vLLM releases; a list written from memory misses them. This script reads
them from the source of every vLLM version the presets pin, so a new pin regenerates the table
(`make vllm-flags`) and a unit test fails until it does.

How: the sdist of each version is downloaded from PyPI (checked against the index's sha256,
cached under ~/.cache/minimax-operator/vllm-src), and the source is parsed, never imported
(importing vLLM needs torch and a GPU stack). `vllm serve`'s parser is built by
`make_arg_parser` (vllm/entrypoints/openai/cli_args.py) from three sources, all read here:
- literal `add_argument("--flag", "-alias", ...)` calls in that file and in
  vllm/engine/arg_utils.py (EngineArgs/AsyncEngineArgs.add_cli_args);
- `FrontendArgs`' dataclass fields, each registered as `--field-name` by a loop;
- extra aliases a frontend class adds through `kwargs[...]["flags"]` (none for `serve` today;
  the script stops if it finds one in FrontendArgs, rather than miss it).

Usage: hack/vllm-flags.py [--check] [VERSION ...]   (default: the versions of the presets' images)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "operator" / "minimax_operator" / "api" / "vllm_cli.py"
CACHE = Path(os.environ.get("MINIMAX_CACHE_DIR", Path.home() / ".cache" / "minimax-operator")) / "vllm-src"
INDEX = "https://pypi.org/simple/vllm/"
SOURCES = ("vllm/engine/arg_utils.py", "vllm/entrypoints/openai/cli_args.py")
FRONTEND = "FrontendArgs"


def pinned_versions() -> list[str]:
    sys.path.insert(0, str(ROOT / "operator"))
    from minimax_operator.api.presets import PRESETS

    return sorted({p.vllm_image.rsplit(":v", 1)[1] for p in PRESETS.values()}, key=_version_key)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def sdist(version: str) -> Path:
    """The sdist of `version`, downloaded once and checked against PyPI's sha256."""
    name = f"vllm-{version}.tar.gz"
    path = CACHE / name
    req = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        files = {f["filename"]: f for f in json.load(resp)["files"]}
    if name not in files:
        raise SystemExit(f"PyPI has no sdist {name}")
    want = files[name]["hashes"]["sha256"]
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != want:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        urllib.request.urlretrieve(files[name]["url"], tmp)
        got = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if got != want:
            tmp.unlink()
            raise SystemExit(f"{name}: sha256 {got} is not PyPI's {want}")
        tmp.rename(path)
    return path


def read_sources(version: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with tarfile.open(sdist(version)) as tar:
        for member in tar.getmembers():
            rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
            if rel in SOURCES:
                data = tar.extractfile(member)
                assert data is not None
                out[rel] = data.read().decode()
    missing = set(SOURCES) - set(out)
    if missing:
        raise SystemExit(f"vllm {version}: {sorted(missing)} not in the sdist; the parser moved, update SOURCES")
    return out


def literal_options(tree: ast.AST) -> list[tuple[str, ...]]:
    """Each `add_argument` call's literal option strings (long name first as written)."""
    calls: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            consts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            names = tuple(c for c in consts if c.startswith("-"))
            if names:
                calls.append(names)
    return calls


def frontend_fields(tree: ast.Module) -> list[str]:
    """`--field-name` for every field of FrontendArgs and the classes it derives from in the module."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if FRONTEND not in classes:
        raise SystemExit(f"no class {FRONTEND} in cli_args.py; the parser changed, update this script")
    fields: list[str] = []
    todo = [FRONTEND]
    while todo:
        cls = classes[todo.pop()]
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                todo.append(base.id)
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            if "ClassVar" not in ast.unparse(stmt.annotation):
                fields.append("--" + stmt.target.id.replace("_", "-"))
        if cls.name == FRONTEND and '"flags"]' in ast.unparse(cls):
            raise SystemExit(f"{FRONTEND} adds aliases through kwargs['flags']; teach this script to read them")
    return fields


def options(version: str) -> dict[str, list[str]]:
    """Long option -> its short aliases, for `vllm serve` at `version`."""
    table: dict[str, list[str]] = {}
    sources = read_sources(version)
    for rel, text in sources.items():
        tree = ast.parse(text)
        for names in literal_options(tree):
            longs = [n for n in names if n.startswith("--")]
            shorts = [n for n in names if not n.startswith("--")]
            for long in longs or shorts[:1]:
                table.setdefault(long, [])
                table[long] += [s for s in shorts if s not in table[long] and s != long]
        if rel.endswith("cli_args.py"):
            for long in frontend_fields(tree):
                table.setdefault(long, [])
    return table


def _tuple(items: list[str]) -> str:
    """A tuple literal as ruff format writes it (double quotes), so the check compares equal."""
    inner = ", ".join(json.dumps(i) for i in items)
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def render(versions: list[str]) -> str:
    merged: dict[str, list[str]] = {}
    since: dict[str, str] = {}
    for v in versions:
        for long, shorts in options(v).items():
            merged.setdefault(long, [])
            merged[long] += [s for s in shorts if s not in merged[long]]
            since.setdefault(long, v)
    lines = [
        '"""Every option `vllm serve` accepts, with its short aliases: GENERATED by hack/vllm-flags.py.',
        "",
        "Do not edit: run `make vllm-flags` after changing a preset's vLLM image. Read from the source of",
        f"vLLM {', '.join(versions)} (the union; an option new in a later version is listed too).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "#: The vLLM versions this table was read from (a unit test compares them with the presets).",
        f"VLLM_VERSIONS: tuple[str, ...] = {_tuple(versions)}",
        "",
        "#: Long option -> its short aliases.",
        "OPTIONS: dict[str, tuple[str, ...]] = {",
    ]
    for long in sorted(merged):
        lines.append(f"    {json.dumps(long)}: {_tuple(merged[long])},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated file is out of date")
    parser.add_argument("versions", nargs="*")
    args = parser.parse_args()
    versions = sorted(args.versions or pinned_versions(), key=_version_key)
    text = render(versions)
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run make vllm-flags", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {text.count(chr(10)) - 14} options from vLLM {', '.join(versions)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
