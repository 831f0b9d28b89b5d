"""`minimax-operator download` against a Hugging Face Hub on loopback (tests/harness/fakehub.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minimax_operator.download import job as download
from minimax_operator.download.prune import prune
from tests.harness.fakehub import FakeHub, make_files

SHARD = 3 << 20  # 3 MiB


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    files = make_files(tmp_path / "src", 3, SHARD)
    with FakeHub() as h:
        h.add_repo("MiniMaxAI/Tiny", files)
        gated = {"config.json": files["config.json"]}
        h.add_repo("MiniMaxAI/Gated", gated, token="hf_good", gated=True)
        yield h


def run(
    hub_url: str, dest: Path, *extra: str, env: dict[str, str] | None = None, repo: str = "MiniMaxAI/Tiny"
) -> tuple[int, dict, str]:
    """Run the downloader as the Job does; return (exit code, termination message, stdout)."""
    term = dest.parent / f"termination-{time.monotonic_ns()}"
    environment = {
        **os.environ,
        "HF_HOME": str(dest.parent / "hf-home"),
        "MINIMAX_TERMINATION_LOG": str(term),
        **(env or {}),
    }
    if "HF_TOKEN" not in (env or {}):
        environment.pop("HF_TOKEN", None)  # a token in the developer's shell must not leak into the test
    args = [sys.executable, "-m", "minimax_operator", "download", "--repo", repo, "--dest", str(dest)]
    args += ["--endpoint", hub_url, "--progress-interval", "0.2", *extra]
    proc = subprocess.run(args, capture_output=True, text=True, env=environment, timeout=120)
    message = json.loads(term.read_text()) if term.exists() else {}
    return proc.returncode, message, proc.stdout + proc.stderr


def test_downloads_verifies_and_marks_complete(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "MiniMaxAI" / "Tiny"
    code, result, out = run(hub.url, dest)
    assert code == 0, out
    repo = hub.repos["MiniMaxAI/Tiny"]
    assert result["revision"] == repo.commit and result["filesTotal"] == 4
    assert result["bytesTotal"] == sum(f.size for f in repo.files.values())
    for f in repo.files.values():
        assert (dest / f.path).read_bytes() == f.source.read_bytes()
    marker = json.loads((dest / download.MARKER).read_text())
    assert marker["revision"] == repo.commit and len(marker["files"]) == 4
    assert not list(dest.rglob("*.incomplete")) and not list(dest.rglob("*.part"))
    last = [json.loads(line) for line in out.splitlines() if line.startswith('{"event": "progress"')][-1]
    assert last["bytesDone"] == last["bytesTotal"] and last["filesDone"] == 4


def test_a_verified_copy_downloads_nothing(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    assert run(hub.url, dest)[0] == 0
    served = hub.total_served()
    code, result, _ = run(hub.url, dest)
    assert code == 0 and result["skipped"] is True
    assert hub.total_served() == served


def test_allow_patterns_limit_the_files(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    code, result, _ = run(hub.url, dest, "--allow-pattern", "*.json")
    assert code == 0 and result["filesTotal"] == 1
    assert [p.name for p in dest.iterdir() if p.is_file() and not p.name.startswith(".")] == ["config.json"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "terminated"])
def test_resume_after_kill_fetches_only_what_is_missing(hub: FakeHub, tmp_path: Path, sig: signal.Signals) -> None:
    """A pod killed, or deleted (SIGTERM: the downloader exits at once with 143, even as PID 1)."""
    dest = tmp_path / "m"
    first = "model-00000-of-00003.safetensors"
    hub.faults.stall_after[first] = SHARD // 2
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "MINIMAX_TERMINATION_LOG": str(tmp_path / "t")}
    args = [sys.executable, "-m", "minimax_operator", "download", "--repo", "MiniMaxAI/Tiny", "--dest", str(dest)]
    proc = subprocess.Popen([*args, "--endpoint", hub.url, "--max-workers", "1"], env=env, stdout=subprocess.DEVNULL)

    def partial_bytes() -> int:
        return sum(p.stat().st_size for p in dest.rglob("*.part"))

    # Wait until the partial file reaches the stall point (a loaded machine may leave the last
    # few bytes of a read in the client's buffer, so "stopped growing near half" is the signal).
    deadline = time.monotonic() + 60
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = partial_bytes()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif now >= SHARD // 2 - 65536 and time.monotonic() - stable_since > 0.5:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    kept = partial_bytes()
    assert SHARD // 2 - 65536 <= kept <= SHARD // 2, "the killed download should leave about half of the file"
    assert not (dest / first).exists()  # a partial file is never taken for a complete one
    del hub.faults.stall_after[first]
    before = dict(hub.bytes_served)
    code, _, out = run(hub.url, dest)
    assert code == 0, out
    assert hub.bytes_served[first] - before[first] == SHARD - kept  # only the missing part
    assert (dest / first).read_bytes() == hub.repos["MiniMaxAI/Tiny"].files[first].source.read_bytes()
    assert not list(dest.rglob("*.part"))


def test_corrupted_file_fails_verification_and_is_fetched_again(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    bad = "model-00001-of-00003.safetensors"
    hub.faults.corrupt.add(bad)
    code, result, _ = run(hub.url, dest)
    assert code == 1 and result["reason"] == "VerificationFailed" and bad in result["message"]
    assert not (dest / bad).exists() and not (dest / download.MARKER).exists()
    hub.faults.corrupt.clear()
    code, _, out = run(hub.url, dest)
    assert code == 0, out
    assert (dest / bad).read_bytes() == hub.repos["MiniMaxAI/Tiny"].files[bad].source.read_bytes()


def test_truncated_transfer_is_never_taken_for_complete(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    cut = "model-00002-of-00003.safetensors"
    hub.faults.cut_after[cut] = 1000
    code, _, out = run(hub.url, dest)
    if code != 0:  # huggingface_hub may resume the cut transfer itself; if not, the next attempt does
        assert not (dest / download.MARKER).exists()
        code, _, out = run(hub.url, dest)
    assert code == 0, out
    assert (dest / cut).read_bytes() == hub.repos["MiniMaxAI/Tiny"].files[cut].source.read_bytes()


@pytest.mark.parametrize(
    ("repo", "extra", "env", "reason"),
    [
        ("MiniMaxAI/Nope", [], {}, "RepoNotFound"),
        ("MiniMaxAI/Tiny", ["--revision", "deadbeef"], {}, "RevisionNotFound"),
        ("MiniMaxAI/Gated", [], {}, "Unauthorized"),
        ("MiniMaxAI/Gated", [], {"HF_TOKEN": "hf_wrong"}, "Unauthorized"),
    ],
)
def test_hub_refusals_have_distinct_reasons(
    hub: FakeHub, tmp_path: Path, repo: str, extra: list[str], env: dict[str, str], reason: str
) -> None:
    code, result, _ = run(hub.url, tmp_path / "m", *extra, env=env, repo=repo)
    assert code == 1 and result["reason"] == reason, result
    assert "hf_wrong" not in json.dumps(result)  # the token never appears in what the operator shows


def test_gated_repo_with_the_right_token(hub: FakeHub, tmp_path: Path) -> None:
    code, _, out = run(hub.url, tmp_path / "m", env={"HF_TOKEN": "hf_good"}, repo="MiniMaxAI/Gated")
    assert code == 0, out
    assert "hf_good" not in out


def test_mirror_that_is_down(tmp_path: Path) -> None:
    code, result, _ = run("http://127.0.0.1:9", tmp_path / "m")
    assert code == 1 and result["reason"] == "EndpointUnreachable"


def test_stalled_server_ends_the_attempt(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.stall_after["model-00000-of-00003.safetensors"] = 1000
    code, result, _ = run(hub.url, tmp_path / "m", "--stall-seconds", "1.5", "--max-workers", "1")
    assert code == 3 and result["reason"] == "Stalled"


def test_a_mirror_that_trickles_is_a_stall(hub: FakeHub, tmp_path: Path) -> None:
    # Bytes keep coming, so "no bytes for N s" never fires; too few over the window does.
    hub.faults.bytes_per_second = 400
    code, result, _ = run(
        hub.url, tmp_path / "m", "--stall-seconds", "2", "--min-bytes-per-second", "4096", "--progress-interval", "0.25"
    )
    assert code == 3 and result["reason"] == "Stalled" and "trickling" in result["message"], result


def test_a_download_past_its_deadline_ends_with_a_reason(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.bytes_per_second = 64 * 1024
    code, result, _ = run(hub.url, tmp_path / "m", "--deadline-seconds", "1", "--progress-interval", "0.25")
    assert code == 3 and result["reason"] == "DeadlineExceeded", result
    assert "spec.download.deadlineSeconds (1 s)" in result["message"]


@pytest.mark.parametrize(
    ("elapsed", "span", "arrived", "reason"),
    [
        (5, 600, 0, "Stalled"),  # nothing for the whole window
        (5, 600, 600, "Stalled"),  # a byte a second
        (5, 600, 600 * 20_000, None),  # above the floor
        (5, 300, 0, None),  # the window is not full yet
        (3601, 600, 10**9, "DeadlineExceeded"),  # fast, but past the deadline
        (3599, 600, 10**9, None),
    ],
)
def test_what_ends_a_download_pod(elapsed: float, span: float, arrived: int, reason: str | None) -> None:
    progress = download.Progress(Path("/nonexistent"), [], "c" * 40, 10, 600, 16 * 1024, 3600)
    verdict = progress.judge(elapsed, span, arrived, 0)
    assert (verdict or {}).get("reason") == reason


def test_too_small_a_volume_fails_before_downloading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = [download.RemoteFile("a.safetensors", 300 * 10**9, "x")]

    class Usage:
        free = 100 * 10**9

    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: Usage)
    with pytest.raises(download.DownloadError) as e:
        download.check_space(tmp_path, tmp_path, files)
    assert e.value.reason == "InsufficientStorage" and "300.0 GB" in e.value.message


def test_server_cache_folder_is_writable_for_any_user(tmp_path: Path) -> None:
    """A subPath folder the kubelet makes belongs to root; the download pod makes it sticky and world-writable."""
    import stat

    from minimax_operator.download.job import prepare_compile_folder

    folder = tmp_path / ".server-cache" / "vllm_vllm-openai_v0.20.2"
    prepare_compile_folder(str(folder))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777
    prepare_compile_folder(str(folder))  # again: nothing changes, nothing fails
    prepare_compile_folder(None)


# ---- one folder per commit (model caches) ------------------------------------------------


def run_root(hub_url: str, root: Path, *extra: str) -> tuple[int, dict, str]:
    """Run the downloader as a MiniMaxModelCache's Job does: into ROOT/revisions/ORG/NAME/COMMIT."""
    term = root.parent / f"termination-{time.monotonic_ns()}"
    env = {**os.environ, "HF_HOME": str(root / ".cache" / "huggingface"), "MINIMAX_TERMINATION_LOG": str(term)}
    env.pop("HF_TOKEN", None)
    args = [sys.executable, "-m", "minimax_operator", "download", "--repo", "MiniMaxAI/Tiny", "--root", str(root)]
    args += ["--legacy-dir", "MiniMaxAI/Tiny", "--endpoint", hub_url, "--progress-interval", "0.2", *extra]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    message = json.loads(term.read_text()) if term.exists() else {}
    return proc.returncode, message, proc.stdout + proc.stderr


def test_each_commit_gets_its_own_folder_and_a_new_one_lands_beside_the_old(hub: FakeHub, tmp_path: Path) -> None:
    root = tmp_path / "claim"
    code, first, out = run_root(hub.url, root)
    assert code == 0, out
    old = hub.repos["MiniMaxAI/Tiny"].commit
    assert first["path"] == f"revisions/MiniMaxAI/Tiny/{old}" and first["revision"] == old
    assert (root / first["path"] / download.MARKER).is_file()
    served = hub.total_served()
    code, again, out = run_root(hub.url, root)
    assert code == 0 and again["skipped"] and hub.total_served() == served, out  # verified: not a byte again

    changed = tmp_path / "src" / "model-00001-of-00003.safetensors"
    changed.write_bytes(b"new weights" * 1000)
    files = {p.relative_to(tmp_path / "src").as_posix(): p for p in (tmp_path / "src").rglob("*") if p.is_file()}
    new = hub.add_repo("MiniMaxAI/Tiny", files).commit
    assert new != old
    code, second, out = run_root(hub.url, root)
    assert code == 0, out
    assert second["path"] == f"revisions/MiniMaxAI/Tiny/{new}"
    assert (root / first["path"] / download.MARKER).is_file(), "the folder servers load must stay untouched"
    assert {f["commit"]: f["path"] for f in second["found"]} == {old: first["path"]}


def test_a_folder_of_a_release_before_caches_is_adopted_without_a_byte(hub: FakeHub, tmp_path: Path) -> None:
    root = tmp_path / "claim"
    code, _, out = run(hub.url, root / "MiniMaxAI" / "Tiny")  # the older Job's --dest layout
    assert code == 0, out
    served = hub.total_served()
    code, result, out = run_root(hub.url, root)
    assert code == 0, out
    assert result["path"] == "MiniMaxAI/Tiny" and result["skipped"] and hub.total_served() == served
    assert result["found"] == [
        {"commit": hub.repos["MiniMaxAI/Tiny"].commit, "path": "MiniMaxAI/Tiny", "bytes": result["bytesTotal"]}
    ]


def test_too_small_a_claim_says_which_commits_it_keeps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = [download.RemoteFile("a.safetensors", 300 * 10**9, "x")]

    class Usage:
        free = 100 * 10**9

    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: Usage)
    kept = [{"commit": "a" * 40, "path": "revisions/o/n/" + "a" * 40, "bytes": 230 * 10**9}]
    with pytest.raises(download.DownloadError) as e:
        download.check_space(tmp_path, tmp_path, files, kept)
    assert "300.0 GB still to download but only 100.0 GB free" in e.value.message
    assert "aaaaaaaaaaaa (230.0 GB) until no server uses it" in e.value.message


def _folder(root: Path, rel: str, files: dict[str, bytes]) -> Path:
    folder = root / rel
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / download.MARKER).write_text(json.dumps({"revision": "x", "files": sorted(files)}))
    return folder


def test_prune_removes_a_commit_folder_and_only_what_an_old_marker_lists(tmp_path: Path) -> None:
    root = tmp_path / "claim"
    commit = _folder(root, "revisions/o/n/" + "a" * 40, {"w.safetensors": b"x" * 10})
    keep = _folder(root, "revisions/o/n/" + "b" * 40, {"w.safetensors": b"y"})
    legacy = _folder(root, "o/n", {"w.safetensors": b"z" * 5, "sub/t.json": b"{}"})
    (legacy / "notes-by-a-person.txt").write_text("mine")
    assert prune(root, "revisions/o/n/" + "a" * 40) >= 10  # the weights and the marker
    assert not commit.exists() and keep.is_dir()
    assert prune(root, "o/n") == 7
    assert sorted(p.name for p in legacy.iterdir()) == ["notes-by-a-person.txt"]
    assert prune(root, "revisions/o/n/" + "a" * 40) == 0  # gone already: idempotent


def test_prune_refuses_what_is_not_a_model_folder_inside_the_claim(tmp_path: Path) -> None:
    root = tmp_path / "claim"
    (root / "data").mkdir(parents=True)
    (root / "data" / "db").write_text("someone's")
    outside = _folder(tmp_path, "elsewhere", {"w": b"1"})
    for rel, reason in (("data", "NotAModelFolder"), ("../elsewhere", "InvalidPath"), (".", "InvalidPath")):
        with pytest.raises(download.DownloadError) as e:
            prune(root, rel)
        assert e.value.reason == reason
    assert (root / "data" / "db").exists() and outside.exists()


def test_a_claim_this_user_cannot_write_is_refused_with_its_owner_and_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a non-root pod meets on a hostPath claim (the real-node test shows it for real)."""
    from minimax_operator.download import job as download

    folder = tmp_path / "claim"
    folder.mkdir(mode=0o755)

    def refuse(self: Path, data: bytes) -> int:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(download.DownloadError) as e:
        download.check_writable(folder)
    assert e.value.reason == "VolumeNotWritable"
    assert f"owned by {os.getuid()}:{os.getgid()}, mode 755" in e.value.message and "fsGroup" in e.value.message
