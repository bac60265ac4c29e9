"""The agent's ``lifecycle`` and ``drain`` sections: how an agent learns that it is being removed (the autoscaling
group's ``INSTANCE_TERMINATING`` hook) and how long it may take to leave safely.

Both are optional and agents only: without ``lifecycle`` the node never polls the AS API (a SIGTERM still
drains), without ``drain`` the defaults hold. ``grace`` must stay below the hook's default timeout (3600 s on
the hooks ``provision-min up`` creates): a drain that outlives the hook would be cut off by the group anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.readers import kind, read_object, read_string, read_url, required

LIFECYCLE_KEYS = frozenset({"endpoint", "group", "hook", "poll"})
DRAIN_KEYS = frozenset({"grace", "stop_timeout"})
HOOK_TIMEOUT = 3600  # the lifecycle hook's default_timeout: grace must end before it
# OTC: a group name is 1-64 letters, digits, '_' and '-'; a hook name 1-32 of the same.
GROUP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOOK_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# https://as.<region>.otc.t-systems.com/autoscaling-api/v1/<project_id> (the local cloud: .../v1/local)
AS_PATH = re.compile(r"^/autoscaling-api/v1/[A-Za-z0-9_-]{1,64}/?$")


@dataclass(frozen=True)
class LifecycleSettings:
    """Where the node asks whether its own removal is pending, and how often."""

    endpoint: str
    group: str
    hook: str
    poll: int = 15


@dataclass(frozen=True)
class DrainSettings:
    """Bounds of a drain in seconds: ``grace`` for a removal (tasks, blocks, shuffle together), ``stop_timeout``
    for a node shutting down on its own (SIGTERM)."""

    grace: int = 1800
    stop_timeout: int = 300


def parse_lifecycle(value: Any, role: str) -> LifecycleSettings:
    obj = read_object(value, "lifecycle", LIFECYCLE_KEYS)
    if role != "agent":
        raise InvalidInput("lifecycle", "only an agent's user-data may carry it (masters are not scaled in)")
    endpoint = read_url(required(obj, "endpoint", "lifecycle"), "lifecycle.endpoint")
    if not AS_PATH.match(urlsplit(endpoint).path):
        raise InvalidInput("lifecycle.endpoint", f"{endpoint!r} must end in /autoscaling-api/v1/<project_id>")
    group = read_string(required(obj, "group", "lifecycle"), "lifecycle.group")
    if not GROUP_NAME.match(group):
        raise InvalidInput("lifecycle.group", "an AS group name: 1-64 characters of A-Z, a-z, 0-9, '_-'")
    hook = read_string(required(obj, "hook", "lifecycle"), "lifecycle.hook")
    if not HOOK_NAME.match(hook):
        raise InvalidInput("lifecycle.hook", "a lifecycle hook name: 1-32 characters of A-Z, a-z, 0-9, '_-'")
    poll = _seconds(obj.get("poll", 15), "lifecycle.poll", 1, 600)
    return LifecycleSettings(endpoint.rstrip("/"), group, hook, poll)


def parse_drain(value: Any, role: str) -> DrainSettings:
    obj = read_object(value, "drain", DRAIN_KEYS)
    if role != "agent":
        raise InvalidInput("drain", "only an agent's user-data may carry it (masters do not drain)")
    grace = _seconds(obj.get("grace", 1800), "drain.grace", 0, HOOK_TIMEOUT - 1,
                     why=f"below the lifecycle hook's default timeout of {HOOK_TIMEOUT}")
    stop_timeout = _seconds(obj.get("stop_timeout", 300), "drain.stop_timeout", 1, 3600)
    return DrainSettings(grace, stop_timeout)


def _seconds(value: Any, path: str, low: int, high: int, why: str = "") -> int:
    if type(value) is not int:
        raise InvalidInput(path, f"expected whole seconds, got {kind(value)}")
    if not low <= value <= high:
        because = f" ({why})" if why else ""
        raise InvalidInput(path, f"must be {low}..{high} seconds{because}, got {value}")
    return value
