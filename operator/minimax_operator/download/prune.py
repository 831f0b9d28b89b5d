"""`minimax-operator prune`: remove commit folders of a claim that no server uses any more.

The cache's prune Job runs this. Only what protocol.COMMIT_FOLDER_PATTERN names (or a
legacy folder holding a completion marker) is removed; nothing else on the claim.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
from pathlib import Path

from ..protocol import COMMIT_FOLDER_PATTERN, MARKER, VERIFIED
from .job import DownloadError, terminate

_COMMIT_FOLDER = re.compile(COMMIT_FOLDER_PATTERN)


def prune(root: Path, rel: str) -> int:
    """Remove one verified folder the operator says no server uses; returns the bytes freed.

    Only folders that carry our completion marker, inside the claim: a commit folder
    (`revisions/ORG/NAME/COMMIT`) goes whole; a folder of a release before model caches
    loses only the files its marker lists (anything a person put beside them stays).
    """
    base = root.resolve()
    folder = (root / rel).resolve()
    if base not in folder.parents:
        raise DownloadError("InvalidPath", f"{rel} is not inside {root}")
    marker_path = folder / MARKER
    if not folder.is_dir():
        return 0  # gone already: pruning is idempotent
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, ValueError):
        raise DownloadError("NotAModelFolder", f"{rel} has no completion marker: left alone") from None
    freed = 0
    if _COMMIT_FOLDER.match(rel):
        for p in folder.rglob("*"):
            if p.is_file():
                freed += p.stat().st_size
        shutil.rmtree(folder)
    else:
        for name in [*marker.get("files", []), VERIFIED]:
            p = (folder / name).resolve()
            if folder in p.parents and p.is_file():
                freed += p.stat().st_size
                p.unlink()
        shutil.rmtree(folder / ".minimax-partial", ignore_errors=True)
        marker_path.unlink()
        for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()  # only empty ones
        with contextlib.suppress(OSError):
            folder.rmdir()
    parent = folder.parent
    while parent != base and base in parent.parents:
        try:
            parent.rmdir()  # empty revision folders of the repo
        except OSError:
            break
        parent = parent.parent
    return freed


def add_prune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="the claim's mount")
    p.add_argument("--path", action="append", default=[], help="folder to remove, relative to ROOT (repeat)")


def prune_main(args: argparse.Namespace) -> int:
    freed, removed = 0, []
    try:
        for rel in args.path:
            freed += prune(Path(args.root), rel)
            removed.append(rel)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        terminate({"reason": e.reason, "message": e.message, "removed": removed})
        return 1
    terminate({"removed": removed, "bytesFreed": freed})
    return 0
