"""A Hugging Face Hub on loopback, for testing and benchmarking the downloader offline.

It answers the calls huggingface_hub's snapshot_download makes, the way the Hub does:
  GET  /api/models/{repo}[/revision/{rev}]     model info with siblings, sizes and LFS sha256
  GET  /api/models/{repo}/tree/{rev}           recursive file listing
  HEAD /{repo}/resolve/{rev}/{path}            X-Repo-Commit, ETag, Content-Length
  GET  /{repo}/resolve/{rev}/{path}            the bytes, with Range (206) for resumes
and the Hub's error shapes (X-Error-Code RepoNotFound / RevisionNotFound / GatedRepo, 401
"Invalid credentials"). Faults for tests: a file served corrupted, a connection cut after
N bytes, a stall after N bytes, a body longer than listed, a rate limit per connection. It counts the bytes it serves.

Run as a program (`python fakehub.py --repo ORG/NAME ...`) it is the Hub of the cluster with a
real node: a pod serving generated repositories, with `GET /_stats` (bytes served per repo
and file) and `PUT /_rate?bytes_per_second=N` for the tests that drive it from outside.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class RepoFile:
    path: str
    source: Path
    size: int
    sha256: str
    lfs: bool

    @property
    def blob_id(self) -> str:
        """As the Hub lists it: the git blob id of the file (of its LFS pointer for an LFS file)."""
        if self.lfs:
            return self.sha256[:40]
        data = self.source.read_bytes()
        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Repo:
    repo_id: str
    commit: str
    files: dict[str, RepoFile]
    token: str | None = None  # required token; None: public
    gated: bool = False


@dataclass
class Faults:
    corrupt: set[str] = field(default_factory=set)
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes, once
    stall_after: dict[str, int] = field(default_factory=dict)  # path -> bytes
    oversize: dict[str, int] = field(default_factory=dict)  # path -> bytes sent beyond the listed size
    release: threading.Event = field(default_factory=threading.Event)
    bytes_per_second: int = 0  # per connection; 0: as fast as it goes
    no_hashes: bool = False  # a mirror that lists sizes only: no LFS sha256, no git blob id


def make_files(root: Path, shards: int, shard_bytes: int) -> dict[str, Path]:
    """A small model repository on disk: random safetensors shards and a config.json."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(shards):
        p = root / f"model-{i:05d}-of-{shards:05d}.safetensors"
        p.write_bytes(os.urandom(shard_bytes))
        files[p.name] = p
    (root / "config.json").write_text('{"model_type": "minimax_m2"}')
    files["config.json"] = root / "config.json"
    return files


class FakeHub:
    """Serve repositories made of local files. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.address = (host, port)
        self.repos: dict[str, Repo] = {}
        #: (repo id, tag or commit) -> that revision; `repos` holds each repo's main.
        self.revisions: dict[tuple[str, str], Repo] = {}
        self.faults = Faults()
        self.bytes_served: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, Path],
        commit: str | None = None,
        token: str | None = None,
        gated: bool = False,
        tag: str | None = None,
    ) -> Repo:
        """Add a repo, or a new commit of it (which becomes main); older commits stay reachable."""
        entries = {}
        for path, source in files.items():
            digest = hashlib.sha256()
            with source.open("rb") as f:
                while chunk := f.read(8 << 20):
                    digest.update(chunk)
            lfs = not path.endswith((".json", ".txt", ".md", ".py"))
            entries[path] = RepoFile(path, source, source.stat().st_size, digest.hexdigest(), lfs)
        sha = commit or hashlib.sha1(json.dumps(sorted((p, e.sha256) for p, e in entries.items())).encode()).hexdigest()
        repo = Repo(repo_id, sha, entries, token, gated)
        self.repos[repo_id] = repo
        self.revisions[(repo_id, sha)] = repo
        if tag:
            self.revisions[(repo_id, tag)] = repo
        return repo

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def total_served(self) -> int:
        return sum(self.bytes_served.values())

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(self.address, Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.faults.release.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/?]+))?$")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/?]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    # -- helpers -----------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _repo(self, repo_id: str, rev: str | None) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        auth = self.headers.get("Authorization", "")
        if repo is None:
            self._error(401 if not auth else 404, "RepoNotFound", "Repository not found")
            return None
        if repo.token is not None and auth != f"Bearer {repo.token}":
            if auth:
                self._error(401, None, "Invalid credentials in Authorization header")
            elif repo.gated:
                self._error(401, "GatedRepo", "Access to this model is restricted")
            else:
                self._error(401, "RepoNotFound", "Repository not found")
            return None
        if rev in (None, "main"):
            return repo
        revision = self.fake.revisions.get((repo_id, urllib.parse.unquote(rev)))
        if revision is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return revision

    # -- verbs -------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_PUT(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/_rate":
            self._error(404, None, "not found")
            return
        rate = urllib.parse.parse_qs(query).get("bytes_per_second", ["0"])[0]
        self.fake.faults.bytes_per_second = int(rate)
        self._send(200, b"{}", {"Content-Type": "application/json"})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.fake._lock:
            self.fake.requests.append((self.command, path))
        if path == "/_stats":
            with self.fake._lock:
                served = dict(self.fake.bytes_served)
            stats = {"bytes_served": served, "total": sum(served.values())}
            self._send(200, json.dumps(stats).encode(), {"Content-Type": "application/json"})
        elif m := _INFO.match(path):
            repo = self._repo(m.group(1), m.group(2))
            if repo:
                siblings = [
                    {
                        "rfilename": f.path,
                        "size": f.size,
                        "blobId": f.blob_id,
                        **({"lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 134}} if f.lfs else {}),
                    }
                    for f in repo.files.values()
                ]
                if self.fake.faults.no_hashes:
                    siblings = [{"rfilename": s["rfilename"], "size": s["size"]} for s in siblings]
                info = {"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit, "siblings": siblings}
                self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        elif m := _TREE.match(path):
            repo = self._repo(m.group(1), m.group(2))
            if repo:
                tree = [
                    {
                        "type": "file",
                        "oid": f.blob_id,
                        "size": f.size,
                        "path": f.path,
                        **({"lfs": {"oid": f.sha256, "size": f.size, "pointerSize": 134}} if f.lfs else {}),
                    }
                    for f in repo.files.values()
                ]
                if self.fake.faults.no_hashes:
                    tree = [{"type": "file", "size": t["size"], "path": t["path"]} for t in tree]
                self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
        elif m := _RESOLVE.match(path):
            repo = self._repo(m.group(1), m.group(2))
            if repo:
                f = repo.files.get(m.group(3))
                if f is None:
                    self._error(404, "EntryNotFound", "Entry not found")
                else:
                    self._file(repo, f)
        else:
            self._error(404, None, "not found")

    def _file(self, repo: Repo, f: RepoFile) -> None:
        start, end = 0, f.size - 1
        status = 200
        if rng := re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
            start = int(rng.group(1))
            end = int(rng.group(2)) if rng.group(2) else end
            status = 206
        headers = {
            "X-Repo-Commit": repo.commit,
            "ETag": f'"{f.sha256}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = max(0, end - start + 1)
        extra = self.fake.faults.oversize.get(f.path, 0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(f.size if self.command == "HEAD" else length + extra))
        self.end_headers()
        if self.command == "HEAD":
            return
        faults = self.fake.faults
        cut = faults.cut_after.pop(f.path, None)
        stall = faults.stall_after.get(f.path)
        sent = 0
        with f.source.open("rb") as src:
            src.seek(start)
            remaining = length
            # Throttled, a chunk is what a quarter second carries: a trickle sends a few bytes at a time.
            step = max(1, min(1 << 20, faults.bytes_per_second // 4)) if faults.bytes_per_second else 1 << 20
            while remaining > 0:
                chunk = src.read(min(step, remaining))
                if f.path in faults.corrupt:
                    chunk = bytes(b ^ 0xFF for b in chunk[:16]) + chunk[16:]
                if cut is not None and sent + len(chunk) > cut:
                    chunk = chunk[: max(0, cut - sent)]
                    self._write(f.path, chunk)
                    self.close_connection = True
                    return
                if stall is not None and start + sent + len(chunk) > stall:
                    self._write(f.path, chunk[: max(0, stall - start - sent)])
                    faults.release.wait()
                    self.close_connection = True
                    return
                self._write(f.path, chunk)
                sent += len(chunk)
                remaining -= len(chunk)
        for _ in range(0, extra, 1 << 20):  # what a hostile or broken server appends
            self._write(f.path, os.urandom(min(1 << 20, extra)))

    def _write(self, path: str, chunk: bytes) -> None:
        if rate := self.fake.faults.bytes_per_second:
            time.sleep(len(chunk) / rate)
        try:
            self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        with self.fake._lock:
            self.fake.bytes_served[path] = self.fake.bytes_served.get(path, 0) + len(chunk)


def main(argv: list[str] | None = None) -> None:
    """Serve generated repositories until killed (the in-cluster Hub of the real-node tests)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--data", default="/data", help="where the generated files are written")
    p.add_argument("--repo", action="append", default=[], help="ORG/NAME of a public repository")
    p.add_argument("--gated", action="append", default=[], help="ORG/NAME of a repository gated by --token")
    p.add_argument("--token", default=None, help="the token of the gated repositories (read from $HUB_TOKEN too)")
    p.add_argument("--shards", type=int, default=3)
    p.add_argument("--shard-mb", type=int, default=100)
    a = p.parse_args(argv)
    token = a.token or os.environ.get("HUB_TOKEN")
    hub = FakeHub("0.0.0.0", a.port)
    for i, repo_id in enumerate(a.repo + a.gated):
        files = make_files(Path(a.data) / str(i), a.shards, a.shard_mb << 20)
        gated = repo_id in a.gated
        hub.add_repo(repo_id, files, token=token if gated else None, gated=gated)
    with hub:
        print(f"serving {len(hub.repos)} repositories on :{a.port}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
