"""Install desired files the way a careful operator would: stage, check, keep a backup, rename.

Every file is first written next to its target (same filesystem, so ``rename`` is atomic), fsynced, given
its final mode before it becomes visible, checked where a checker exists, and only then renamed over the
old one, whose previous content stays as ``<name>.bak``. A file whose content and mode already match is not
touched at all: a second pass with the same inputs writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap_agent.checkers import CHECKERS
from bootstrap_agent.desired import DesiredFile
from bootstrap_agent.layout import Layout


@dataclass
class InstallResult:
    changed: list[str] = field(default_factory=list)  # node paths whose content or mode was changed
    failed: dict[str, str] = field(default_factory=dict)  # node path -> reason; the old file stays


# What this process last installed or found in place, by target: the content object and the file's stat then.
# A pass that hands over the very same bytes object (a master's unchanged member pages, status.json) for a
# file whose device, inode, size, mode, owner, group, mtime and ctime are as they were needs no read-back to know
# it is unchanged: at 10,000 members that read-back of every page and document was a good part of a pass
# (issue 17). The ctime is what makes the skip safe: every write, chmod or chown moves it, and unlike the mtime
# no one but the kernel can set it back.
_SEEN: dict[str, tuple[bytes, int, str | None, tuple[int, ...]]] = {}


def _signature(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mode, stat.st_uid, stat.st_gid, stat.st_mtime_ns,
            stat.st_ctime_ns)


def install(files: Iterable[DesiredFile], layout: Layout) -> InstallResult:
    result = InstallResult()
    for desired in files:
        target = Path(layout.path(desired.path))
        try:
            seen = _SEEN.get(str(target))
            if (seen is not None and seen[0] is desired.content and seen[1:3] == (desired.mode, desired.group)
                    and seen[3] == _signature(target.stat())):
                continue
        except FileNotFoundError:
            pass
        try:
            if _install_one(desired, target, layout.root):
                result.changed.append(desired.path)
        except CheckFailed as exc:
            result.failed[desired.path] = str(exc)
            continue
        except OSError as exc:
            result.failed[desired.path] = f"{exc.strerror or exc} ({exc.filename or target})"
            continue
        with contextlib.suppress(OSError):
            _SEEN[str(target)] = (desired.content, desired.mode, desired.group, _signature(target.stat()))
    return result


class CheckFailed(Exception):
    pass


def _install_one(desired: DesiredFile, target: Path, root: str) -> bool:
    try:
        stat = target.stat()
        if ((stat.st_mode & 0o7777) == desired.mode and target.read_bytes() == desired.content
                and (not desired.group or stat.st_gid == _gid(desired.group))):
            return False
        exists = True
    except FileNotFoundError:
        exists = False
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = write_staged(target, desired.content, desired.mode, sync=desired.durable)
    bak: Path | None = None
    try:
        if desired.group:
            os.chown(staged, 0, _gid(desired.group))
        if desired.check:
            problem = CHECKERS[desired.check](staged, root)
            if problem:
                raise CheckFailed(f"{desired.check} check failed: {problem}")
        if exists and desired.durable:
            backup = target.with_name(target.name + ".bak")
            bak = write_staged(target, target.read_bytes(), target.stat().st_mode & 0o7777)
            os.replace(bak, backup)
            bak = None
        os.replace(staged, target)
    except BaseException:
        _discard(staged, bak)
        raise
    if desired.durable:
        _fsync_dir(target.parent)
    return True


def write_staged(target: Path, content: bytes, mode: int, sync: bool = True) -> Path:
    """A hidden, fsynced (unless not ``sync``) file beside ``target`` that already has its final mode (never
    briefly 0644)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".staged", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=True) as handle:
            handle.write(content)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    return Path(name)


def write_atomic(target: Path, content: bytes, mode: int = 0o644) -> None:
    """Stage + rename for the agent's own state files (no check, no backup)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = write_staged(target, content, mode)
    try:
        os.replace(staged, target)
    except BaseException:
        _discard(staged)
        raise
    _fsync_dir(target.parent)


def _discard(*staged: Path | None) -> None:
    """A failed install leaves nothing of its own behind: no staged copy, no staged backup."""
    for path in staged:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _gid(group: str) -> int:
    """The group's id; a group missing on this machine (a bare test root) leaves the file to root."""
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return 0
