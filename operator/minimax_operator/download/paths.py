"""Where the downloader may write: every name from a listing is checked before a file is opened.

Why: the repo, the revision and the mirror (`spec.download.endpoint`) are chosen by a
namespace's users, so the listing is untrusted input. A name with `..` segments, an
absolute path, control characters or a backslash, or a path through a symbolic link on
the claim, could write outside the commit's folder (into another model's folder, where
`--trust-remote-code` would run it). A name may not be one of ours either (a marker served
in the listing would make an unverified folder look verified).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..protocol import COMMIT_PATTERN, RESERVED_NAMES

#: A file system's limit on one name, in bytes.
NAME_MAX_BYTES = 255
#: The longest path accepted from a listing.
PATH_MAX = 1024


class UnsafePath(ValueError):
    """A name from the server that must not be written."""


def check_name(name: str) -> str:
    """`name` as a relative POSIX path that stays inside its folder; UnsafePath says why not."""
    if not isinstance(name, str) or not name:
        raise UnsafePath("an empty name")
    if len(name) > PATH_MAX:
        raise UnsafePath(f"a name of {len(name)} characters (at most {PATH_MAX})")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafePath(f"{name!r} has control characters")
    if "\\" in name:
        raise UnsafePath(f"{name!r} has a backslash")
    if name.startswith("/"):
        raise UnsafePath(f"{name!r} is an absolute path")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{name!r} has an empty, '.' or '..' segment")
    if parts[0] in RESERVED_NAMES:
        raise UnsafePath(f"{name!r} is a name the operator keeps for itself")
    if any(len(p.encode()) > NAME_MAX_BYTES for p in parts):
        raise UnsafePath(f"{name!r} has a segment longer than {NAME_MAX_BYTES} bytes")
    return name


def check_commit(commit: object) -> str:
    """A commit id is 40 lowercase hex characters (it names a folder on the claim)."""
    if not isinstance(commit, str) or not re.fullmatch(COMMIT_PATTERN, commit):
        shown = repr(commit)[:60]
        raise UnsafePath(f"the commit id {shown} is not 40 hex characters")
    return commit


def confined(folder: Path, rel: str) -> Path:
    """`folder/rel` for a checked name, refusing a path through a symbolic link or out of `folder`."""
    check_name(rel)
    path = folder
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            raise UnsafePath(f"{rel!r}: {path} is a symbolic link on the claim")
    base = folder.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePath(f"{rel!r} resolves outside {folder}")
    return path


def no_links(root: Path, rel: str) -> Path:
    """`root/rel` for a folder the downloader makes itself, with no symbolic link on the way."""
    path = root
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            raise UnsafePath(f"{path} is a symbolic link on the claim")
    return path
