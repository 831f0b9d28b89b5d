"""What the operator and the download Job's program agree on: the claim's layout and the lines they exchange.

Why one module: the download Job runs `minimax-operator download` in its own pod and
talks to the operator only through the claim (folders and marker files), its log
(progress lines) and its termination message (one result line). Both sides read
these names from here, and `download/` imports nothing else of the package. Standard
library only.
"""

from __future__ import annotations

import json
from typing import Any

#: Where the claim is mounted, in download pods and in servers (read-only there).
MODELS_MOUNT = "/models"
#: Written last into a verified folder: repo, commit, files, bytes. Its absence means "not verified".
MARKER = ".minimax-complete.json"
#: Hashes already checked in a folder, so that a restarted pod does not hash 200 GB again.
VERIFIED = ".minimax-verified.json"
#: Folder of the vLLM servers' compile caches on the claim, one sub-folder per vLLM image.
COMPILE_FOLDER = ".server-cache"
#: huggingface_hub's home on the claim (hf_xet's chunk cache: a restarted pod resumes from it).
HF_HOME_FOLDER = ".cache/huggingface"
#: Where resumable partial files live inside a commit's folder.
PARTIAL_FOLDER = ".minimax-partial"
#: Names a repository's listing may never use at the top of a commit's folder: ours.
RESERVED_NAMES = frozenset({MARKER, VERIFIED, PARTIAL_FOLDER, ".cache"})
#: A commit id as the Hub gives it (a git sha1).
COMMIT_PATTERN = r"^[0-9a-f]{40}$"
#: The longest termination message the kubelet keeps (4096 bytes), less room to spare.
RESULT_MAX_BYTES = 3800
#: A commit folder, as prune accepts it: nothing else on the claim is ever removed.
COMMIT_FOLDER_PATTERN = r"^revisions/[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*/[0-9a-f]{40}$"
#: A server's compile-cache folder, as prune accepts it (render/server.py compile_subpath): one image's, and
#: one layout's beyond one node's tensor parallelism. Nothing else under COMPILE_FOLDER is removed.
COMPILE_SUBFOLDER_PATTERN = r"^\.server-cache/[A-Za-z0-9._-]{1,200}(@tp[0-9]+-pp[0-9]+(-dp[0-9]+)?-nodes[0-9]+)?$"
#: Keys of a progress line (the downloader's stdout), as status.download shows them.
PROGRESS_KEYS = ("bytesDone", "bytesTotal", "filesDone", "filesTotal", "bytesPerSecond", "etaSeconds", "revision")

Obj = dict[str, Any]


def commit_folder(repo: str, commit: str) -> str:
    """One folder per verified commit, relative to the claim's root."""
    return f"revisions/{repo}/{commit}"


def legacy_folder(repo: str) -> str:
    """Where releases before model caches kept a repo's weights: one folder, any revision."""
    return repo


def progress_line(**values: Any) -> str:
    """The downloader's progress line (JSON, one per interval)."""
    return json.dumps({"event": "progress", **values})


def parse_progress(line: str | None) -> Obj:
    """Download progress from one progress line, with a percentage for `kubectl get`; {} if unreadable."""
    if not line:
        return {}
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return {}
    out: Obj = {k: raw[k] for k in PROGRESS_KEYS if isinstance(raw, dict) and raw.get(k) is not None}
    if out.get("bytesTotal"):
        out["progress"] = f"{min(100, int(100 * out.get('bytesDone', 0) / out['bytesTotal']))}%"
    return out


def parse_result(message: str) -> Obj:
    """The JSON object of a termination message, or {} when it is not one."""
    try:
        out = json.loads(message)
        return out if isinstance(out, dict) else {}
    except json.JSONDecodeError:
        return {}


def failure_text(message: str) -> str:
    """`Reason: message` from a failure's termination message; other text as it is."""
    parsed = parse_result(message)
    if parsed.get("reason"):
        return f"{parsed['reason']}: {parsed.get('message', '')}"
    return message
