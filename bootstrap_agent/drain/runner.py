"""The drain as the daemon runs it: observe the node, ask the pure machine for the next step, save the record,
carry out the step's actions, and again, until the step only waits. A node with nothing to wait for goes
through every phase in one pass; a busy one is looked at again every ``STEP_EVERY`` seconds (the daemon's tick
shortens while draining). Every failure of an edge is logged (``drain_action_failed``) and retried next pass:
the grace period, not an error, ends a wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from bootstrap_agent.drain.alluxio_ops import AlluxioOps, AlluxioUnavailable
from bootstrap_agent.drain.lifecycle import Lifecycle, LifecycleUnavailable
from bootstrap_agent.drain.machine import (
    CALLBACK,
    DECOMMISSION,
    DEREGISTER,
    DOWN,
    PERSIST,
    SCHEDULE,
    DrainRecord,
    Observed,
    plan_drain,
    start_drain,
)
from bootstrap_agent.drain.mesos_ops import MesosOps, MesosUnavailable
from bootstrap_agent.drain.record import DrainStore, current_boot_id, outlived
from bootstrap_agent.errors import AgentError

STEP_EVERY = 2.0  # seconds between looks at a draining node
STEPS_PER_PASS = 10
STALE_CHECK_EVERY = 60.0  # until the masters have answered once
REJOIN_FAST = 120.0  # a rejoin looks every STEP_EVERY s this long, then every STALE_CHECK_EVERY s
EDGE_ERRORS = (MesosUnavailable, AlluxioUnavailable, LifecycleUnavailable, AgentError, OSError)


@dataclasses.dataclass
class Edges:
    """The programs a drain talks to, built from the current settings and facts by the daemon."""

    mesos: MesosOps
    alluxio: AlluxioOps | None = None
    shuffle: bool = False
    lifecycle: Lifecycle | None = None


class Drainer:
    def __init__(self, store: DrainStore, log: Any, clock: Callable[[], float] = time.time,
                 boot_id: str | None = None) -> None:
        self.store = store
        self.log = log
        self.clock = clock
        self.record: DrainRecord | None = store.load(log)
        self.edges: Edges | None = None
        self.decommissioned = False
        self._held: tuple[str, ...] = ()
        self._last_step = float("-inf")  # monotonic
        self._last_poll = float("-inf")
        self._last_stale_check = float("-inf")
        self._poll_error = ""
        self.stale_cleared = False
        # A shutdown drain outlived by its boot: this node left Mesos in maintenance and must undo that before it
        # is offered again (``rejoin``). The record stays on disk until then, so a daemon restarted meanwhile
        # rejoins too.
        self.rejoining = False
        self._last_rejoin = float("-inf")  # monotonic
        self._rejoin_since: float | None = None
        self._rejoin_error = ""
        self.boot_id = current_boot_id(store.layout) if boot_id is None else boot_id
        if self.record is not None and outlived(self.record, self.boot_id):
            log.info("drain_discarded", reason=self.record.reason, phase=self.record.phase,
                     why="the instance booted again: a shutdown drain ends with its boot")
            self.rejoining = True
            self.record = None
        if self.record is not None:
            log.info("drain_resumed", reason=self.record.reason, phase=self.record.phase,
                     seconds_left=round(self.record.deadline - clock(), 1))

    @property
    def active(self) -> bool:
        return self.record is not None

    def due(self, poll_every: float | None) -> float:
        """Monotonic time of the next drain step or lifecycle poll (inf: nothing to do on a timer)."""
        if self.record is not None:
            return self._last_step + STEP_EVERY if not self.record.finished else float("inf")
        poll = self._last_poll + poll_every if poll_every else float("inf")
        return min(poll, self._last_rejoin + self._rejoin_every()) if self.rejoining else poll

    def _rejoin_every(self) -> float:
        since = self._rejoin_since
        return STEP_EVERY if since is None or time.monotonic() - since < REJOIN_FAST else STALE_CHECK_EVERY

    # --- starting --------------------------------------------------------------------------------------------
    def poll_lifecycle(self, grace: float, poll_every: float) -> bool:
        """Ask the AS group (at most every ``poll_every`` s) whether it is removing this instance; start a
        lifecycle drain if so. True when a drain started."""
        if self.record is not None or self.edges is None or self.edges.lifecycle is None:
            return False
        if time.monotonic() - self._last_poll < poll_every:
            return False
        self._last_poll = time.monotonic()
        try:
            removal = self.edges.lifecycle.pending()
        except LifecycleUnavailable as exc:
            if str(exc) != self._poll_error:  # once per new error, not every poll
                self.log.warning("lifecycle_poll_failed", error=str(exc))
            self._poll_error = str(exc)
            return False
        if self._poll_error:
            self.log.info("lifecycle_poll_recovered")
        self._poll_error = ""
        if removal is None:
            return False
        self.start("lifecycle", grace, group_id=removal.group_id, action_key=removal.action_key)
        return True

    def start(self, reason: str, grace: float, *, group_id: str | None = None, action_key: str | None = None) -> None:
        self.rejoining = False  # a new drain: the node leaves again
        self.record = start_drain(reason, self.clock(), grace, group_id=group_id, action_key=action_key,
                                  boot_id=self.boot_id)
        self.store.save(self.record)
        self.log.info("drain_started", reason=reason, grace=grace, deadline=self.record.deadline,
                      lifecycle_action=bool(action_key))

    def bound(self, seconds: float) -> None:
        """SIGTERM during a drain: it must end within ``seconds`` from now (the stop timeout)."""
        if self.record is not None and self.record.deadline > self.clock() + seconds:
            self.record = dataclasses.replace(self.record, deadline=self.clock() + seconds)
            self.store.save(self.record)

    def rejoin(self) -> bool:
        """A node that drained at its last shutdown joins Mesos again: its machine out of maintenance, its agent
        registered and offered (``MesosOps.rejoin``); looked at every ``STEP_EVERY`` s until then (every
        ``STALE_CHECK_EVERY`` s after ``REJOIN_FAST`` s). True while still rejoining (the daemon goes on with its
        pass: it starts the agent the master refused)."""
        if not self.rejoining or self.record is not None or self.edges is None:
            return False
        if time.monotonic() - self._last_rejoin < self._rejoin_every() - 0.5:  # a pass for another reason
            return True
        self._last_rejoin = time.monotonic()
        if self._rejoin_since is None:
            self._rejoin_since = self._last_rejoin
        try:
            result = self.edges.mesos.rejoin()
        except MesosUnavailable as exc:
            if str(exc) != self._rejoin_error:  # once per new error, not every look
                self.log.warning("mesos_rejoin_failed", error=str(exc))
            self._rejoin_error = str(exc)
            return True
        self._rejoin_error = ""
        for action in result.actions:
            self.log.info("mesos_rejoin_action", action=action, machine=self.edges.mesos.machine)
        if not result.done:
            return True
        self.rejoining = False
        self.stale_cleared = True
        self.store.forget()
        self.log.info("mesos_rejoined", machine=self.edges.mesos.machine)
        return False

    def clear_stale_maintenance(self) -> None:
        """Once per start of a node that is not draining: an earlier instance's maintenance entry for this
        address goes (Mesos would refuse this agent on a DOWN machine)."""
        if self.stale_cleared or self.rejoining or self.record is not None or self.edges is None \
                or time.monotonic() - self._last_stale_check < STALE_CHECK_EVERY:
            return
        self._last_stale_check = time.monotonic()
        try:
            if self.edges.mesos.clear_stale():
                self.log.info("mesos_maintenance_cleared", machine=self.edges.mesos.machine)
            self.stale_cleared = True
        except MesosUnavailable as exc:
            self.log.warning("mesos_maintenance_check_failed", error=str(exc))

    # --- stepping --------------------------------------------------------------------------------------------
    def advance(self, deregister: Callable[[], None]) -> DrainRecord | None:
        """Steps until the drain waits or is finished; the record as it is now."""
        self._last_step = time.monotonic()
        for _ in range(STEPS_PER_PASS):
            if self.record is None or self.record.finished or self.edges is None:
                break
            step = plan_drain(self.record, self.observe(self.record), self.clock())
            for name, fields in step.events:
                (self.log.warning if name == "drain_grace_expired" else self.log.info)(name, **fields)
            self.record = step.record
            self.store.save(self.record)
            if not step.actions or not self._act(step.actions, deregister):
                break
        return self.record

    def observe(self, record: DrainRecord) -> Observed:
        edges = self.edges
        assert edges is not None
        scheduled: bool | None = None
        down: bool | None = None
        with contextlib.suppress(MesosUnavailable):
            status = edges.mesos.status()
            scheduled, down = status.scheduled, status.down
        tasks: int | None = None
        seen: tuple[str, ...] = ()
        try:
            agent = edges.mesos.agent_state()
            tasks, seen = agent.tasks, agent.framework_ids
            if tasks == 0 and record.phase in ("maintenance", "tasks"):  # before /machine/down: in-flight launches
                tasks = edges.mesos.master_tasks(agent.agent_id)
        except MesosUnavailable:
            tasks = None
        unpersisted = None
        # The costly looks only when this step can use them (the machine is down: the blocks are next).
        # Past the grace everything is looked at once, so that drain_grace_expired can name all that is left.
        late = record.phase in ("blocks", "shuffle") or (record.phase == "tasks" and down is True) \
            or self.clock() >= record.deadline
        if edges.alluxio is not None and late:
            unpersisted = self._unpersisted(edges.alluxio)
        frameworks = None
        if edges.shuffle and late:
            with contextlib.suppress(MesosUnavailable):
                frameworks = len(edges.mesos.active_frameworks() & (set(record.frameworks) | set(seen)))
        return Observed(scheduled, down, tasks, edges.alluxio is not None, self.decommissioned, unpersisted,
                        edges.shuffle, frameworks, seen)

    def _unpersisted(self, alluxio: AlluxioOps) -> int | None:
        """Files at risk here, from the newest listing made after the last persist ended (None: still listing)."""
        if alluxio.persisting():
            return len(self._held) or 1
        if alluxio.persist_result is not None:
            code, last = alluxio.persist_result
            alluxio.persist_result = None
            self.log.info("drain_persist_ended", exit_code=code, last_line=last)
        try:
            held = alluxio.held_since(alluxio.persist_ended)
        except AlluxioUnavailable as exc:
            self.log.warning("drain_blocks_unknown", error=str(exc))
            return None
        if held is None:
            return None
        self._held = held.paths
        return len(self._held)

    def _act(self, actions: tuple[str, ...], deregister: Callable[[], None]) -> bool:
        """Carry out the actions in order; False when one failed (the next pass tries again)."""
        edges, record = self.edges, self.record
        assert edges is not None and record is not None
        for action in actions:
            try:
                if action == SCHEDULE:
                    edges.mesos.schedule_window(self.clock())
                elif action == DOWN:
                    edges.mesos.down(self.clock())
                elif action == DECOMMISSION and edges.alluxio is not None:
                    self.decommissioned = edges.alluxio.decommission()
                    if edges.alluxio.decommission_unsupported:
                        self.log.warning("alluxio_decommission_unsupported", version=edges.alluxio.version)
                elif action == PERSIST and edges.alluxio is not None:
                    edges.alluxio.persist(self._held, record.deadline - self.clock(), self.log)
                elif action == DEREGISTER:
                    deregister()
                    record = dataclasses.replace(record, deregistered=True)
                elif action == CALLBACK:
                    if edges.lifecycle is None or not record.group_id or not record.action_key:
                        raise LifecycleUnavailable("no lifecycle settings or action key to call back with")
                    edges.lifecycle.complete(record.group_id, record.action_key)
                    record = dataclasses.replace(record, called_back=True)
                    self.log.info("lifecycle_continue_sent", group_id=record.group_id)
            except EDGE_ERRORS as exc:
                self.log.warning("drain_action_failed", action=action, phase=record.phase, error=str(exc))
                self._save(record)
                return False
            self.log.info("drain_action", action=action, phase=record.phase)
        self._save(record)
        return PERSIST not in actions  # a persist runs in the background: look again next pass

    def _save(self, record: DrainRecord) -> None:
        self.record = record
        self.store.save(record)
        if record.finished:
            self.log.info("drain_finished", reason=record.reason, outcome=record.outcome,
                          seconds=round(self.clock() - record.started, 1))
