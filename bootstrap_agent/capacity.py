"""What a node brings to the cluster (CPUs, memory, Alluxio RAM), the cluster's totals, and how people read them.

Why a module of its own: the same figures travel from the node's facts into its member znode (``capacity``),
from there into the master's ``status.json`` and landing page, and on into ``provision-min status`` on both
clouds. One parser, one sum and one way of writing sizes and durations keep those four views in agreement.
Pure: no I/O, no clock (callers pass ``now``).

A member's capacity is what the node has, not what is free: ``cpus`` and ``memory_bytes`` from its facts
(``facts.py``), ``alluxio_bytes`` the Alluxio worker's tier-0 RAM disk as the plan splits the agent's memory
(``plan.memory.agent_memory``); 0 on masters and on agents without Alluxio. The totals count agents only
(masters run no tasks and cache no blocks), in all and per member state, so "how much is usable now" is
``by_state.ready``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrap_agent.facts import Facts
    from bootstrap_agent.schema import Settings

STATES = ("bootstrapping", "ready", "degraded", "draining")  # member.STATES (not imported: member imports us)
MAX_CPUS = 1 << 16  # far above any machine: a bigger figure is a writer's mistake, refused
MAX_BYTES = 1 << 60
FIGURES = ("cpus", "memory_bytes", "alluxio_bytes")


@dataclass(frozen=True)
class Capacity:
    """One node's CPUs, memory and Alluxio tier-0 RAM (bytes)."""

    cpus: int
    memory_bytes: int
    alluxio_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {"cpus": self.cpus, "memory_bytes": self.memory_bytes, "alluxio_bytes": self.alluxio_bytes}


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_capacity(value: Any) -> Capacity:
    """A member's ``capacity``; ``ValueError`` with one line for anything a node could not have reported."""
    if not isinstance(value, dict):
        raise ValueError(f"capacity {_short(value)} is not an object")
    cpus, memory, alluxio = (value.get(name) for name in FIGURES)
    if type(cpus) is not int or not 1 <= cpus <= MAX_CPUS:
        raise ValueError(f"capacity.cpus {_short(cpus)} is not a number of CPUs")
    if type(memory) is not int or not 1 <= memory <= MAX_BYTES:
        raise ValueError(f"capacity.memory_bytes {_short(memory)} is not a size in bytes")
    if type(alluxio) is not int or not 0 <= alluxio <= memory:
        raise ValueError(f"capacity.alluxio_bytes {_short(alluxio)} is not a size in bytes within the memory")
    return Capacity(cpus, memory, alluxio)


def node_capacity(settings: Settings, facts: Facts) -> Capacity:
    """This node's capacity as its member reports it. An agent's memory split that does not fit reports no
    Alluxio RAM (the plan refuses that node anyway, and says why)."""
    from bootstrap_agent.errors import InvalidInput
    from bootstrap_agent.plan.memory import agent_memory

    alluxio = 0
    if settings.role == "agent" and settings.alluxio is not None:
        try:
            alluxio = agent_memory(settings, facts).ramdisk
        except InvalidInput:
            alluxio = 0
    return Capacity(facts.cpus, facts.memory, alluxio)


def capacity_of(member: Mapping[str, Any]) -> Capacity | None:
    """The capacity a member mapping carries (member cache fields or a ``status.json`` entry), None when it
    reports none (an agent older than the field) or reports garbage (not counted rather than counted wrong)."""
    value = member.get("capacity")
    if value is None:
        return None
    try:
        return parse_capacity(dict(value) if isinstance(value, Mapping) else value)
    except ValueError:
        return None


def _zero() -> dict[str, int]:
    return {"agents": 0, "cpus": 0, "memory_bytes": 0, "alluxio_bytes": 0}


Share = tuple[str, str, int, int, int, bool]  # role, state, cpus, memory, alluxio, reported


def share(member: Mapping[str, Any]) -> Share:
    """What one member adds to the totals (a master's pass keeps it per version of the member: ``Memo``)."""
    cap = capacity_of(member) if member.get("role") == "agent" else None
    figures = (cap.cpus, cap.memory_bytes, cap.alluxio_bytes) if cap else (0, 0, 0)
    return str(member.get("role")), str(member.get("state")), *figures, cap is not None


def add_up(shares: Iterable[Share]) -> dict[str, Any]:
    """The totals of the members' shares (``totals``)."""
    result: dict[str, Any] = {**_zero(), "masters": 0, "unreported": 0,
                              "by_state": {state: _zero() for state in STATES}}
    by_state: dict[str, dict[str, int]] = result["by_state"]
    for role, state, cpus, memory, alluxio, reported in shares:
        if role == "master":
            result["masters"] += 1
            continue
        if role != "agent":
            continue
        bucket = by_state.get(state) or by_state.setdefault(state, _zero())
        result["agents"] += 1
        bucket["agents"] += 1
        if not reported:
            result["unreported"] += 1
            continue
        result["cpus"] += cpus
        result["memory_bytes"] += memory
        result["alluxio_bytes"] += alluxio
        bucket["cpus"] += cpus
        bucket["memory_bytes"] += memory
        bucket["alluxio_bytes"] += alluxio
    return result


def add_up_counted(counted: Mapping[Share, int]) -> dict[str, Any]:
    """``add_up`` of shares given with how many members have each (a master keeps its members' shares counted,
    so a join or leave changes one count and the totals are summed over the few distinct sizes)."""
    result: dict[str, Any] = {**_zero(), "masters": 0, "unreported": 0,
                              "by_state": {state: _zero() for state in STATES}}
    by_state: dict[str, dict[str, int]] = result["by_state"]
    for (role, state, cpus, memory, alluxio, reported), n in counted.items():
        if role == "master":
            result["masters"] += n
            continue
        if role != "agent" or n <= 0:
            continue
        bucket = by_state.get(state) or by_state.setdefault(state, _zero())
        result["agents"] += n
        bucket["agents"] += n
        if not reported:
            result["unreported"] += n
            continue
        result["cpus"] += cpus * n
        result["memory_bytes"] += memory * n
        result["alluxio_bytes"] += alluxio * n
        bucket["cpus"] += cpus * n
        bucket["memory_bytes"] += memory * n
        bucket["alluxio_bytes"] += alluxio * n
    return result


def totals(members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The cluster's totals: agents, their CPUs, memory and Alluxio RAM, in all and per state (every state
    listed, zeros included, so a reader never meets a missing key); ``masters`` their count; ``unreported``:
    agents without capacity (not summed rather than summed wrong)."""
    return add_up(map(share, members))


def human_duration(seconds: float) -> str:
    """How long, as people say it: ``42 s``, ``3 min``, ``2 h``, ``5 d`` (rounded down; a negative time from
    clock skew between nodes is ``0 s``)."""
    whole = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if whole >= size:
            return f"{whole // size} {unit}"
    return f"{whole} s"


def human_bytes(value: int) -> str:
    """A size for people, in binary units with at most one decimal: ``0``, ``512 MiB``, ``15.6 GiB``."""
    if value <= 0:
        return "0"
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            figure = value / size
            text = f"{figure:.1f}".removesuffix(".0") if figure < 100 else f"{figure:.0f}"
            return f"{text} {unit}"
    return f"{value} B"


def totals_line(summary: Mapping[str, Any]) -> str:
    """The totals as one line (``provision-min status``, the page's title attribute)."""
    ready = summary.get("by_state", {}).get("ready", _zero())
    line = (f"{summary['agents']} agent(s): {summary['cpus']} CPUs, {human_bytes(summary['memory_bytes'])} memory, "
            f"{human_bytes(summary['alluxio_bytes'])} Alluxio RAM; ready {ready['agents']}: {ready['cpus']} CPUs, "
            f"{human_bytes(ready['memory_bytes'])}, {human_bytes(ready['alluxio_bytes'])} Alluxio")
    if summary.get("unreported"):
        line += f"; {summary['unreported']} agent(s) report no capacity"
    return line
