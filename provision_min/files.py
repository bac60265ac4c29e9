"""Files that hold secrets: written atomically and readable by the owner only.

A crash or a full disk must never leave a half-written state file (the cluster secret would be lost, and the
next ``up`` would hand new nodes a different one), so content is staged in the same folder and renamed over
the target. The staging file is created with mode 0600 before anything is written into it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from provision_min.errors import InputError


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600: stage beside it, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, staged = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_private(path: Path) -> bytes | None:
    """The content of a secret-holding file, or None when it does not exist.

    A file others can read is refused rather than used: its secret may already have leaked, and silently
    tightening the mode would hide that from the operator.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(
            f"{path} holds secrets but is accessible by group/others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    return path.read_bytes()
