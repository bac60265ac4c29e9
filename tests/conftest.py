"""Shared fixtures: real nodes (network namespaces), metadata servers, nginx caches and ZooKeeper servers.

Everything a fixture starts it also stops and removes, also when the test fails. Tests that need a
``TestNode`` are skipped (with the reason) only when network namespaces cannot work here: not root, or no
working ``ip netns``; with ``BA_REQUIRE_NETNS=1`` (set by ``.ci/run``) that is a failure instead, so CI
cannot pass by skipping them. ZooKeeper on loopback needs neither and is never skipped: a missing ZooKeeper
is an error, because CI must not pass without the real thing.

Factories (call them as often as the test needs; teardown is in reverse order):

* ``test_node(*ips) -> TestNode``
* ``metadata_server(node=None, *, bind="127.0.0.1", port=0, user_data=None, meta_data=None)``
  ``-> MetadataServer``
* ``nginx_cache(node, upstream) -> NginxCache``  (upstream: a ``MetadataServer`` or ``"host:port"``)
* ``zookeeper_factory(node=None, *, address="127.0.0.1", port=None) -> ZooKeeperServer``

Plain fixtures: ``zookeeper`` (fresh per test), ``zookeeper_module`` (one per test module), ``netns_required``
(skip/fail as above, for tests that build ``TestNode`` themselves).

Inside one node the metadata server sees the node's own *destination* address as the client (a request to
``http://10.77.0.10:PORT`` comes from 10.77.0.10, one to 127.0.0.1 from 127.0.0.1), so per-client folders
work there by choosing the URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tests.support import container, netns
from tests.support.metadata_server import MetadataServer
from tests.support.netns import TestNode
from tests.support.nginx_cache import NginxCache
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture(scope="session", autouse=True)
def cleanup_stale() -> Iterator[None]:
    """Remove namespaces left by crashed earlier runs (only theirs: live runs' namespaces stay)."""
    if netns.netns_unavailable_reason() is None:
        netns.cleanup_stale()
    yield


def _require(reason: str | None) -> None:
    """Skip for ``reason`` (None: nothing missing); a failure instead with ``BA_REQUIRE_NETNS=1`` (CI)."""
    if reason is None:
        return
    if os.environ.get("BA_REQUIRE_NETNS") == "1":
        pytest.fail(f"BA_REQUIRE_NETNS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _require_netns() -> None:
    _require(netns.netns_unavailable_reason())


@pytest.fixture
def netns_required() -> None:
    """Skip (or, with BA_REQUIRE_NETNS=1, fail) when network namespaces cannot work here."""
    _require_netns()


@pytest.fixture
def test_node() -> Iterator[Callable[..., TestNode]]:
    """Factory: ``test_node("10.77.0.10")`` → a started ``TestNode`` with that address on its ``lo``."""
    _require_netns()
    nodes: list[TestNode] = []

    def make(*ips: str, **kw: Any) -> TestNode:
        node = TestNode(*ips, **kw)
        nodes.append(node)
        return node.start()

    yield make
    errors: list[BaseException] = []
    for node in reversed(nodes):
        try:
            node.close()
        except Exception as exc:  # close the others anyway
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def metadata_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MetadataServer]]:
    """Factory: a started metadata server in ``node`` (or on the host's loopback when node is None)."""
    servers: list[MetadataServer] = []

    def make(
        node: TestNode | None = None,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        user_data: bytes | str | None = None,
        meta_data: Mapping[str, Any] | None = None,
    ) -> MetadataServer:
        server = MetadataServer(node, bind=bind, port=port, workdir=tmp_path_factory.mktemp("metadata"))
        servers.append(server)
        if user_data is not None:
            server.set_user_data(user_data)
        if meta_data is not None:
            server.set_meta_data(meta_data)
        return server.start()

    yield make
    for server in reversed(servers):
        server.close()


@pytest.fixture
def nginx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., NginxCache]]:
    """Factory: ``nginx_cache(node, metadata)`` → a started nginx metadata cache, 127.0.0.1:80 in ``node``."""
    caches: list[NginxCache] = []

    def make(node: TestNode, upstream: MetadataServer | str, *, listen: str = "127.0.0.1:80") -> NginxCache:
        cache = NginxCache(node, upstream, listen=listen, workdir=tmp_path_factory.mktemp("nginx"))
        caches.append(cache)
        return cache.start()

    yield make
    for cache in reversed(caches):
        cache.close()


@pytest.fixture
def zookeeper_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ZooKeeperServer]]:
    """Factory: a started standalone ZooKeeper, on a free loopback port or on ``address`` inside ``node``."""
    servers: list[ZooKeeperServer] = []

    def make(
        node: TestNode | None = None, *, address: str = "127.0.0.1", port: int | None = None, **kw: Any
    ) -> ZooKeeperServer:
        workdir = tmp_path_factory.mktemp("zk")
        server = ZooKeeperServer(node, address=address, port=port, workdir=workdir, **kw)
        servers.append(server)
        return server.start()

    yield make
    for server in reversed(servers):
        server.close()


@pytest.fixture
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """A fresh standalone ZooKeeper on loopback for this test (``zookeeper.hosts`` → ``127.0.0.1:PORT``)."""
    server = ZooKeeperServer(workdir=tmp_path_factory.mktemp("zk"))
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="module")
def zookeeper_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One standalone ZooKeeper shared by a test module (use distinct znode paths per test)."""
    server = ZooKeeperServer(workdir=tmp_path_factory.mktemp("zk-module"))
    try:
        yield server.start()
    finally:
        server.close()


from tests.support.daemon_node import cluster  # noqa: E402,F401  (fixture: daemons in one test network)
from tests.support.mesos_cluster import mesos  # noqa: E402,F401  (fixture: Mesos stand-in clusters)
from tests.support.node import make_node  # noqa: E402,F401  (fixture: a cloud node for `once`)
from tests.support.provision_env import cloud, s3  # noqa: E402,F401  (fixtures: fake OTC API, moto S3)

# -- systemd in systemd-nspawn containers (tests/support/container.py) -------------------------------------
_containers_cleaned: list[bool] = []


def _require_containers() -> None:
    _require(container.unavailable_reason())


@pytest.fixture
def containers_required() -> None:
    """Skip (fail with ``BA_REQUIRE_NETNS=1``) where systemd-nspawn containers cannot run."""
    _require_containers()


@pytest.fixture(scope="module")
def systemd_container() -> Iterator[container.Container]:
    """One booted ``tests.support.container.Container`` per test module: real systemd as PID 1.

    Read-only binds: the project folder and this Python installation (``container.python([...],
    pythonpath=[PROJECT_DIR])`` runs ``sys.executable`` inside). ``--private-network``: only ``lo``.
    Skipped when not root or systemd-nspawn/debootstrap are missing (a failure with ``BA_REQUIRE_NETNS=1``).
    The first use builds the cached rootfs (~1 min); the container is powered off and its cgroups removed
    after the module, also when a test failed.
    """
    _require_containers()
    if not _containers_cleaned:
        container.cleanup_stale()
        _containers_cleaned.append(True)
    rootfs = container.build_test_rootfs()
    project_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with container.Container(rootfs, bind_ro=[*container.python_binds(), project_dir]) as booted:
        yield booted


# -- the node image booted in the local cloud (image/local.py; bridged containers of tests/support/container.py)
@pytest.fixture(scope="session")
def node_image() -> Any:
    """The local node image (``image.local``, stand-ins for Mesos/Alluxio): built on first use (~2 min cold,
    ~20 s when only the agent changed), else from ``/var/cache/bootstrap-agent/images/``. A ``LocalImage``.
    Skipped like ``systemd_container`` (a failure with ``BA_REQUIRE_NETNS=1``)."""
    _require_containers()
    from image.local import LocalBuilder

    return LocalBuilder().build()


@pytest.fixture
def test_network() -> Iterator[container.TestNetwork]:
    """A started ``container.TestNetwork`` (bridge without a host address, gateway and metadata namespaces),
    closed after the test, also when it failed. Stale containers and networks of crashed runs go first."""
    _require_containers()
    if not _containers_cleaned:
        container.cleanup_stale()
        _containers_cleaned.append(True)
    with container.TestNetwork() as net:
        yield net


@pytest.fixture
def standins(tmp_path: Any) -> Iterator[Any]:
    """A ``tests.test_standins.Standins`` runner: every stand-in a test starts is stopped at the end."""
    from tests.test_standins import Standins

    runner = Standins(tmp_path)
    try:
        yield runner
    finally:
        runner.close()
