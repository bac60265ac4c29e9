"""How a pass ended, as the command's exit code and as ``status.json``: what ``bootstrap-agent status``, the
daemon's member znode and the operators read.

A pass that is refused (bad input, a source that does not answer) ends here before anything is written, with
an event name operators search for; a pass that ran ends here with its units' states.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent.clock import NOT_SYNCHRONIZED, clock_state, kernel_max_error_us
from bootstrap_agent.errors import InvalidInput, SourceUnavailable
from bootstrap_agent.schema import Settings
from bootstrap_agent.state import State


@dataclass
class Outcome:
    """``state`` is one of "ready", "degraded" (the daemon: up, with a reason), "failed" or "invalid" (the
    input was refused, nothing written); ``services`` maps each unit to "active" or "failed: <why>"."""

    exit_code: int
    state: str
    reason: str = ""
    services: dict[str, str] = field(default_factory=dict)
    # What the pass did to each unit it touched: an ``apply.Action`` value, or "recovered" for a unit started
    # again after an earlier pass had started it (it stopped or crashed in between): the restart metrics.
    actions: dict[str, str] = field(default_factory=dict)


def refused(exc: InvalidInput | SourceUnavailable, stage: str, log: Any) -> Outcome:
    """The outcome of a pass that stopped before writing anything, logged with a stable event name."""
    if isinstance(exc, InvalidInput):
        event = "user_data_invalid" if stage == "inputs" else "plan_invalid"
        log.error(event, field=exc.path, error=exc.message)
        prefix = "invalid user-data" if stage == "inputs" else "cannot configure this node"
        return Outcome(2, "invalid", f"{prefix}: {exc}")
    log.error("user_data_unavailable" if stage == "inputs" else "agency_credentials_unavailable", error=str(exc))
    return Outcome(1, "failed", str(exc))


def save_status(state: State, settings: Settings, ip: str, source: str, outcome: Outcome, log: Any = None) -> None:
    """Write ``status.json``; ``since`` moves only when the state changes, so it says how long the node has
    been what it is."""
    previous = state.status() or {}
    now = time.time()
    since = previous.get("since", now) if previous.get("state") == outcome.state else now
    clock = clock_state()  # reported, never a reason to be unready (see bootstrap_agent/clock.py)
    if log is not None and clock == NOT_SYNCHRONIZED and previous.get("clock") != clock:
        log.warning("clock_not_synchronized", max_error_us=kernel_max_error_us(),
                    hint="start a time sync daemon (systemd-timesyncd, chrony): OBS refuses a clock 15 min off")
    state.save_status({
        "state": outcome.state,
        "reason": outcome.reason,
        "cluster": settings.cluster,
        "role": settings.role,
        "ip": ip,
        "services": outcome.services,
        "user_data_source": source,
        "since": since,
        "updated": now,
        "clock": clock,
    })
