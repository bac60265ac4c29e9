"""When a unit counts as up: its own processes run and hold every port and unix socket the plan gives it.

An active unit is not a ready one: it is active as soon as its process runs, long before that process listens,
and a port held by some other process (a stale one, a previous run) would pass a plain connect test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.services.base import ServiceManager, bound_unix_sockets, listening_ports


def wait_ready(
    services: Sequence[DesiredService], manager: ServiceManager, timeout: float, skip: set[str] | None = None
) -> dict[str, str]:
    """unit -> "active", or "failed: <why>" for units whose own processes do not run and listen on all their
    ports within ``timeout``."""
    pending = [s for s in services if s.unit not in (skip or set())]
    status: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        still = []
        known = unit_states(manager, [s.unit for s in pending])
        for service in pending:
            missing = _ports_missing(service, manager, known.get(service.unit))
            if missing is None:
                status[service.unit] = f"failed: {manager.failure_reason(service.unit)}"
            elif not missing:
                status[service.unit] = "active"
            elif time.monotonic() > deadline:
                status[service.unit] = f"failed: not listening on {', '.join(missing)} after {timeout:.0f} s"
            else:
                still.append(service)
        pending = still
        if pending:
            time.sleep(0.05)
    return status


def unit_states(manager: ServiceManager, units: list[str]) -> dict[str, tuple[bool, int | None]]:
    """(running, main pid) of each unit in one question, when the manager can answer for several at once
    (systemd: ``SystemdManager.unit_states``); else {} and ``_ports_missing`` asks per unit as before."""
    states = getattr(manager, "unit_states", None)
    if states is None or len(units) < 2:
        return {}
    answer: dict[str, tuple[bool, int | None]] = states(units)
    return answer


def _ports_missing(
    service: DesiredService, manager: ServiceManager, known: tuple[bool, int | None] | None = None
) -> list[str] | None:
    """The unit's ports and unix sockets its own processes do not hold yet; ``None`` when it is not running.
    ``known``: the unit's (running, main pid) already asked for this poll (``unit_states``)."""
    if not (known[0] if known is not None else manager.is_active(service.unit)):
        return None
    wanted = [f"{h}:{p}" for h, p in service.ports] + [f"unix:{path}" for path in service.sockets]
    pid = known[1] if known is not None else manager.main_pid(service.unit)
    if not pid:
        return wanted
    owned = listening_ports(pid, {p for _, p in service.ports})
    if owned is None:
        return None
    missing = [f"{h}:{p}" for h, p in service.ports if p not in owned]
    if service.sockets:
        bound = bound_unix_sockets(pid, set(service.sockets))
        if bound is None:
            return None
        missing += [f"unix:{path}" for path in service.sockets if path not in bound]
    return missing
