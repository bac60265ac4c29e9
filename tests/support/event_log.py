"""A structlog-like logger for in-process tests that keeps every event it is given, in order, as
``(event, fields)`` in ``events``; ``info``, ``warning`` and ``error`` all record (tests assert the event
names and fields, not the level)."""

from __future__ import annotations

from typing import Any


class EventLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _add(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    info = warning = error = _add

    def names(self) -> list[str]:
        return [name for name, _ in self.events]
