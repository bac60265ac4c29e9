"""Issue 14 in the local cloud under real systemd: a workload on an agent cannot take over the cluster.

One master and one agent booted from this checkout's node image by ``provision-min up --cloud local``; the test
enters the agent's namespaces (``nsenter`` on the pid ``status --json`` gives) and tries what a Mesos task, a
Docker container and a thief of the node's secret would try:

* uid 65534 (what tasks and executors run as) is refused at the nginx cache and at 169.254.169.254 (user-data
  and the agency's keys), while root on the same node reads its user-data;
* a network namespace attached the way a bridge-network Docker container is (a veth pair into the agent, a
  private /30, forwarding and masquerade as Docker sets them) reaches the master but not 169.254.169.254;
* the node credential (read as root from the node's last good user-data) cannot write the run-time config,
  neither through ``bootstrap-agent config set`` nor straight at ZooKeeper; the operator's credential (from the
  local state file, on standard input) can, and the change rolls to the agent's rendered files;
* a reboot keeps the concealment; with the nftables table removed the agent reports ``degraded`` naming it,
  and restarting the unit that loads it brings the node back to ``ready``.

Everything the test makes is removed also on failure: the cluster by the fixture's ``down``, the namespace,
veth pair, NAT table and forwarding switch by the test's own ``finally``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from provision_min.local import machine
from tests.support.local_cloud import S3_SECRET, LocalCloud, by_name, inside, ready_names, torn_down
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("containers_required")

TABLE = "bootstrap_agent_conceal"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# Each URL in argv: "open <status>" when it answered, "refused <error>" when the connection failed.
_FETCH = (
    "import sys, urllib.request as u\n"
    "opener = u.build_opener(u.ProxyHandler({}))\n"
    "for url in sys.argv[1:]:\n"
    "    try:\n"
    "        r = opener.open(url, timeout=5)\n"
    "        body = r.read().decode()\n"
    "        print('open', r.status, len(body))\n"
    "    except Exception as exc:\n"
    "        print('refused', type(exc).__name__, getattr(exc, 'reason', exc))\n"
)
SECRET_URLS = ["http://localhost/user-data", "http://169.254.169.254/openstack/latest/user_data",
               "http://169.254.169.254/openstack/latest/securitykey"]
# A connect to host:port from argv: "connected" or "refused <error>".
_CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(5)\n"
    "try:\n"
    "    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
    "except OSError as exc:\n"
    "    print('refused', exc)\n"
)


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"sec-{os.getpid()}")
    cloud.write(masters=1, desired=1)
    with torn_down(cloud):
        yield cloud


def run_in(pid: int, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``inside`` with standard input (the operator's secret goes in there, never in an argument)."""
    return subprocess.run(["nsenter", "-t", str(pid), "-a", *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": machine.CONTAINER_PATH}, input=stdin, check=False)


def fetch_as(pid: int, prefix: list[str]) -> list[str]:
    done = inside(pid, [*prefix, "python3", "-I", "-c", _FETCH, *SECRET_URLS])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(SECRET_URLS), done.stdout
    return lines


def assert_concealed(pid: int) -> None:
    as_nobody = fetch_as(pid, NOBODY)
    assert all(line.startswith("refused") for line in as_nobody), dict(zip(SECRET_URLS, as_nobody, strict=True))
    as_root = fetch_as(pid, [])
    assert as_root[0].startswith("open 200") and as_root[1].startswith("open 200"), as_root


def agent_of(report: dict[str, Any], cluster: str) -> dict[str, Any]:
    node: dict[str, Any] = by_name(report)[f"{cluster}-agent-1"]
    return node


def host(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)


def in_agent_net(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """This machine's tools (ip, sysctl, nft) in the agent's network namespace only, as dockerd does there."""
    return host("nsenter", "-t", str(pid), "-n", *argv)


def check_bridge_container(pid: int, master_ip: str) -> None:
    """A namespace wired like a Docker bridge container: refused at 169.254.169.254, not cut off the network
    (it reaches the master's dashboard through the agent's forwarding and masquerade)."""
    tag = f"{os.getpid() % 100000}"
    netns, outer, peer = f"bal-sec{tag}", f"bsa{tag}", f"bsb{tag}"
    gateway, address = "10.254.77.1", "10.254.77.2"
    old_forward = in_agent_net(pid, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() or "0"
    nat = f"bal_sec_{tag}"
    try:
        for argv in (["ip", "netns", "add", netns],
                     ["ip", "link", "add", outer, "type", "veth", "peer", "name", peer],
                     ["ip", "link", "set", peer, "netns", netns],
                     ["ip", "link", "set", outer, "netns", str(pid)]):
            assert host(*argv).returncode == 0, argv
        for argv in (["ip", "addr", "add", f"{gateway}/30", "dev", outer], ["ip", "link", "set", outer, "up"],
                     ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                     ["nft", f"add table ip {nat}; add chain ip {nat} post {{ type nat hook postrouting priority "
                             f"srcnat; }}; add rule ip {nat} post ip saddr {gateway}/30 oifname != {outer} "
                             "masquerade"]):
            done = in_agent_net(pid, *argv)
            assert done.returncode == 0, (argv, done.stderr)
        for argv in (["ip", "addr", "add", f"{address}/30", "dev", peer], ["ip", "link", "set", peer, "up"],
                     ["ip", "link", "set", "lo", "up"], ["ip", "route", "add", "default", "via", gateway]):
            assert host("ip", "netns", "exec", netns, *argv).returncode == 0, argv

        def connect(ip: str, port: int) -> str:
            return host("ip", "netns", "exec", netns, "python3", "-I", "-c", _CONNECT, ip, str(port)).stdout.strip()

        assert connect(master_ip, 443) == "connected"  # the path works: forwarding and masquerade are on
        for port in (80, 443):
            assert connect("169.254.169.254", port).startswith("refused"), port
    finally:
        host("ip", "netns", "del", netns)  # takes the veth pair with it
        in_agent_net(pid, "ip", "link", "del", outer)
        in_agent_net(pid, "nft", "delete", "table", "ip", nat)
        in_agent_net(pid, "sysctl", "-qw", f"net.ipv4.ip_forward={old_forward}")


def node_cannot_write_config(master_ip: str, cluster: str, node_secret: str, *, exists: bool) -> None:
    """Straight at ZooKeeper with the node credential: creating, writing, deleting the config znode or giving
    it another ACL are all refused (NoAuth), whatever the CLI says."""
    path = f"/bootstrap-agent/{cluster}/config"
    zk = KazooClient(hosts=f"{master_ip}:2181", auth_data=[("digest", f"bootstrap-agent:{node_secret}")])
    zk.start(timeout=15)
    try:
        assert (zk.exists(path) is not None) == exists
        value = b'{"alluxio.block_size": "16MB"}'
        attempts: list[Callable[[], object]] = [lambda: zk.create(path, value)]
        if exists:
            attempts = [lambda: zk.set(path, value), lambda: zk.delete(path),
                        lambda: zk.set_acls(path, [make_digest_acl("bootstrap-agent", node_secret, all=True)])]
        for attempt in attempts:
            with pytest.raises(NoAuthError):
                attempt()
    finally:
        zk.stop()
        zk.close()


def properties(pid: int) -> str:
    return inside(pid, ["cat", "/opt/alluxio/conf/alluxio-site.properties"]).stdout


def test_workloads_on_an_agent_cannot_take_over_the_cluster(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.ok("up")
    report = cloud.status()
    assert ready_names(report) == {f"{c}-master-1", f"{c}-agent-1"}, report
    agent = agent_of(report, c)
    master_ip = by_name(report)[f"{c}-master-1"]["ip"]
    state = json.loads(cloud.state_file.read_text())

    # -- uid 65534 on the agent: every secret path refused; root still reads its user-data -------------------
    assert_concealed(agent["pid"])
    # -- a bridge-network container on the agent: refused at 169.254.169.254 ---------------------------------
    check_bridge_container(agent["pid"], master_ip)

    # -- the node credential, as a thief reads it from the node, cannot write the config --------------------
    stored = json.loads(inside(agent["pid"], ["cat", "/var/lib/bootstrap-agent/user-data.json"]).stdout)
    node_secret = json.loads(stored["user_data"])["secret"]
    assert node_secret == state["secret"] and state["operator_secret"] not in stored["user_data"]
    refused = inside(agent["pid"], ["bootstrap-agent", "config", "set", "alluxio.block_size", "8MB"])
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for secret in (node_secret, state["operator_secret"], S3_SECRET):
        assert secret not in refused.stdout + refused.stderr
    # Not only the CLI: ZooKeeper itself refuses the node credential (no config yet: it may not create one).
    node_cannot_write_config(master_ip, c, node_secret, exists=False)
    assert "alluxio.user.block.size.bytes.default=8MB" not in properties(agent["pid"])

    # -- the operator's credential (local state file, on standard input) writes it and it rolls ---------------
    done = run_in(agent["pid"], ["bootstrap-agent", "config", "set", "alluxio.block_size", "8MB",
                                 "--operator-secret-file", "-"], stdin=state["operator_secret"] + "\n")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert state["operator_secret"] not in done.stdout + done.stderr
    wait_for("the agent renders the new block size",
             lambda: "alluxio.user.block.size.bytes.default=8MB" in properties(agent["pid"]), timeout=30)
    node_cannot_write_config(master_ip, c, node_secret, exists=True)  # nor change it, nor its ACL

    # -- a reboot keeps the concealment ---------------------------------------------------------------------
    assert inside(agent["pid"], ["systemctl", "reboot"]).returncode == 0
    back = wait_for("agent-1 rebooted and ready", lambda: next(
        (n for n in cloud.status()["nodes"] if n["name"] == f"{c}-agent-1" and n["boots"] == 2 and n["member"]
         and n["member"]["state"] == "ready"), None), timeout=120, interval=1)
    assert_concealed(back["pid"])

    # -- concealment removed: degraded, naming it; the unit puts it back: ready ------------------------------
    assert inside(back["pid"], ["nft", "delete", "table", "inet", TABLE]).returncode == 0
    assert fetch_as(back["pid"], NOBODY)[0].startswith("open 200")  # really open now
    inside(back["pid"], ["systemctl", "kill", "-s", "HUP", "bootstrap-agent.service"])  # a pass now, not at tick
    degraded = wait_for("agent-1 degraded", lambda: (lambda m: m if m and m["state"] == "degraded" else None)(
        agent_of(cloud.status(), c)["member"]), timeout=60, interval=1)
    assert "metadata concealment missing" in degraded["reason"], degraded
    assert inside(back["pid"], ["systemctl", "restart", "bootstrap-agent-conceal.service"]).returncode == 0
    inside(back["pid"], ["systemctl", "kill", "-s", "HUP", "bootstrap-agent.service"])
    wait_for("agent-1 ready again", lambda: agent_of(cloud.status(), c)["member"]["state"] == "ready",
             timeout=60, interval=1)
    assert_concealed(back["pid"])
