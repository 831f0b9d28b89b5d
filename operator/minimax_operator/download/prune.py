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

from ..protocol import COMMIT_FOLDER_PATTERN, COMPILE_SUBFOLDER_PATTERN, MARKER, PARTIAL_FOLDER, VERIFIED
from .job import DownloadError, terminate
from .paths import UnsafePath, check_name, confined, no_links

_COMMIT_FOLDER = re.compile(COMMIT_FOLDER_PATTERN)
_COMPILE_FOLDER = re.compile(COMPILE_SUBFOLDER_PATTERN)


def prune(root: Path, rel: str) -> int:
    """Remove one verified folder the operator says no server uses; returns the bytes freed.

    Only folders that carry our completion marker, inside the claim, reached without a
    symbolic link: a commit folder (`revisions/ORG/NAME/COMMIT`) goes whole; a folder of a
    release before model caches loses only the files its marker lists (anything a person
    put beside them stays). A marker of the wrong shape leaves the folder alone.
    """
    try:
        check_name(rel)
        folder = no_links(root, rel)
    except UnsafePath as e:
        raise DownloadError("InvalidPath", f"{rel} is not a folder inside the claim that prune may remove: {e}") from e
    marker_path = folder / MARKER
    if not folder.is_dir():
        return 0  # gone already: pruning is idempotent
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, ValueError):
        raise DownloadError("NotAModelFolder", f"{rel} has no completion marker: left alone") from None
    files = marker.get("files", []) if isinstance(marker, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise DownloadError("NotAModelFolder", f"{rel} has a completion marker of the wrong shape: left alone")
    freed = 0
    if _COMMIT_FOLDER.match(rel):
        for p in folder.rglob("*"):
            if p.is_file() and not p.is_symlink():
                freed += p.stat().st_size
        shutil.rmtree(folder)  # removes symbolic links inside, never what they point at
    else:
        for name in [*files, VERIFIED]:
            try:
                p = confined(folder, name)
            except UnsafePath:
                continue  # a name no download of ours wrote: left alone
            if p.is_file():
                freed += p.stat().st_size
                p.unlink()
        shutil.rmtree(folder / PARTIAL_FOLDER, ignore_errors=True)
        marker_path.unlink()
        for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()  # only empty ones
        with contextlib.suppress(OSError):
            folder.rmdir()
    base = root
    parent = folder.parent
    while parent != base and base in parent.parents:
        try:
            parent.rmdir()  # empty revision folders of the repo
        except OSError:
            break
        parent = parent.parent
    return freed


def prune_compile(root: Path, rel: str) -> int:
    """Remove a server's compile-cache folder the operator says no server mounts any more; the bytes freed.

    Only a name of the shape the operator gives these folders, inside the claim, reached without a symbolic
    link; links inside are removed, never followed. What is there is the servers' own (compiled graphs,
    kernels), rebuilt by the next server that needs it.
    """
    if not _COMPILE_FOLDER.match(rel):
        raise DownloadError("InvalidPath", f"{rel} is not a compile-cache folder prune may remove")
    try:
        check_name(rel)
        folder = no_links(root, rel)
    except UnsafePath as e:
        raise DownloadError("InvalidPath", f"{rel} is not a folder inside the claim that prune may remove: {e}") from e
    if not folder.is_dir():
        return 0  # gone already
    freed = sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    shutil.rmtree(folder)
    return freed


def add_prune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="the claim's mount")
    p.add_argument("--path", action="append", default=[], help="folder to remove, relative to ROOT (repeat)")
    p.add_argument(
        "--compile-folder", action="append", default=[], help="compile-cache folder to remove, relative to ROOT"
    )


def prune_main(args: argparse.Namespace) -> int:
    freed, removed = 0, []
    try:
        for rel in args.path:
            freed += prune(Path(args.root), rel)
            removed.append(rel)
        for rel in getattr(args, "compile_folder", None) or []:
            freed += prune_compile(Path(args.root), rel)
            removed.append(rel)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        terminate({"reason": e.reason, "message": e.message, "removed": removed})
        return 1
    terminate({"removed": removed, "bytesFreed": freed})
    return 0
