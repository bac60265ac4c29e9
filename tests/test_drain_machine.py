"""The drain's pure state machine (bootstrap_agent/drain/machine.py) and its saved record: the order of the
phases, the grace period, an idle node finishing at once, and an agent restarted mid-drain resuming."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

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
from bootstrap_agent.drain.record import DrainStore
from bootstrap_agent.layout import Layout
from bootstrap_agent.state import State
from tests.support.event_log import EventLog

T0 = 1_000_000.0
Events = list[tuple[str, dict[str, Any]]]


class Node:
    """A node the machine drains: its actions change what it observes next, as the real edges would."""

    def __init__(self, tasks: int = 0, unpersisted: int = 0, frameworks: int = 0, alluxio: bool = True,
                 shuffle: bool = True, master_up: bool = True, decommission_works: bool = True) -> None:
        self.scheduled = False
        self.down = False
        self.tasks = tasks
        self.unpersisted = unpersisted
        self.frameworks = frameworks
        self.alluxio, self.shuffle = alluxio, shuffle
        self.master_up = master_up
        self.decommissioned = False
        self.decommission_works = decommission_works
        self.persist_works = True
        self.done: list[str] = []

    def observe(self) -> Observed:
        master = self.master_up
        return Observed(
            scheduled=self.scheduled if master else None, down=self.down if master else None,
            tasks=None if self.down else self.tasks, alluxio=self.alluxio,
            decommissioned=self.decommissioned, unpersisted=self.unpersisted, shuffle=self.shuffle,
            shuffle_frameworks=self.frameworks if master else None,
        )

    def act(self, action: str) -> None:
        self.done.append(action)
        if action == SCHEDULE and self.master_up:
            self.scheduled = True
        elif action == DOWN and self.master_up and self.scheduled:
            self.down = True
        elif action == DECOMMISSION:
            self.decommissioned = True  # where the version cannot, the edge reports True as well
        elif action == PERSIST and self.persist_works:
            self.unpersisted = 0


def run(node: Node, record: DrainRecord, now: float, limit: int = 12) -> tuple[DrainRecord, Events]:
    """One pass of the runner: observe, step, act, until the step only waits (or the drain is finished)."""
    events: Events = []
    for _ in range(limit):
        step = plan_drain(record, node.observe(), now)
        record = step.record
        events.extend(step.events)
        if not step.actions:
            break
        for action in step.actions:
            node.act(action)
            if action == DEREGISTER:
                record = dataclasses.replace(record, deregistered=True)
            if action == CALLBACK:
                record = dataclasses.replace(record, called_back=True)
        if record.finished:
            break
    return record, events


def names(events: Events) -> list[str]:
    return [name for name, _ in events]


def test_idle_node_finishes_in_one_pass_in_the_issue_order() -> None:
    node = Node()
    record, events = run(node, start_drain("lifecycle", T0, 1800, group_id="g", action_key="k"), T0)
    assert record.finished and record.outcome == "clean"
    assert node.done == [SCHEDULE, DOWN, DECOMMISSION, DEREGISTER, CALLBACK]
    assert [e[1]["phase"] for e in events if e[0] == "drain_phase"] == ["tasks", "blocks", "shuffle", "done"]
    assert names(events)[-1] == "drain_done" and "drain_grace_expired" not in names(events)


def test_busy_node_waits_for_its_tasks_before_the_machine_goes_down() -> None:
    node = Node(tasks=2)
    record, _ = run(node, start_drain("lifecycle", T0, 1800), T0)
    assert node.done == [SCHEDULE] and record.phase == "tasks"
    assert record.waiting_for == "2 running task(s) to finish"
    assert record.report().waiting_for == record.waiting_for
    node.tasks = 1
    record, _ = run(node, record, T0 + 60)
    assert DOWN not in node.done and record.waiting_for == "1 running task(s) to finish"
    node.tasks = 0
    record, _ = run(node, record, T0 + 120)
    assert node.done[:2] == [SCHEDULE, DOWN] and record.finished


def test_a_window_dropped_by_another_writer_is_scheduled_again() -> None:
    node = Node(tasks=1)
    record, _ = run(node, start_drain("lifecycle", T0, 600), T0)
    node.scheduled = False  # another agent's schedule write did not keep this machine
    step = plan_drain(record, node.observe(), T0 + 5)
    assert step.actions == (SCHEDULE,) and step.record.phase == "tasks"


def test_unpersisted_files_are_persisted_before_the_node_goes() -> None:
    node = Node(unpersisted=3)
    node.persist_works = False  # the persist jobs take a while
    record, _ = run(node, start_drain("shutdown", T0, 300), T0)
    assert record.phase == "blocks" and not record.deregistered
    assert record.waiting_for == "3 unpersisted file(s) on this worker to be persisted"
    assert node.done.count(DECOMMISSION) == 1 and PERSIST in node.done
    node.persist_works = True
    record, _ = run(node, record, T0 + 10)
    assert record.finished and record.outcome == "clean"
    assert CALLBACK not in node.done  # a shutdown drain has no lifecycle action to complete


def test_shuffle_service_stays_until_the_frameworks_are_gone() -> None:
    node = Node(frameworks=1)
    record, _ = run(node, start_drain("lifecycle", T0, 1800), T0)
    assert record.phase == "shuffle" and DEREGISTER not in node.done
    assert "1 running framework(s)" in record.waiting_for
    node.frameworks = 0
    record, _ = run(node, record, T0 + 5)
    assert record.finished


def test_grace_expired_proceeds_anyway_and_names_what_was_pending() -> None:
    node = Node(tasks=1, unpersisted=2, frameworks=1)
    node.persist_works = False
    record, events = run(node, start_drain("lifecycle", T0, 60), T0)
    assert record.phase == "tasks" and "drain_grace_expired" not in names(events)
    record, events = run(node, record, T0 + 61)
    expired = [fields for name, fields in events if name == "drain_grace_expired"]
    assert len(expired) == 1
    assert expired[0]["pending"] == ["1 running task(s)", "2 unpersisted file(s) only on this worker",
                                     "1 running framework(s) with shuffle files here"]
    assert record.finished and record.outcome == "grace_expired"
    assert DOWN in node.done and CALLBACK in node.done  # the machine still goes down, the group still hears
    done = [fields for name, fields in events if name == "drain_done"]
    assert done[0]["outcome"] == "grace_expired" and done[0]["expired_pending"] == expired[0]["pending"]


def test_grace_zero_never_waits() -> None:
    node = Node(tasks=5, unpersisted=1, frameworks=2)
    record, _ = run(node, start_drain("lifecycle", T0, 0), T0)
    assert record.finished and record.outcome == "grace_expired"
    assert node.done[0] == SCHEDULE and DOWN in node.done


def test_master_unreachable_is_pending_not_done() -> None:
    node = Node(master_up=False)
    record, _ = run(node, start_drain("lifecycle", T0, 600), T0)
    assert record.phase == "maintenance" and not record.deregistered
    assert record.waiting_for.startswith("maintenance window")
    record, events = run(node, record, T0 + 601)
    assert record.finished and record.outcome == "grace_expired"
    assert "maintenance window (master unreachable)" in dict(events)["drain_grace_expired"]["pending"]


def test_down_is_retried_until_the_master_confirms_it() -> None:
    node = Node()
    record, _ = run(node, start_drain("lifecycle", T0, 600), T0, limit=1)
    node.master_up = False
    record, _ = run(node, record, T0 + 1)
    assert record.phase == "maintenance"
    node.master_up = True
    node.scheduled = True
    record = plan_drain(record, node.observe(), T0 + 2).record
    assert record.phase == "tasks" and record.down_requested
    assert plan_drain(record, node.observe(), T0 + 3).actions == (DOWN,)


def test_finished_needs_the_callback_only_for_lifecycle() -> None:
    base = DrainRecord("shutdown", T0, T0 + 1, phase="done", deregistered=True)
    assert base.finished
    assert not dataclasses.replace(base, reason="lifecycle").finished
    assert dataclasses.replace(base, reason="lifecycle", called_back=True).finished


def test_callback_is_retried_after_deregistering() -> None:
    record = DrainRecord("lifecycle", T0, T0 + 60, phase="done", deregistered=True, outcome="clean")
    step = plan_drain(record, Node().observe(), T0 + 1)
    assert step.actions == (CALLBACK,) and step.events == ()
    assert step.record.waiting_for == "the autoscaling group to take the CONTINUE"


def test_frameworks_seen_here_are_remembered_for_the_shuffle_phase() -> None:
    observed = dataclasses.replace(Node(tasks=1).observe(), frameworks_seen=("fw-b", "fw-a"))
    record = plan_drain(start_drain("lifecycle", T0, 60), observed, T0).record
    assert record.frameworks == ("fw-a", "fw-b")
    later = dataclasses.replace(observed, frameworks_seen=())
    assert plan_drain(record, later, T0 + 1).record.frameworks == ("fw-a", "fw-b")


def test_restart_mid_drain_resumes_from_the_saved_record(tmp_path: Path) -> None:
    store = DrainStore(State(Layout(str(tmp_path))))
    node = Node(tasks=1)
    record, _ = run(node, start_drain("lifecycle", T0, 1800, group_id="g1", action_key="key-1"), T0)
    store.save(record)
    assert (store.path.stat().st_mode & 0o777) == 0o600
    # a new agent process: nothing in memory, the node as it is
    resumed = store.load()
    assert resumed == record and resumed.phase == "tasks" and resumed.action_key == "key-1"
    node.tasks = 0
    record, _ = run(node, resumed, T0 + 30)
    assert record.finished and node.done.count(SCHEDULE) == 1  # not scheduled again: it was done before
    store.save(record)
    assert store.load() == record


@pytest.mark.parametrize("body", [
    b"{not json", b"[]", json.dumps({"reason": "bored", "started": 1, "deadline": 2}).encode(),
    json.dumps({"reason": "lifecycle"}).encode(),
])
def test_a_damaged_record_is_reported_and_ignored(tmp_path: Path, body: bytes) -> None:
    store = DrainStore(State(Layout(str(tmp_path))))
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(body)
    seen: list[str] = []

    class Log:
        def error(self, event: str, **_: object) -> None:
            seen.append(event)

    assert store.load(Log()) is None and seen == ["drain_record_unreadable"]


def test_a_shutdown_drain_ends_with_its_boot_and_a_lifecycle_drain_does_not(tmp_path: Path) -> None:
    """A reboot drains the node while the system stops; when the same instance boots again it joins again. A
    removal by the group (lifecycle) survives a reboot: the instance is still going."""
    from bootstrap_agent.drain.runner import Drainer

    store = DrainStore(State(Layout(str(tmp_path))))
    first = Drainer(store, EventLog(), boot_id="boot-1")
    first.start("shutdown", 60)
    assert store.load() is not None and store.load().boot_id == "boot-1"  # type: ignore[union-attr]
    assert Drainer(store, EventLog(), boot_id="boot-1").active  # the same boot (a daemon restart): resumed
    log = EventLog()
    rebooted = Drainer(store, log, boot_id="boot-2")
    # Not resumed: the node joins again; the record stays until it has (Drainer.rejoin, tests/test_drain_mesos.py).
    assert not rebooted.active and rebooted.rejoining and store.path.exists()
    assert [e for e, _ in log.events] == ["drain_discarded"]
    Drainer(store, EventLog(), boot_id="boot-2").start("lifecycle", 600, group_id="g", action_key="k")
    assert Drainer(store, EventLog(), boot_id="boot-3").active  # the group is still removing the instance


def test_the_boot_id_is_the_boot_s_own_and_new_when_run_starts_empty(tmp_path: Path) -> None:
    """Kept in the node's /run, not read from the kernel: inside a local-cloud node the daemon's sandbox sees the
    host's boot_id, the same at every boot of the container, so a drain there never ended with its boot."""
    from bootstrap_agent.drain.record import KERNEL_BOOT_ID, current_boot_id

    layout = Layout(str(tmp_path))
    first = current_boot_id(layout)
    assert first and first == current_boot_id(layout)  # a daemon restart: the same boot
    assert (tmp_path / "run/bootstrap-agent/boot_id").read_text().strip() == first
    assert first != KERNEL_BOOT_ID.read_text().strip()
    (tmp_path / "run/bootstrap-agent/boot_id").unlink()  # the next boot: /run is a new tmpfs
    assert current_boot_id(layout) not in ("", first)
    blocked = tmp_path / "blocked"
    blocked.write_text("")  # /run cannot be written: the kernel's id
    assert current_boot_id(Layout(str(blocked))) == KERNEL_BOOT_ID.read_text().strip()
