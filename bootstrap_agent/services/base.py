"""What the agent needs from a service manager, whichever runs the services."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from bootstrap_agent.desired import DesiredService

T = TypeVar("T")


class ServiceError(Exception):
    """A start, stop or reload that did not happen; the message says why in one line."""


class ServiceManager(Protocol):
    name: str

    def daemon_reload(self) -> None: ...

    def enable(self, service: DesiredService) -> None: ...

    def disable(self, unit: str) -> None: ...

    def start(self, service: DesiredService) -> None: ...

    def restart(self, service: DesiredService) -> None: ...

    def reload(self, service: DesiredService) -> None: ...

    def stop(self, unit: str) -> None: ...

    def is_active(self, unit: str) -> bool: ...

    def main_pid(self, unit: str) -> int | None:
        """The unit's main process, to tell its listening sockets from anybody else's."""
        ...

    def failure_reason(self, unit: str) -> str:
        """Why a unit is not active: the last words of its log, for the operator."""
        ...

    def run_oneshot(self, unit: str, like: DesiredService) -> None:
        """Run a oneshot unit to its end (``like``: the service it prepares, for its version and environment);
        ``ServiceError`` with the reason when it fails."""
        ...


def listening_ports(pid: int, wanted: set[int] | None = None) -> set[int] | None:
    """TCP ports on which ``pid`` or one of its descendants listens; ``None`` if the process is gone.

    A port that merely answers proves nothing: another program may hold it while the unit is failing to
    bind. Readiness therefore asks whether the unit's own processes hold the socket. The main process is
    asked first; its descendants (a scan of every process on the machine) only when it does not hold all of
    ``wanted`` itself.
    """
    import psutil

    proven = _still_proven(pid, wanted)
    if proven is not None:
        return proven
    sockets: dict[int, tuple[int, int, str]] = {}  # wanted port -> (holder pid, fd, "socket:[inode]")

    def listening(process: psutil.Process) -> set[int]:
        ports = set()
        for c in process.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr:
                ports.add(c.laddr.port)
                if wanted and c.laddr.port in wanted and c.fd >= 0:
                    link = _fd_link(process.pid, c.fd)
                    if link is not None and link.startswith("socket:["):
                        sockets[c.laddr.port] = (process.pid, c.fd, link)
        return ports

    found = _held(pid, listening, wanted)
    if found is not None and wanted and wanted <= sockets.keys():
        started = _start_time(pid)
        if started is not None:
            if len(_PROOFS) >= _PROOFS_MAX:
                _PROOFS.pop(next(iter(_PROOFS)))
            _PROOFS[(pid, started)] = dict(sockets)
    return found


# Ports proven held by a unit's process, by (pid, start time): {port: (holder pid, fd, "socket:[inode]")}. A
# listening socket listens until it is closed, and its inode is not reused while it exists, so while that very
# process runs and the holder's fd still links to that socket, the proof stands: one readlink per port instead
# of psutil's scan of every fd and of the kernel's whole TCP table, which cost ~8 ms CPU per unit and pass on a
# master (issue 17). Anything else (restart, closed or replaced fd, other ports) scans again.
_PROOFS: dict[tuple[int, str], dict[int, tuple[int, int, str]]] = {}
_PROOFS_MAX = 64


def _start_time(pid: int) -> str | None:
    """The process' start time in clock ticks (``/proc/<pid>/stat`` field 22): with the pid, one process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _still_proven(pid: int, wanted: set[int] | None) -> set[int] | None:
    """``wanted`` when an earlier scan proved ``pid`` (or a descendant) holds each of those ports and the same
    sockets are still open in the same processes; None: scan again."""
    if not wanted:
        return None
    started = _start_time(pid)
    proof = _PROOFS.get((pid, started)) if started is not None else None
    if proof is None or not wanted <= proof.keys():
        return None
    for port in wanted:
        holder, fd, link = proof[port]
        if _fd_link(holder, fd) != link:
            return None
    return set(wanted)


def _fd_link(pid: int, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None


def bound_unix_sockets(pid: int, wanted: set[str] | None = None) -> set[str] | None:
    """Paths of the unix sockets ``pid`` or a descendant has bound (dockerd's API socket); ``None`` if gone.

    The kernel does not say whether a unix socket listens, but a daemon binds its API socket just before it
    listens on it, and a socket file left by somebody else (a stale one, a previous run) is not bound by the
    unit's processes: the same proof of ownership as for TCP ports.
    """
    import psutil

    def bound(process: psutil.Process) -> set[str]:
        addresses: list[object] = [c.laddr for c in process.net_connections(kind="unix")]
        return {a for a in addresses if isinstance(a, str) and a}

    return _held(pid, bound, wanted)


def _held(pid: int, held_by: Callable[[Any], set[T]], wanted: set[T] | None) -> set[T] | None:
    import psutil

    def ask(process: psutil.Process) -> set[T]:
        try:
            return held_by(process)
        except psutil.Error:
            return set()

    try:
        root = psutil.Process(pid)
        found = ask(root)
        if wanted is not None and wanted <= found:
            return found
        for child in root.children(recursive=True):
            found |= ask(child)
    except psutil.Error:
        return None
    return found


def child_pids(pid: int | None) -> set[int]:
    """The direct children of ``pid`` now (nginx: its workers); empty when it is gone or unknown."""
    import psutil

    if pid is None:
        return set()
    try:
        return {child.pid for child in psutil.Process(pid).children()}
    except psutil.Error:
        return set()


def wait_gone(pids: set[int], timeout: float) -> bool:
    """Until none of ``pids`` runs (zombies count as gone), at most ``timeout`` seconds; True if they went.

    A reload is only a signal: nginx answers with the old configuration until its old workers have exited,
    so a pass that reloaded waits for them before it calls the node configured."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.Error:
                continue
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
