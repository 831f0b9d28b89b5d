"""The downloader against a hostile or broken Hub: every name it writes is confined to the commit's
folder, the commit is the one asked for, bytes are bounded by the listing, and every refusal ends
with a reason a user can act on (tests/harness/fakehub.py plays the Hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hyp

from minimax_operator.download.job import result_line
from minimax_operator.download.paths import UnsafePath, check_commit, check_name, confined
from minimax_operator.protocol import MARKER, RESULT_MAX_BYTES
from tests.harness.fakehub import FakeHub, make_files

REPO = "MiniMaxAI/Tiny"


def download(hub: FakeHub, root: Path, *extra: str, repo: str = REPO) -> tuple[int, dict[str, Any], str]:
    """Run the downloader as the Job does (`--root`); (exit code, termination message, output)."""
    term = root.parent / f"termination-{time.monotonic_ns()}"
    env = {**os.environ, "MINIMAX_TERMINATION_LOG": str(term), "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_TOKEN", None)
    args = [sys.executable, "-m", "minimax_operator", "download", "--repo", repo, "--root", str(root)]
    args += ["--endpoint", hub.url, "--progress-interval", "0.2", *extra]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    message = json.loads(term.read_text()) if term.exists() else {}
    assert len(term.read_bytes()) <= RESULT_MAX_BYTES if term.exists() else True
    return proc.returncode, message, proc.stdout + proc.stderr


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


@pytest.fixture
def source(tmp_path: Path) -> dict[str, Path]:
    return make_files(tmp_path / "src", 1, 1 << 16)


@pytest.mark.parametrize(
    "name",
    [
        "../escaped.py",
        "sub/../../escaped.py",
        "/tmp/absolute.py",
        "bad\x00name",
        "tab\tname",
        "back\\slash.py",
        ".minimax-complete.json",
        ".minimax-partial/x.part",
        ".cache/huggingface/x",
        "a//b",
    ],
)
def test_a_listing_that_names_a_path_outside_the_folder_writes_nothing(
    tmp_path: Path, source: dict[str, Path], name: str
) -> None:
    root = tmp_path / "claim"
    with FakeHub() as hub:
        hub.add_repo(REPO, {**source, name: source["config.json"]})
        code, result, out = download(hub, root)
    assert code == 1 and result["reason"] == "UnsafeListing", out
    assert "spec.download.endpoint" in result["message"]
    assert files_under(root) == set(), "nothing is written before the listing is trusted"
    assert not (tmp_path / "escaped.py").exists() and "Traceback" not in out


@pytest.mark.parametrize("commit", ["../../../etc", "A" * 40, "a" * 39, "a" * 4096, "g" * 40])
def test_a_commit_id_that_is_not_one_writes_nothing(tmp_path: Path, source: dict[str, Path], commit: str) -> None:
    root = tmp_path / "claim"
    with FakeHub() as hub:
        hub.add_repo(REPO, source, commit=commit)
        code, result, out = download(hub, root)
    assert code == 1 and result["reason"] == "UnsafeListing", out
    assert files_under(root) == set()


def test_a_pinned_commit_answered_with_another_is_refused(tmp_path: Path, source: dict[str, Path]) -> None:
    pinned = "b" * 40
    with FakeHub() as hub:
        hub.add_repo(REPO, source, commit="a" * 40, tag=pinned)  # the mirror answers b... with a...
        code, result, out = download(hub, tmp_path / "claim", "--revision", pinned)
    assert code == 1 and result["reason"] == "RevisionMismatch", out
    assert pinned in result["message"] and "a" * 40 in result["message"]


def test_a_body_longer_than_listed_is_cut_at_the_listed_size_and_refused(
    tmp_path: Path, source: dict[str, Path]
) -> None:
    root = tmp_path / "claim"
    shard = next(n for n in source if n.endswith(".safetensors"))
    with FakeHub() as hub:
        repo = hub.add_repo(REPO, source)
        hub.faults.oversize[shard] = 8 << 20  # 8 MiB more than announced, on every attempt
        code, result, out = download(hub, root)
    assert code == 1 and result["reason"] == "SizeMismatch", out
    partial = root / "revisions" / REPO / repo.commit / ".minimax-partial" / f"{shard}.part"
    assert partial.stat().st_size <= repo.files[shard].size, "never more bytes on disk than the listing gives"
    assert not (root / "revisions" / REPO / repo.commit / MARKER).exists()


def test_an_empty_file_downloads(tmp_path: Path, source: dict[str, Path]) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    root = tmp_path / "claim"
    with FakeHub() as hub:
        repo = hub.add_repo(REPO, {**source, "added_tokens.json": empty, "empty.safetensors": empty})
        code, _, out = download(hub, root)
    assert code == 0, out
    folder = root / "revisions" / REPO / repo.commit
    assert (folder / "empty.safetensors").read_bytes() == b"" and (folder / MARKER).exists()


def test_a_symlink_in_the_claim_is_never_followed(tmp_path: Path, source: dict[str, Path]) -> None:
    root = tmp_path / "claim"
    elsewhere = tmp_path / "another-model"
    elsewhere.mkdir()
    (root / "revisions" / "MiniMaxAI").mkdir(parents=True)
    (root / "revisions" / "MiniMaxAI" / "Tiny").symlink_to(elsewhere)
    with FakeHub() as hub:
        hub.add_repo(REPO, source)
        code, result, out = download(hub, root)
    assert code == 1 and result["reason"] == "UnsafeClaim", out
    assert files_under(elsewhere) == set()


# ---- searched, not only listed ---------------------------------------------------------------

PIECES = ["a", "b", ".", "..", "/", "\\", "\x00", "\n", " ", "-", "é", ".minimax-complete.json", ".cache"]
NAMES = hyp.lists(hyp.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_a_checked_name_always_stays_inside_its_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "commit"
    folder.mkdir(exist_ok=True)
    try:
        path = confined(folder, name)
    except UnsafePath:
        return
    check_name(name)  # the same verdict as the check alone
    resolved = path.resolve()
    assert folder.resolve() in resolved.parents, (name, resolved)
    assert not any(ord(c) < 32 for c in name) and not name.startswith("/") and ".." not in name.split("/")


@settings(max_examples=200, deadline=None)
@given(commit=hyp.text(max_size=64))
def test_only_forty_hex_characters_name_a_commit_folder(commit: str) -> None:
    try:
        check_commit(commit)
    except UnsafePath:
        assert len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit)
        return
    assert len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)


@settings(max_examples=100, deadline=None)
@given(
    message=hyp.text(max_size=20000),
    found=hyp.lists(hyp.fixed_dictionaries({"path": hyp.text(max_size=300), "commit": hyp.text(max_size=80)})),
)
def test_a_result_always_fits_the_termination_message(message: str, found: list[dict[str, str]]) -> None:
    line = result_line({"reason": "X", "message": message, "found": found, "path": "p"})
    assert len(line.encode()) <= RESULT_MAX_BYTES
    parsed = json.loads(line)
    assert parsed["reason"] == "X" and parsed["path"] == "p"


# ---- prune -------------------------------------------------------------------------------------


def test_prune_never_follows_a_symlink_nor_trusts_a_marker_of_the_wrong_shape(tmp_path: Path) -> None:
    from minimax_operator.download.job import DownloadError
    from minimax_operator.download.prune import prune

    root = tmp_path / "claim"
    other = root / "revisions" / "o" / "other" / ("b" * 40)
    other.mkdir(parents=True)
    (other / "w.safetensors").write_bytes(b"another model's")
    (other / MARKER).write_text(json.dumps({"revision": "b" * 40, "files": ["w.safetensors"]}))
    link = root / "revisions" / "o" / "n" / ("a" * 40)
    link.parent.mkdir(parents=True)
    link.symlink_to(other)
    with pytest.raises(DownloadError) as e:
        prune(root, f"revisions/o/n/{'a' * 40}")
    assert e.value.reason == "InvalidPath" and (other / "w.safetensors").exists()

    for marker in ('{"files": "abc"}', "[1, 2]", '{"files": [1]}'):
        legacy = root / "legacy" / "m"
        legacy.mkdir(parents=True, exist_ok=True)
        (legacy / "a").write_text("kept")
        (legacy / MARKER).write_text(marker)
        with pytest.raises(DownloadError) as e:
            prune(root, "legacy/m")
        assert e.value.reason == "NotAModelFolder" and (legacy / "a").exists(), marker


def test_a_repo_name_the_hub_refuses_has_a_reason(tmp_path: Path, source: dict[str, Path]) -> None:
    with FakeHub() as hub:
        hub.add_repo("bad--org/x", source)
        code, result, out = download(hub, tmp_path / "claim", repo="bad--org/x")
    assert code == 1 and result["reason"] == "InvalidRepo", out
    assert "Traceback" not in out


def test_files_kept_in_git_are_verified_by_their_blob_id(tmp_path: Path, source: dict[str, Path]) -> None:
    """config.json, tokenizer files and the repo's Python code have no LFS sha256: the git blob id the
    Hub lists for them is checked instead of their size alone."""
    with FakeHub() as hub:
        hub.add_repo(REPO, source)
        hub.faults.corrupt.add("config.json")  # same size, other bytes
        code, result, out = download(hub, tmp_path / "claim")
    assert code == 1 and result["reason"] == "VerificationFailed", out
    assert "config.json does not match its git" in result["message"]


def test_a_mirror_that_lists_no_hash_is_said_in_the_result(tmp_path: Path, source: dict[str, Path]) -> None:
    """Sizes only: the files are checked by size (nothing else is possible), and the result says how
    many, for the cache's status and its Ready message."""
    with FakeHub() as hub:
        hub.add_repo(REPO, source)
        hub.faults.no_hashes = True
        code, result, out = download(hub, tmp_path / "claim")
    assert code == 0, out
    assert result["filesSizeOnly"] == result["filesTotal"] == len(source)
    with FakeHub() as hub:
        hub.add_repo(REPO, source)
        code, result, out = download(hub, tmp_path / "claim2")
    assert code == 0 and "filesSizeOnly" not in result, out
