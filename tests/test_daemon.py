"""`bootstrap-agent run`: nodes that find each other in a real ZooKeeper and keep reacting.

A master and several agents run as daemons in one test network (see tests/support/daemon_node.py); the
master's ZooKeeper is the real one its own daemon started. Assertions come from what users see: the member
znodes, the master's dashboard over HTTPS, `status --cluster`, the daemons' own logs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from tests.support.daemon_node import AGENT_IPS, DASHBOARD_AUTH, MASTER_IP, SECRET, DaemonNode, cluster_user_data
from tests.support.netns import TestNode

BASE = "/bootstrap-agent/eo-live"


def zk(net: TestNode, fn: Callable[[KazooClient], Any], *, secret: str | None = SECRET) -> Any:
    """Run ``fn`` with a fresh ZooKeeper client inside the test network."""
    def session() -> Any:
        auth = [("digest", f"bootstrap-agent:{secret}")] if secret else None
        client = KazooClient(hosts=f"{MASTER_IP}:2181", auth_data=auth, timeout=5)
        client.start(timeout=10)
        try:
            return fn(client)
        finally:
            client.stop()
            client.close()
    return net.call(session)


def members(net: TestNode) -> dict[str, dict[str, Any]]:
    def read(client: KazooClient) -> dict[str, dict[str, Any]]:
        out = {}
        for child in client.get_children(f"{BASE}/nodes"):
            data, _ = client.get(f"{BASE}/nodes/{child}")
            out[child] = json.loads(data)
        return out
    result: dict[str, dict[str, Any]] = zk(net, read)
    return result


def dashboard(net: TestNode) -> str:
    response = net.https_get(f"https://{MASTER_IP}/", auth=DASHBOARD_AUTH)
    assert response.status == 200
    return response.body.decode()


def start_master(cluster: Callable[..., DaemonNode]) -> DaemonNode:
    master = cluster("master", MASTER_IP).start()
    master.wait_for("registration", lambda: master.events("member_registered"), timeout=40)
    return master


def test_agents_join_and_leave_and_the_dashboard_follows(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    master = start_master(cluster)
    agents = [cluster("agent", ip).start() for ip in AGENT_IPS[:2]]
    for agent in agents:
        agent.wait_for("ready", lambda a=agent: a.status().get("state") == "ready")
    master.wait_for("agents on the dashboard", lambda: all(a.ip in dashboard(net) for a in agents))
    seen = members(net)
    assert {m["role"] for m in seen.values()} == {"master", "agent"} and len(seen) == 3
    assert agents[0].events("member_registered")[0]["state"] == "bootstrapping"  # seen before its services run
    assert all(m["state"] == "ready" for m in seen.values()), seen
    assert seen[agents[0].uuid]["services"] == {"mesos-agent": "active", "spark-shuffle": "active"}

    out = net.run([sys.executable, "-m", "bootstrap_agent.cli", "status", "--cluster", "--json", "--root",
                   str(master.root)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert sorted(m["ip"] for m in json.loads(out.stdout)["members"]) == [MASTER_IP, *AGENT_IPS[:2]]

    # SIGTERM: the member znode goes at once, the daemon exits 0, the services keep running.
    leaving = agents[1]
    pids_before = leaving.status()["services"]
    assert leaving.stop() == 0
    assert leaving.uuid not in members(net)
    assert pids_before and net.port_open(leaving.ip, 5051)
    master.wait_for("agent gone from the dashboard", lambda: leaving.ip not in dashboard(net), timeout=10)


def test_agents_watch_only_the_masters(cluster: Callable[..., DaemonNode]) -> None:
    """A join costs O(masters): agents are not woken by other agents."""
    master = start_master(cluster)
    first = cluster("agent", AGENT_IPS[0]).start()
    first.wait_for("ready", lambda: first.status().get("state") == "ready")
    before = len(first.events("reconciled"))
    others = [cluster("agent", ip).start() for ip in AGENT_IPS[1:]]
    for other in others:
        other.wait_for("ready", lambda o=other: o.status().get("state") == "ready")
    master.wait_for("members on the dashboard", lambda: all(o.ip in dashboard(cluster.net) for o in others))  # type: ignore[attr-defined]
    reasons = [e["reasons"] for e in first.events("reconciled")[before:]]
    assert all("members" not in r for r in reasons), reasons


def test_agent_starts_before_zookeeper_and_joins_later(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    agent = cluster("agent", AGENT_IPS[0]).start()
    agent.wait_for("degraded with services up", lambda: agent.status().get("state") == "degraded")
    assert "ZooKeeper" in agent.status()["reason"]
    assert net.port_open(AGENT_IPS[0], 5051)  # configured and running without ZooKeeper
    master = start_master(cluster)
    agent.wait_for("ready once ZooKeeper is up", lambda: agent.status().get("state") == "ready", timeout=40)
    assert agent.uuid in members(net)
    assert master.proc is not None and agent.proc is not None and agent.proc.poll() is None


def test_a_failing_pass_does_not_end_the_daemon(cluster: Callable[..., DaemonNode]) -> None:
    """A pass that fails where nothing expected it (here: a damaged state folder, the status file cannot be
    replaced) is logged and reported; the loop goes on and the next pass recovers (Patroni's run_cycle)."""
    agent = cluster("agent", AGENT_IPS[0]).start(tick=600)
    agent.wait_for("a first pass", lambda: agent.events("reconciled"))
    status = agent.root / "var/lib/bootstrap-agent/status.json"
    status.unlink()
    status.mkdir()
    (status / "in-the-way").write_text("")
    agent.signal(signal.SIGHUP)
    failed = agent.wait_for("reconcile_failed", lambda: agent.events("reconcile_failed"))
    assert failed[0]["error_type"] == "IsADirectoryError", failed
    time.sleep(0.5)
    assert agent.proc is not None and agent.proc.poll() is None, "one failed pass ended the daemon"
    shutil.rmtree(status)
    passes = len(agent.events("reconciled"))
    agent.signal(signal.SIGHUP)
    agent.wait_for("a good pass again", lambda: len(agent.events("reconciled")) > passes and status.is_file())
    assert agent.status().get("state") == "degraded" and "ZooKeeper" in agent.status()["reason"]  # no master


def test_changed_masters_rebuild_the_store_and_its_watches(cluster: Callable[..., DaemonNode]) -> None:
    """The store comes from the user-data: a new masters list (or secret) takes effect at the next re-read,
    not at the next boot."""
    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)
    wrong = {**cluster_user_data("agent"), "masters": ["10.88.0.99"]}  # nobody there
    agent = cluster("agent", AGENT_IPS[0], data=wrong).start(tick=600)
    agent.wait_for("degraded", lambda: agent.status().get("state") == "degraded")
    assert agent.uuid not in members(net)
    agent.metadata.set_user_data(json.dumps(cluster_user_data("agent")).encode())
    agent.signal(signal.SIGHUP)
    agent.wait_for("ready with the new masters", lambda: agent.status().get("state") == "ready", timeout=40)
    assert agent.uuid in members(net)
    assert agent.events("store_rebuilding")
    assert MASTER_IP in (agent.root / "etc/default/mesos-agent").read_text()


def test_unauthenticated_clients_cannot_read_or_write(cluster: Callable[..., DaemonNode]) -> None:
    from kazoo.exceptions import NoAuthError

    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)

    def intrude(client: KazooClient) -> list[str]:
        refused = []
        for name, call in (("read", lambda: client.get_children(f"{BASE}/nodes")),
                           ("write", lambda: client.create(f"{BASE}/nodes/intruder", b"{}")),
                           ("create", lambda: client.create(f"{BASE}/config-intruder", b"{}"))):
            try:
                call()
            except NoAuthError:
                refused.append(name)
        return refused

    assert zk(net, intrude, secret=None) == ["read", "write", "create"]
    assert zk(net, intrude, secret="not-the-cluster-secret") == ["read", "write", "create"]


def test_garbage_member_is_ignored_and_logged(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    master = start_master(cluster)
    agent = cluster("agent", AGENT_IPS[0]).start()
    master.wait_for("agent listed", lambda: AGENT_IPS[0] in dashboard(net))

    def plant(client: KazooClient) -> None:
        client.create(f"{BASE}/nodes/garbage-1", b"<html>not json</html>", ephemeral=True)
        client.create(f"{BASE}/nodes/garbage-2", json.dumps(
            {"uuid": "garbage-2", "role": "agent", "ip": "8.8.8.8", "hostname": "evil", "state": "ready",
             "reason": "", "services": {}, "since": 0}).encode(), ephemeral=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(master.events("peer_invalid")) < 2:
            time.sleep(0.1)

    zk(net, plant)
    page = dashboard(net)
    assert "8.8.8.8" not in page and "not json" not in page
    assert AGENT_IPS[0] in page and agent.proc is not None and agent.proc.poll() is None
    assert {e.get("uuid") for e in master.events("peer_invalid")} >= {"garbage-1", "garbage-2"}


def config(net: TestNode, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return net.run([sys.executable, "-m", "bootstrap_agent.cli", "config", *args, "--root", str(root)],
                   capture_output=True, text=True, timeout=60)


def test_config_change_restarts_agents_one_at_a_time(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    master = start_master(cluster)
    agents = [cluster("agent", ip).start() for ip in AGENT_IPS]
    for agent in agents:
        agent.wait_for("ready", lambda a=agent: a.status().get("state") == "ready")

    refused = config(net, master.root, "set", "mesos.agent_flags.no_such_flag", "1")
    assert refused.returncode == 2 and "no_such_flag" in refused.stderr
    assert json.loads(config(net, master.root, "get").stdout) == {}
    fixed = config(net, master.root, "set", "masters", '["10.88.0.99"]')
    assert fixed.returncode == 2 and "fixed at provisioning" in fixed.stderr

    changed = config(net, master.root, "set", "mesos.attributes.rack", "r7")
    assert changed.returncode == 0, changed.stderr
    def attributes(ip: str) -> Any:
        try:
            return json.loads(net.http_get(f"http://{ip}:5051/state").body)["attributes"]
        except OSError:
            return None  # restarting right now

    for agent in agents:
        agent.wait_for("restart with the new attribute", lambda a=agent: a.events("unit_restarted"), timeout=60)
        agent.wait_for("the new attribute", lambda a=agent: attributes(a.ip) == {"rack": "r7"}, timeout=60)
        agent.wait_for("the lock released", lambda a=agent: a.events("restart_lock_released"), timeout=30)

    # From the agents' own logs: the lock intervals never overlap.
    intervals = []
    for agent in agents:
        acquired = [e["timestamp"] for e in agent.events("restart_lock_acquired")]
        released = [e["timestamp"] for e in agent.events("restart_lock_released")]
        assert len(acquired) == len(released) == 1, (acquired, released)
        intervals.append((acquired[0], released[0], agent.ip))
    intervals.sort()
    for (_, end, a), (start, _, b) in itertools.pairwise(intervals):
        assert end <= start, f"{a} and {b} restarted at the same time: {intervals}"


def test_a_config_with_a_refused_key_written_into_zookeeper_changes_nothing(cluster: Callable[..., DaemonNode]) -> None:
    """A config that bypasses `config set` with a flag root's Mesos would execute from: every daemon keeps its
    last good settings and says which key it refused (the run-time allow-list, issue 14)."""
    from kazoo.security import make_acl

    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)
    agent = cluster("agent", AGENT_IPS[0]).start()
    agent.wait_for("ready", lambda: agent.status().get("state") == "ready")
    flags = agent.root / "etc/default/mesos-agent"
    before = flags.read_text()

    def plant(client: KazooClient) -> None:
        data = json.dumps({"mesos.agent_flags": {"launcher_dir": "/tmp/evil"}, "mesos.attributes.rack": "r9"})
        if client.exists(f"{BASE}/config"):
            client.set(f"{BASE}/config", data.encode())
        else:
            client.create(f"{BASE}/config", data.encode(), acl=[make_acl("auth", "", all=True)])

    zk(net, plant)
    agent.wait_for("the config refused", lambda: agent.events("config_invalid"), timeout=30)
    assert agent.events("config_invalid")[0]["field"] == "mesos.agent_flags.launcher_dir"
    agent.wait_for("degraded, naming the key", lambda: agent.status().get("state") == "degraded")
    assert "mesos.agent_flags.launcher_dir" in agent.status()["reason"]
    assert flags.read_text() == before and "/tmp/evil" not in before and "r9" not in before
    assert not agent.events("unit_restarted")


def test_sighup_rereads_user_data(cluster: Callable[..., DaemonNode]) -> None:
    start_master(cluster)
    agent = cluster("agent", AGENT_IPS[0]).start(tick=600)
    agent.wait_for("ready", lambda: agent.status().get("state") == "ready")
    agent.metadata.set_user_data(json.dumps(cluster_user_data("agent", attributes={"az": "eu-de-03"})).encode())
    agent.signal(signal.SIGHUP)
    agent.wait_for("restart after SIGHUP", lambda: agent.events("unit_restarted"), timeout=30)
    assert "az:eu-de-03" in (agent.root / "etc/default/mesos-agent").read_text()


def test_a_member_that_dies_disappears_within_one_session_timeout(cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    start_master(cluster)
    agent = cluster("agent", AGENT_IPS[0]).start()
    agent.wait_for("registered", lambda: agent.uuid in members(net))
    assert agent.proc is not None
    agent.proc.kill()  # no goodbye: the ephemeral znode must age out by itself
    agent.proc.wait()
    died = time.monotonic()
    deadline = died + 4 + 3  # the daemons run with --zk-session-timeout 4; allow ZooKeeper's tick to expire it
    while agent.uuid in members(net):
        assert time.monotonic() < deadline, "a dead member's znode outlived its session"
        time.sleep(0.2)


def test_zookeeper_restarted_under_the_cluster(cluster: Callable[..., DaemonNode]) -> None:
    """The master's ZooKeeper dies: agents report degraded, the master brings ZooKeeper back on its next
    pass, and every member is registered again with its watches working."""
    net = cluster.net  # type: ignore[attr-defined]
    master = start_master(cluster)
    agents = [cluster("agent", ip).start() for ip in AGENT_IPS[:2]]
    for agent in agents:
        agent.wait_for("registered", lambda a=agent: a.uuid in members(net))
    record = json.loads((master.root / "run/bootstrap-agent/process/zookeeper.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    for agent in agents:
        agent.wait_for("degraded", lambda a=agent: a.status().get("state") == "degraded", timeout=30)
    master.wait_for("ZooKeeper started again", lambda: len(master.events("unit_started")) >= 2 and any(
        e["unit"] == "zookeeper" for e in master.events("unit_started")[1:]), timeout=30)
    for agent in agents:
        agent.wait_for("ready again", lambda a=agent: a.status().get("state") == "ready", timeout=40)
    assert {a.uuid for a in agents} | {master.uuid} <= set(members(net))
    # The watches work again: a new agent shows up on the dashboard.
    late = cluster("agent", AGENT_IPS[2]).start()
    master.wait_for("the late agent on the dashboard", lambda: late.ip in dashboard(net), timeout=30)


def _receive(sock: socket.socket, lines: list[str], until: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        with contextlib.suppress(TimeoutError):
            lines.extend(sock.recv(4096).decode().splitlines())


def test_systemd_notify_protocol(
    cluster: Callable[..., DaemonNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY=1 once the node runs its services, STATUS= as it goes, WATCHDOG=1 while the loop lives,
    STOPPING=1 on SIGTERM — received on a real notify socket, as systemd would."""
    path = tmp_path / "notify.sock"
    received: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(0.2)
        agent = cluster("agent", AGENT_IPS[0])
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))  # the daemon's environment, as systemd sets it
        monkeypatch.setenv("WATCHDOG_USEC", "1000000")
        agent.start()
        _receive(sock, received, lambda: received.count("WATCHDOG=1") >= 3, 30)
        assert agent.stop() == 0
        _receive(sock, received, lambda: "STOPPING=1" in received, 2)
    assert received.count("READY=1") == 1, received
    ready_at = received.index("READY=1")
    assert received[ready_at + 1].startswith("STATUS=degraded")  # services up, ZooKeeper not there (no master)
    assert received.count("WATCHDOG=1") >= 3
    assert "STOPPING=1" in received
