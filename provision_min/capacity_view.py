"""``status``'s capacity figures on both clouds: each node's CPUs, memory, Alluxio RAM and time in state, and the
cluster's totals, for ``--json`` and as text.

Why one module for both clouds: the local cloud reads the members from ZooKeeper, OTC from the master's
``status.json``; both end in the same fields and the same words here (the sums and the sizes are the agent's own,
``bootstrap_agent.capacity``), so a user reads one status the same way on either cloud.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping
from typing import Any

from bootstrap_agent.capacity import capacity_of, human_bytes, human_duration, totals, totals_line


def epoch_of(value: Any) -> float | None:
    """Epoch seconds from a number or a ``status.json`` time (``2026-11-29T12:00:00Z``); None otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            return None
    return None


def node_figures(member: Mapping[str, Any], now: float | None) -> dict[str, Any]:
    """A node's ``capacity`` (None when it reports none) and ``in_state_seconds`` (since its ``since``)."""
    cap = capacity_of(member)
    since = epoch_of(member.get("since"))
    return {"capacity": cap.to_dict() if cap else None,
            "in_state_seconds": None if since is None or now is None else max(0, int(now - since))}


def cluster_totals(members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The cluster's totals as ``status.json`` has them (agents; in all and by state)."""
    return totals(members)


def figures_text(figures: Mapping[str, Any]) -> str:
    """``16 CPUs  64 GiB  Alluxio 20 GiB  in state 3 min`` (``?`` for what a node does not report)."""
    cap = figures.get("capacity")
    seconds = figures.get("in_state_seconds")
    cpus, memory, alluxio = (str(cap["cpus"]), human_bytes(cap["memory_bytes"]), human_bytes(cap["alluxio_bytes"])) \
        if cap else ("?", "?", "?")
    age = human_duration(seconds) if seconds is not None else "?"
    return f"{cpus:>3} CPUs {memory:>9}  Alluxio {alluxio:>9}  in state {age:>6}"


def totals_text(summary: Mapping[str, Any] | None) -> list[str]:
    """``status``'s totals line (none without a member view)."""
    return [] if not summary else [f"  totals: {totals_line(summary)}"]
