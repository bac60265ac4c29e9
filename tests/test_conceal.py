"""Metadata concealment (bootstrap_agent/conceal.py) with real parts: the image's nftables rules loaded into a
node's network namespace, the real nginx cache, a real metadata service on 169.254.169.254 in a namespace of
its own, and a "container" namespace attached the way a Docker bridge container is (a veth into the node,
forwarded). 169.254.169.254 lives only in namespaces this test creates.

As uid 65534 (a Mesos task, a Spark executor) the cache and every metadata path are refused while root reads
them; the bridge container is refused; the agent's own check finds a node without the rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap_agent.conceal import RULESET_PATH, TABLE, concealment_problem, reachable_as, render_conceal_ruleset
from bootstrap_agent.layout import Layout
from bootstrap_agent.metadata_cache import METADATA_UPSTREAM
from tests.support.conceal import fetch_argv
from tests.support.daemon_node import AGENT_IPS, DaemonNode
from tests.support.metadata_server import MetadataServer
from tests.support.netns import TestNode
from tests.support.node import Node

NODE_IP = "10.77.0.10"
SECRET = "concealed-cluster-secret-7f3a"
USER_DATA = f'{{"schema": 1, "secret": "{SECRET}"}}\n'.encode()
PATHS = ("/openstack/latest/user_data", "/openstack/latest/meta_data.json", "/openstack/latest/securitykey")
CACHE_URL = "http://127.0.0.1/user-data"

@dataclass
class Nodes:
    node: TestNode
    metadata_ns: TestNode
    container: TestNode
    metadata: MetadataServer


def _ip(ns: TestNode, *args: str) -> None:
    subprocess.run(["ip", "-n", ns.name, *args], check=True, capture_output=True, text=True, timeout=30)


def _wire(a: TestNode, a_link: str, a_cidr: str, b: TestNode, b_cidr: str) -> None:
    """A veth pair ``a_link`` (in a) ↔ ``eth0`` (in b), addressed, up; b's default route points back to a."""
    _ip(a, "link", "add", a_link, "type", "veth", "peer", "name", "eth0", "netns", b.name)
    _ip(a, "addr", "add", a_cidr, "dev", a_link)
    _ip(a, "link", "set", a_link, "up")
    _ip(b, "addr", "add", b_cidr, "dev", "eth0")
    _ip(b, "link", "set", "eth0", "up")
    _ip(b, "route", "add", "default", "via", a_cidr.split("/")[0])


@pytest.fixture
def nodes(test_node: Callable[..., TestNode],
          metadata_server: Callable[..., MetadataServer]) -> Iterator[Nodes]:
    node = test_node(NODE_IP)
    metadata_ns = test_node(METADATA_UPSTREAM)  # the metadata service's own namespace, as in the local cloud
    container = test_node()
    _wire(node, "md0", "10.250.0.1/30", metadata_ns, "10.250.0.2/30")
    _ip(node, "route", "add", f"{METADATA_UPSTREAM}/32", "via", "10.250.0.2")
    _wire(node, "docker0", "172.31.0.1/24", container, "172.31.0.2/24")
    node.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=True)
    # Bound to every address of its namespace: 10.250.0.2 shows the container's other traffic still passes.
    metadata = metadata_server(metadata_ns, bind="0.0.0.0", port=80, user_data=USER_DATA,
                               meta_data={"uuid": "u-1", "meta": {"secret_hint": SECRET}})
    metadata.set_security_key("AK-CONCEAL", "SK-CONCEAL-secret")
    yield Nodes(node, metadata_ns, container, metadata)


def fetch(ns: TestNode, url: str, uid: int | None = None) -> str:
    done = ns.run(fetch_argv(sys.executable, url, uid), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def load_rules(node: TestNode, tmp_path: Path) -> None:
    rules = tmp_path / "conceal.nft"
    rules.write_text(render_conceal_ruleset())
    for _ in range(2):  # idempotent: a second load (a restart of the unit) leaves one table
        node.run(["nft", "-f", str(rules)], check=True, capture_output=True, text=True)
    listed = node.run(["nft", "list", "tables"], check=True, capture_output=True, text=True).stdout
    assert listed.count(TABLE) == 1, listed


def test_only_root_reads_the_metadata_and_no_bridge_container_does(
        nodes: Nodes, nginx_cache: Callable[..., object], tmp_path: Path) -> None:
    nginx_cache(nodes.node, f"{METADATA_UPSTREAM}:80")
    metadata_urls = [f"http://{METADATA_UPSTREAM}{path}" for path in PATHS]
    # Before: the attack of issue 14 works (so this test can fail) ...
    assert SECRET in fetch(nodes.node, CACHE_URL, uid=65534)
    assert SECRET in fetch(nodes.node, metadata_urls[0], uid=65534)
    assert SECRET in fetch(nodes.container, metadata_urls[0])
    assert "SK-CONCEAL-secret" in fetch(nodes.node, metadata_urls[2], uid=65534)

    load_rules(nodes.node, tmp_path)

    # ... after: every path refused for uid 65534 on the node and for the bridge container, at once.
    for url in [CACHE_URL, *metadata_urls]:
        assert fetch(nodes.node, url, uid=65534).startswith("refused:"), url
        assert fetch(nodes.container, url).startswith("refused:"), url
    # Root (the agent) still reads its user-data through the cache and the metadata directly.
    assert fetch(nodes.node, CACHE_URL).startswith(f"200 {USER_DATA.decode()}")
    for url in metadata_urls:
        assert fetch(nodes.node, url).startswith("200 "), url
    # The container's other traffic is still forwarded: only 169.254.169.254 is refused.
    assert fetch(nodes.container, "http://10.250.0.2/openstack/latest/meta_data.json").startswith("200 ")


def test_the_agent_finds_a_node_whose_concealment_is_missing(
        nodes: Nodes, nginx_cache: Callable[..., object], tmp_path: Path) -> None:
    nginx_cache(nodes.node, f"{METADATA_UPSTREAM}:80")
    root = tmp_path / "root"
    layout = Layout(str(root))
    # Not an image node (no ruleset installed below the root): nothing to check, nothing reported.
    assert nodes.node.call(concealment_problem, layout) == ""
    (root / RULESET_PATH.lstrip("/")).parent.mkdir(parents=True)
    (root / RULESET_PATH.lstrip("/")).write_text(render_conceal_ruleset())

    problem = nodes.node.call(concealment_problem, layout)
    assert problem.startswith("metadata concealment missing: uid 65534 reaches 127.0.0.1:80, 169.254.169.254:80")
    assert "bootstrap-agent-conceal.service" in problem

    load_rules(nodes.node, tmp_path)
    assert nodes.node.call(concealment_problem, layout) == ""
    assert nodes.node.call(reachable_as, 0, ["127.0.0.1:80", f"{METADATA_UPSTREAM}:80"]) == [
        "127.0.0.1:80", f"{METADATA_UPSTREAM}:80"]

    nodes.node.run(["nft", "delete", "table", "inet", TABLE], check=True)
    assert nodes.node.call(concealment_problem, layout).startswith("metadata concealment missing:")


def test_once_reports_degraded_naming_the_concealment_until_the_rules_are_loaded(
        make_node: Callable[..., Node], tmp_path: Path) -> None:
    """The agent's own pass (real nginx cache, real metadata service on 169.254.169.254 in the node): an image
    node (its ruleset installed) whose rules are not loaded is degraded with the reason; loaded, it is ready."""
    node = make_node("agent")
    rules = node.root / RULESET_PATH.lstrip("/")
    rules.parent.mkdir(parents=True)
    rules.write_text(render_conceal_ruleset())

    run = node.once()
    assert run.returncode == 0, run.stderr  # the services run: degraded, not failed
    status = json.loads((node.root / "var/lib/bootstrap-agent/status.json").read_text())
    assert status["state"] == "degraded", status
    assert status["reason"].startswith("metadata concealment missing: uid 65534 reaches 127.0.0.1:80"), status
    assert [e["reason"] for e in run.named("metadata_not_concealed")] == [status["reason"]]

    load_rules(node.ns, tmp_path)
    run = node.once()
    assert run.returncode == 0, run.stderr
    status = json.loads((node.root / "var/lib/bootstrap-agent/status.json").read_text())
    assert (status["state"], status["reason"]) == ("ready", ""), status
    assert not run.named("metadata_not_concealed")


def test_the_daemon_names_the_missing_concealment_and_drops_it_once_loaded(
        cluster: Callable[..., DaemonNode], nginx_cache: Callable[..., object], tmp_path: Path) -> None:
    """``bootstrap-agent run``: the reason is one of the pass's problems (here beside ZooKeeper, which is not
    started), logged once, and gone on the next pass after the rules are loaded."""
    agent = cluster("agent", AGENT_IPS[0])
    nginx_cache(agent.net, agent.metadata)  # the node's cache on 127.0.0.1:80, open to every uid
    rules = agent.root / RULESET_PATH.lstrip("/")
    rules.parent.mkdir(parents=True)
    rules.write_text(render_conceal_ruleset())
    agent.start(tick=1.0)
    agent.wait_for("degraded naming the concealment",
                   lambda: "metadata concealment missing" in agent.status().get("reason", ""))
    assert "ZooKeeper" in agent.status()["reason"]

    load_rules(agent.net, tmp_path)
    agent.wait_for("the concealment no longer named",
                   lambda: "concealment" not in agent.status().get("reason", "x concealment"))
    assert agent.status()["state"] == "degraded" and "ZooKeeper" in agent.status()["reason"]
    assert len(agent.events("metadata_not_concealed")) == 1
