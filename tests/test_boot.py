"""The node image boots into its cluster with real systemd: a systemd-nspawn container of the local image.

The container is a cloud instance of the local cloud (tests/support/container.py): it is attached to a test
bridge, the metadata service answers at 169.254.169.254 from a network namespace of its own on that bridge,
and the test looks at the node the way an operator would: systemd's view of the units, the node's own
nginx, the agent's journal, and ZooKeeper (from the gateway namespace of the test network, with the
cluster secret). Real here: systemd, nginx, ZooKeeper, the agent in its venv; Mesos and Alluxio are the
project's stand-ins, run by the image's units.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.protocol.states import WatchedEvent

from tests.support import container as ct
from tests.support.container import Container, TestNetwork
from tests.support.metadata_server import MetadataServer
from tests.support.waiting import wait_for

MASTER_IP = "10.231.5.10"
CLUSTER = "eo-boot"
SECRET = "boot-test-secret-0123456789"
S3_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
MASTER_UUID = "5b0c6a32-8d0e-4f59-9d63-7f3c1e0b0a10"
MASTER_UNITS = ("zookeeper", "mesos-master", "alluxio-master", "alluxio-proxy", "alluxio-job-master", "nginx")
MEMBERS = f"/bootstrap-agent/{CLUSTER}/nodes"


def user_data(role: str = "master") -> dict[str, Any]:
    return {
        "schema": 1, "cluster": CLUSTER, "role": role, "masters": [MASTER_IP], "secret": SECRET,
        "mesos": {"version": "1.11", "containerizers": ["mesos"]},
        "alluxio": {"version": "2.9", "root_ufs": "s3://eo-bucket/cache", "worker_ramdisk": "1GB"},
        "credentials": {"source": "keys", "access_key_id": "AKIDEXAMPLE0001", "secret_access_key": S3_SECRET},
    }


def meta_data(uuid: str, name: str) -> dict[str, Any]:
    return {"uuid": uuid, "name": name, "hostname": f"{name}.novalocal", "availability_zone": "eu-de-01",
            "project_id": "0123456789abcdef", "meta": {}}


# -- looking at a node ----------------------------------------------------------------------------------------


def show(node: Container, unit: str, *props: str) -> dict[str, str]:
    out = node.systemctl("show", f"--property={','.join(props)}", f"{unit}.service").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def manager_property(node: Container, prop: str) -> str:
    return node.systemctl("show", f"--property={prop}", "--value").stdout.strip()


def agent_events(node: Container, event: str | None = None) -> list[dict[str, Any]]:
    """The agent's JSON log lines of the current boot, from the journal."""
    out = node.exec(["journalctl", "--no-pager", "-b", "0", "-o", "cat", "_SYSTEMD_UNIT=bootstrap-agent.service"],
                    capture_output=True, text=True).stdout
    events = []
    for line in out.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                events.append(record)
    return events


_HTTP = r"""
import json, sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=10) as r:
        status, headers, body = r.status, dict(r.getheaders()), r.read()
except urllib.error.HTTPError as e:
    status, headers, body = e.code, dict(e.headers), e.read()
print(json.dumps({"status": status, "headers": {k.lower(): v for k, v in headers.items()}, "body": body.decode()}))
"""


def http_inside(node: Container, url: str) -> dict[str, Any]:
    """GET ``url`` from inside the node (Debian's python3 of the image)."""
    result = node.exec(["python3", "-c", _HTTP, url], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def diagnostics(node: Container) -> str:
    if node.pid is None:
        return "(container not running)"
    parts = [node.systemctl("list-units", "--no-pager", "--all", "--state=failed,activating").stdout,
             node.systemctl("status", "--no-pager", "-n", "40", "bootstrap-agent").stdout]
    return "\n".join(parts)


@contextlib.contextmanager
def zk_session(net: TestNetwork, secret: str = SECRET) -> Iterator[KazooClient]:
    """A ZooKeeper client in the test network's gateway namespace, authenticated with the cluster secret."""
    assert net.gateway is not None
    client = KazooClient(hosts=f"{MASTER_IP}:2181", auth_data=[("digest", f"bootstrap-agent:{secret}")],
                         timeout=5)
    net.gateway.call(client.start, 15)  # its connection thread (and socket) live in the namespace
    try:
        yield client
    finally:
        client.stop()
        client.close()


def members(net: TestNetwork) -> dict[str, dict[str, Any]]:
    with zk_session(net) as client:
        if client.exists(MEMBERS) is None:
            return {}
        return {child: json.loads(client.get(f"{MEMBERS}/{child}")[0]) for child in client.get_children(MEMBERS)}


def ready_member(net: TestNetwork, uuid: str) -> dict[str, Any] | None:
    try:
        member = members(net).get(uuid)
    except Exception:  # ZooKeeper not up yet
        return None
    return member if member and member.get("state") == "ready" else None


# -- the test ---------------------------------------------------------------------------------------------
@pytest.fixture
def metadata(test_network: TestNetwork, tmp_path: Path) -> Iterator[MetadataServer]:
    server = MetadataServer(test_network.metadata, bind=ct.METADATA_IP, port=80, workdir=tmp_path / "metadata")
    try:
        yield server
    finally:
        server.close()


def test_master_boots_into_its_cluster_reboots_from_the_cache_and_leaves_at_poweroff(
    node_image: Any, test_network: TestNetwork, metadata: MetadataServer
) -> None:
    net = test_network
    metadata.set_user_data(json.dumps(user_data()).encode(), client_ip=MASTER_IP)
    metadata.set_meta_data(meta_data(MASTER_UUID, "eo-boot-master"), client_ip=MASTER_IP)
    metadata.start()
    node = Container(node_image.path, network=net, ip=MASTER_IP, persistent=True, boot_timeout=90)
    try:
        # -- first boot: boot ends only once bootstrap-agent (Type=notify) sent READY=1 ---------------------
        node.start()
        assert node.started_at is not None
        agent = show(node, "bootstrap-agent", "ActiveState", "SubState", "ActiveEnterTimestampMonotonic",
                     "NRestarts", "Type", "WatchdogUSec")
        assert (agent["ActiveState"], agent["SubState"], agent["Type"]) == ("active", "running", "notify"), agent
        assert agent["NRestarts"] == "0" and agent["WatchdogUSec"] != "0"
        ready_s = int(agent["ActiveEnterTimestampMonotonic"]) / 1e6 - node.started_at
        assert node.boot_state == "running", diagnostics(node)
        # The instance has its own identity (the image has none).
        assert node.read_file("/etc/machine-id").strip() == node.uuid.hex

        # nginx cached the user-data: the agent read it from http://localhost/user-data, nginx asked the
        # metadata service from the node's own address, and keeps the answer on disk.
        fetched = agent_events(node, "user_data_fetched")
        assert fetched and fetched[0]["source"] == "cache" and fetched[0]["url"] == "http://localhost/user-data"
        asked = [r for r in metadata.requests() if r.get("path") == "/openstack/latest/user_data"]
        assert asked and {r.get("client") for r in asked} == {MASTER_IP}, asked
        cached = node.exec(["find", "/var/cache/nginx/metadata", "-type", "f"], capture_output=True, text=True)
        assert cached.stdout.strip(), "nothing in nginx's metadata cache"
        local = http_inside(node, "http://localhost/user-data")
        assert local["status"] == 200 and json.loads(local["body"]) == user_data()
        # ... and only on localhost: port 80 is bound to 127.0.0.1 and nothing else.
        listeners = node.exec(["ss", "-Hltn", "sport = :80"], capture_output=True, text=True).stdout
        assert listeners.split() and all(" 127.0.0.1:80 " in f" {line} " for line in listeners.strip().splitlines())

        # The role's units run under systemd, and the node is a ready member in its own ZooKeeper.
        for unit in MASTER_UNITS:
            assert node.systemctl("is-active", f"{unit}.service").stdout.strip() == "active", unit
        member = wait_for("ready member znode", lambda: ready_member(net, MASTER_UUID), timeout=40)
        member_s = time.monotonic() - node.started_at
        assert member["role"] == "master" and member["ip"] == MASTER_IP
        assert set(member["services"]) == set(MASTER_UNITS), member
        status = show(node, "bootstrap-agent", "StatusText")["StatusText"]
        assert status.startswith("ready"), status
        # Issue 11: the Alluxio journal was formatted by its oneshot unit before the master's first start, and
        # the master runs the image's launch-process on the units' own Java 11.
        assert [e["oneshot"] for e in agent_events(node, "first_start_ran")] == ["alluxio-journal-format"]
        assert show(node, "alluxio-journal-format", "Result")["Result"] == "success"
        assert node.exec(["test", "-d", "/var/lib/alluxio/journal"]).returncode == 0
        master_cmd = node.exec(["ps", "-o", "args=", "-p", show(node, "alluxio-master", "MainPID")["MainPID"]],
                               capture_output=True, text=True).stdout
        assert "standins.alluxio master" in master_cmd, master_cmd
        # systemd had nothing to say about the units (unknown keys, unset variables, failed sandboxing).
        complaints = node.exec(["journalctl", "--no-pager", "-b", "0", "-o", "cat", "_PID=1", "-p", "warning"],
                               capture_output=True, text=True).stdout
        ours = ("bootstrap-agent", "zookeeper", "mesos-", "alluxio-", "nginx")
        assert not [line for line in complaints.splitlines() if any(u in line for u in ours)], complaints
        print(f"\nBOOT first boot: systemd booted in {node.boot_seconds:.2f} s, bootstrap-agent READY=1 at "
              f"{ready_s:.2f} s, ready member in ZooKeeper at {member_s:.2f} s after systemd-nspawn started")

        # -- reboot while the metadata service is down: configured again from nginx's cache -----------------
        metadata.stop()
        rebooted_in = node.reboot(timeout=30)
        assert node.systemctl("is-active", "bootstrap-agent.service").stdout.strip() == "active", diagnostics(node)
        fetched = agent_events(node, "user_data_fetched")
        assert fetched and fetched[0]["source"] == "cache", fetched
        assert agent_events(node, "meta_data_from_last_good"), "the metadata service was down: last good copy"
        assert not agent_events(node, "first_boot"), "a reboot is not a first boot"
        assert not agent_events(node, "first_start_ran"), "the journal is formatted once per instance"
        stale = http_inside(node, "http://localhost/user-data")
        assert stale["status"] == 200 and stale["headers"].get("x-cache-status") == "STALE", stale["headers"]
        assert json.loads(stale["body"]) == user_data()
        for unit in MASTER_UNITS:
            assert node.systemctl("is-active", f"{unit}.service").stdout.strip() == "active", unit
        wait_for("ready member znode after the reboot", lambda: ready_member(net, MASTER_UUID), timeout=40)
        print(f"BOOT reboot with the metadata service down: back and ready in {rebooted_in:.2f} s")

        # -- poweroff: the member znode goes before ZooKeeper does -------------------------------------------
        seen: list[tuple[str, float]] = []
        lock = threading.Lock()

        def on_member(data: bytes | None, stat: Any, event: WatchedEvent | None) -> None:
            state = "deleted" if stat is None else json.loads(data or b"{}").get("state", "?")
            with lock:
                seen.append((state, time.monotonic()))

        def on_session(state: str) -> None:
            if state != KazooState.CONNECTED:
                with lock:
                    seen.append((f"session {state.lower()}", time.monotonic()))

        with zk_session(net) as watcher:
            watcher.add_listener(on_session)
            watcher.DataWatch(f"{MEMBERS}/{MASTER_UUID}", on_member)
            wait_for("the watch", lambda: seen, timeout=5)
            powered_off = time.monotonic()
            off_s = node.poweroff_seconds()
            wait_for("the session's end", lambda: any(s.startswith("session") for s, _ in seen), timeout=10)
        with lock:
            states = [state for state, _ in seen]
            deleted_at = next((at for state, at in seen if state == "deleted"), None)
        assert states[0] == "ready" and "deleted" in states, states
        assert states.index("deleted") < min(i for i, s in enumerate(states) if s.startswith("session")), (
            f"the member znode must be gone before ZooKeeper stops: {states}")
        assert deleted_at is not None
        print(f"BOOT poweroff: member znode {' -> '.join(states)}; deleted {deleted_at - powered_off:.2f} s after "
              f"the poweroff began (the whole poweroff took {off_s:.2f} s)")
    except BaseException:
        print(diagnostics(node))
        raise
    finally:
        node.stop()
    assert not any(cg.exists() for cg in node.cgroups), "the container's cgroups must be gone"
    assert not [link for link in net.links() if link.startswith("vb-")], "the container's veth must be gone"


def test_the_test_network_and_its_containers_leave_nothing_behind_also_after_a_failure(tmp_path: Path) -> None:
    """Bridge, veths, namespaces, container, overlay and cgroups are gone after a failing body."""
    reason = ct.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    rootfs = ct.build_test_rootfs()
    made: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="the body failed"), TestNetwork() as net:
        made["bridge"] = net.bridge
        assert net.metadata is not None and net.gateway is not None
        made["namespaces"] = [net.metadata.name, net.gateway.name]
        with Container(rootfs, network=net, ip="10.231.5.20", persistent=True) as node:
            made["links"] = net.links()
            made["cgroups"] = node.cgroups
            made["workdir"] = node.upper_dir.parent.parent
            assert len(made["links"]) == 3  # metadata, gateway and the container's vb-...
            # The container reaches the gateway namespace over the bridge; the host has no address there.
            ping = node.exec(["python3", "-c", "import socket; s=socket.socket(); s.settimeout(2); "
                              f"print(s.connect_ex(('{net.gateway_ip}', 9)))"], capture_output=True, text=True)
            assert ping.stdout.strip() in ("111", "0"), ping  # refused (RST) = reached
            assert not [i for i in ct.host_ipv4_networks() if i.network.overlaps(net.subnet)]
            raise RuntimeError("the body failed")
    existing = ct._ip("-o", "link", "show").stdout
    assert made["bridge"] not in existing
    assert not [link for link in made["links"] if f": {link}" in existing or f": {link}@" in existing]
    namespaces = ct.netns.list_namespaces()
    assert not set(made["namespaces"]) & set(namespaces)
    assert not any(Path(cg).exists() for cg in made["cgroups"])
    assert not Path(made["workdir"]).exists() and not ct._mounts_below(made["workdir"])
