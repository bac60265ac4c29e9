"""The Mesos stand-in as a cluster: agents register with the leading master, frameworks get offers through the
real v1 scheduler API, tasks run as real processes, maintenance and machine/down behave as in Mesos 1.11.0.

Masters and agents run as real processes on distinct loopback addresses with a real ZooKeeper; the framework is
``tests/support/mesos_framework.py``. Rules MB1-MB11 of STARTUP-RULES.md ("Mesos behaviour").
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from tests.support.mesos_cluster import NS, MesosFactory, call, get_json, processes_with, window
from tests.support.mesos_framework import MesosFramework
from tests.support.waiting import wait_for


def test_offers_launch_a_real_process_that_finishes_and_resources_are_accounted(mesos: MesosFactory) -> None:
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    agent = cluster.agent("127.0.0.21", "agent1.test")
    cluster.agent("127.0.0.22", "agent2.test")
    slaves = cluster.wait_agents(2)
    assert {s["hostname"] for s in slaves} == {"agent1.test", "agent2.test"}
    one = next(s for s in slaves if s["hostname"] == "agent1.test")
    assert one["resources"]["cpus"] == 2.0 and one["active"] is True and one["pid"] == f"slave(1)@{agent}"

    with MesosFramework(master, "offers-test") as framework:
        assert framework.wait_offer("agent1.test")["resources"][0] == {
            "name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}}
        framework.wait_offer("agent2.test")
        token = cluster.token(2)
        task = framework.launch(f"echo started > marker; sleep {token}", "agent1.test", cpus=0.5, mem=128)
        framework.wait_state(task, "TASK_RUNNING")
        assert wait_for("the task's process", lambda: processes_with(f"sleep {token}"), timeout=5)
        agent_state = get_json(agent, "/slave(1)/state")
        [running] = agent_state["frameworks"]
        [executor] = running["executors"]
        assert executor["tasks"][0]["state"] == "TASK_RUNNING"
        assert (Path(executor["directory"]) / "marker").read_text() == "started\n"
        state = get_json(master, "/master/state")
        [fw] = state["frameworks"]
        assert fw["active"] is True and fw["tasks"][0]["slave_id"] == one["id"]
        assert next(s for s in state["slaves"] if s["id"] == one["id"])["used_resources"]["cpus"] == 0.5
        assert get_json(master, "/master/frameworks")["frameworks"][0]["used_resources"] == {
            "cpus": 0.5, "mem": 128, "gpus": 0, "disk": 0}
        metrics = get_json(master, "/metrics/snapshot")
        assert metrics["master/tasks_running"] == 1.0 and metrics["master/cpus_used"] == 0.5
        assert metrics["master/cpus_total"] == 4.0 and metrics["master/slaves_active"] == 2.0
        # The agent's next offer is what is left: offers shrink while the task runs.
        assert wait_for("a smaller offer", lambda: [o for o in framework.offers("agent1.test")
                                                    if o["resources"][0]["scalar"]["value"] == 1.5], timeout=5)

        framework.wait_state(task, "TASK_FINISHED")
        assert not processes_with(f"sleep {token}")
        assert framework.states(task) == ["TASK_RUNNING", "TASK_FINISHED"]
        failing = framework.launch("exit 3", "agent2.test")
        framework.wait_state(failing, "TASK_FAILED")
        assert "Command exited with status 3" in framework.updates[-1]["message"]
        too_big = framework.launch("true", "agent2.test", cpus=64)
        assert framework.wait_state(too_big, "TASK_ERROR") == "TASK_ERROR"
        assert framework.updates[-1]["message"].startswith("Total resources cpus(allocated: *):64; mem(allocated: *)")

        agent_state = get_json(agent, "/state")
        assert agent_state["frameworks"] == []
        [done] = agent_state["completed_frameworks"]
        assert done["completed_executors"][0]["completed_tasks"][0]["state"] == "TASK_FINISHED"
        assert get_json(master, "/master/state")["frameworks"][0]["tasks"] == []
        assert get_json(master, "/metrics/snapshot")["master/tasks_finished"] == 1.0


def test_a_started_maintenance_window_keeps_offering_the_machine_with_its_unavailability(
        mesos: MesosFactory) -> None:
    """Real 1.11 keeps offering a DRAINING machine (MB4): a framework that ignores ``unavailability`` (Spark) still
    lands tasks there, so a drain cannot rely on the window to keep new work away."""
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    cluster.agent("127.0.0.21", "agent1.test")
    cluster.agent("127.0.0.22", "agent2.test")
    cluster.wait_agents(2)
    with MesosFramework(master, "maintenance-test") as framework:
        task = framework.launch(f"sleep {cluster.token(2)}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")
        before = framework.wait_offer("agent1.test")  # the rest of the agent is still offered
        assert "unavailability" not in before

        start = time.time_ns()
        schedule = window("agent1.test", "127.0.0.21", start)
        status, body, _ = call(master, "/maintenance/schedule", schedule)
        assert (status, body) == (200, b"")
        assert get_json(master, "/master/maintenance/status") == {
            "draining_machines": [{"id": {"hostname": "agent1.test", "ip": "127.0.0.21"}}]}
        # The old offer is rescinded and a new one comes, marked with the window, although it has started.
        assert wait_for("the old offer rescinded", lambda: before not in framework.offers("agent1.test"), timeout=5)
        marked = framework.wait_offer("agent1.test")
        assert marked["unavailability"] == {"start": {"nanoseconds": start}, "duration": {"nanoseconds": 3600 * NS}}
        assert "unavailability" not in framework.wait_offer("agent2.test")
        landed = framework.launch(f"sleep {cluster.token(1)}", "agent1.test")  # ignoring unavailability
        framework.wait_state(landed, "TASK_RUNNING")
        framework.wait_state(landed, "TASK_FINISHED", timeout=15)
        framework.wait_state(task, "TASK_FINISHED", timeout=15)
        assert framework.states(task) == ["TASK_RUNNING", "TASK_FINISHED"]

        assert call(master, "/master/maintenance/schedule", {})[0] == 200  # out of the schedule: unmarked again
        assert wait_for("an unmarked offer", lambda: [o for o in framework.offers("agent1.test")
                                                      if "unavailability" not in o], timeout=5)


def _agent_call(master: str, kind: str, agent_id: str) -> tuple[int, bytes]:
    status, body, _ = call(master, "/api/v1", {"type": kind, kind.lower(): {"agent_id": {"value": agent_id}}})
    return status, body


def test_deactivate_agent_stops_offers_while_the_running_task_completes(mesos: MesosFactory) -> None:
    """MB10: DEACTIVATE_AGENT is what keeps new tasks off a draining agent on 1.11; REACTIVATE_AGENT undoes it."""
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    agent = cluster.agent("127.0.0.21", "agent1.test")
    cluster.agent("127.0.0.22", "agent2.test")
    one = next(s for s in cluster.wait_agents(2) if s["hostname"] == "agent1.test")
    with MesosFramework(master, "deactivate-test") as framework:
        token = cluster.token(3)
        task = framework.launch(f"sleep {token}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")
        framework.wait_offer("agent1.test")

        assert _agent_call(master, "DEACTIVATE_AGENT", one["id"]) == (200, b"")
        assert wait_for("the offer rescinded", lambda: not framework.offers("agent1.test"), timeout=2)
        slave = next(s for s in get_json(master, "/master/state")["slaves"] if s["id"] == one["id"])
        assert (slave["active"], slave["deactivated"]) == (False, True)
        [v1] = [a for a in json.loads(call(master, "/api/v1", {"type": "GET_AGENTS"})[1])["get_agents"]["agents"]
                if a["agent_info"]["id"]["value"] == one["id"]]
        assert (v1["active"], v1["deactivated"]) == (False, True)
        framework.wait_offer("agent2.test")
        time.sleep(1.5)  # several allocation rounds: nothing for the deactivated agent
        assert framework.offers("agent1.test") == []
        assert [t["state"] for t in get_json(master, "/master/state")["frameworks"][0]["tasks"]] == ["TASK_RUNNING"]
        assert get_json(agent, "/state")["frameworks"][0]["executors"][0]["tasks"][0]["id"] == task
        assert processes_with(f"sleep {token}")
        framework.wait_state(task, "TASK_FINISHED", timeout=15)
        assert framework.states(task) == ["TASK_RUNNING", "TASK_FINISHED"]
        assert framework.offers("agent1.test") == []

        assert _agent_call(master, "REACTIVATE_AGENT", one["id"]) == (200, b"")
        framework.wait_offer("agent1.test")
        assert next(s for s in cluster.slaves() if s["id"] == one["id"])["active"] is True
        assert _agent_call(master, "REACTIVATE_AGENT", one["id"]) == (400, b"Agent is not deactivated")
        assert _agent_call(master, "DEACTIVATE_AGENT", "nope-S9") == (400, b"Unknown agent")
        assert call(master, "/api/v1", {"type": "DEACTIVATE_AGENT", "deactivate_agent": {}})[:2] == (
            400, b"Failed to convert JSON into Call protobuf: Missing required fields: deactivate_agent.agent_id")
        assert call(master, "/api/v1", {"type": "REACTIVATE_AGENT"})[:2] == (
            400, b"Failed to validate master::Call: Expecting 'reactivate_agent' to be present")


def test_agent_deactivation_outlives_a_master_failover(mesos: MesosFactory) -> None:
    """Real 1.11 stores the deactivation in the registry (``DeactivateAgent``): the new leader keeps the
    re-registered agent deactivated."""
    cluster = mesos()
    first = cluster.master("127.0.0.11")
    second = cluster.master("127.0.0.12")
    assert cluster.leader() == first
    cluster.agent("127.0.0.21", "agent1.test")
    [before] = cluster.wait_agents(1)
    assert _agent_call(first, "DEACTIVATE_AGENT", before["id"]) == (200, b"")
    cluster.masters[first].send_signal(signal.SIGTERM)
    assert cluster.masters[first].wait(timeout=5) == 0
    assert cluster.leader() == second
    [after] = cluster.wait_agents(1)
    assert (after["id"], after["active"], after["deactivated"]) == (before["id"], False, True)
    with MesosFramework(second, "failover-deactivated") as framework:
        time.sleep(1.5)
        assert framework.offers("agent1.test") == []
        assert _agent_call(second, "REACTIVATE_AGENT", after["id"]) == (200, b"")
        framework.wait_offer("agent1.test")


def test_machine_down_kills_the_tasks_and_shuts_the_agent_down(mesos: MesosFactory) -> None:
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    agent = cluster.agent("127.0.0.21", "agent1.test")
    cluster.wait_agents(1)
    machine = [{"hostname": "agent1.test", "ip": "127.0.0.21"}]
    with MesosFramework(master, "down-test") as framework:
        token = cluster.token(60)
        task = framework.launch(f"sleep {token}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")
        assert processes_with(f"sleep {token}")
        status, body, _ = call(master, "/master/machine/down", machine)
        assert (status, body.decode()) == (
            400, """Machine '{"hostname":"agent1.test","ip":"127.0.0.21"}' is not part of a maintenance schedule""")
        assert framework.state(task) == "TASK_RUNNING"

        assert call(master, "/master/maintenance/schedule", window("agent1.test", "127.0.0.21", time.time_ns()))[0] \
            == 200
        assert call(master, "/master/machine/down", machine)[:2] == (200, b"")
        framework.wait_state(task, "TASK_LOST", timeout=5)
        assert framework.updates[-1]["message"] == "Operator initiated 'Machine DOWN'"
        proc = cluster.agents[agent]
        assert proc.wait(timeout=10) == 0  # the agent shuts down, as on a ShutdownMessage
        assert wait_for("the task's processes gone", lambda: not processes_with(f"sleep {token}"), timeout=5)
        assert cluster.slaves() == []
        assert get_json(master, "/master/maintenance/status") == {
            "down_machines": [{"hostname": "agent1.test", "ip": "127.0.0.21"}]}

        # An agent on a DOWN machine is refused and stops; after machine/up it registers again.
        again = cluster.agent("127.0.0.21", "agent1.test")
        assert cluster.agents[again].wait(timeout=10) == 0
        status, body, _ = call(master, "/master/maintenance/schedule", {})
        assert (status, body.decode()) == (400, """Machine '{"hostname":"agent1.test","ip":"127.0.0.21"}' """
                                                "is deactivated and cannot be removed from the schedule")
        assert call(master, "/master/machine/up", machine)[:2] == (200, b"")
        assert get_json(master, "/master/maintenance/schedule") == {}
        cluster.agent("127.0.0.21", "agent1.test")
        cluster.wait_agents(1)
        framework.wait_offer("agent1.test")


def test_a_dead_agent_is_removed_after_the_ping_timeouts(mesos: MesosFactory) -> None:
    cluster = mesos(agent_ping_timeout="500ms", max_agent_ping_timeouts="3")
    master = cluster.master("127.0.0.11")
    agent = cluster.agent("127.0.0.21", "agent1.test")
    cluster.agent("127.0.0.22", "agent2.test")
    cluster.wait_agents(2)
    with MesosFramework(master, "death-test") as framework:
        token = cluster.token(3)
        task = framework.launch(f"sleep {token}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")
        cluster.agents[agent].kill()  # SIGKILL: no goodbye, the pings just stop
        killed = time.monotonic()
        framework.wait_state(task, "TASK_LOST", timeout=10)
        elapsed = time.monotonic() - killed
        # 500ms x 3 after the last ping, which came at most one ping interval (0.5 s) before the kill
        assert 0.9 <= elapsed < 6.0, elapsed
        assert [s["hostname"] for s in cluster.slaves()] == ["agent2.test"]
        metrics = get_json(master, "/metrics/snapshot")
        assert metrics["master/slaves_active"] == 1.0 and metrics["master/slaves_unreachable"] == 1.0
        assert metrics["master/tasks_lost"] == 1.0 and metrics["master/tasks_running"] == 0.0


def test_master_failover_keeps_agents_tasks_and_the_maintenance_schedule(mesos: MesosFactory) -> None:
    cluster = mesos()
    first = cluster.master("127.0.0.11")
    second = cluster.master("127.0.0.12")
    assert cluster.leader() == first
    cluster.agent("127.0.0.21", "agent1.test")
    [before] = cluster.wait_agents(1)
    schedule = window("agent2.test", "127.0.0.22", time.time_ns() + 3600 * NS)
    assert call(first, "/master/maintenance/schedule", schedule)[0] == 200
    framework = MesosFramework(f"{second},{first}", "failover-test")
    try:
        framework.subscribe()
        assert framework.leader == first  # the non-leader redirected SUBSCRIBE
        task = framework.launch(f"sleep {cluster.token(4)}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")

        cluster.masters[first].send_signal(signal.SIGTERM)
        assert cluster.masters[first].wait(timeout=5) == 0
        assert cluster.leader() == second
        [after] = cluster.wait_agents(1)
        assert after["id"] == before["id"]
        state = get_json(second, "/master/state")
        [fw] = state["frameworks"]
        assert fw["id"] == framework.framework_id and fw["active"] is False
        assert [(t["id"], t["state"]) for t in fw["tasks"]] == [(task, "TASK_RUNNING")]
        assert get_json(second, "/master/maintenance/schedule") == schedule

        framework.leader = None
        framework.subscribe()  # with its framework id: the same framework again
        assert framework.leader == second
        framework.wait_state(task, "TASK_FINISHED", timeout=15)
        assert get_json(second, "/master/state")["frameworks"][0]["active"] is True
    finally:
        framework.close()


def test_operator_api_v1_and_drain_agent(mesos: MesosFactory) -> None:
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    cluster.agent("127.0.0.21", "agent1.test")
    [slave] = cluster.wait_agents(1)
    status, body, headers = call(master, "/api/v1", {"type": "GET_AGENTS"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    [agent] = json.loads(body)["get_agents"]["agents"]
    assert agent["agent_info"]["id"] == {"value": slave["id"]} and agent["agent_info"]["hostname"] == "agent1.test"
    assert agent["active"] is True
    schedule = window("agent1.test", "127.0.0.21", time.time_ns() + 3600 * NS)
    assert call(master, "/api/v1", {"type": "UPDATE_MAINTENANCE_SCHEDULE",
                                    "update_maintenance_schedule": {"schedule": schedule}})[0] == 200
    answer = json.loads(call(master, "/api/v1", {"type": "GET_MAINTENANCE_SCHEDULE"})[1])
    assert answer == {"type": "GET_MAINTENANCE_SCHEDULE", "get_maintenance_schedule": {"schedule": schedule}}
    drain: dict[str, Any] = {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": slave["id"]}}}
    status, body, _ = call(master, "/api/v1", drain)
    assert (status, body.decode()) == (400, f"Agent {slave['id']} is part of a maintenance schedule under Machine "
                                            '{"hostname":"agent1.test","ip":"127.0.0.21"}')
    assert call(master, "/api/v1", {"type": "UPDATE_MAINTENANCE_SCHEDULE",
                                    "update_maintenance_schedule": {"schedule": {}}})[0] == 200

    with MesosFramework(master, "drain-agent-test") as framework:
        task = framework.launch(f"sleep {cluster.token(60)}", "agent1.test")
        framework.wait_state(task, "TASK_RUNNING")
        drain["drain_agent"]["max_grace_period"] = {"nanoseconds": NS}
        drain["drain_agent"]["mark_gone"] = True
        assert call(master, "/api/v1", drain)[0] == 200
        framework.wait_state(task, "TASK_KILLED", timeout=10)
        assert wait_for("the drained agent gone", lambda: cluster.slaves() == [], timeout=10)
        assert cluster.agents[next(iter(cluster.agents))].wait(timeout=10) == 0


def test_non_json_calls_and_bad_maintenance_bodies_are_refused_with_the_real_messages(mesos: MesosFactory) -> None:
    cluster = mesos()
    leader = cluster.master("127.0.0.11")
    other = cluster.master("127.0.0.12")
    assert cluster.leader() == leader
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "x"}}}
    wait_for("the other master knows the leader", lambda: call(other, "/master/redirect")[0] == 307, timeout=10)
    status, _, headers = call(other, "/api/v1/scheduler", subscribe)
    assert (status, headers.get("Location")) == (307, f"//127.0.0.11:{leader.split(':')[1]}/api/v1/scheduler")
    assert call(other, "/master/machine/down", [])[0] == 307
    for path in ("/api/v1/scheduler", "/api/v1"):
        assert call(leader, path, b"\x08\x01", content_type="application/x-protobuf")[:2] == (
            400, b"Failed to parse body into Call protobuf")
        assert call(leader, path, b"{}", content_type="text/plain")[:2] == (
            415, b"Expecting 'Content-Type' of application/json or application/x-protobuf")
        assert call(leader, path, b"{not json")[0] == 400
    assert call(leader, "/api/v1/scheduler", {"type": "DECLINE", "framework_id": {"value": "nope"},
                                              "decline": {"offer_ids": []}})[:2] == (400, b"Framework cannot be found")

    def refused(path: str, body: Any) -> str:
        status, text, _ = call(leader, path, body)
        assert status == 400, (path, body, status, text)
        return text.decode()

    now = time.time_ns()
    empty = {"windows": [{"machine_ids": [], "unavailability": {"start": {"nanoseconds": now}}}]}
    assert refused("/master/maintenance/schedule", empty) == "List of machines in the maintenance window is empty"
    negative = window("a", "127.0.0.30", now)
    negative["windows"][0]["unavailability"]["duration"]["nanoseconds"] = -1
    assert refused("/master/maintenance/schedule", negative) == "Unavailability 'duration' is negative"
    twice = window("a", "127.0.0.30", now)
    twice["windows"].append(window("a", "127.0.0.30", now)["windows"][0])
    assert refused("/master/maintenance/schedule", twice) == \
        """Machine '{"hostname":"a","ip":"127.0.0.30"}' appears more than once in the schedule"""
    assert refused("/master/maintenance/schedule", window("", "", now)) == \
        "Both 'hostname' and 'ip' for a machine are empty"
    assert refused("/master/machine/down", []) == "List of machines is empty"
    assert call(leader, "/master/maintenance/schedule", window("a", "127.0.0.30", now))[0] == 200
    assert refused("/master/machine/up", [{"hostname": "a", "ip": "127.0.0.30"}]) == \
        """Machine '{"hostname":"a","ip":"127.0.0.30"}' is not in DOWN mode and cannot be brought up"""
    assert get_json(leader, "/master/maintenance/schedule") == window("a", "127.0.0.30", now)


def test_drain_and_deactivate_agent_are_unknown_to_1_4(mesos: MesosFactory) -> None:
    cluster = mesos("1.4")
    master = cluster.master("127.0.0.11")
    cluster.leader()
    status, body, _ = call(master, "/api/v1", {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "x"}}})
    assert (status, body) == (400, b"Failed to convert JSON into Call protobuf: Failed to find enum for 'DRAIN_AGENT'")
    for kind in ("DEACTIVATE_AGENT", "REACTIVATE_AGENT"):
        assert _agent_call(master, kind, "x") == (
            400, f"Failed to convert JSON into Call protobuf: Failed to find enum for '{kind}'".encode())
    assert call(master, "/api/v1", {"type": "GET_MAINTENANCE_STATUS"})[:2] == (
        200, b'{"type":"GET_MAINTENANCE_STATUS","get_maintenance_status":{"status":{}}}')


def test_tasks_outlive_an_agent_restart_and_the_agent_recovers_them(mesos: MesosFactory) -> None:
    cluster = mesos()
    master = cluster.master("127.0.0.11")
    agent = cluster.agent("127.0.0.21", "agent1.test")
    [before] = cluster.wait_agents(1)
    with MesosFramework(master, "recovery-test") as framework:
        short, long = cluster.token(1), cluster.token(5)
        ends_meanwhile = framework.launch(f"sleep {short}", "agent1.test")
        keeps_running = framework.launch(f"sleep {long}", "agent1.test")
        framework.wait_state(ends_meanwhile, "TASK_RUNNING")
        framework.wait_state(keeps_running, "TASK_RUNNING")
        proc = cluster.agents[agent]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert processes_with(f"sleep {long}")  # the executor did not die with the agent
        assert wait_for("the short task's end", lambda: not processes_with(f"sleep {short}"), timeout=5)

        cluster.agent("127.0.0.21", "agent1.test")
        framework.wait_state(ends_meanwhile, "TASK_FINISHED", timeout=10)
        [after] = cluster.wait_agents(1)
        assert after["id"] == before["id"]
        assert framework.state(keeps_running) == "TASK_RUNNING"
        framework.wait_state(keeps_running, "TASK_FINISHED", timeout=15)
        assert framework.states(keeps_running) == ["TASK_RUNNING", "TASK_FINISHED"]
