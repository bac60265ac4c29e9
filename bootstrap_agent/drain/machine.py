"""The drain as a pure state machine: what a draining agent does next, from what it remembers and what it sees.

``plan_drain(record, observed, now)`` never does I/O. The runner observes the node (Mesos, Alluxio, the shuffle
service's frameworks), asks for the next step, carries out its actions, saves the new record, and asks again;
a node with nothing to wait for goes through every phase in one pass. The order is issue 15's:

1. ``maintenance``: the machine into the leading master's maintenance schedule (no new work is planned for it);
2. ``tasks``: wait until the agent's running tasks are done, then ``/machine/down``;
3. ``blocks``: the Alluxio worker takes no new blocks (where the version can) and every file only it holds that
   is not persisted gets persisted;
4. ``shuffle``: the shuffle service stays up until no running framework that ran executors here is left;
5. ``done``: deregister (member znode gone), then, for a lifecycle drain, CONTINUE to the AS group.

The grace period bounds 1-4 together: once it has passed, every wait ends at once, each phase's action is still
tried once, and ``drain_grace_expired`` names what was still pending. Unknown (a service not answering) counts as
pending, never as done: only the grace ends a wait on something the node cannot see.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent.drain.report import PHASES, DrainReport

SCHEDULE = "schedule_maintenance"
DOWN = "machine_down"
DECOMMISSION = "decommission_worker"
PERSIST = "persist_blocks"
DEREGISTER = "deregister"
CALLBACK = "callback"
ACTIONS = (SCHEDULE, DOWN, DECOMMISSION, PERSIST, DEREGISTER, CALLBACK)

Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class DrainRecord:
    """What a drain remembers across passes and restarts of the agent (``record.py`` keeps it on disk)."""

    reason: str  # "lifecycle" (the AS group's hook) or "shutdown" (SIGTERM while the system stops)
    started: float  # epoch seconds
    deadline: float  # started + grace (or + stop_timeout); the end of every wait
    phase: str = "maintenance"
    waiting_for: str = ""
    expired: tuple[str, ...] = ()  # what was pending when the grace ended; empty while it has not
    schedule_requested: bool = False
    down_requested: bool = False
    deregistered: bool = False
    called_back: bool = False
    outcome: str | None = None
    # The lifecycle action to complete: the group's id and the action's key from the hanging-instance list.
    group_id: str | None = None
    action_key: str | None = None
    frameworks: tuple[str, ...] = ()  # framework ids that ran executors here: their shuffle files live here
    boot_id: str = ""  # the boot it started in: a shutdown drain ends with that boot (record.py)

    @property
    def finished(self) -> bool:
        """Nothing left to do: gone from the cluster, and the group told (lifecycle drains)."""
        return self.phase == "done" and self.deregistered and (self.reason != "lifecycle" or self.called_back)

    def report(self) -> DrainReport:
        return DrainReport(self.reason, self.started, self.deadline, self.phase, self.waiting_for, self.outcome)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrainRecord:
        """The saved record; ``ValueError`` for anything that is not one (the caller starts afresh)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("expired", "frameworks"):
            if name in values:
                values[name] = tuple(str(v) for v in values[name])
        try:
            record = cls(**values)
        except TypeError as exc:
            raise ValueError(f"not a drain record: {exc}") from None
        if record.reason not in ("lifecycle", "shutdown") or record.phase not in PHASES:
            raise ValueError("not a drain record: reason or phase unknown")
        if not all(isinstance(v, int | float) for v in (record.started, record.deadline)):
            raise ValueError("not a drain record: times are not numbers")
        return record


@dataclass(frozen=True)
class Observed:
    """What the node sees now. ``None``: could not be asked (a service away), which counts as pending."""

    scheduled: bool | None  # this machine is in the leading master's maintenance schedule
    down: bool | None  # ... and is DOWN there
    tasks: int | None  # running (or starting) tasks on this agent
    alluxio: bool = False  # this node runs an Alluxio worker
    decommissioned: bool | None = None  # the worker takes no new blocks (True also where the version cannot)
    unpersisted: int | None = None  # files whose blocks only this worker holds and that are not persisted
    shuffle: bool = False  # this node runs Spark's shuffle service
    shuffle_frameworks: int | None = None  # running frameworks that ran executors here
    frameworks_seen: tuple[str, ...] = field(default=())  # framework ids with executors here now


@dataclass(frozen=True)
class DrainStep:
    record: DrainRecord  # the new record: save it before carrying out the actions
    actions: tuple[str, ...]  # in order; the runner marks deregistered / called_back / down_requested itself
    events: tuple[Event, ...] = ()


def start_drain(reason: str, now: float, grace: float, *, group_id: str | None = None,
                action_key: str | None = None, boot_id: str = "") -> DrainRecord:
    return DrainRecord(reason, now, now + max(grace, 0.0), group_id=group_id, action_key=action_key,
                       boot_id=boot_id)


def pending(record: DrainRecord, observed: Observed) -> list[str]:
    """Everything not yet done from the record's phase on, in words, for ``drain_grace_expired``."""
    items: list[str] = []
    order = PHASES.index(record.phase)
    if order <= 0 and observed.scheduled is not True:
        items.append("maintenance window (master unreachable)")
    if order <= 1 and observed.down is not True and observed.tasks != 0:
        items.append("agent state unknown" if observed.tasks is None else f"{observed.tasks} running task(s)")
    if order <= 2 and observed.alluxio and observed.unpersisted != 0:
        items.append("unpersisted files unknown" if observed.unpersisted is None
                     else f"{observed.unpersisted} unpersisted file(s) only on this worker")
    if order <= 3 and observed.shuffle and observed.shuffle_frameworks != 0:
        items.append("frameworks unknown" if observed.shuffle_frameworks is None
                     else f"{observed.shuffle_frameworks} running framework(s) with shuffle files here")
    return items


def plan_drain(record: DrainRecord, observed: Observed, now: float) -> DrainStep:
    """The next step of the drain: the new record, the actions to carry out now, the events to log."""
    events: list[Event] = []
    expired = now >= record.deadline
    if expired and not record.expired and record.phase != "done":
        left = pending(record, observed)
        if left:
            events.append(("drain_grace_expired", {"pending": left, "phase": record.phase,
                                                   "overdue": round(now - record.deadline, 1)}))
            record = dataclasses.replace(record, expired=tuple(left))
    seen = tuple(sorted(set(record.frameworks) | set(observed.frameworks_seen)))
    if seen != record.frameworks:
        record = dataclasses.replace(record, frameworks=seen)
    start = record.phase
    step = _advance(record, observed, expired)
    passed = list(PHASES[PHASES.index(start) + 1:PHASES.index(step.record.phase) + 1])
    for previous, phase in zip([start, *passed], passed, strict=False):
        waiting = step.record.waiting_for if phase == step.record.phase else ""
        events.append(("drain_phase", {"phase": phase, "previous": previous, "waiting_for": waiting}))
    if step.record.phase == "done" and start != "done":
        events.append(("drain_done", {"outcome": step.record.outcome, "reason": record.reason,
                                      "seconds": round(now - record.started, 1),
                                      "expired_pending": list(step.record.expired)}))
    return DrainStep(step.record, step.actions, tuple(events) + step.events)


def _advance(record: DrainRecord, observed: Observed, expired: bool) -> DrainStep:
    phase = record.phase
    while True:
        if phase == "maintenance":
            if observed.scheduled or (expired and record.schedule_requested):
                phase = "tasks"
                continue
            return _wait(dataclasses.replace(record, schedule_requested=True), phase,
                         "maintenance window on the leading Mesos master", (SCHEDULE,))
        if phase == "tasks":
            if observed.down or (expired and record.down_requested):
                phase = "blocks"
                continue
            if observed.tasks == 0 or expired:
                late = " (grace expired)" if expired else ""
                return _wait(dataclasses.replace(record, down_requested=True), phase,
                             f"the Mesos master to take the machine down{late}", (DOWN,))
            what = "the agent's state (Mesos agent not answering)" if observed.tasks is None \
                else f"{observed.tasks} running task(s) to finish"
            # Another agent's read-modify-write of the schedule may have dropped this machine's window.
            return _wait(record, phase, what, (SCHEDULE,) if observed.scheduled is False else ())
        if phase == "blocks":
            if not observed.alluxio or (observed.decommissioned and observed.unpersisted == 0) or expired:
                phase = "shuffle"
                continue
            actions = (() if observed.decommissioned else (DECOMMISSION,)) + (
                (PERSIST,) if observed.unpersisted != 0 else ())
            what = "the list of unpersisted files on this worker" if observed.unpersisted is None \
                else f"{observed.unpersisted} unpersisted file(s) on this worker to be persisted"
            return _wait(record, phase, what, actions)
        if phase == "shuffle":
            if not observed.shuffle or observed.shuffle_frameworks == 0 or expired:
                phase = "done"
                continue
            what = "the running frameworks (Mesos master not answering)" if observed.shuffle_frameworks is None \
                else f"{observed.shuffle_frameworks} running framework(s) with shuffle files here to finish"
            return _wait(record, phase, what, ())
        outcome = record.outcome or ("grace_expired" if record.expired else "clean")
        actions = (() if record.deregistered else (DEREGISTER,)) + (
            (CALLBACK,) if record.reason == "lifecycle" and not record.called_back else ())
        what = "" if not actions else (
            "deregistering" if not record.deregistered else "the autoscaling group to take the CONTINUE")
        return DrainStep(dataclasses.replace(record, phase="done", outcome=outcome, waiting_for=what), actions)


def _wait(record: DrainRecord, phase: str, what: str, actions: tuple[str, ...]) -> DrainStep:
    return DrainStep(dataclasses.replace(record, phase=phase, waiting_for=what), actions)
