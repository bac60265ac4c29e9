"""Two credentials in a real ZooKeeper: the node's (user-data) and the operator's (provision-min's state file).

What each may do is proven by ZooKeeper itself, with the agent's own store and plain kazoo clients: the node
credential registers, updates and deregisters itself, takes the restart lock and reads everything, but cannot
write the config, change an ACL or write another master's ``masters/<ip>``; the operator's tools repair drifted
ACLs; a cluster made before the split works before and after ``config migrate``. The ZooKeeper here listens on
every address, so a client connecting to this machine's own non-loopback address comes from that address and
one connecting to 127.0.0.1 from 127.0.0.1: two masters to ZooKeeper's ``ip`` scheme.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, Permissions

from bootstrap_agent.cluster import ClusterPaths, ClusterStore, NotAuthorized
from bootstrap_agent.zk import acls
from tests.support.zookeeper import ZooKeeperServer
from tests.test_cluster import SECRET, SESSION, ListLog, Recorder, member

OPERATOR = "operator-secret-for-tests-987654321"
Stores = Callable[..., tuple[ClusterStore, ListLog]]


@pytest.fixture(scope="module")
def zk_any(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(address="0.0.0.0", workdir=tmp_path_factory.mktemp("zk-any"))
    try:
        yield server.start()
    finally:
        server.close()


def at(server: ZooKeeperServer, address: str = "127.0.0.1") -> str:
    return f"{address}:{server.port}"


def own_address() -> str:
    """An IPv4 address of this machine other than loopback: connections to it come from it."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family.name == "AF_INET" and not address.address.startswith("127."):
                return str(address.address)
    pytest.skip("no non-loopback IPv4 address on this machine")


@pytest.fixture
def stores() -> Iterator[Stores]:
    """``stores(hosts, cluster, operator=None, masters=..., operator_acl_id=None)`` → a connected store with its
    tree ensured, and its log; ``masters`` are the cluster's master addresses (the user-data's), whatever
    address ``hosts`` names."""
    made: list[ClusterStore] = []

    def make(hosts: str, cluster: str, operator: str | None = None, ensure: bool = True,
             masters: tuple[str, ...] = ("127.0.0.1",), operator_acl_id: str | None = None,
             ) -> tuple[ClusterStore, ListLog]:
        log = ListLog()
        store = ClusterStore(hosts, cluster, SECRET, on_event=Recorder(), log=log, session_timeout=SESSION,
                             call_timeout=2.0, operator_secret=operator, masters=masters,
                             operator_acl_id=operator_acl_id)
        made.append(store)
        store.start()
        assert store.wait_connected(10)
        if ensure:
            store.ensure_tree()
        return store, log

    yield make
    for store in reversed(made):
        store.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., KazooClient]]:
    """``clients(hosts, *credentials)`` → a started plain kazoo client authenticated with each (user, secret)."""
    made: list[KazooClient] = []

    def make(hosts: str, *credentials: tuple[str, str]) -> KazooClient:
        client = KazooClient(hosts=hosts, auth_data=[("digest", f"{u}:{s}") for u, s in credentials], timeout=SESSION)
        made.append(client)
        client.start(timeout=10)
        return client

    yield make
    for client in reversed(made):
        client.stop()
        client.close()


NODE = ("bootstrap-agent", SECRET)
OPERATOR_AUTH = ("bootstrap-operator", OPERATOR)


def expected(cluster: str, masters: tuple[str, ...] = ("127.0.0.1",)) -> dict[str, Any]:
    return acls.tree(ClusterPaths(cluster), acls.node_id(SECRET), acls.operator_id(OPERATOR), masters)


def test_node_credential_cannot_write_config_acls_or_another_masters_znode(
    zk_any: ZooKeeperServer, stores: Stores, clients: Callable[..., KazooClient]
) -> None:
    cluster, paths, mine = "split1", ClusterPaths("split1"), own_address()
    masters = ("127.0.0.1", mine)
    operator, op_log = stores(at(zk_any), cluster, OPERATOR, masters=masters)  # as `up` does: split from the start
    operator.set_config({"alluxio.block_size": "8MB"}, expected_version=-1)
    for path, acl in expected(cluster, masters).items():
        assert set(operator.session.client.get_acls(path)[0]) == set(acl), path

    node = clients(at(zk_any), NODE)
    assert node.get(paths.config)[0] == b'{"alluxio.block_size":"8MB"}'  # reads the config
    with pytest.raises(NoAuthError):
        node.set(paths.config, b"{}")
    with pytest.raises(NoAuthError):
        node.delete(paths.config)
    for path in (paths.base, paths.nodes, paths.masters, paths.locks, paths.restart_lock, paths.config):
        with pytest.raises(NoAuthError):
            node.set_acls(path, OPEN_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        node.create(f"{paths.base}/other", b"")

    # the agent's own store: config set refused, register/update/deregister and the lock work
    agent, agent_log = stores(at(zk_any), cluster, masters=masters)
    assert agent.get_config() == {"alluxio.block_size": "8MB"}
    with pytest.raises(NotAuthorized):
        agent.set_config({"alluxio.block_size": "1MB"})
    assert operator.get_config() == {"alluxio.block_size": "8MB"}
    agent.register("i-a", member("i-a"), master=False)
    agent.update(member("i-a", state="degraded", reason="x"))
    assert b"degraded" in node.get(paths.node("i-a"))[0]
    with pytest.raises(NoAuthError):
        node.set_acls(paths.node("i-a"), OPEN_ACL_UNSAFE)
    with agent.restart_lock("i-a", timeout=5) as held:
        assert held
        contender = node.get_children(paths.restart_lock)[0]
        with pytest.raises(NoAuthError):
            node.set_acls(f"{paths.restart_lock}/{contender}", OPEN_ACL_UNSAFE)
    agent.deregister()
    assert node.get_children(paths.nodes) == []
    assert not agent_log.named("zk_acl_drift") and not agent_log.named("zk_acl_fixed")

    # masters: each writes its own masters/<ip> (ZooKeeper's ip scheme), never another's
    first, _ = stores(at(zk_any, "127.0.0.1"), cluster, masters=masters)
    second, _ = stores(at(zk_any, mine), cluster, masters=masters)
    first.register("i-m1", member("i-m1", role="master", ip="127.0.0.1"), master=True)
    second.register("i-m2", member("i-m2", role="master", ip=mine), master=True)
    second.update(member("i-m2", role="master", ip=mine, state="degraded", reason="y"))
    assert [json.loads(node.get(paths.master(ip))[0])["state"] for ip in ("127.0.0.1", mine)] == ["ready", "degraded"]
    with pytest.raises(NoAuthError):
        clients(at(zk_any, mine), NODE).set(paths.master("127.0.0.1"), b"{}")
    with pytest.raises(NoAuthError):
        clients(at(zk_any, "127.0.0.1"), NODE).set(paths.master(mine), b"{}")
    with pytest.raises(NoAuthError):  # an agent cannot write a master's copy either
        node.set(paths.master(mine), b"{}")
    # the operator may do everything
    admin = clients(at(zk_any), NODE, OPERATOR_AUTH)
    admin.set_acls(paths.config, expected(cluster, masters)[paths.config])
    text = op_log.text() + agent_log.text()
    assert SECRET not in text and OPERATOR not in text


def test_only_the_masters_addresses_create_or_delete_under_masters(
    zk_any: ZooKeeperServer, stores: Stores, clients: Callable[..., KazooClient]
) -> None:
    cluster, paths, mine = "split3", ClusterPaths("split3"), own_address()
    stores(at(zk_any), cluster, OPERATOR, masters=(mine,))
    master, _ = stores(at(zk_any, mine), cluster, masters=(mine,))
    master.register("i-m", member("i-m", role="master", ip=mine), master=True)
    agent = clients(at(zk_any, "127.0.0.1"), NODE)  # an agent: not from a master's address
    with pytest.raises(NoAuthError):
        agent.create(paths.master("127.0.0.1"), b"{}", ephemeral=True)
    with pytest.raises(NoAuthError):
        agent.delete(paths.master(mine))
    agent.create(paths.node("i-agent"), b"{}", ephemeral=True)  # its own member znode: allowed
    master.deregister()
    assert agent.get_children(paths.masters) == []


def test_drift_is_reported_by_nodes_and_repaired_by_the_operator(
    zk_any: ZooKeeperServer, stores: Stores, clients: Callable[..., KazooClient]
) -> None:
    cluster, paths = "split2", ClusterPaths("split2")
    operator, op_log = stores(at(zk_any), cluster, OPERATOR)
    admin = clients(at(zk_any), OPERATOR_AUTH)
    loose = [acls.legacy(acls.node_id(SECRET))[0], expected(cluster)[paths.nodes][1]]
    admin.set_acls(paths.nodes, loose)  # someone gave the node credential ADMIN and WRITE back
    admin.set_acls(paths.locks, [*OPEN_ACL_UNSAFE, expected(cluster)[paths.locks][1]])

    agent, agent_log = stores(at(zk_any), cluster)
    assert {d["path"] for d in agent_log.named("zk_acl_drift")} == {paths.nodes, paths.locks}
    assert set(admin.get_acls(paths.nodes)[0]) == set(loose)  # a node reports, never repairs
    operator.ensure_tree()
    assert {d["path"] for d in op_log.named("zk_acl_fixed")} == {paths.nodes, paths.locks}
    for path, acl in expected(cluster).items():
        if admin.exists(path):
            assert set(admin.get_acls(path)[0]) == set(acl), path
    agent.register("i-b", member("i-b"), master=False)  # still works after the repair


def test_a_single_secret_cluster_works_before_and_after_migration(
    zk_any: ZooKeeperServer, stores: Stores, clients: Callable[..., KazooClient]
) -> None:
    cluster, paths = "legacy1", ClusterPaths("legacy1")
    old, old_log = stores(at(zk_any), cluster)  # before the split: one secret, every permission
    old.set_config({"a": 1})
    old.register("i-old", member("i-old"), master=False)
    assert admin_acl(clients(at(zk_any), NODE), paths.base) == {(acls.node_id(SECRET), Permissions.ALL)}

    operator, op_log = stores(at(zk_any), cluster, OPERATOR)  # `config migrate`
    assert {d["path"] for d in op_log.named("zk_acl_fixed")} == set(expected(cluster))
    # the node that ran through the migration keeps working; ensure_tree learns the split, reports nothing
    old.update(member("i-old", state="degraded", reason="z"))
    old.ensure_tree()
    assert not old_log.named("zk_acl_drift")
    with pytest.raises(NotAuthorized):
        old.set_config({"a": 2})
    new, _ = stores(at(zk_any), cluster)  # a node with the old user-data, started after the migration
    new.register("i-new", member("i-new", ip="10.0.0.21"), master=False)
    assert sorted(m.uuid for m in new.members()) == ["i-new", "i-old"]
    operator.set_config({"a": 3})
    assert new.get_config() == {"a": 3}
    with new.restart_lock("i-new", timeout=5) as held:
        assert held


def admin_acl(client: KazooClient, path: str) -> set[tuple[str, int]]:
    return {(a.id.id, a.perms) for a in client.get_acls(path)[0]}


@pytest.mark.parametrize(("content", "mode", "message"), [
    (OPERATOR, 0o640, "readable by others (mode 640): chmod 600"),
    ('{"secret": "x"}', 0o600, "holds no operator_secret"),
    ("short", 0o600, "at least 16 characters"),
    ("[1, 2", 0o600, "at least 16 characters"),
])
def test_a_bad_operator_secret_file_is_one_line_naming_the_option(
    tmp_path: Any, content: str, mode: int, message: str
) -> None:
    from bootstrap_agent import operator_secret
    from bootstrap_agent.errors import InvalidInput

    path = tmp_path / "operator.secret"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(InvalidInput) as refused:
        operator_secret.read(path)
    assert str(refused.value).startswith("--operator-secret-file: ") and message in str(refused.value)
    assert OPERATOR not in str(refused.value)


def test_the_operator_secret_is_read_from_the_state_file_or_standard_input(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    from pathlib import Path

    from bootstrap_agent import operator_secret

    state = tmp_path / "c.state.json"
    state.write_text(json.dumps({"secret": SECRET, "operator_secret": OPERATOR}))
    state.chmod(0o600)
    assert operator_secret.read(state) == OPERATOR
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(f"{OPERATOR}\n".encode())))
    assert operator_secret.read(Path("-")) == OPERATOR
