"""What one builder of ``plan()`` returns: the files and services of one piece of a node, in start order."""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap_agent.desired import DesiredFile, DesiredService


@dataclass(frozen=True)
class Part:
    """Builders return parts and ``plan()`` adds them up, so the order of the additions is the start order."""

    files: tuple[DesiredFile, ...] = ()
    services: tuple[DesiredService, ...] = ()

    def __add__(self, other: Part) -> Part:
        return Part(self.files + other.files, self.services + other.services)

    @property
    def units(self) -> tuple[str, ...]:
        """The units of this part: what a service that lives on it ``requires`` (a mount)."""
        return tuple(service.unit for service in self.services)
