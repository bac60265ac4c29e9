"""The test infrastructure itself, with the real parts: the local-cloud recipe holds on this machine.

If these fail, every test built on nodes, the metadata cache or ZooKeeper would fail for the wrong reason,
so they run first and fast.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap_agent.metadata_cache import render_metadata_cache_conf
from bootstrap_agent.services.zookeeper_cmd import ZooKeeperNotInstalled, java_command
from tests.support import netns
from tests.support.metadata_server import MetadataServer
from tests.support.netns import HttpResponse, TestNode
from tests.support.nginx_cache import NginxCache
from tests.support.zookeeper import ZooKeeperServer

NODE_IP = "10.77.0.10"


def _poll(
    fn: Callable[[], HttpResponse], until: Callable[[HttpResponse], bool], timeout: float
) -> HttpResponse:
    deadline = time.monotonic() + timeout
    while True:
        resp = fn()
        if until(resp) or time.monotonic() >= deadline:
            return resp
        time.sleep(0.1)


def test_nginx_cache_serves_stale_user_data_while_metadata_is_down(
    test_node: Callable[..., TestNode],
    metadata_server: Callable[..., MetadataServer],
    nginx_cache: Callable[..., NginxCache],
) -> None:
    node = test_node(NODE_IP)
    metadata = metadata_server(node, user_data=b'{"schema": 1}\n')
    cache = nginx_cache(node, metadata)
    assert cache.url == "http://127.0.0.1/user-data"

    first = cache.get()
    assert (first.status, first.cache_status, first.body) == (200, "MISS", b'{"schema": 1}\n')
    second = cache.get()
    assert (second.status, second.cache_status, second.body) == (200, "HIT", first.body)
    # The agent's default URL, http://localhost/user-data, reaches the same cache inside the node.
    assert node.http_get("http://localhost/user-data").body == first.body

    assert metadata.stop() == 0  # SIGTERM → clean exit
    stale = _poll(cache.get, lambda r: r.cache_status == "STALE", timeout=5)
    assert (stale.status, stale.cache_status, stale.body) == (200, "STALE", first.body)

    cache.restart()  # the cache on disk survives nginx
    again = cache.get()
    assert (again.status, again.cache_status, again.body) == (200, "STALE", first.body)

    # Metadata back (same port) with new user-data: the cache follows within its 1 s validity.
    metadata.set_user_data(b'{"schema": 1, "v": 2}\n')
    metadata.start()
    fresh = _poll(cache.get, lambda r: r.body.endswith(b'"v": 2}\n'), timeout=5)
    assert fresh.status == 200 and fresh.cache_status in ("EXPIRED", "MISS"), fresh

    # 5xx from the metadata service counts like an outage.
    metadata.set_fail_status(503)
    failing = _poll(cache.get, lambda r: r.cache_status == "STALE", timeout=5)
    assert (failing.status, failing.body) == (200, fresh.body)
    assert [r["status"] for r in metadata.requests()][-1] == 503


@pytest.mark.parametrize("ignore", [True, False], ids=["proxy_ignore_headers", "without-it-bites"])
def test_nginx_cache_keeps_a_stale_copy_when_the_metadata_service_forbids_caching(
    test_node: Callable[..., TestNode],
    metadata_server: Callable[..., MetadataServer],
    nginx_cache: Callable[..., NginxCache],
    ignore: bool,
) -> None:
    """A metadata service that answers ``Cache-Control: no-store, private`` and ``Expires: 0`` must not leave the
    node without a copy: real nginx, the image's text; without ``proxy_ignore_headers`` nothing is cached and a
    dead metadata service means no user-data (the second case proves the test can fail)."""
    conf = render_metadata_cache_conf()
    assert "proxy_ignore_headers X-Accel-Expires Expires Cache-Control Set-Cookie Vary;" in conf
    node = test_node(NODE_IP)
    metadata = metadata_server(node, user_data=b'{"schema": 1}\n')
    metadata.set_headers({"Cache-Control": "no-store, private", "Expires": "0"})
    cache = nginx_cache(node, metadata)
    if not ignore:  # today's (old) text: the same, without the directive
        text = cache.conf_path.read_text()
        cache.conf_path.write_text("\n".join(line for line in text.splitlines()
                                               if "proxy_ignore_headers" not in line) + "\n")
        cache.restart()
    first = cache.get()
    assert first.status == 200 and first.header("cache-control") == "no-store, private"
    assert metadata.stop() == 0
    dead = _poll(cache.get, lambda r: r.status != 200 or r.cache_status == "STALE", timeout=5)
    if ignore:
        assert (dead.status, dead.cache_status, dead.body) == (200, "STALE", first.body)
    else:
        assert dead.status == 502 and dead.cache_status in ("MISS", None), (dead.status, dead.cache_status)


def test_metadata_server_answers_per_client_address_and_rereads_files(
    test_node: Callable[..., TestNode], metadata_server: Callable[..., MetadataServer]
) -> None:
    node = test_node(NODE_IP)
    metadata = metadata_server(node, bind="0.0.0.0")
    via_lo = f"http://127.0.0.1:{metadata.port}/openstack/latest"
    via_ip = f"http://{NODE_IP}:{metadata.port}/openstack/latest"

    assert node.http_get(f"{via_lo}/user_data").status == 404
    assert node.http_get(f"{via_lo}/meta_data.json").status == 404
    assert node.http_get(f"{via_lo}/nothing").status == 404

    metadata.set_user_data("for everyone")
    metadata.set_user_data("for 10.77.0.10", client_ip=NODE_IP)
    metadata.set_meta_data({"uuid": "0b5a1c7e-0000-4000-8000-000000000001", "availability_zone": "eu-de-02"})
    # A connection to the node's own address leaves from that address: the server sees the node.
    assert node.http_get(f"{via_ip}/user_data").body == b"for 10.77.0.10"
    assert node.http_get(f"{via_lo}/user_data").body == b"for everyone"
    meta = node.http_get(f"{via_ip}/meta_data.json")
    assert json.loads(meta.body)["availability_zone"] == "eu-de-02"
    assert meta.header("content-type") == "application/json"

    metadata.set_user_data("changed")
    assert node.http_get(f"{via_lo}/user_data").body == b"changed"
    metadata.set_user_data(None, client_ip=NODE_IP)
    assert node.http_get(f"{via_ip}/user_data").body == b"changed"

    clients = {(r["client"], r["path"], r["status"]) for r in metadata.requests()}
    assert (NODE_IP, "/openstack/latest/user_data", 200) in clients
    assert ("127.0.0.1", "/openstack/latest/user_data", 404) in clients
    assert metadata.stop() == 0


def test_zookeeper_answers_ruok(zookeeper: ZooKeeperServer) -> None:
    assert zookeeper.four_letter("ruok") == "imok"
    assert zookeeper.hosts == f"127.0.0.1:{zookeeper.port}"
    assert "Mode: standalone" in zookeeper.four_letter("srvr")
    port = zookeeper.port
    assert zookeeper.restart().port == port  # same port and data: clients can reconnect
    assert zookeeper.four_letter("ruok") == "imok"


def test_zookeeper_inside_a_node_with_a_kazoo_client_started_there(
    test_node: Callable[..., TestNode], zookeeper_factory: Callable[..., ZooKeeperServer]
) -> None:
    kazoo_client = pytest.importorskip("kazoo.client")
    node = test_node(NODE_IP)
    server = zookeeper_factory(node, address=NODE_IP, port=2181)
    assert server.hosts == f"{NODE_IP}:2181"
    # Started inside call(), kazoo's connection thread lives in the node and keeps working from here.
    client = kazoo_client.KazooClient(hosts=server.hosts, timeout=5)
    node.call(client.start, timeout=15)
    try:
        client.create("/infra-check", b"hello")
        assert client.get("/infra-check")[0] == b"hello"
    finally:
        client.stop()
        client.close()


def test_node_addresses_exist_only_inside_the_node(test_node: Callable[..., TestNode]) -> None:
    node = test_node(NODE_IP, "10.77.0.11")

    def bind(ip: str) -> int:
        with socket.socket() as sock:
            sock.bind((ip, 0))
            port: int = sock.getsockname()[1]
            return port

    assert node.call(bind, "10.77.0.11") > 0
    with pytest.raises(OSError) as outside:
        bind(NODE_IP)  # in the test process' own (host) namespace
    assert outside.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(ConnectionRefusedError):  # exceptions come back from the node's thread
        node.call(socket.create_connection, (NODE_IP, 9), 1)
    argv = ["ip", "-4", "-o", "addr", "show", "dev", "lo"]
    out = node.run(argv, capture_output=True, text=True, check=True)
    assert f"{NODE_IP}/32" in out.stdout and "10.77.0.11/32" in out.stdout


@pytest.mark.usefixtures("netns_required")
def test_node_teardown_kills_everything_and_deletes_the_namespace() -> None:
    with TestNode(NODE_IP, term_timeout=1.0) as node:
        polite = node.popen(["sleep", "300"])
        stubborn = node.popen(["sh", "-c", "trap '' TERM; sleep 300 & wait"])  # ignores SIGTERM
        node.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])  # detached: not our child at all
        deadline = time.monotonic() + 5
        while len(node.pids()) < 4 and time.monotonic() < deadline:  # sh forks its sleep a moment later
            time.sleep(0.02)
        assert len(node.pids()) >= 4, node.pids()
        name = node.name
        assert name in netns.list_namespaces()
    assert polite.poll() is not None and stubborn.poll() is not None
    assert name not in netns.list_namespaces()
    assert netns.namespace_pids(name) == []

    with pytest.raises(RuntimeError, match="body failed"), TestNode() as failing:
        proc = failing.popen(["sleep", "300"])
        raise RuntimeError("body failed")
    assert proc.poll() is not None
    assert failing.name not in netns.list_namespaces()


@pytest.mark.usefixtures("netns_required")
def test_cleanup_stale_removes_namespaces_of_dead_runs_only() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"ba-{dead.pid}-999"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        leftover = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "300"])
        with TestNode() as live:
            removed = netns.cleanup_stale()
            assert stale in removed and live.name not in removed
            assert live.name in netns.list_namespaces()
        assert leftover.wait(timeout=5) is not None
        assert stale not in netns.list_namespaces()
    finally:
        if stale in netns.list_namespaces():
            netns.kill_namespace_processes(stale, 1.0)
            subprocess.run(["ip", "netns", "del", stale], check=False)


def test_render_metadata_cache_conf_is_the_recipe() -> None:
    text = render_metadata_cache_conf("169.254.169.254", cache_dir="/var/cache/nginx/metadata")
    assert (
        "proxy_cache_path /var/cache/nginx/metadata levels=1:2 keys_zone=ud:1m max_size=10m inactive=7d"
        " use_temp_path=off;"
    ) in text
    for line in (
        "proxy_pass http://169.254.169.254/openstack/latest/user_data;",
        "proxy_cache ud;",
        "proxy_cache_valid 200 1s;",
        "proxy_cache_use_stale error timeout http_500 http_502 http_503 http_504;",
        "proxy_connect_timeout 1s;",
        "add_header X-Cache-Status $upstream_cache_status always;",
        "listen 127.0.0.1:80;",
    ):
        assert line in text
    with pytest.raises(ValueError, match="upstream"):
        render_metadata_cache_conf("evil; include /etc/passwd")


def test_java_command_fails_clearly_without_zookeeper(tmp_path: Path) -> None:
    argv = java_command("/etc/zookeeper/conf/zoo.cfg")
    assert argv[1:3] == ["-Xmx256m", "-Dzookeeper.root.logger=INFO,CONSOLE"]
    assert argv[-2:] == ["org.apache.zookeeper.server.quorum.QuorumPeerMain", "/etc/zookeeper/conf/zoo.cfg"]
    assert argv[4].startswith("/etc/zookeeper/conf:") and "/usr/share/java/zookeeper.jar" in argv[4]
    with pytest.raises(ZooKeeperNotInstalled, match=r"zookeeper\.jar"):
        java_command("/x/zoo.cfg", jar_dir=str(tmp_path))
