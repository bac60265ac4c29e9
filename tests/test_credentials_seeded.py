"""A new cluster starts split: its masters' user-data names the operator credential's digest id
(``operator_acl_id``), and the master that creates the tree gives it the operator's ACLs with the node credential
alone, so from the first second only the operator can write ``config``. Proven in a real ZooKeeper with the
agent's own store and plain kazoo clients; without the id, or on a tree that is already split, nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, Permissions

from bootstrap_agent.cluster import ClusterPaths, ClusterStore, NotAuthorized
from bootstrap_agent.zk import acls
from tests.support.zookeeper import ZooKeeperServer
from tests.test_cluster import SECRET, ListLog, member
from tests.test_credentials import (
    NODE,
    OPERATOR,
    OPERATOR_AUTH,
    Stores,
    admin_acl,
    at,
    clients,
    expected,
    stores,
    zk_any,
)

__all__ = ["clients", "stores", "zk_any"]  # fixtures shared with test_credentials
OPERATOR_ID = acls.operator_id(OPERATOR)
Seeded = Callable[..., tuple[ClusterStore, ListLog]]


@pytest.fixture
def seeded(stores: Stores) -> Seeded:
    """``seeded(hosts, cluster, operator_acl_id=OPERATOR_ID, ensure=True)`` → a master's connected store."""
    def make(hosts: str, cluster: str, operator_acl_id: str | None = OPERATOR_ID,
             ensure: bool = True) -> tuple[ClusterStore, ListLog]:
        return stores(hosts, cluster, ensure=ensure, operator_acl_id=operator_acl_id)

    return make


def assert_split(admin: KazooClient, cluster: str) -> None:
    paths = ClusterPaths(cluster)
    for path, acl in expected(cluster).items():
        if path != paths.config or admin.exists(path):
            assert set(admin.get_acls(path)[0]) == set(acl), path


def test_a_master_with_the_operator_id_creates_the_tree_split(
    zk_any: ZooKeeperServer, seeded: Seeded, clients: Callable[..., KazooClient]
) -> None:
    cluster, paths = "seed1", ClusterPaths("seed1")
    master, log = seeded(at(zk_any), cluster)
    admin = clients(at(zk_any), OPERATOR_AUTH)
    assert_split(admin, cluster)  # exactly what `config migrate` sets
    assert log.named("zk_tree_split") and not log.named("zk_acl_drift")

    node = clients(at(zk_any), NODE)
    with pytest.raises(NoAuthError):  # nobody but the operator can make the config
        node.create(paths.config, b'{"a": 1}')
    for path in (paths.base, paths.nodes, paths.masters, paths.locks, paths.restart_lock):
        with pytest.raises(NoAuthError):
            node.set_acls(path, OPEN_ACL_UNSAFE)
    with pytest.raises(NotAuthorized):
        master.set_config({"alluxio.block_size": "1MB"})
    assert not admin.exists(paths.config)

    # the operator can; the master and an agent (no id) read it, register, take the lock, report no drift
    operator = clients(at(zk_any), NODE, OPERATOR_AUTH)
    operator.create(paths.config, b'{"alluxio.block_size": "8MB"}', acl=expected(cluster)[paths.config])
    agent, agent_log = seeded(at(zk_any), cluster, operator_acl_id=None)
    assert agent.get_config() == master.get_config() == {"alluxio.block_size": "8MB"}
    master.register("i-m", member("i-m", role="master", ip="127.0.0.1"), master=True)
    agent.register("i-a", member("i-a"), master=False)
    with agent.restart_lock("i-a", timeout=5) as held:
        assert held
    master.ensure_tree()
    assert not log.named("zk_acl_drift") and not agent_log.named("zk_acl_drift")
    text = log.text() + agent_log.text()
    assert SECRET not in text and OPERATOR not in text and OPERATOR_ID.split(":", 1)[1] not in text


def test_without_the_operator_id_a_new_tree_has_the_one_secret_as_today(
    zk_any: ZooKeeperServer, seeded: Seeded, clients: Callable[..., KazooClient]
) -> None:
    cluster = "seed2"
    store, log = seeded(at(zk_any), cluster, operator_acl_id=None)
    node = clients(at(zk_any), NODE)
    assert admin_acl(node, ClusterPaths(cluster).base) == {(acls.node_id(SECRET), Permissions.ALL)}
    store.set_config({"a": 1})  # the node credential writes the config, as before the split
    assert not log.named("zk_tree_split")


def test_masters_racing_or_a_cut_short_run_end_split(
    zk_any: ZooKeeperServer, seeded: Seeded, clients: Callable[..., KazooClient]
) -> None:
    cluster = "seed3"
    masters = [seeded(at(zk_any), cluster, ensure=False)[0] for _ in range(3)]
    threads = [threading.Thread(target=m.ensure_tree) for m in masters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    admin = clients(at(zk_any), OPERATOR_AUTH)
    assert_split(admin, cluster)

    # a master stopped after creating the cluster's znode with the scaffold: the next one finishes the job
    cluster, paths = "seed4", ClusterPaths("seed4")
    node = clients(at(zk_any), NODE)
    node.ensure_path("/bootstrap-agent")
    node.create(paths.base, b"", acl=acls.scaffold(acls.node_id(SECRET), OPERATOR_ID))
    seeded(at(zk_any), cluster)
    assert_split(admin, cluster)


def test_a_tree_an_agent_made_first_is_split_by_the_master(
    zk_any: ZooKeeperServer, seeded: Seeded, clients: Callable[..., KazooClient]
) -> None:
    cluster = "seed5"
    agent, agent_log = seeded(at(zk_any), cluster, operator_acl_id=None)  # one secret, every right
    agent.register("i-a", member("i-a"), master=False)
    seeded(at(zk_any), cluster)
    assert_split(clients(at(zk_any), OPERATOR_AUTH), cluster)
    agent.ensure_tree()  # the agent learns the split and keeps working
    agent.update(member("i-a", state="degraded", reason="x"))
    with pytest.raises(NotAuthorized):
        agent.set_config({"a": 1})
    assert not agent_log.named("zk_acl_drift")
