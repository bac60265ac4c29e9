"""The cluster file's ``agents``, ``drain`` and ``autoscaling`` sections (``config.parse`` reads them here):
the AS group's limits, how agents leave, and the scaler's policy, each checked against the others' limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision_min.config_fields import kind, show, whole
from provision_min.errors import InputError

HOOK_TIMEOUT = 3600  # the lifecycle hook's default_timeout (bootstrap_agent.schema.lifecycle.HOOK_TIMEOUT)


@dataclass(frozen=True)
class Agents:
    min: int
    max: int
    desired: int


@dataclass(frozen=True)
class Drain:
    """How agents leave (the cluster file's ``drain``, handed to the agents' user-data): ``grace`` bounds a
    removal's drain, ``stop_timeout`` a shutdown's, ``poll`` how often an agent asks whether it is to leave.
    The lifecycle hook's ``default_timeout`` is fixed (``HOOK_TIMEOUT``) and every grace ends before it."""

    grace: int = 1800
    stop_timeout: int = 300
    poll: int = 15

    @property
    def hook_timeout(self) -> int:
        return HOOK_TIMEOUT


DRAIN_KEYS = ("grace", "poll", "stop_timeout")


def drain_section(value: Any) -> Drain:
    """``drain``: whole seconds; every grace must end before the lifecycle hook's timeout lets the group go on."""
    if not isinstance(value, dict):
        raise InputError(f"drain: expected a mapping with grace, stop_timeout and poll, got {kind(value)}")
    for key in value:
        if key not in DRAIN_KEYS:
            raise InputError(f"drain.{key}: unknown key (known: {', '.join(DRAIN_KEYS)})")
    grace = whole(value, "grace", Drain.grace, 0, HOOK_TIMEOUT - 1, "drain.")
    return Drain(grace=grace, stop_timeout=whole(value, "stop_timeout", Drain.stop_timeout, 1, 3600, "drain."),
                 poll=whole(value, "poll", Drain.poll, 1, 600, "drain."))


def autoscaling_section(value: Any, agents: Agents) -> dict[str, Any] | None:
    """The scaler's policy for the masters' user-data (the agent's schema checks the rest when the user-data is
    built): ``min``/``max`` default to the group's ``agents`` limits and may narrow them, never widen them."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(f"autoscaling: expected a mapping, got {kind(value)}")
    section = dict(value)
    section.setdefault("min", agents.min)
    section.setdefault("max", agents.max)
    for key, low, high in (("min", agents.min, agents.max), ("max", agents.min, agents.max)):
        number = section[key]
        if type(number) is not int:
            raise InputError(f"autoscaling.{key}: must be a whole number, got {show(number)}")
        if not low <= number <= high:
            raise InputError(f"autoscaling.{key}: {number} is outside agents.min..agents.max ({low}..{high}); "
                             "the scaler never crosses the group's limits")
    if section["min"] > section["max"]:
        raise InputError(f"autoscaling.min: {section['min']} is larger than autoscaling.max {section['max']}")
    return section


def agents_section(value: Any) -> Agents:
    if not isinstance(value, dict):
        raise InputError(f"agents: expected a mapping with min, max and desired, got {kind(value)}")
    for key in value:
        if key not in ("min", "max", "desired"):
            raise InputError(f"agents.{key}: unknown key (known: desired, max, min)")
    numbers = {}
    for key in ("min", "max", "desired"):
        if key not in value:
            raise InputError(f"agents.{key}: required")
        number = value[key]
        if type(number) is not int or number < 0:
            raise InputError(f"agents.{key}: must be a whole number >= 0, got {show(number)}")
        numbers[key] = number
    if numbers["max"] < 1:
        raise InputError("agents.max: must be at least 1")
    if numbers["min"] > numbers["max"]:
        raise InputError(f"agents.min: {numbers['min']} is larger than agents.max {numbers['max']}")
    if not numbers["min"] <= numbers["desired"] <= numbers["max"]:
        raise InputError(
            f"agents.desired: {numbers['desired']} is outside agents.min..agents.max "
            f"({numbers['min']}..{numbers['max']})"
        )
    return Agents(min=numbers["min"], max=numbers["max"], desired=numbers["desired"])
