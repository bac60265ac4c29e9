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

    def failure_reason(self, unit: str) -> str:
        """Why a unit is not active: the last words of its log, for the operator."""
        ...
