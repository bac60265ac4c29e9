"""The member znode's ``load`` and ``drain`` values: what provision-min chooses victims by and what a draining
node says it is waiting for. Parsed strictly (any client with the secret can write member znodes): a bad
value raises ``ValueError`` with one line, which the member parser turns into ``PeerInvalid``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REASONS = ("lifecycle", "shutdown")
PHASES = ("maintenance", "tasks", "blocks", "shuffle", "done")
OUTCOMES = ("clean", "grace_expired")
MAX_WAITING = 200


@dataclass(frozen=True)
class Load:
    """How busy an agent is, refreshed every pass. ``unpersisted_bytes`` is None when unknown (Alluxio away)."""

    tasks: int
    frameworks: int
    cache_bytes: int
    unpersisted_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "frameworks": self.frameworks, "cache_bytes": self.cache_bytes,
                "unpersisted_bytes": self.unpersisted_bytes}

    def victim_key(self) -> tuple[int, int]:
        """Least loaded first: fewest tasks, then least unpersisted (else cached) bytes."""
        return (self.tasks, self.unpersisted_bytes if self.unpersisted_bytes is not None else self.cache_bytes)


@dataclass(frozen=True)
class DrainReport:
    """A draining node's progress as its member znode carries it."""

    reason: str
    started: float
    deadline: float
    phase: str
    waiting_for: str
    outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "started": float(self.started), "deadline": float(self.deadline),
                "phase": self.phase, "waiting_for": self.waiting_for, "outcome": self.outcome}


def _count(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} {_short(value)} is not a count")
    return value


def _epoch(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} {_short(value)} is not a time in epoch seconds")
    return float(value)


def parse_load(value: Any) -> Load:
    if not isinstance(value, dict):
        raise ValueError(f"load {_short(value)} is not an object")
    unpersisted = value.get("unpersisted_bytes")
    return Load(
        _count(value.get("tasks"), "load.tasks"), _count(value.get("frameworks"), "load.frameworks"),
        _count(value.get("cache_bytes"), "load.cache_bytes"),
        None if unpersisted is None else _count(unpersisted, "load.unpersisted_bytes"),
    )


def parse_drain_report(value: Any) -> DrainReport:
    if not isinstance(value, dict):
        raise ValueError(f"drain {_short(value)} is not an object")
    reason, phase, outcome = value.get("reason"), value.get("phase"), value.get("outcome")
    if reason not in REASONS:
        raise ValueError(f"drain.reason {_short(reason)} is not one of {', '.join(REASONS)}")
    if phase not in PHASES:
        raise ValueError(f"drain.phase {_short(phase)} is not one of {', '.join(PHASES)}")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"drain.outcome {_short(outcome)} is not null or one of {', '.join(OUTCOMES)}")
    waiting = value.get("waiting_for", "")
    if not isinstance(waiting, str) or len(waiting) > MAX_WAITING or any(c in waiting for c in "\n\r\x00"):
        raise ValueError(f"drain.waiting_for {_short(waiting)} is not one line of text")
    started, deadline = _epoch(value.get("started"), "drain.started"), _epoch(value.get("deadline"), "drain.deadline")
    if deadline < started:
        raise ValueError("drain.deadline is before drain.started")
    return DrainReport(str(reason), started, deadline, str(phase), waiting, outcome)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
