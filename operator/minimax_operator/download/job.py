"""`minimax-operator download`: fill a commit's folder on the claim from the Hugging Face Hub, verified.

The download Job runs this in the operator's image. huggingface_hub's Python API
lists the revision (sizes and LFS sha256) and fetches Xet-backed files (hf_xet's
chunk cache, kept on the PVC, resumes those). Plain HTTP files (the usual case
behind a mirror) are fetched here: since huggingface_hub writes each attempt to a
process-unique temporary file, a restarted pod could not resume a 5 GB shard with
it. Here every file streams into a stable `.part` file, resumes with a Range
request, and is hashed while it streams, so verification costs no second read.
Only a complete file with the Hub's size and hash (the LFS sha256, or the git blob id
of a file kept in git) is renamed into place; then a
completion marker is written. A folder whose marker matches the wanted revision
is not downloaded again.

Progress goes to stdout as JSON lines (the operator reads the pod's log); the
result or a failure reason goes to /dev/termination-log as one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol import (
    COMMIT_PATTERN,
    HF_HOME_FOLDER,
    MARKER,
    PARTIAL_FOLDER,
    RESULT_MAX_BYTES,
    VERIFIED,
    commit_folder,
    progress_line,
)
from .paths import UnsafePath, check_commit, check_name, confined, no_links

TERMINATION_LOG = os.environ.get("MINIMAX_TERMINATION_LOG", "/dev/termination-log")


class DownloadError(Exception):
    """A failure with a stable reason code the operator shows in status."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files only
    #: The git blob id of a file kept in git itself (config, tokenizer, the repo's Python code).
    git_sha1: str | None = None

    @property
    def digest(self) -> str | None:
        """What the file's bytes must hash to: `sha256:...` (LFS) or `git:...` (a git blob), or None."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        return f"git:{self.git_sha1}" if self.git_sha1 else None

    def hasher(self) -> Any:
        """A hash object for `digest`, fed the bytes of the file (a git blob hashes a header first)."""
        if self.sha256:
            return hashlib.sha256()
        h = hashlib.sha1(usedforsecurity=False)
        h.update(b"blob %d\0" % self.size)
        return h

    def matches(self, hexdigest: str) -> bool:
        return self.digest is not None and self.digest.split(":", 1)[1] == hexdigest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", required=True, help="Hugging Face repo, org/name")
    p.add_argument("--revision", default=None, help="commit, branch or tag (default main)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--root", help="the claim's mount: the commit is downloaded into ROOT/revisions/ORG/NAME/COMMIT"
    )
    target.add_argument("--dest", help="one model folder to fill (download Jobs of releases before model caches)")
    p.add_argument(
        "--legacy-dir",
        default=None,
        help="folder under ROOT where releases before model caches kept the repo: adopted when it holds the commit",
    )
    p.add_argument("--claim-mount", default=None, help="mount point of the PVC, for the free-space check")
    p.add_argument("--allow-pattern", action="append", default=[], help="only files matching (repeat)")
    p.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT"), help="Hub or mirror URL (HF_ENDPOINT)")
    p.add_argument("--max-workers", type=int, default=8, help="files fetched in parallel")
    p.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines")
    p.add_argument(
        "--stall-seconds",
        type=float,
        default=600.0,
        help="give up (and let the Job retry) when fewer than --min-bytes-per-second arrived over this long",
    )
    p.add_argument(
        "--min-bytes-per-second",
        type=float,
        default=16 * 1024,
        help="slowest average rate over --stall-seconds that is not a stall (a mirror that trickles bytes)",
    )
    p.add_argument(
        "--deadline-seconds",
        type=float,
        default=0,
        help="give up after this long in all (spec.download.deadlineSeconds; 0: no deadline)",
    )
    p.add_argument(
        "--server-cache",
        action="append",
        default=[],
        help="folder on the claim for a server's compile and kernel caches: created writable for any user (repeat)",
    )


def _selected(files: list[RemoteFile], patterns: list[str]) -> list[RemoteFile]:
    if not patterns:
        return files
    return [f for f in files if any(fnmatch.fnmatch(f.path, pat) for pat in patterns)]


def listing(api: Any, repo: str, revision: str | None) -> tuple[str, list[RemoteFile]]:
    """The resolved commit and its files, with sizes and LFS hashes."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
    except GatedRepoError as e:
        raise DownloadError(
            "Unauthorized", f"{repo} is gated: set spec.download.tokenSecretRef to a token that was granted access"
        ) from e
    except RepositoryNotFoundError as e:
        # The Hub answers 401 for a repo that is missing or private when no token is sent.
        raise DownloadError("RepoNotFound", f"{repo} does not exist, or is private and needs a token") from e
    except HFValidationError as e:
        raise DownloadError("InvalidRepo", f"{repo} (revision {revision}) is not a name the Hub accepts: {e}") from e
    except RevisionNotFoundError as e:
        raise DownloadError("RevisionNotFound", f"revision {revision} of {repo} does not exist") from e
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise DownloadError("Unauthorized", f"the Hub refused the token for {repo} (HTTP {status})") from e
        raise DownloadError("HubError", f"the Hub answered HTTP {status} for {repo}") from e
    except Exception as e:  # connection refused, DNS, TLS, timeouts (httpx's errors are not OSErrors)
        raise DownloadError("EndpointUnreachable", f"cannot reach {api.endpoint}: {type(e).__name__}: {e}") from e
    files = []
    for s in info.siblings or []:
        lfs = getattr(s, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        if sha is None and isinstance(lfs, dict):
            sha = lfs.get("sha256")
        blob = getattr(s, "blob_id", None)
        git_sha1 = blob if sha is None and isinstance(blob, str) and re.fullmatch(r"[0-9a-f]{40}", blob) else None
        files.append(RemoteFile(s.rfilename, int(s.size or 0), sha, git_sha1))
    return info.sha, files


def check_listing(endpoint: str, repo: str, revision: str | None, commit: object, files: list[RemoteFile]) -> str:
    """Refuse a listing that names a path outside the commit's folder, or a commit that is not the one asked.

    Nothing has been written yet: a hostile or broken mirror costs no byte of the claim.
    """
    where = f"{endpoint}'s listing of {repo}"
    try:
        check_commit(commit)
        seen: set[str] = set()
        for f in files:
            check_name(f.path)
            if f.size < 0:
                raise UnsafePath(f"{f.path!r} has a negative size")
            if f.path in seen:
                raise UnsafePath(f"{f.path!r} is listed twice")
            seen.add(f.path)
    except UnsafePath as e:
        raise DownloadError(
            "UnsafeListing", f"{where}: {e}; nothing was written (check spec.repo and spec.download.endpoint)"
        ) from e
    assert isinstance(commit, str)
    if revision and re.fullmatch(COMMIT_PATTERN, revision) and commit != revision:
        raise DownloadError(
            "RevisionMismatch",
            f"{where}: asked for commit {revision}, answered with commit {commit}; nothing was written "
            "(a mirror that serves other bytes than asked cannot be trusted: check spec.download.endpoint)",
        )
    return commit


class Fetcher:
    """Fetch one file at a time into `<dest>/.minimax-partial/<path>.part`, resuming what is there."""

    retries = 5

    def __init__(self, api: Any, repo: str, commit: str, dest: Path, token: str | None):
        self.api, self.repo, self.commit, self.dest, self.token = api, repo, commit, dest, token
        self.verified: dict[str, str] = {}  # path -> sha256 computed while streaming
        self._lock = threading.Lock()

    def fetch(self, f: RemoteFile) -> None:
        final = confined(self.dest, f.path)
        if final.is_file() and final.stat().st_size == f.size:
            return  # verify() checks its hash (once per revision)
        url = f"{self.api.endpoint.rstrip('/')}/{self.repo}/resolve/{self.commit}/{urllib.parse.quote(f.path)}"
        if self._is_xet(url):
            self._fetch_with_hub(f)
            return
        for attempt in range(self.retries):
            try:
                self._fetch_http(url, f, final)
                return
            except (OSError, http.client.HTTPException) as e:
                if (isinstance(e, OSError) and e.errno == 28) or attempt == self.retries - 1:
                    raise
                time.sleep(min(30, 2**attempt))  # the next try resumes from the .part file

    def _is_xet(self, url: str) -> bool:
        from huggingface_hub import get_hf_file_metadata

        if importlib.util.find_spec("hf_xet") is None or os.environ.get("HF_HUB_DISABLE_XET"):
            return False
        try:
            return get_hf_file_metadata(url, token=self.token).xet_file_data is not None
        except Exception:  # a mirror without HEAD support: plain HTTP it is
            return False

    def _fetch_with_hub(self, f: RemoteFile) -> None:
        from huggingface_hub import hf_hub_download

        hf_hub_download(
            self.repo,
            f.path,
            revision=self.commit,
            local_dir=str(self.dest),
            token=self.token,
            endpoint=self.api.endpoint,
        )

    def _fetch_http(self, url: str, f: RemoteFile, final: Path) -> None:
        part = confined(no_links(self.dest, PARTIAL_FOLDER), f"{f.path}.part")
        part.parent.mkdir(parents=True, exist_ok=True)
        offset = part.stat().st_size if part.exists() else 0
        if offset > f.size:
            part.unlink()
            offset = 0
        digest = f.hasher()
        if offset and f.digest:
            with part.open("rb") as existing:
                while chunk := existing.read(8 << 20):
                    digest.update(chunk)
        if not part.exists():
            part.touch()  # an empty file is complete as it is
        if offset < f.size:
            request = urllib.request.Request(url, headers={"User-Agent": "minimax-operator-download"})
            if offset:
                request.add_header("Range", f"bytes={offset}-")
            if self.token:  # not sent on to a CDN the Hub redirects to
                request.add_unredirected_header("Authorization", f"Bearer {self.token}")
            with urllib.request.urlopen(request, timeout=60) as resp, part.open("r+b" if offset else "wb") as out:
                if offset and resp.status != 206:  # the server ignored Range: start over
                    offset = 0
                    digest = f.hasher()
                    out.truncate(0)
                out.seek(offset)
                # Never more than the listing gives: a body longer than announced (or endless) fills
                # no disk. What has arrived is written at once: a stall loses nothing.
                remaining = f.size - offset
                while remaining > 0 and (chunk := resp.read1(min(4 << 20, remaining))):
                    out.write(chunk)
                    remaining -= len(chunk)
                    if f.digest:
                        digest.update(chunk)
                if remaining == 0 and resp.read1(1):
                    raise DownloadError(
                        "SizeMismatch", f"{f.path}: the server sends more than the {f.size} bytes its listing gives"
                    )
        size = part.stat().st_size
        if size != f.size:
            raise http.client.IncompleteRead(b"", f.size - size)
        if f.digest:
            if not f.matches(digest.hexdigest()):
                part.unlink()  # never resume from corrupt bytes
                raise DownloadError("VerificationFailed", f"{f.path} does not match its {f.digest.split(':')[0]}")
            with self._lock:
                self.verified[f.path] = f.digest
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)


def _hash(path: Path, f: RemoteFile) -> str:
    h = f.hasher()
    with path.open("rb") as src:
        while chunk := src.read(8 << 20):
            h.update(chunk)
    return str(h.hexdigest())


def verify(dest: Path, files: list[RemoteFile], streamed: dict[str, str] | None = None) -> None:
    """Every file present with its size and hash: LFS files' sha256, the others' git blob id (each
    checked once per size and mtime). A mirror that lists neither for a file: its size only.

    `streamed` holds hashes computed while downloading, so those files are not read again.
    """
    cache_path = dest / VERIFIED
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    for path, sha in (streamed or {}).items():
        st = confined(dest, path).stat()
        cache[path] = f"{st.st_size}:{st.st_mtime_ns}:{sha}"
    problems = []
    for f in files:
        p = confined(dest, f.path)
        if not p.is_file():
            problems.append(f"{f.path} is missing")
            continue
        stat = p.stat()
        if stat.st_size != f.size:
            problems.append(f"{f.path} has {stat.st_size} bytes, the Hub lists {f.size}")
            continue
        if f.digest:
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{f.digest}"
            if cache.get(f.path) == stamp:
                continue
            if not f.matches(_hash(p, f)):
                problems.append(f"{f.path} does not match its {f.digest.split(':')[0]}")
                p.unlink()  # a corrupt file must be fetched again, not resumed
                continue
            cache[f.path] = stamp
    cache_path.write_text(json.dumps(cache))
    if problems:
        raise DownloadError("VerificationFailed", "; ".join(problems[:5]))


def _already_complete(dest: Path, commit: str, files: list[RemoteFile]) -> bool:
    try:
        marker = json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(marker.get("revision") == commit and marker.get("files") == sorted(f.path for f in files))


def _present_bytes(dest: Path, files: list[RemoteFile]) -> int:
    total = 0
    for f in files:
        p = dest / f.path
        if p.is_file():
            total += min(p.stat().st_size, f.size)
    return total


def _drop_unresumable_partials(hf_home: Path) -> None:
    """huggingface_hub names its partial files per process, so a new pod can never resume them:
    remove what killed pods left, before it fills the volume."""
    partial = hf_home / "download"
    if partial.is_dir():
        for p in partial.rglob("*.incomplete"):
            p.unlink(missing_ok=True)


def check_space(dest: Path, mount: Path, files: list[RemoteFile], kept: list[dict[str, Any]] | None = None) -> None:
    """Refuse before downloading a byte when the claim cannot hold the commit, with the numbers."""
    need = sum(f.size for f in files) - _present_bytes(dest, files)
    free = shutil.disk_usage(mount).free
    if need > free:
        others = ""
        if kept:
            listed = ", ".join(f"{k['commit'][:12]} ({k.get('bytes', 0) / 1e9:.1f} GB)" for k in kept)
            others = f"; the claim keeps {listed} until no server uses it, so a revision switch needs room for both"
        raise DownloadError(
            "InsufficientStorage",
            f"{need / 1e9:.1f} GB still to download but only {free / 1e9:.1f} GB free in the PVC{others}: "
            "raise spec.storage.size (or use a larger existing claim)",
        )


def verified_folders(root: Path, repo: str, legacy_dir: str | None) -> list[dict[str, Any]]:
    """Every folder of `repo` in the claim whose completion marker says which commit it holds."""
    found = []
    candidates = [legacy_dir] if legacy_dir else []
    revisions = root / "revisions" / repo
    if revisions.is_dir():
        candidates += [
            f"revisions/{repo}/{p.name}"
            for p in sorted(revisions.iterdir())
            if p.is_dir() and not p.is_symlink() and re.fullmatch(COMMIT_PATTERN, p.name)
        ]
    for rel in candidates:
        try:
            marker = json.loads((root / rel / MARKER).read_text())
        except (OSError, ValueError):
            continue
        if marker.get("repo") in (None, repo) and marker.get("revision"):
            found.append({"commit": marker["revision"], "path": rel, "bytes": marker.get("bytes")})
    return found


class Progress(threading.Thread):
    """Report bytes on disk every few seconds as a JSON log line; end the process on a stall.

    Log lines are where the operator reads progress without exec or extra RBAC for
    the download pod (`kubectl logs` reads them too). Bytes count finished files and
    partial files (ours and huggingface_hub's for Xet files).
    """

    def __init__(
        self,
        dest: Path,
        files: list[RemoteFile],
        commit: str,
        interval: float,
        stall_seconds: float,
        min_rate: float = 0.0,
        deadline_seconds: float = 0.0,
    ):
        super().__init__(daemon=True)
        self.dest, self.files, self.commit = dest, files, commit
        self.interval, self.stall_seconds = interval, stall_seconds
        self.min_rate, self.deadline_seconds = min_rate, deadline_seconds
        self.total = sum(f.size for f in files)
        self.done = threading.Event()

    def measure(self) -> tuple[int, int]:
        done_bytes = done_files = 0
        for f in self.files:
            p = self.dest / f.path
            if p.is_file() and p.stat().st_size == f.size:
                done_bytes += f.size
                done_files += 1
        for partial in (self.dest / ".minimax-partial", self.dest / ".cache" / "huggingface" / "download"):
            if partial.is_dir():
                done_bytes += sum(
                    p.stat().st_size for p in partial.rglob("*") if p.suffix in (".part", ".incomplete") and p.is_file()
                )
        return min(done_bytes, self.total), done_files

    def report(self, rate: float) -> int:
        done, files_done = self.measure()
        eta = int((self.total - done) / rate) if rate > 0 else None
        line = progress_line(
            bytesDone=done,
            bytesTotal=self.total,
            filesDone=files_done,
            filesTotal=len(self.files),
            bytesPerSecond=int(rate),
            etaSeconds=eta,
            revision=self.commit,
        )
        print(line, flush=True)
        return done

    def run(self) -> None:
        start = last_time = time.monotonic()
        last_bytes = self.measure()[0]
        #: (time, bytes) samples of the last stall window: a stall is too few bytes over it, not
        #: only none (a mirror that sends a byte a second never stops "making progress").
        window: deque[tuple[float, int]] = deque([(start, last_bytes)])
        rate = 0.0
        while not self.done.wait(self.interval):
            now = time.monotonic()
            current = self.measure()[0]
            # Exponential moving average: steady speed and ETA despite bursty writes.
            sample = (current - last_bytes) / max(now - last_time, 1e-6)
            rate = sample if rate == 0 else 0.7 * rate + 0.3 * sample
            last_bytes, last_time = current, now
            window.append((now, current))
            while len(window) > 1 and now - window[1][0] >= self.stall_seconds:
                window.popleft()
            self.report(rate)
            verdict = self.judge(now - start, now - window[0][0], current - window[0][1], current)
            if verdict:
                terminate(verdict)
                os._exit(3)  # the Job starts a new pod, which resumes from the partial files

    def judge(self, elapsed: float, span: float, arrived: int, done: int) -> dict[str, str] | None:
        """Stalled, DeadlineExceeded or None (pure: `span` seconds of the window saw `arrived` bytes)."""
        if self.deadline_seconds and elapsed > self.deadline_seconds:
            return {
                "reason": "DeadlineExceeded",
                "message": f"the download ran past spec.download.deadlineSeconds ({int(self.deadline_seconds)} s) "
                f"with {done} of {self.total} bytes; the Job's next pod resumes from them",
            }
        if span >= self.stall_seconds and arrived <= max(self.min_rate * span, 0):
            if arrived <= 0:
                return {"reason": "Stalled", "message": f"no bytes received for {int(span)} s"}
            return {
                "reason": "Stalled",
                "message": f"only {arrived} bytes in {int(span)} s, under {int(self.min_rate)} bytes/s: "
                "the mirror is trickling; the Job's next pod resumes",
            }
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN") or None
    api = HfApi(endpoint=args.endpoint, token=token)
    raw_commit, all_files = listing(api, args.repo, args.revision)
    commit = check_listing(str(api.endpoint), args.repo, args.revision, raw_commit, all_files)
    files = _selected(all_files, args.allow_pattern)
    if not files:
        raise DownloadError("NoFiles", f"no file of {args.repo} matches spec.download.allowPatterns")
    result: dict[str, Any] = {"revision": commit, "filesTotal": len(files), "bytesTotal": sum(f.size for f in files)}
    if size_only := sum(1 for f in files if not f.digest):
        # A mirror that lists neither an LFS sha256 nor a git blob id: said in the status, not hidden.
        result["filesSizeOnly"] = size_only
    kept: list[dict[str, Any]] = []
    if args.root:
        root = Path(args.root)
        found = verified_folders(root, args.repo, args.legacy_dir)
        result["found"] = found
        rel = commit_folder(args.repo, commit)
        if args.legacy_dir and _already_complete(root / args.legacy_dir, commit, files):
            # Filled by a release before model caches: adopted where it is, not downloaded again.
            return {**result, "path": args.legacy_dir, "skipped": True}
        try:
            dest = no_links(root, rel)
        except UnsafePath as e:
            raise DownloadError("UnsafeClaim", f"{e}: the claim was changed by hand; nothing was written") from e
        result["path"] = rel
        kept = [f for f in found if f["path"] != rel]
        hf_home = root / HF_HOME_FOLDER
    else:
        dest = Path(args.dest)
        hf_home = dest / HF_HOME_FOLDER
    dest.mkdir(parents=True, exist_ok=True)
    if _already_complete(dest, commit, files):
        return {**result, "skipped": True}
    _drop_unresumable_partials(hf_home)
    check_space(dest, Path(args.claim_mount or args.root or dest), files, kept)
    started = time.monotonic()
    progress = Progress(
        dest,
        files,
        commit,
        args.progress_interval,
        args.stall_seconds,
        args.min_bytes_per_second,
        args.deadline_seconds,
    )
    progress.start()
    fetcher = Fetcher(api, args.repo, commit, dest, token)
    try:
        with ThreadPoolExecutor(max_workers=args.max_workers, thread_name_prefix="fetch") as pool:
            for _ in pool.map(fetcher.fetch, files):
                pass
    except OSError as e:
        if getattr(e, "errno", None) == 28:
            raise DownloadError("InsufficientStorage", "the PVC is full: raise spec.storage.size") from e
        raise DownloadError("DownloadInterrupted", f"{type(e).__name__}: {e}") from e
    except http.client.HTTPException as e:  # a body shorter than announced, again and again
        raise DownloadError(
            "DownloadInterrupted",
            f"{type(e).__name__}: the server ended a file early {Fetcher.retries} times; the Job's next pod resumes",
        ) from e
    finally:
        progress.done.set()
    verify(dest, files, fetcher.verified)
    progress.report(0)
    marker = {
        "repo": args.repo,
        "revision": commit,
        "files": sorted(f.path for f in files),
        "bytes": result["bytesTotal"],
        "completedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (dest / MARKER).write_text(json.dumps(marker, indent=1))
    return {**result, "seconds": round(time.monotonic() - started, 1)}


def result_line(payload: dict[str, Any]) -> str:
    """One JSON line that fits the termination message (the kubelet keeps 4096 bytes): a long
    message is cut and the list of folders found is shortened, never the line as a whole."""
    payload = dict(payload)
    if isinstance(payload.get("message"), str) and len(payload["message"]) > 1500:
        payload["message"] = payload["message"][:1500] + "..."
    line = json.dumps(payload)
    while len(line.encode()) > RESULT_MAX_BYTES and payload.get("found"):
        payload["found"] = payload["found"][:-1]
        line = json.dumps(payload)
    return line


def terminate(payload: dict[str, Any]) -> None:
    """The result or the failure, as one JSON line on stdout and in the termination message."""
    line = result_line(payload)
    print(line, flush=True)
    try:
        with open(TERMINATION_LOG, "w") as f:
            f.write(line)
    except OSError:
        pass  # not in a pod


def prepare_compile_folder(path: str | None) -> None:
    """A server's compile-cache folder, writable by whichever user the server runs as.

    Why here: a folder the kubelet creates for a subPath mount belongs to root, so a
    non-root server (Pod Security "restricted") could not write its caches, and storage
    without fsGroup support (NFS) would not fix the group either. The download pod writes
    the claim anyway; it leaves the folder world-writable (sticky, like /tmp).
    """
    if not path:
        return
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # made by someone else before: leave it as it is
        folder.chmod(0o1777)


def _exit_on_sigterm() -> None:
    """Stop at once when the pod is deleted or its node drained.

    As a container's PID 1 the process would ignore SIGTERM and hold the pod for its whole
    grace period (30 s, seen on the real node), delaying the Job's next pod. Every byte
    received is already written to its `.part` file, which the next pod resumes from, so
    there is nothing to finish.
    """
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))


def check_writable(folder: Path) -> None:
    """Refuse before the first byte when this user cannot write the claim.

    hostPath volumes and some provisioners ignore the pod's fsGroup, so a claim whose root
    folder belongs to root with mode 0755 is read-only to the image's non-root user (seen on
    the real node). Said once, with the owner and mode, instead of a traceback per file.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".minimax-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        if e.errno not in (13, 30):  # EACCES, EROFS
            raise
        where = folder if folder.exists() else folder.parent
        st = where.stat()
        raise DownloadError(
            "VolumeNotWritable",
            f"uid {os.getuid()} (gid {os.getgid()}) cannot write {where}: owned by {st.st_uid}:{st.st_gid}, "
            f"mode {st.st_mode & 0o7777:o}{' (read-only file system)' if e.errno == 30 else ''}; the claim's "
            "storage must let the pod's fsGroup write it (hostPath volumes ignore fsGroup)",
        ) from e


def main(args: argparse.Namespace) -> int:
    _exit_on_sigterm()
    try:
        check_writable(Path(args.root or args.dest))
        for folder in getattr(args, "server_cache", None) or []:
            prepare_compile_folder(folder)
        result = run(args)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        terminate({"reason": e.reason, "message": e.message})
        return 1
    except Exception as e:  # a bug or a case not foreseen: still a reason in status, not only a traceback
        import traceback

        traceback.print_exc()
        terminate({"reason": "DownloadCrashed", "message": f"{type(e).__name__}: {e} (see the pod's log)"})
        return 1
    terminate(result)
    return 0


# ---- prune ----------------------------------------------------------------------------------
