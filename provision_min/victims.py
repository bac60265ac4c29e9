"""Which agents leave when ``scale N`` lowers the count: the least loaded first. Pure: no I/O.

The group's own removal policy (oldest or newest instance first) knows nothing of the work on a node; a node
with running tasks or cache blocks not yet persisted costs a drain, an idle one costs nothing. So the
provisioner picks the victims itself from what each agent reports in its member znode (``load``, read through
the masters' status document) and removes exactly those instances.

Order (cheapest first): an instance with no member (still booting, or broken: nothing runs there), then by
running tasks, then by bytes only its cache holds that are not persisted (``unpersisted_bytes``; the cache's
``cache_bytes`` when that is unknown), then cache bytes, then the newest instance. An agent that reports no
``load`` at all (an older bootstrap-agent) sorts after every agent that does: its cost is unknown.
Instances already on their way out (``REMOVING_WAIT``/``REMOVING``) are never picked and count as gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provision_min.errors import InputError

LEAVING = frozenset({"REMOVING_WAIT", "REMOVING", "REMOVING_WAIT_FOR_HOOK", "REMOVED"})
STAYING = frozenset({"INSERVICE", "PENDING", "PENDING_WAIT", "ENTERING_STANDBY", "STANDBY"})


@dataclass(frozen=True)
class Load:
    """What an agent reports of its work (the member znode's ``load``); None where it did not say."""

    tasks: int | None = None
    frameworks: int | None = None
    cache_bytes: int | None = None
    unpersisted_bytes: int | None = None

    @classmethod
    def of(cls, raw: Any) -> Load | None:
        """The member's ``load`` object, None when absent or not an object (an older agent)."""
        if not isinstance(raw, Mapping):
            return None

        def number(key: str) -> int | None:
            value = raw.get(key)
            return value if type(value) is int and value >= 0 else None

        return cls(number("tasks"), number("frameworks"), number("cache_bytes"), number("unpersisted_bytes"))

    @property
    def idle(self) -> bool:
        """Nothing to wait for: no task, no framework's executors, no unpersisted block."""
        return (self.tasks == 0 and not self.frameworks
                and (self.unpersisted_bytes == 0 or (self.unpersisted_bytes is None and not self.cache_bytes)))


@dataclass(frozen=True)
class Candidate:
    """One instance of the group with what its member says (``member`` None: not registered)."""

    instance_id: str
    name: str
    lifecycle: str
    created: str = ""  # the group's create_time: ISO text sorts as time
    member: Mapping[str, Any] | None = None
    configuration_id: str = ""  # the AS configuration it was made from (a rollout replaces older ones)

    @property
    def load(self) -> Load | None:
        return None if self.member is None else Load.of(self.member.get("load"))


@dataclass(frozen=True)
class Victim:
    instance_id: str
    name: str
    ip: str
    load: Load | None
    registered: bool

    def describe(self) -> str:
        """One line for a person: why this one (``idle``, ``2 task(s), 10.0 MB unpersisted``...)."""
        if not self.registered:
            return "not registered (nothing runs there)"
        if self.load is None:
            return "load unknown (the agent does not report it)"
        if self.load.idle:
            return "idle"
        parts = [f"{self.load.tasks if self.load.tasks is not None else '?'} task(s)"]
        if self.load.unpersisted_bytes == 0:
            parts.append("nothing unpersisted")
        elif self.load.unpersisted_bytes is not None:
            parts.append(f"{_size(self.load.unpersisted_bytes)} unpersisted")
        elif self.load.cache_bytes is not None:
            parts.append(f"{_size(self.load.cache_bytes)} cached (persistence unknown)")
        return ", ".join(parts)


def _size(count: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def cost(candidate: Candidate) -> tuple[Any, ...]:
    """The sort key: smaller leaves first (see the module's docstring for the order and why)."""
    if candidate.member is None:
        return (0, 0, 0, 0, _newest(candidate.created), candidate.instance_id)
    load = candidate.load
    if load is None:
        return (2, 0, 0, 0, _newest(candidate.created), candidate.instance_id)
    unknown = 1 << 62
    tasks = load.tasks if load.tasks is not None else unknown
    cache = load.cache_bytes if load.cache_bytes is not None else unknown
    unpersisted = load.unpersisted_bytes if load.unpersisted_bytes is not None else cache
    return (1, tasks, unpersisted, cache, _newest(candidate.created), candidate.instance_id)


def _newest(created: str) -> tuple[int, ...]:
    """Newest first among equals: the negated code points of the ISO time sort it descending."""
    return tuple(-ord(ch) for ch in created)


def staying(instances: Iterable[Candidate]) -> list[Candidate]:
    """The instances that count towards the group's size (not already on their way out)."""
    return [c for c in instances if c.lifecycle not in LEAVING]


def choose(instances: Iterable[Candidate], count: int) -> list[Victim]:
    """The instances to remove so that ``count`` stay, cheapest first; none when ``count`` or more do not
    stay already. Only ``INSERVICE`` instances can be removed (OTC's rule), so fewer may come back than would
    be needed while some are still starting (refusing is ``scale``'s business, not the choice's)."""
    if count < 0:
        raise InputError(f"scale {count}: the count must be a whole number >= 0")
    pool = staying(instances)
    surplus = len(pool) - count
    if surplus <= 0:
        return []
    chosen = sorted((c for c in pool if c.lifecycle == "INSERVICE"), key=cost)[:surplus]
    return [Victim(c.instance_id, c.name, str((c.member or {}).get("ip") or ""), c.load, c.member is not None)
            for c in chosen]


def candidates(instances: Iterable[Mapping[str, Any]], members: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """Join the group's instance list with the agents' members (a member's ``uuid`` is its instance id,
    the metadata service's ``uuid``)."""
    by_uuid = {str(m.get("uuid")): m for m in members if isinstance(m, Mapping) and m.get("role") == "agent"}
    found = []
    for item in instances:
        instance_id = str(item.get("instance_id") or "")
        if not instance_id:
            continue
        found.append(Candidate(instance_id, str(item.get("instance_name") or instance_id),
                               str(item.get("life_cycle_state") or ""), str(item.get("create_time") or ""),
                               by_uuid.get(instance_id)))
    return found
