"""What the agent needs from a service manager, whichever runs the services."""

from __future__ import annotations

from typing import Protocol

from bootstrap_agent.plan import DesiredService


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


def listening_ports(pid: int, wanted: set[int] | None = None) -> set[int] | None:
    """TCP ports on which ``pid`` or one of its descendants listens; ``None`` if the process is gone.

    A port that merely answers proves nothing: another program may hold it while the unit is failing to
    bind. Readiness therefore asks whether the unit's own processes hold the socket. The main process is
    asked first; its descendants (a scan of every process on the machine) only when it does not hold all of
    ``wanted`` itself.
    """
    import psutil

    def listening(process: psutil.Process) -> set[int]:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            return set()
        return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr}

    try:
        root = psutil.Process(pid)
        ports = listening(root)
        if wanted is not None and wanted <= ports:
            return ports
        for child in root.children(recursive=True):
            ports |= listening(child)
    except psutil.Error:
        return None
    return ports
