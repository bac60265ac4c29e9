"""The drain against a Mesos cluster: stand-in master and agents as real processes on loopback addresses with a
real ZooKeeper, a framework launching real tasks through the v1 scheduler API (tests/support/mesos_framework.py).

What a user would notice: the busy agent gets no new task once its drain began, its running task completes
(TASK_FINISHED, never killed), the machine goes down only after that, the drain waits for the framework that
ran executors there, an idle agent's drain finishes in one pass, and a later agent on the same address clears
the DOWN entry its predecessor left, so it can register."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.drain.mesos_ops import MesosOps, MesosUnavailable
from bootstrap_agent.drain.record import DrainStore
from bootstrap_agent.drain.runner import Drainer, Edges
from bootstrap_agent.layout import Layout
from bootstrap_agent.state import State
from tests.support.event_log import EventLog
from tests.support.mesos_cluster import MesosStandins, call, get_json, window
from tests.support.mesos_framework import MesosFramework
from tests.support.waiting import wait_for
from tests.support.zookeeper import ZooKeeperServer
from tests.test_standins import Standins

MASTER, BUSY, IDLE = "127.0.0.11", "127.0.0.21", "127.0.0.22"


@pytest.fixture
def cluster(standins: Standins, zookeeper: ZooKeeperServer, tmp_path: Path) -> Iterator[MesosStandins]:
    mesos = MesosStandins(standins, zookeeper, tmp_path / "mesos", "1.11")
    try:
        yield mesos
    finally:
        mesos.close()


def ops(master: str, agent: str) -> MesosOps:
    """The drain's Mesos edge for the agent at ``agent`` (ip:port), hostname = ip as the product announces it."""
    master_ip, master_port = master.split(":")
    ip, port = agent.split(":")
    return MesosOps([master_ip], ip, ip, master_port=int(master_port), agent_port=int(port))


def drainer(tmp_path: Path, mesos: MesosOps, name: str) -> tuple[Drainer, EventLog, list[str]]:
    log, left = EventLog(), list[str]()
    runner = Drainer(DrainStore(State(Layout(str(tmp_path / name)))), log)
    runner.edges = Edges(mesos, alluxio=None, shuffle=True)
    return runner, log, left


def advance(runner: Drainer, left: list[str]) -> Any:
    return runner.advance(lambda: left.append("deregistered"))


def test_busy_agent_drains_after_its_task_and_idle_agent_at_once(cluster: MesosStandins, tmp_path: Path) -> None:
    master = cluster.master(MASTER)
    busy = cluster.agent(BUSY, BUSY)
    idle = cluster.agent(IDLE, IDLE)
    cluster.wait_agents(2)
    busy_ops, idle_ops = ops(master, busy), ops(master, idle)
    assert busy_ops.leader() == f"http://{master}"
    with MesosFramework(master, "drain-test") as framework:
        task = framework.launch_sleep(4, BUSY)
        framework.wait_state(task, "TASK_RUNNING")
        state = busy_ops.agent_state()
        assert (state.tasks, state.frameworks_with_executors) == (1, 1)
        assert idle_ops.agent_state().tasks == 0

        # Another machine's window is already there: the drain's read-modify-write keeps it.
        other = window("10.9.9.9", "10.9.9.9", time.time_ns())
        assert call(master, "/master/maintenance/schedule", other)[0] == 200

        runner, log, left = drainer(tmp_path, busy_ops, "busy")
        runner.start("shutdown", 60)
        record = advance(runner, left)
        assert record.phase == "tasks" and record.waiting_for == "1 running task(s) to finish"
        windows = get_json(master, "/master/maintenance/schedule")["windows"]
        assert [w["machine_ids"] for w in windows] == [[{"hostname": "10.9.9.9", "ip": "10.9.9.9"}],
                                                       [{"hostname": BUSY, "ip": BUSY}]]
        # No new task lands on the draining agent: its outstanding offer is rescinded, new ones come only from
        # the idle one.
        wait_for("the busy agent's offers rescinded", lambda: framework.offers(BUSY) == [], timeout=5)
        time.sleep(1.5)
        assert framework.offers(BUSY) == [] and framework.offers(IDLE)

        idle_runner, idle_log, idle_left = drainer(tmp_path, idle_ops, "idle")
        idle_runner.start("shutdown", 60)
        idle_record = advance(idle_runner, idle_left)
        # The framework still runs and once had no executor on the idle agent: nothing to wait for.
        assert idle_record.finished, (idle_record.waiting_for, idle_log.events)
        assert idle_record.outcome == "clean" and idle_left == ["deregistered"]
        phases = [f["phase"] for n, f in idle_log.events if n == "drain_phase"]
        assert phases == ["tasks", "blocks", "shuffle", "done"]
        assert idle_ops.status().down

        def step() -> Any:
            current = advance(runner, left)
            return current if current.phase == "shuffle" else None

        record = wait_for("the busy agent past its task", step, timeout=20)
        assert framework.wait_state(task, "TASK_FINISHED") == "TASK_FINISHED"
        assert "TASK_KILLED" not in framework.states(task) and "TASK_LOST" not in framework.states(task)
        assert busy_ops.status().down
        assert record.waiting_for == "1 running framework(s) with shuffle files here to finish"
        assert left == []
    # The framework is gone (TEARDOWN): its shuffle files are nobody's any more.
    record = wait_for("the drain finished", lambda: r if (r := advance(runner, left)).finished else None, timeout=10)
    assert record.outcome == "clean" and left == ["deregistered"]
    names = log.names()
    assert names.index("drain_started") < names.index("drain_phase") < names.index("drain_done")
    assert "drain_grace_expired" not in names

    # A new instance on the busy agent's address: its Mesos agent is refused until the DOWN entry goes.
    fresh, fresh_log, _ = drainer(tmp_path, busy_ops, "fresh")
    fresh.clear_stale_maintenance()
    assert ("mesos_maintenance_cleared", {"machine": {"hostname": BUSY, "ip": BUSY}}) in fresh_log.events
    assert not busy_ops.status().scheduled
    windows = get_json(master, "/master/maintenance/schedule")["windows"]
    assert [w["machine_ids"][0]["ip"] for w in windows] == ["10.9.9.9", IDLE]  # the others stay
    cluster.agent(BUSY, BUSY)
    wait_for("the new agent registered", lambda: any(s["hostname"] == BUSY for s in cluster.slaves()), timeout=15)


def test_grace_expired_takes_the_machine_down_with_a_clear_event(cluster: MesosStandins, tmp_path: Path) -> None:
    master = cluster.master(MASTER)
    busy = cluster.agent(BUSY, BUSY)
    cluster.wait_agents(1)
    with MesosFramework(master, "grace-test") as framework:
        task = framework.launch_sleep(60, BUSY)
        framework.wait_state(task, "TASK_RUNNING")
        runner, log, left = drainer(tmp_path, ops(master, busy), "grace")
        runner.start("shutdown", 1)
        assert advance(runner, left).phase == "tasks"
        time.sleep(1.2)
        record = advance(runner, left)
        assert record.finished and record.outcome == "grace_expired"
        expired = [fields for name, fields in log.events if name == "drain_grace_expired"]
        assert expired[0]["pending"] == ["1 running task(s)", "1 running framework(s) with shuffle files here"]
        assert ops(master, busy).status().down
        framework.wait_state(task, "TASK_LOST", "TASK_GONE_BY_OPERATOR", timeout=10)


def test_no_leading_master_is_one_line(cluster: MesosStandins) -> None:
    with pytest.raises(MesosUnavailable) as caught:
        MesosOps(["127.0.0.19"], "127.0.0.29", "127.0.0.29", master_port=1).leader()
    assert str(caught.value).startswith("no leading Mesos master: 127.0.0.19: ") and "\n" not in str(caught.value)



def test_mesos_14_gets_the_window_only_and_a_stale_draining_entry_is_dropped(
        standins: Standins, zookeeper: ZooKeeperServer, tmp_path: Path) -> None:
    old = MesosStandins(standins, zookeeper, tmp_path / "mesos14", "1.4")
    try:
        master = old.master(MASTER)
        agent = old.agent(BUSY, BUSY)
        old.wait_agents(1)
        edge = ops(master, agent)
        assert edge.schedule_window(time.time())
        assert edge.deactivate_unsupported  # "Failed to find enum for 'DEACTIVATE_AGENT'": the window is all
        assert edge.status().scheduled and not edge.status().down
        other = {"hostname": "10.9.9.9", "ip": "10.9.9.9"}
        schedule = get_json(master, "/master/maintenance/schedule")
        schedule["windows"].append(window("10.9.9.9", "10.9.9.9", time.time_ns())["windows"][0])
        assert call(master, "/master/maintenance/schedule", schedule)[0] == 200
        # A killed predecessor's DRAINING entry: the next agent on the address drops it, the others stay.
        assert edge.clear_stale()
        windows = get_json(master, "/master/maintenance/schedule")["windows"]
        assert [w["machine_ids"] for w in windows] == [[other]]
        assert not edge.clear_stale()
    finally:
        old.close()
