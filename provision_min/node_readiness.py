"""Whether an OTC cluster works: every node ready, as its masters see it (their status document).

The same rule as the local cloud's (``provision_min.local.readiness``): a node is ready when its member says
``ready``. The masters count is the cluster file's, the agents count the AS group's desired number; each node
that is not ready is named with its state and reason, and so is each one that has not registered yet. A view the
master's agent has not refreshed for ``STALE_AFTER`` seconds (by the master's own clock) counts for nothing:
its members may be long gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision_min.capacity_view import cluster_totals, epoch_of, node_figures
from provision_min.local.progress import Progress as ProgressView
from provision_min.local.progress import Row
from provision_min.status_client import NoAnswer, StatusAccess, StatusAnswer, fetch
from provision_min.wait import Poller, Progress

STALE_AFTER = 300.0  # the agent renders at every pass, at least once a tick (60 s)
DEFAULT_READY_TIMEOUT = 900.0  # an OTC node boots, renders and starts Mesos and Alluxio in a few minutes


@dataclass(frozen=True)
class Readiness:
    complete: bool
    rows: tuple[Row, ...]
    problems: tuple[str, ...]  # one per node (or missing node) that is not ready, with its state and reason
    counts: dict[str, Any]
    rendered_at: str | None = None
    scaler: dict[str, Any] | None = None  # status.json's ``scaler`` (the masters' scaler summary), if any
    figures: tuple[dict[str, Any], ...] = ()  # per row: capacity and time in state (provision_min.capacity_view)
    totals: dict[str, Any] | None = None  # status.json's ``totals`` (the agents' CPUs, memory, Alluxio RAM)


def assess(answer: StatusAnswer, masters: int, agents: int) -> Readiness:
    """Ready when ``masters`` masters and ``agents`` agents are ready members and no member is anything else."""
    doc = answer.document
    members = [m for m in doc["members"] if isinstance(m, dict)]
    rows = tuple(Row(str(m.get("hostname") or m.get("uuid")), str(m.get("role")), str(m.get("ip")),
                     str(m.get("state")), str(m.get("reason") or "")) for m in members)
    problems = [f"{r.role} {r.ip} ({r.name}): {r.state}" + (f" ({r.detail})" if r.detail else "")
                for r in rows if r.state != "ready"]
    for role, wanted in (("master", masters), ("agent", agents)):
        listed = sum(1 for r in rows if r.role == role)
        if listed < wanted:
            problems.append(f"{wanted - listed} of {wanted} {role}(s) not registered yet")
    if answer.age is None or answer.age > STALE_AFTER:
        how_old = "never refreshed" if answer.age is None else f"{answer.age:.0f} s old"
        problems.append(f"the master's status view is {how_old}: its bootstrap-agent daemon is not running")
    counts = {"masters_expected": masters, "agents_expected": agents,
              "masters_ready": sum(1 for r in rows if r.role == "master" and r.state == "ready"),
              "agents_ready": sum(1 for r in rows if r.role == "agent" and r.state == "ready")}
    rendered = doc.get("rendered_at")
    scaler = doc.get("scaler")
    now = epoch_of(rendered)  # time in state by the master's clock: rendered_at - since
    totals = doc.get("totals")
    return Readiness(not problems, rows, tuple(problems), counts, rendered if isinstance(rendered, str) else None,
                     scaler if isinstance(scaler, dict) else None, tuple(node_figures(m, now) for m in members),
                     totals if isinstance(totals, dict) else cluster_totals(members))


def check(access: StatusAccess, masters: int, agents: int) -> Readiness:
    """One look (``status``); no answer yet is a result too (not complete, the reason named)."""
    try:
        return assess(fetch(access), masters, agents)
    except NoAnswer as exc:
        return Readiness(False, (), (str(exc),), {"masters_expected": masters, "agents_expected": agents})


def wait_ready(access: StatusAccess, masters: int, agents: int, poller: Poller, view: ProgressView,
               timeout: float = DEFAULT_READY_TIMEOUT) -> Readiness:
    """Poll until complete; ``WaitTimeout`` (exit 1) naming every node not ready, with its state and reason.

    A refused certificate or password ends the wait at once (``CertificateRefused``, ``StatusRefused``)."""

    def probe() -> Progress[Readiness]:
        readiness = check(access, masters, agents)
        view.update(readiness.rows or (Row("master", "master", access.address, "no answer",
                                           readiness.problems[0]),))
        return Progress(readiness.complete, "; ".join(readiness.problems), readiness)

    result = poller.until(f"every node of the cluster to be ready (through {access.url})", probe, timeout)
    assert result is not None
    return result

