"""The drain against a Mesos cluster: stand-in master and agents as real processes on loopback addresses with a
real ZooKeeper, a framework launching real tasks through the v1 scheduler API (tests/support/mesos_framework.py).

What a user would notice: the busy agent gets no new task once its drain began, its running task completes
(TASK_FINISHED, never killed), the machine goes down only after that, the drain waits for the framework that
ran executors there, an idle agent's drain finishes in one pass, and a later agent on the same address clears
the DOWN entry its predecessor left, so it can register."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.drain.mesos_ops import AgentState, MesosOps, MesosUnavailable
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


def rebooted(node: Path) -> None:
    """The node's next boot, as far as the drain can tell: ``/run`` starts empty (record.current_boot_id)."""
    shutil.rmtree(node / "run", ignore_errors=True)


def test_the_node_booting_again_after_its_shutdown_drain_brings_its_machine_up_and_is_offered(
        cluster: MesosStandins, tmp_path: Path) -> None:
    """A poweroff drained the idle agent (machine DOWN, agent shut down); the same instance started again joins
    again: its daemon brings the machine up, and the agent it starts registers and gets offers."""
    master = cluster.master(MASTER)
    agent = cluster.agent(BUSY, BUSY)
    cluster.wait_agents(1)
    edge = ops(master, agent)
    node = tmp_path / "node"
    first, _, left = drainer(tmp_path, edge, "node")
    first.start("shutdown", 30)
    assert advance(first, left).finished and left == ["deregistered"] and edge.status().down
    wait_for("the agent shut down by the master", lambda: cluster.agents[agent].poll() == 0, timeout=15)

    rebooted(node)
    again, log, _ = drainer(tmp_path, edge, "node")
    assert not again.active and again.rejoining  # not resumed: the drain ended with the boot it ran in
    assert again.rejoin()  # machine up; the agent (refused on the DOWN machine, then exited) is not back yet
    assert ("mesos_rejoin_action", {"action": "machine_up", "machine": {"hostname": BUSY, "ip": BUSY}}) \
        in log.events
    assert not edge.status().scheduled and get_json(master, "/master/maintenance/status") == {}
    assert (tmp_path / "node/var/lib/bootstrap-agent/drain.json").exists()  # until the agent is back
    cluster.agent(BUSY, BUSY, port=int(agent.split(":")[1]))  # the daemon's pass starts it again
    wait_for("rejoined", lambda: not again.rejoin(), timeout=15)
    assert "mesos_rejoined" in log.names() and not (tmp_path / "node/var/lib/bootstrap-agent/drain.json").exists()
    with MesosFramework(master, "rejoin-test") as framework:
        task = framework.launch("true", BUSY, timeout=15)
        assert framework.wait_state(task, "TASK_FINISHED", "TASK_FAILED") == "TASK_FINISHED"
    # A later start in the same boot has nothing to undo.
    assert not drainer(tmp_path, edge, "node")[0].rejoining


def test_an_agent_left_deactivated_by_an_unfinished_shutdown_drain_is_reactivated_at_the_next_boot(
        cluster: MesosStandins, tmp_path: Path) -> None:
    """The system stopped before the drain took the machine down: the machine is still DRAINING and the agent,
    coming back with its id, is still deactivated (the master keeps that in its registry). The next boot drops
    the window and reactivates the agent: it is offered again."""
    master = cluster.master(MASTER)
    agent = cluster.agent(BUSY, BUSY)
    cluster.wait_agents(1)
    edge = ops(master, agent)
    with MesosFramework(master, "deactivated-test") as framework:
        framework.launch_sleep(60, BUSY)
        first, _, left = drainer(tmp_path, edge, "node")
        first.start("shutdown", 60)
        assert advance(first, left).phase == "tasks" and edge.status().scheduled
        (slave,) = cluster.slaves()
        assert slave["deactivated"] is True
        cluster.agents[agent].terminate()  # stopped with its node; a restarted agent keeps its id
        cluster.agents[agent].wait(timeout=10)
        rebooted(tmp_path / "node")
        cluster.agent(BUSY, BUSY, port=int(agent.split(":")[1]))
        wait_for("the agent back, deactivated again", lambda: [s["deactivated"] for s in cluster.slaves()
                                                                if s["id"] == slave["id"]] == [True], timeout=15)
        again, log, _ = drainer(tmp_path, edge, "node")
        assert not again.rejoin()
        assert [f["action"] for n, f in log.events if n == "mesos_rejoin_action"] == ["machine_up",
                                                                                     "agent_reactivated"]
        assert get_json(master, "/master/maintenance/schedule") == {}
        assert [(s["id"], s["active"], s["deactivated"]) for s in cluster.slaves()] == [(slave["id"], True, False)]
        framework.wait_offer(BUSY, timeout=15)


def test_a_new_agent_at_the_same_address_replaces_the_old_one(cluster: MesosStandins, tmp_path: Path) -> None:
    """STARTUP-RULES MB1: an agent process started anew at a registered agent's address (a node rebooted before
    the master noticed) replaces it, so the master never lists two agents there: a drain that deactivates the new
    one sees the machine stop being offered."""
    master = cluster.master(MASTER)
    agent = cluster.agent(BUSY, BUSY, work_dir="first")
    (old,) = cluster.wait_agents(1)
    cluster.agents[agent].kill()  # gone without a word (a reboot): no shutdown, no deregistration
    cluster.agents[agent].wait(timeout=10)
    cluster.agent(BUSY, BUSY, port=int(agent.split(":")[1]), work_dir="second")  # a fresh work dir: a new agent
    wait_for("only the new agent", lambda: [s["id"] for s in cluster.slaves()] not in ([old["id"]], []), timeout=15)
    (new,) = cluster.slaves()
    assert new["id"] != old["id"] and new["pid"] == old["pid"]
    edge = ops(master, agent)
    assert edge.schedule_window(time.time()) and edge.status().scheduled  # deactivated: no more offers


class AgentViewBefore(MesosOps):
    """The drain's Mesos edge with the agent's ``/state`` as the real agent answered it just before a launch: what
    a drain reads while that launch is still on its way from the master (the master's side stays live)."""

    snapshot: AgentState

    def agent_state(self) -> AgentState:
        return self.snapshot


def test_a_launch_the_master_accepted_but_the_agent_has_not_yet_keeps_the_machine_up(
        cluster: MesosStandins, tmp_path: Path) -> None:
    """A task the master accepted is STAGING there before it reaches the agent: the agent's ``/state`` shows
    nothing yet. The drain must count it, or ``/machine/down`` loses it ("Operator initiated 'Machine DOWN'").
    The agent is stopped (SIGSTOP) while the master sends it the launch, and the drain reads the agent's answer
    from just before."""
    import os
    import signal

    master = cluster.master(MASTER)
    busy = cluster.agent(BUSY, BUSY)
    cluster.wait_agents(1)
    busy_ops = ops(master, busy)
    master_ip, master_port = master.split(":")
    lagging = AgentViewBefore([master_ip], BUSY, BUSY, master_port=int(master_port),
                              agent_port=int(busy.split(":")[1]))
    lagging.snapshot = busy_ops.agent_state()
    assert lagging.snapshot.tasks == 0
    with MesosFramework(master, "in-flight-test") as framework:
        wait_for("an offer from the agent", lambda: framework.offers(BUSY), timeout=15)
        os.kill(cluster.agents[busy].pid, signal.SIGSTOP)
        try:
            task = framework.launch_sleep(1, BUSY)
            assert lagging.master_tasks(lagging.snapshot.agent_id) == 1  # STAGING at the master
            runner, log, left = drainer(tmp_path, lagging, "in-flight")
            runner.start("shutdown", 60)
            record = advance(runner, left)
            assert record.phase == "tasks" and record.waiting_for == "1 running task(s) to finish", (
                record.waiting_for, log.events)
            assert not lagging.status().down
        finally:
            os.kill(cluster.agents[busy].pid, signal.SIGCONT)
        assert framework.wait_state(task, "TASK_FINISHED", "TASK_LOST", timeout=30) == "TASK_FINISHED"
        runner.edges = Edges(busy_ops, alluxio=None, shuffle=True)  # the agent's own answers from here on
        record = wait_for("the busy agent past its task",
                          lambda: r if (r := advance(runner, left)).phase != "tasks" else None, timeout=30)
        assert busy_ops.status().down
        assert "TASK_LOST" not in framework.states(task)
