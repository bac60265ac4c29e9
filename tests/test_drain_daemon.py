"""The drain inside `bootstrap-agent run`: daemons of a master and agents in one test network (the process
manager running the Mesos stand-ins, tests/support/daemon_node.py), a framework launching a real task.

What a user sees: every agent reports its ``load``; SIGTERM while the system stops (``--drain-on-stop
always``) waits for the running task, takes the machine down at the master and only then leaves; a plain daemon
restart (``auto`` under the process manager) does not drain; an agent restarted mid-drain resumes it and never
registers again once drained."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

import requests

from bootstrap_agent.drain.machine import start_drain
from bootstrap_agent.layout import Layout
from bootstrap_agent.services.process import ProcessManager
from tests.support.daemon_node import AGENT_IPS, MASTER_IP, DaemonNode
from tests.support.mesos_framework import MesosFramework
from tests.test_daemon import members, start_master


def maintenance(net: Any) -> dict[str, Any]:
    def get() -> dict[str, Any]:
        answer = requests.get(f"http://{MASTER_IP}:5050/master/maintenance/status", timeout=5)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data
    result: dict[str, Any] = net.call(get)
    return result


def machine(ip: str) -> dict[str, str]:
    return {"hostname": ip, "ip": ip}


def test_sigterm_drain_waits_for_the_task_then_leaves(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)
    draining = cluster("agent", AGENT_IPS[0]).start("--drain-on-stop", "always", tick=2.0)
    plain = cluster("agent", AGENT_IPS[1]).start(tick=2.0)
    for agent in (draining, plain):
        agent.wait_for("ready with its load", lambda: all(members(net).get(a.uuid, {}).get("load")
                                                          for a in (draining, plain)), timeout=60)
    assert members(net)[plain.uuid]["load"] == {"tasks": 0, "frameworks": 0, "cache_bytes": 0,
                                                 "unpersisted_bytes": 0}

    framework = net.call(MesosFramework, f"{MASTER_IP}:5050", "drain-daemon-test")
    try:
        net.call(framework.subscribe)
        task = net.call(framework.launch_sleep, 6, AGENT_IPS[0])
        net.call(framework.wait_state, task, "TASK_RUNNING")
        draining.wait_for("the task in the load", lambda: members(net)[draining.uuid]["load"]["tasks"] == 1)

        # A daemon restart that is not a shutdown leaves the machine alone.
        assert plain.stop() == 0
        assert not plain.events("drain_started") and maintenance(net) == {}

        started = time.monotonic()
        draining.signal(signal.SIGTERM)
        member = draining.wait_for("draining with what it waits for",
                                   lambda: (m := members(net).get(draining.uuid)) and m["state"] == "draining" and m)
        assert member["drain"]["reason"] == "shutdown" and member["drain"]["phase"] == "tasks"
        assert member["reason"] == "shutdown drain: 1 running task(s) to finish"
        assert maintenance(net)["draining_machines"] == [{"id": machine(AGENT_IPS[0])}]
        net.call(framework.wait_state, task, "TASK_FINISHED", timeout=20)  # completed, not killed
        assert time.monotonic() - started >= 3
        # The framework that ran an executor here still runs: its shuffle files keep the node.
        member = draining.wait_for("waiting for the framework", lambda: (m := members(net).get(draining.uuid))
                                   and m["drain"]["phase"] == "shuffle" and m)
        assert member["reason"] == "shutdown drain: 1 running framework(s) with shuffle files here to finish"
        assert draining.status()["state"] == "draining"  # `bootstrap-agent status` says so too
        assert maintenance(net).get("down_machines") == [machine(AGENT_IPS[0])]
        assert draining.proc is not None and draining.proc.poll() is None
    finally:
        net.call(framework.close)
    assert draining.proc.wait(timeout=20) == 0
    assert draining.uuid not in members(net)
    assert maintenance(net).get("down_machines") == [machine(AGENT_IPS[0])]
    phases = [e["phase"] for e in draining.events("drain_phase")]
    assert phases == ["tasks", "blocks", "shuffle", "done"]
    [done] = draining.events("drain_done")
    assert done["outcome"] == "clean"


def test_an_agent_restarted_mid_drain_resumes_and_stays_gone(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)
    agent = cluster("agent", AGENT_IPS[2]).start(tick=2.0)
    agent.wait_for("ready", lambda: agent.status().get("state") == "ready", timeout=60)
    assert agent.stop() == 0  # a restart, not a shutdown: no drain, the services keep running
    # What a daemon killed mid-drain leaves behind: the drain record, phase maintenance, the grace still running.
    record = start_drain("shutdown", time.time() - 5, 600)
    (agent.root / "var/lib/bootstrap-agent/drain.json").write_text(json.dumps(record.to_dict()))
    agent.start(tick=2.0)
    agent.wait_for("the drain resumed and finished", lambda: agent.events("drain_finished"), timeout=60)
    assert agent.events("drain_resumed")[0]["phase"] == "maintenance"
    assert maintenance(net).get("down_machines") == [machine(AGENT_IPS[2])]
    time.sleep(3)  # passes go on: the drained node never registers again
    assert agent.uuid not in members(net) and agent.proc is not None and agent.proc.poll() is None
    finished = agent.events("drain_finished")[0]["timestamp"]
    assert [e for e in agent.events("member_registered") if e["timestamp"] > finished] == []
    resumed = agent.events("drain_resumed")[0]["timestamp"]
    assert [e for e in agent.events("member_registered") if e["timestamp"] > resumed] == []  # idle: gone at once


def test_an_agent_drained_at_poweroff_joins_again_when_the_instance_boots_again(
        cluster: Callable[..., DaemonNode]) -> None:
    """The shutdown drain left the machine DOWN and the Mesos agent shut down; the same instance booting again
    (its /run empty) brings the machine up, starts its agent, is ``ready`` and gets a task, well within one
    tick (30 s here): the rejoin looks again every 2 s."""
    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)
    agent = cluster("agent", AGENT_IPS[1]).start("--drain-on-stop", "always", tick=30.0)
    agent.wait_for("ready", lambda: members(net).get(agent.uuid, {}).get("state") == "ready", timeout=60)
    agent.signal(signal.SIGTERM)  # the system stops: an idle agent drains at once and leaves
    assert agent.proc is not None and agent.proc.wait(timeout=30) == 0
    assert maintenance(net).get("down_machines") == [machine(AGENT_IPS[1])] and agent.uuid not in members(net)

    ProcessManager(Layout(str(agent.root))).stop_all()  # the next boot: no service runs yet, /run is empty
    shutil.rmtree(agent.root / "run")
    booted = time.monotonic()
    agent.start(tick=30.0)
    agent.wait_for("ready again and offered", lambda: members(net).get(agent.uuid, {}).get("state") == "ready"
                   and agent.events("mesos_rejoined"), timeout=25)
    assert maintenance(net) == {} and agent.events("drain_discarded")
    framework = net.call(MesosFramework, f"{MASTER_IP}:5050", "rejoin-daemon-test")
    try:
        net.call(framework.subscribe)
        task = net.call(framework.launch, "true", AGENT_IPS[1], timeout=20)
        assert net.call(framework.wait_state, task, "TASK_FINISHED", "TASK_FAILED") == "TASK_FINISHED"
    finally:
        net.call(framework.close)
    assert time.monotonic() - booted < 30
