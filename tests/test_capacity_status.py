"""``provision-min status [--json]`` shows each node's CPUs, memory, Alluxio RAM and time in state, and the
cluster's totals (issue 17), on both clouds: OTC from the master's ``status.json`` (the documented fake cloud and
fake master), local from the members in a real ZooKeeper (no containers: the instances show as off)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from bootstrap_agent.capacity import Capacity
from bootstrap_agent.cluster import AUTH_USER, ClusterPaths
from bootstrap_agent.member import Member
from bootstrap_agent.sizes import GiB
from provision_min import cli
from provision_min.local.layout import STATE_ROOT_ENV, CloudState, NodeRecord, Paths
from tests.support.fake_otc import FakeOtc
from tests.support.netns import TestNode
from tests.support.provision_env import Env, cluster_document
from tests.support.zookeeper import ZooKeeperServer
from tests.test_provision_ready import agent_ips, env  # noqa: F401  (the fixture)

AGENT = {"cpus": 8, "memory_bytes": 32 * GiB, "alluxio_bytes": 9 * GiB}
MASTER = {"cpus": 4, "memory_bytes": 16 * GiB, "alluxio_bytes": 0}


def node_line(lines: list[str], ip: str) -> str:
    return next(line for line in lines if f" {ip} " in line)


def test_otc_status_shows_capacity_time_in_state_and_the_totals(env: Env, cloud: FakeOtc) -> None:  # noqa: F811
    assert env.run("up").code == 0
    first, second = agent_ips(cloud)
    master_ip = next(s.data["ip"] for s in cloud.servers.values() if not s.data.get("as_group"))
    fake = cloud.master_status
    fake.capacities.update({first: AGENT, second: AGENT, master_ip: MASTER})
    fake.in_state.update({first: 2 * 3600 + 30, second: 200})
    fake.states[second] = ("degraded", "alluxio-worker: failed")

    result = env.run("status", "--json")

    assert result.code == 1  # one agent is degraded: not complete
    nodes = json.loads(result.out)["nodes"]
    members = {m["ip"]: m for m in nodes["members"]}
    assert members[first]["capacity"] == AGENT and members[master_ip]["capacity"] == MASTER
    assert 2 * 3600 + 29 <= members[first]["in_state_seconds"] <= 2 * 3600 + 31  # rendered_at - since
    assert 199 <= members[second]["in_state_seconds"] <= 201
    totals = nodes["totals"]
    assert (totals["agents"], totals["cpus"], totals["memory_bytes"], totals["alluxio_bytes"]) == (
        2, 16, 64 * GiB, 18 * GiB)
    assert totals["by_state"]["ready"]["agents"] == 1 and totals["by_state"]["degraded"]["cpus"] == 8

    text = env.run("status")
    line = node_line(text.lines, first)
    assert "  8 CPUs    32 GiB  Alluxio     9 GiB  in state    2 h  ready" in line
    assert "in state  3 min  degraded (alluxio-worker: failed)" in node_line(text.lines, second)
    assert "  totals: 2 agent(s): 16 CPUs, 64 GiB memory, 18 GiB Alluxio RAM; ready 1: 8 CPUs, 32 GiB, 9 GiB " \
           "Alluxio" in text.lines


def test_otc_status_of_a_master_without_capacity_shows_question_marks(env: Env, cloud: FakeOtc) -> None:  # noqa: F811
    """An older master's document has no capacity: the nodes show ``?`` and the totals say none reported."""
    assert env.run("up").code == 0
    text = env.run("status")
    line = node_line(text.lines, agent_ips(cloud)[0])
    assert "  ? CPUs         ?  Alluxio         ?  in state    0 s  ready" in line
    assert any(line.startswith("  totals: 2 agent(s)") and line.endswith("2 agent(s) report no capacity")
               for line in text.lines)


# --- the local cloud ---------------------------------------------------------------------------------------------

CLUSTER = "analytics11"
SECRET = "capacity-test-secret-0123456789"
MASTER_IP, AGENT_IPS = "10.88.0.10", ("10.88.0.21", "10.88.0.22")


def member(uuid: str, role: str, ip: str, state: str, since: float, capacity: Capacity | None) -> Member:
    return Member(uuid=uuid, role=role, ip=ip, hostname=f"{CLUSTER}-{uuid}", state=state, reason="",
                  services={}, since=since, capacity=capacity)


@pytest.fixture
def local_cluster(test_node: Callable[..., TestNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[tuple[TestNode, Path]]:
    """A local cloud's state file and its ZooKeeper (real, at the master's address) holding the members."""
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "local"))
    net = test_node(MASTER_IP)
    now = time.time()
    nodes = [NodeRecord(f"{CLUSTER}-master-1", "master", 1, MASTER_IP, "m-1", now)]
    nodes += [NodeRecord(f"{CLUSTER}-agent-{i}", "agent", i, ip, f"a-{i}", now) for i, ip in enumerate(AGENT_IPS, 1)]
    Paths.of(CLUSTER).save(CloudState(CLUSTER, "10.88.0.0/24", "image", "digest", secret=SECRET, desired=2,
                                      nodes=nodes, phase="ready"))
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(cluster_document()))
    with ZooKeeperServer(net, address=MASTER_IP, port=2181, workdir=tmp_path / "zk") as zk:
        client = KazooClient(hosts=f"{MASTER_IP}:{zk.port}", timeout=20.0,
                             default_acl=[make_digest_acl(AUTH_USER, SECRET, all=True)],
                             auth_data=[("digest", f"{AUTH_USER}:{SECRET}")])
        net.call(client.start, 20)
        try:
            paths = ClusterPaths(CLUSTER)
            for m in (member("m-1", "master", MASTER_IP, "ready", now - 7200, Capacity(4, 16 * GiB, 0)),
                      member("a-1", "agent", AGENT_IPS[0], "ready", now - 190, Capacity(8, 32 * GiB, 9 * GiB)),
                      member("a-2", "agent", AGENT_IPS[1], "bootstrapping", now - 5, None)):
                client.create(paths.node(m.uuid), m.to_json(), makepath=True)
            yield net, cluster_file
        finally:
            with contextlib.suppress(Exception):
                client.stop()
                client.close()


def run_status(net: TestNode, cluster_file: Path, *flags: str) -> tuple[int, str]:
    """``provision-min status --cloud local`` inside the test network (where the ZooKeeper is)."""
    out = Path(cluster_file.parent / "out.txt")

    def call() -> int:
        with out.open("w") as sink, contextlib.redirect_stdout(sink):
            return cli.main(["status", "--cloud", "local", "--config", str(cluster_file), *flags], env={})

    code = net.call(call)
    return code, out.read_text()


def test_local_status_shows_capacity_time_in_state_and_the_totals(local_cluster: tuple[TestNode, Path]) -> None:
    net, cluster_file = local_cluster
    code, out = run_status(net, cluster_file, "--json")
    report: dict[str, Any] = json.loads(out)
    assert code == 1 and report["zookeeper"] == "reachable"  # the instances are off: not complete
    nodes = {n["ip"]: n["member"] for n in report["nodes"]}
    assert nodes[AGENT_IPS[0]]["capacity"] == AGENT and 189 <= nodes[AGENT_IPS[0]]["in_state_seconds"] <= 200
    assert nodes[MASTER_IP]["capacity"] == MASTER and nodes[AGENT_IPS[1]]["capacity"] is None
    totals = report["totals"]
    assert (totals["agents"], totals["masters"], totals["cpus"], totals["unreported"]) == (2, 1, 8, 1)
    assert totals["by_state"]["ready"] == {"agents": 1, **AGENT}

    code, text = run_status(net, cluster_file)
    lines = text.splitlines()
    assert "  8 CPUs    32 GiB  Alluxio     9 GiB  in state  3 min" in node_line(lines, AGENT_IPS[0])
    assert "  4 CPUs    16 GiB  Alluxio         0  in state    2 h" in node_line(lines, MASTER_IP)
    assert "  ? CPUs         ?  Alluxio         ?  in state " in node_line(lines, AGENT_IPS[1])
    assert "  totals: 2 agent(s): 8 CPUs, 32 GiB memory, 9 GiB Alluxio RAM; ready 1: 8 CPUs, 32 GiB, 9 GiB " \
           "Alluxio; 1 agent(s) report no capacity" in lines
