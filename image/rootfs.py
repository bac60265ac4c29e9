"""A root filesystem on the host: what an image build needs from the host's filesystem and mounts.

Unmount-before-remove, a build lock that survives a crashed builder, ``/proc`` and the resolver in a chroot
for as long as a step runs, and the tree's size: shared by the local builder and the tests' own rootfs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from image.recipe import BuildError


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    prefix = os.path.realpath(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """``rm -rf`` that first unmounts anything below ``path`` and refuses to delete through a mount."""
    for point in mounts_below(path):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)
    left = mounts_below(path)
    if left:
        raise BuildError(f"cannot remove {path}: still mounted: {left}")
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BuildError(f"{path} stayed locked for {timeout:.0f} s (another build?)") from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def chroot_mounts(rootfs: Path, *, network: bool) -> Iterator[None]:
    """``/proc`` mounted in the chroot meanwhile; with ``network``, the host's resolver (for apt) too."""
    resolv = rootfs / "etc/resolv.conf"
    saved = resolv.read_bytes() if resolv.is_file() else None
    if network:
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)
    proc = rootfs / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True, capture_output=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["umount", str(proc)], capture_output=True, timeout=30, check=False)
        if mounts_below(proc):
            subprocess.run(["umount", "-l", str(proc)], capture_output=True, timeout=30, check=False)
        if network:
            resolv.unlink(missing_ok=True)
            if saved is not None:
                resolv.write_bytes(saved)


def touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def tree_size(path: Path) -> int:
    """Bytes used by the files below ``path`` (``du -sb``)."""
    result = subprocess.run(["du", "-sb", "--", str(path)], capture_output=True, text=True, timeout=120, check=True)
    return int(result.stdout.split()[0])
