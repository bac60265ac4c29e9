"""The Mesos stand-in's reliable status updates (STARTUP-RULES.md MB11) and the scheduler stream's liveness, as a
framework meets them: the agent keeps each update until the framework acknowledges it, across a master failover;
a stream that stops carrying even HEARTBEATs is dead, and the framework subscribes again.

Masters and agents run as real processes on loopback addresses with a real ZooKeeper
(``tests/support/mesos_cluster.py``); the framework is ``tests/support/mesos_framework.py``.
"""

from __future__ import annotations

import signal
import time

from tests.support.mesos_cluster import MesosFactory, get_json, processes_with
from tests.support.mesos_framework import (
    DEFAULT_HEARTBEAT_SECONDS,
    MISSED_HEARTBEATS,
    MesosFramework,
    SchedulerError,
)
from tests.support.waiting import wait_for


def test_a_task_ending_during_a_master_failover_reaches_the_framework_after_it_resubscribes(
        mesos: MesosFactory) -> None:
    """MB11: the update is kept by the agent, re-registered with the new leader and re-sent until acknowledged."""
    cluster = mesos()
    first = cluster.master("127.0.0.11")
    second = cluster.master("127.0.0.12")
    assert cluster.leader() == first
    agent = cluster.agent("127.0.0.21", "agent1.test")
    cluster.wait_agents(1)
    framework = MesosFramework(f"{first},{second}", "reliable-updates-test")
    try:
        framework.subscribe()
        token = cluster.token(2)
        task = framework.launch(f"sleep {token}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")
        framework.close(teardown=False)  # the framework is away from here on

        cluster.masters[first].send_signal(signal.SIGTERM)
        assert cluster.masters[first].wait(timeout=5) == 0
        assert cluster.leader() == second
        assert wait_for("the task's end", lambda: not processes_with(f"sleep {token}"), timeout=10)
        # The new leader knows the finished task from the agent's re-registration (or its first update).
        assert wait_for("the finished task at the new leader", lambda: [
            t for f in get_json(second, "/master/state")["frameworks"] for t in f["completed_tasks"]
            if t["id"] == task and t["state"] == "TASK_FINISHED"], timeout=10)
        [completed] = get_json(agent, "/slave(1)/state")["completed_frameworks"]
        assert completed["completed_executors"][0]["completed_tasks"][0]["state"] == "TASK_FINISHED"
        assert framework.states(task) == ["TASK_RUNNING"]

        framework.follow_leader()  # SUBSCRIBE again with the same framework id, to the new leader
        assert framework.leader == second
        framework.wait_state(task, "TASK_FINISHED", timeout=10)
        assert framework.states(task) == ["TASK_RUNNING", "TASK_FINISHED"]
        assert wait_for("the acknowledgement", lambda: get_json(second, "/metrics/snapshot")[
            "master/valid_status_update_acknowledgements"] >= 1.0, timeout=5)
    finally:
        framework.close()


def test_an_update_is_resent_until_acknowledged_and_not_after(mesos: MesosFactory) -> None:
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    cluster.agent("127.0.0.21", "agent1.test")
    cluster.wait_agents(1)
    with MesosFramework(master, "acking") as acking, MesosFramework(master, "silent", acknowledge=False) as silent:
        acked = acking.launch("true", "agent1.test")
        unacked = silent.launch("true", "agent1.test")
        acking.wait_state(acked, "TASK_FINISHED")
        silent.wait_state(unacked, "TASK_RUNNING")
        # The agent re-sends every 2 s: the framework that does not acknowledge hears TASK_RUNNING again and again,
        # the same update (one uuid), and never the end, which waits in the task's stream behind it.
        assert wait_for("re-sent updates", lambda: len(silent.states(unacked)) >= 3, timeout=10)
        assert set(silent.states(unacked)) == {"TASK_RUNNING"}
        assert len({u["uuid"] for u in silent.updates}) == 1
        assert acking.states(acked) == ["TASK_RUNNING", "TASK_FINISHED"]  # acknowledged: not sent again


def test_a_stream_without_heartbeats_is_given_up_and_the_framework_subscribes_again(mesos: MesosFactory) -> None:
    """A leading master that vanishes without closing the connection (powered off with its network, here frozen)
    sends neither a FIN nor a HEARTBEAT: after two missed heartbeats the framework counts the stream as lost,
    instead of waiting on it for ever, and its next SUBSCRIBE finds the leader."""
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    cluster.agent("127.0.0.21", "agent1.test")
    cluster.wait_agents(1)
    with MesosFramework(master, "heartbeat-test") as framework:
        framework_id = framework.framework_id
        process = cluster.masters[master]
        process.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            limit = MISSED_HEARTBEATS * DEFAULT_HEARTBEAT_SECONDS
            assert wait_for("the stream given up", lambda: not framework.connected.is_set(), timeout=limit + 10)
            waited = time.monotonic() - frozen
            assert limit - 1 <= waited <= limit + 10, waited  # not at the first quiet moment: after the heartbeats
        finally:
            process.send_signal(signal.SIGCONT)
        assert framework.follow_leader(timeout=30)
        assert framework.framework_id == framework_id

        def launched() -> str | None:
            # The thawed master's ZooKeeper session expired while it was frozen: it may lead again only after a
            # new election, closing the stream just opened; a framework then follows the leader once more.
            framework.follow_leader(timeout=30)
            try:
                return framework.launch("true", "agent1.test", timeout=3)
            except (AssertionError, SchedulerError):  # no offer yet; the stream closed under the call
                return None

        task = wait_for("a task launched after subscribing again", launched, timeout=60)
        framework.wait_state(task, "TASK_FINISHED")
        assert framework.framework_id == framework_id
