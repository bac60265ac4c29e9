"""``bootstrap_agent.cluster`` against a real ZooKeeper (Debian's 3.8): ACL, membership, watches, lock, config.

Nothing is mocked. Every store, kazoo client and process a test starts is stopped by the fixtures below, also
when the test fails. Session timeouts are ZooKeeper's minimum here (2 × tickTime = 4 s) to keep this fast.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout, NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from bootstrap_agent.cluster import (
    ROOT,
    ClusterPaths,
    ClusterStore,
    ClusterUnavailable,
    ConfigConflict,
    ConfigInvalid,
)
from bootstrap_agent.member import Member, PeerInvalid
from tests.support.waiting import wait_for
from tests.support.zookeeper import ZooKeeperServer

SECRET = "s3cret-for-tests-0123456789"
SESSION = 4.0  # ZooKeeper's minimum with tickTime=2000
TICK = 2.0
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Recorder:
    """``on_event`` that records (time, kind, detail) and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, detail: str) -> None:
        with self._cond:
            self.events.append((time.monotonic(), kind, detail))
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, mark: int, kind: str | None = None, detail: str | None = None) -> list[tuple[str, str]]:
        with self._cond:
            return [(k, d) for _, k, d in self.events[mark:] if kind in (None, k) and detail in (None, d)]

    def wait(self, kind: str, detail: str | None = None, *, after: int = 0, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        with self._cond:
            while not [e for e in self.events[after:] if e[1] == kind and detail in (None, e[2])]:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no event {kind} {detail or ''} within {timeout} s; got {self.events}")
                self._cond.wait(left)


class ListLog:
    """A structlog-like logger that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _add(self, level: str, event: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self.records.append((level, event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self._add("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._add("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._add("error", event, fields)

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [fields for _, name, fields in self.records if name == event]

    def text(self) -> str:
        with self._lock:
            return json.dumps(self.records, default=str)


def member(uuid: str, role: str = "agent", ip: str = "10.0.0.20", state: str = "ready", **kw: Any) -> Member:
    fields: dict[str, Any] = {"hostname": f"node-{ip.replace('.', '-')}", "reason": "", "since": 1700000000.0,
                              "services": {"mesos-agent": "active"} if role == "agent" else {"zookeeper": "active"}}
    fields.update(kw)
    return Member(uuid=uuid, role=role, ip=ip, state=state, **fields)


StoreFactory = Callable[..., tuple[ClusterStore, Recorder, ListLog]]
ClientFactory = Callable[..., KazooClient]


@pytest.fixture
def make_store() -> Iterator[StoreFactory]:
    """``make_store(hosts, cluster, **kw)`` → a started store, its event recorder and its log; all stopped after.
    ``ready=True``: also connected, with the cluster's tree created."""
    stores: list[ClusterStore] = []

    def make(hosts: str, cluster: str, *, secret: str = SECRET, start: bool = True, ready: bool = False,
             **kw: Any) -> Any:
        recorder, log = Recorder(), ListLog()
        kw.setdefault("session_timeout", SESSION)
        kw.setdefault("call_timeout", 2.0)
        store = ClusterStore(hosts, cluster, secret, on_event=recorder, log=log, **kw)
        stores.append(store)
        if start or ready:
            store.start()
        if ready:  # connected, with the cluster's tree in place
            assert store.wait_connected(10)
            store.ensure_tree()
        return store, recorder, log

    yield make
    for store in reversed(stores):
        store.stop()
    assert not any(store._worker.is_alive() for store in stores), "a store's worker thread outlived stop()"


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """``make_client(hosts, secret=SECRET|None, **kw)`` → a started plain KazooClient; stopped and closed after."""
    clients: list[KazooClient] = []

    def make(hosts: str, *, secret: str | None = SECRET, start: bool = True, **kw: Any) -> KazooClient:
        auth = [("digest", f"bootstrap-agent:{secret}")] if secret is not None else None
        client = KazooClient(hosts=hosts, auth_data=auth, timeout=SESSION, **kw)
        clients.append(client)
        if start:
            client.start(timeout=10)
        return client

    yield make
    for client in reversed(clients):
        try:
            client.stop()
        finally:
            client.close()


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    """A cluster name of its own per test, so tests can share one ZooKeeper."""
    return f"t{uuidlib.uuid4().hex[:10]}"


def expire_session(hosts: str, session: tuple[int, bytes]) -> None:
    """Expire a session from outside: attach a second client to it and close that one (ZooKeeper then closes
    the session and every connection of it; the first client sees SUSPENDED, then LOST on reconnect)."""
    other = KazooClient(hosts=hosts, client_id=session, timeout=SESSION)
    try:
        other.start(timeout=10)
        other.stop()
    finally:
        other.close()


# --- Member ---------------------------------------------------------------------------------------------------
def test_member_json_round_trip() -> None:
    original = member("i-1", role="master", ip="192.168.0.10", state="degraded", reason="zookeeper: failed")
    parsed = Member.from_json("i-1", original.to_json(), cluster_ips_ok=lambda ip: True)
    assert parsed == original
    assert json.loads(original.to_json())["uuid"] == "i-1"
    assert original.to_json() == parsed.to_json()  # canonical bytes: an unchanged member is never rewritten
    assert hash(parsed) == hash(original)


GOOD = json.loads(member("i-1").to_json())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"not json {", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100000, "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        ({**GOOD, "uuid": "i-2"}, "does not match"),
        ({**GOOD, "role": "boss"}, "role 'boss'"),
        ({**GOOD, "role": None}, "role None"),
        ({**GOOD, "ip": "8.8.8.8"}, "not an address of this cluster"),
        ({**GOOD, "ip": "10.0.0.300"}, "not an IPv4"),
        ({**GOOD, "ip": 167772161}, "not a string"),
        ({**GOOD, "hostname": "<script>"}, "hostname"),
        ({**GOOD, "state": "happy"}, "state 'happy'"),
        ({**GOOD, "reason": 5}, "reason 5"),
        ({**GOOD, "services": ["mesos-agent"]}, "services"),
        ({**GOOD, "services": {"mesos-agent": 1}}, "services entry"),
        ({**GOOD, "since": "yesterday"}, "since"),
        ({**GOOD, "since": True}, "since"),
        ({k: v for k, v in GOOD.items() if k != "services"}, "services None"),
    ],
)
def test_member_validation_refuses(raw: Any, reason: str) -> None:
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(PeerInvalid) as caught:
        Member.from_json("i-1", data, cluster_ips_ok=lambda ip: ip.startswith("10."))
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


# --- tree and ACL ---------------------------------------------------------------------------------------------
def test_tree_has_only_the_digest_acl_and_refuses_everyone_else(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    hosts = zookeeper_module.hosts
    store, _, log = make_store(hosts, cluster, ready=True)
    store.ensure_tree()  # idempotent
    store.register("i-1", member("i-1"), master=False)
    store.set_config({"alluxio.block_size": "8MB"})
    paths = ClusterPaths(cluster)
    ours = make_digest_acl("bootstrap-agent", SECRET, all=True)

    admin = make_client(hosts)
    assert admin.get_acls(ROOT)[0] == OPEN_ACL_UNSAFE
    protected = [*paths.tree(), paths.config, paths.node("i-1")]
    for path in protected:
        assert admin.get_acls(path)[0] == [ours], path

    for secret in (None, "wrong-secret-0123456789"):
        outsider = make_client(hosts, secret=secret)
        for path in protected:
            with pytest.raises(NoAuthError):
                outsider.get(path)
            with pytest.raises(NoAuthError):
                outsider.get_children(path)
            with pytest.raises(NoAuthError):
                outsider.set(path, b"{}")
            with pytest.raises(NoAuthError):
                outsider.create(f"{path}/intruder", b"x")

    # A store with the wrong secret cannot use the tree, and says so in one line without any secret.
    wrong, _, wrong_log = make_store(hosts, cluster, secret="wrong-secret-0123456789")
    assert wrong.wait_connected(10)
    for call in (wrong.ensure_tree, wrong.members, wrong.get_config):
        with pytest.raises(ClusterUnavailable, match="not authorized") as caught:
            call()
        assert "wrong-secret" not in str(caught.value) and "\n" not in str(caught.value)
    assert SECRET not in log.text() and "wrong-secret" not in wrong_log.text()


def test_foreign_acl_on_the_tree_is_replaced(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    anyone = make_client(zookeeper_module.hosts, secret=None)
    anyone.create(paths.nodes, b"", makepath=True)  # world-readable, as a careless hand-made tree would be
    _, _, log = make_store(zookeeper_module.hosts, cluster, ready=True)
    with pytest.raises(NoAuthError):
        anyone.get_children(paths.nodes)
    assert {entry["path"] for entry in log.named("zk_acl_fixed")} == {paths.base, paths.nodes}


def test_kazoo_logs_stay_out_of_the_logging_tree_and_never_show_the_secret(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG kazoo logs every request, the Auth packet with the secret: its logger must not be reachable."""
    caplog.set_level(logging.DEBUG)
    _, _, log = make_store(zookeeper_module.hosts, cluster, ready=True)
    assert "Auth(" not in caplog.text and SECRET not in caplog.text
    assert SECRET not in log.text()


# --- own membership -------------------------------------------------------------------------------------------
def test_register_update_deregister_seen_by_another_client(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    store, _, _ = make_store(zookeeper_module.hosts, cluster, ready=True)
    me = member("i-m", role="master", ip="10.0.0.10", state="bootstrapping")
    store.register("i-m", me, master=True)
    other = make_client(zookeeper_module.hosts)
    for path in (paths.node("i-m"), paths.master("10.0.0.10")):
        data, stat = other.get(path)
        assert json.loads(data)["state"] == "bootstrapping"
        assert stat.ephemeralOwner == store.session.session_id()

    ready = member("i-m", role="master", ip="10.0.0.10", services={"zookeeper": "active", "nginx": "active"})
    store.update(ready)
    data, stat = other.get(paths.node("i-m"))
    assert Member.from_json("i-m", data, cluster_ips_ok=lambda ip: True) == ready
    store.update(ready)  # unchanged: no write
    assert other.get(paths.node("i-m"))[1].version == stat.version

    store.deregister()
    assert other.exists(paths.node("i-m")) is None
    assert other.exists(paths.master("10.0.0.10")) is None
    store.deregister()  # already gone: fine


def test_register_takes_over_a_znode_left_by_an_older_session(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    """A restarted daemon finds its old (not yet expired) ephemeral: it must own the znode, or lose it later."""
    paths = ClusterPaths(cluster)
    first, _, _ = make_store(zookeeper_module.hosts, cluster)
    assert first.wait_connected(10)
    first.ensure_tree()
    first.register("i-1", member("i-1"), master=False)
    second, _, log = make_store(zookeeper_module.hosts, cluster)
    assert second.wait_connected(10)
    second.register("i-1", member("i-1", state="bootstrapping"), master=False)
    other = make_client(zookeeper_module.hosts)
    assert other.get(paths.node("i-1"))[1].ephemeralOwner == second.session.session_id()
    assert log.named("zk_member_replaced")
    first.stop()  # the old session ends: the znode stays, because it is the new session's
    assert other.exists(paths.node("i-1")) is not None


def test_member_of_a_closed_or_expired_session_disappears(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    other = make_client(zookeeper_module.hosts)
    # Closed without deregistering: the server removes the ephemeral with the session, at once.
    store, _, _ = make_store(zookeeper_module.hosts, cluster, ready=True)
    store.register("i-1", member("i-1"), master=False)
    store.stop()
    assert other.exists(paths.node("i-1")) is None

    # A plain client whose session is expired (nothing re-creates its znode): gone at once as well.
    plain = make_client(zookeeper_module.hosts)
    plain.create(paths.node("i-2"), member("i-2").to_json(), ephemeral=True,
                 acl=[make_digest_acl("bootstrap-agent", SECRET, all=True)])
    expire_session(zookeeper_module.hosts, plain.client_id)
    wait_for("expired member gone", lambda: other.exists(paths.node("i-2")) is None, timeout=2, interval=0.02)


def test_member_of_a_killed_process_disappears_within_the_session_timeout(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str,
    tmp_path: Path,
) -> None:
    """SIGKILL: no close, no deregister. The session expires after its timeout, taking the znode with it."""
    paths = ClusterPaths(cluster)
    setup, _, _ = make_store(zookeeper_module.hosts, cluster)
    assert setup.wait_connected(10)
    setup.ensure_tree()
    script = f"""
import sys, time
from bootstrap_agent.cluster import ClusterStore
from bootstrap_agent.member import Member
class Quiet:
    def info(self, event, **fields): pass
    warning = error = info
store = ClusterStore({zookeeper_module.hosts!r}, {cluster!r}, {SECRET!r}, on_event=lambda k, d: None,
                     session_timeout={SESSION}, log=Quiet())
store.start()
assert store.wait_connected(10)
store.register("i-k", Member("i-k", "agent", "10.0.0.30", "k", "ready", "", {{}}, time.time()), master=False)
print("registered", flush=True)
time.sleep(60)
"""
    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as errors:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=errors,
                                env={**os.environ, "PYTHONPATH": PROJECT})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"registered", stderr.read_text()
        other = make_client(zookeeper_module.hosts)
        assert other.exists(paths.node("i-k")) is not None
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for("gone", lambda: other.exists(paths.node("i-k")) is None, timeout=SESSION + TICK + 2, interval=0.02)
        elapsed = time.monotonic() - killed
        assert elapsed <= SESSION + TICK + 0.5, elapsed  # ZooKeeper expires sessions at tick granularity
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


# --- session loss and ZooKeeper outages ------------------------------------------------------------------------
def test_session_expiry_recreates_member_and_watches_fire_again(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    hosts = zookeeper_module.hosts
    paths = ClusterPaths(cluster)
    master, master_events, master_log = make_store(hosts, cluster)
    agent, agent_events, _ = make_store(hosts, cluster)
    assert master.wait_connected(10) and agent.wait_connected(10)
    master.ensure_tree()
    master.register("i-m", member("i-m", role="master", ip="10.0.0.10"), master=True)
    master.watch_members()
    master.watch_config()
    agent.watch_masters(["10.0.0.10"])
    master_events.wait("members", paths.nodes)
    master_events.wait("config", paths.config)
    agent_events.wait("masters", paths.master("10.0.0.10"))

    old_session = master.session.client.client_id
    mark, agent_mark = master_events.mark(), agent_events.mark()
    expire_session(hosts, old_session)
    master_events.wait("session", "LOST", after=mark)
    master_events.wait("session", "CONNECTED", after=mark)
    new_session = master.session.client.client_id[0]
    assert new_session != old_session[0]

    # The member znodes are back, owned by the new session, re-created by the store itself.
    other = make_client(hosts)

    def owned_by_new_session(path: str) -> bool:
        stat = other.exists(path)
        return stat is not None and stat.ephemeralOwner == new_session

    for path in (paths.node("i-m"), paths.master("10.0.0.10")):
        wait_for(f"{path} re-created", lambda p=path: owned_by_new_session(p), timeout=5, interval=0.02)
    recreated = {paths.node("i-m"), paths.master("10.0.0.10")}
    wait_for("zk_member_recreated logged for both znodes",
             lambda: {entry["path"] for entry in master_log.named("zk_member_recreated")} == recreated,
             timeout=2, interval=0.02)
    agent_events.wait("masters", paths.master("10.0.0.10"), after=agent_mark)  # it was gone and came back

    # The re-armed watches fire for changes made after the expiry.
    after = master_events.mark()
    agent.register("i-a", member("i-a"), master=False)
    master_events.wait("members", after=after)
    master.set_config({"alluxio.block_size": "8MB"})
    master_events.wait("config", paths.config, after=after)
    agent_after = agent_events.mark()
    master.update(member("i-m", role="master", ip="10.0.0.10", state="degraded", reason="nginx: failed"))
    agent_events.wait("masters", paths.master("10.0.0.10"), after=agent_after)
    assert master.members()[0].state == "degraded"


def test_zookeeper_restart_under_a_running_store(
    zookeeper: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    master, events, _ = make_store(zookeeper.hosts, cluster, call_timeout=1.0)
    agent, agent_events, _ = make_store(zookeeper.hosts, cluster, call_timeout=1.0)
    assert master.wait_connected(10) and agent.wait_connected(10)
    master.ensure_tree()
    master.register("i-m", member("i-m", role="master", ip="10.0.0.10"), master=True)
    master.watch_members()
    master.watch_config()
    agent.watch_masters(["10.0.0.10"])
    events.wait("config", paths.config)
    agent_events.wait("masters")

    zookeeper.stop()
    wait_for("store notices the outage", lambda: not master.connected(), timeout=5, interval=0.02)
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable):
        master.members()
    assert time.monotonic() - started <= 1.0 + 0.5
    mark, agent_mark = events.mark(), agent_events.mark()
    zookeeper.start()
    assert master.wait_connected(15) and agent.wait_connected(15)
    events.wait("session", "CONNECTED", after=mark)

    other = make_client(zookeeper.hosts)
    wait_for("member znode after the restart", lambda: other.exists(paths.node("i-m")), timeout=5, interval=0.02)
    after = events.mark()
    master.set_config({"mesos.agent_flags": {"docker_remove_delay": "1mins"}})
    events.wait("config", paths.config, after=after)
    agent.register("i-a", member("i-a"), master=False)
    events.wait("members", after=after)
    master.update(member("i-m", role="master", ip="10.0.0.10", state="degraded", reason="x"))
    agent_events.wait("masters", paths.master("10.0.0.10"), after=agent_mark)


def test_zookeeper_down_at_start_then_up(
    zookeeper: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    zookeeper.stop()
    store, events, log = make_store(zookeeper.hosts, cluster, call_timeout=1.0, start=False)
    started = time.monotonic()
    store.start()
    assert time.monotonic() - started < 0.2
    assert not store.connected()
    assert not store.wait_connected(0.3)
    store.watch_config()  # returns at once; armed once connected
    store.watch_members()
    for call in (store.members, store.get_config, store.ensure_tree,
                 lambda: store.register("i-1", member("i-1"), master=False)):
        started = time.monotonic()
        with pytest.raises(ClusterUnavailable):
            call()
        assert time.monotonic() - started <= 1.0 + 0.3

    # kazoo's own complaints arrive as structured events, once, not as plain text on stderr.
    refused = [e for e in log.named("zk_client") if "Connection refused" in e["message"]]
    assert len(refused) == 1, log.named("zk_client")
    zookeeper.start()
    assert store.wait_connected(15)
    events.wait("session", "CONNECTED")
    events.wait("config", paths.config)
    events.wait("members", paths.nodes)
    # The registration refused while ZooKeeper was down is written by the store on its own.
    other = make_client(zookeeper.hosts)
    wait_for("member written after the outage", lambda: other.exists(paths.node("i-1")), timeout=5, interval=0.02)
    assert [m.uuid for m in store.members()] == ["i-1"]


def test_calls_to_a_hung_zookeeper_time_out(
    zookeeper: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    """A server that accepts but never answers (SIGSTOP): the connection still looks up, so only the deadline
    on every call keeps the daemon from hanging (the Patroni lesson)."""
    paths = ClusterPaths(cluster)
    store, events, _ = make_store(zookeeper.hosts, cluster, call_timeout=1.0, ready=True)
    store.register("i-1", member("i-1"), master=False)
    store.watch_config()
    events.wait("config")
    assert zookeeper.proc is not None
    zookeeper.proc.send_signal(signal.SIGSTOP)
    try:
        for call in (store.members, store.get_config, lambda: store.update(member("i-1", state="degraded"))):
            started = time.monotonic()
            with pytest.raises(ClusterUnavailable):
                call()
            assert time.monotonic() - started <= 1.0 + 0.3
        started = time.monotonic()
        with pytest.raises(ClusterUnavailable), store.restart_lock("i-1", timeout=30):
            pass
        assert time.monotonic() - started <= 1.0 + 0.3
    finally:
        zookeeper.proc.send_signal(signal.SIGCONT)
    assert store.wait_connected(15)
    # The update refused during the hang is written by the store once ZooKeeper answers again.
    other = make_client(zookeeper.hosts)
    wait_for("update written after the hang",
             lambda: other.exists(paths.node("i-1")) and json.loads(other.get(paths.node("i-1"))[0])["state"]
             == "degraded", timeout=10, interval=0.02)
    mark = events.mark()
    store.set_config({"a": 1})
    events.wait("config", paths.config, after=mark)
    # The contender znode whose create timed out was created when the server woke up: the worker removes it.
    wait_for("no contender left behind", lambda: other.get_children(paths.restart_lock) == [], timeout=10,
             interval=0.02)


def test_start_and_stop_are_safe_to_repeat(zookeeper_module: ZooKeeperServer, make_store: StoreFactory,
                                           cluster: str) -> None:
    never, _, _ = make_store(zookeeper_module.hosts, cluster, start=False)
    with pytest.raises(ClusterUnavailable, match="not started"):
        never.members()
    never.stop()
    store, _, _ = make_store(zookeeper_module.hosts, cluster)
    store.start()
    assert store.wait_connected(10)
    store.stop()
    store.stop()
    assert not store.connected() and not store.wait_connected(0.1)
    with pytest.raises(ClusterUnavailable, match="closed"):
        store.get_config()


# --- peers ------------------------------------------------------------------------------------------------------
def test_garbage_members_are_skipped_and_logged_once(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    store, _, log = make_store(zookeeper_module.hosts, cluster, ip_ok=lambda ip: ip.startswith("10.0."), ready=True)
    store.register("i-good", member("i-good", ip="10.0.0.21"), master=False)
    writer = make_client(zookeeper_module.hosts)  # holds the secret: garbage from inside the cluster
    acl = [make_digest_acl("bootstrap-agent", SECRET, all=True)]
    garbage = {
        "i-json": b"\x00not json",
        "i-role": member("i-role", ip="10.0.0.22").to_json().replace(b'"agent"', b'"overlord"'),
        "i-ip": member("i-ip", ip="8.8.8.8").to_json(),
    }
    for name, data in garbage.items():
        writer.create(paths.node(name), data, acl=acl, ephemeral=True)
    writer.create(paths.node("i-other"), member("i-other", ip="10.0.0.23").to_json(), acl=acl, ephemeral=True)

    assert [m.uuid for m in store.members()] == ["i-good", "i-other"]
    logged = {entry["uuid"]: entry["reason"] for entry in log.named("peer_invalid")}
    assert set(logged) == set(garbage)
    assert "not JSON" in logged["i-json"] and "overlord" in logged["i-role"] and "8.8.8.8" in logged["i-ip"]
    store.members()
    assert len(log.named("peer_invalid")) == 3  # the tick's re-list does not repeat it
    writer.set(paths.node("i-ip"), member("i-ip", ip="9.9.9.9").to_json())
    store.members()
    assert len(log.named("peer_invalid")) == 4  # a new version of the garbage is logged again

    # masters/<ip>: only a master of exactly that IP counts; missing ones are skipped.
    writer.create(paths.master("10.0.0.10"), member("i-m1", role="master", ip="10.0.0.10").to_json(), acl=acl,
                  ephemeral=True)
    writer.create(paths.master("10.0.0.11"), member("i-x", ip="10.0.0.11").to_json(), acl=acl, ephemeral=True)
    writer.create(paths.master("10.0.0.12"), member("i-m3", role="master", ip="10.0.0.13").to_json(), acl=acl,
                  ephemeral=True)
    found = store.masters(["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.14"])
    assert [m.uuid for m in found] == ["i-m1"]
    assert {e["path"] for e in log.named("peer_invalid")} >= {paths.master("10.0.0.11"), paths.master("10.0.0.12")}


def test_members_skips_a_member_leaving_between_list_and_read(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    """NoNode races are normal: many members come and go while a master re-lists."""
    paths = ClusterPaths(cluster)
    store, _, log = make_store(zookeeper_module.hosts, cluster, ready=True)
    churn = make_client(zookeeper_module.hosts)
    acl = [make_digest_acl("bootstrap-agent", SECRET, all=True)]
    stop = threading.Event()

    def flap() -> None:
        while not stop.is_set():
            churn.create(paths.node("i-flap"), member("i-flap").to_json(), acl=acl, ephemeral=True)
            churn.delete(paths.node("i-flap"))

    thread = threading.Thread(target=flap)
    thread.start()
    try:
        for _ in range(200):
            assert {m.uuid for m in store.members()} <= {"i-flap"}
    finally:
        stop.set()
        thread.join(10)
    assert not log.named("peer_invalid") and not log.named("zk_worker_error")


# --- watches ----------------------------------------------------------------------------------------------------
def test_agents_watch_masters_only(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, cluster: str
) -> None:
    hosts = zookeeper_module.hosts
    paths = ClusterPaths(cluster)
    agent, events, _ = make_store(hosts, cluster)
    assert agent.wait_connected(10)
    agent.ensure_tree()
    agent.watch_masters(["10.0.0.10", "10.0.0.11"])
    agent.watch_config()
    for ip in ("10.0.0.10", "10.0.0.11"):
        events.wait("masters", paths.master(ip))  # the first arming is reported once per watch
    events.wait("config")

    master, _, _ = make_store(hosts, cluster)
    assert master.wait_connected(10)
    mark = events.mark()
    master.register("i-m", member("i-m", role="master", ip="10.0.0.10", state="bootstrapping"), master=True)
    events.wait("masters", paths.master("10.0.0.10"), after=mark)
    mark = events.mark()
    master.update(member("i-m", role="master", ip="10.0.0.10"))
    events.wait("masters", paths.master("10.0.0.10"), after=mark)

    # Other agents joining, changing and leaving cost this agent nothing: no event, no read.
    others = [make_store(hosts, cluster)[0] for _ in range(3)]
    quiet = events.mark()
    for n, other in enumerate(others):
        assert other.wait_connected(10)
        other.register(f"i-{n}", member(f"i-{n}", ip=f"10.0.0.{30 + n}", state="bootstrapping"), master=False)
        other.update(member(f"i-{n}", ip=f"10.0.0.{30 + n}"))
    others[0].deregister()
    time.sleep(0.5)
    assert events.since(quiet) == []

    master.deregister()
    events.wait("masters", paths.master("10.0.0.10"), after=quiet)
    assert {kind for kind, _ in events.since(quiet)} == {"masters"}


def test_masters_watch_every_member(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, cluster: str
) -> None:
    hosts = zookeeper_module.hosts
    paths = ClusterPaths(cluster)
    master, events, log = make_store(hosts, cluster)
    assert master.wait_connected(10)
    master.ensure_tree()
    master.watch_members()
    events.wait("members", paths.nodes)

    agent, _, _ = make_store(hosts, cluster)
    assert agent.wait_connected(10)
    mark = events.mark()
    agent.register("i-a", member("i-a", state="bootstrapping"), master=False)
    events.wait("members", paths.nodes, after=mark)  # joined
    mark = events.mark()
    agent.update(member("i-a"))
    events.wait("members", paths.node("i-a"), after=mark)  # changed
    assert [m.state for m in master.members()] == ["ready"]
    mark = events.mark()
    agent.deregister()
    events.wait("members", paths.nodes, after=mark)  # left
    assert master.members() == []
    mark = events.mark()
    agent.register("i-a", member("i-a", state="bootstrapping"), master=False)  # the same instance rejoins
    events.wait("members", paths.nodes, after=mark)
    mark = events.mark()
    agent.update(member("i-a"))
    events.wait("members", paths.node("i-a"), after=mark)
    assert not log.named("zk_worker_error") and not log.named("event_callback_failed")


def test_a_failing_event_callback_is_logged_and_the_watch_keeps_working(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, cluster: str
) -> None:
    calls: list[str] = []

    def broken(kind: str, detail: str) -> None:
        calls.append(kind)
        raise RuntimeError("queue full")

    store, _, log = make_store(zookeeper_module.hosts, cluster)
    store._on_event = broken  # the daemon's callback fails: the store must carry on
    assert store.wait_connected(10)
    store.ensure_tree()
    store.watch_config()
    wait_for("first config event", lambda: "config" in calls, timeout=10, interval=0.02)
    store.set_config({"a": 1})
    wait_for("config event after a failed callback", lambda: calls.count("config") >= 2, timeout=10, interval=0.02)
    assert log.named("event_callback_failed")


# --- restart lock -------------------------------------------------------------------------------------------------
def test_restart_lock_admits_one_holder_at_a_time(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    stores = [make_store(zookeeper_module.hosts, cluster)[0] for _ in range(3)]
    for store in stores:
        assert store.wait_connected(10)
    stores[0].ensure_tree()
    observer = make_client(zookeeper_module.hosts)
    intervals: list[tuple[float, float, str]] = []
    holders_seen: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def contend(store: ClusterStore, name: str) -> None:
        try:
            for _ in range(3):
                with store.restart_lock(name, timeout=20) as granted:
                    assert granted
                    start = time.monotonic()
                    # The lock's own znodes say who holds it: the lowest sequence number, holding our name.
                    children = sorted(observer.get_children(paths.restart_lock), key=lambda c: c[-10:])
                    holders_seen.append(observer.get(f"{paths.restart_lock}/{children[0]}")[0].decode())
                    time.sleep(0.1)
                    end = time.monotonic()
                with lock:
                    intervals.append((start, end, name))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(store, f"agent-{n}")) for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(intervals) == 9
    ordered = sorted(intervals)
    for (_, end, who), (start, _, next_who) in itertools.pairwise(ordered):
        assert end <= start, f"{who} and {next_who} held the restart lock at the same time"
    assert sorted(holders_seen) == sorted(name for _, _, name in intervals)
    assert observer.get_children(paths.restart_lock) == []


def test_restart_lock_times_out_and_interoperates_with_kazoo_lock(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    store, _, _ = make_store(zookeeper_module.hosts, cluster, ready=True)
    operator = make_client(zookeeper_module.hosts)
    kazoo_lock = operator.Lock(paths.restart_lock, "operator")
    assert kazoo_lock.acquire(timeout=5)
    started = time.monotonic()
    with store.restart_lock("agent-1", timeout=0.5) as granted:
        assert not granted
    assert 0.5 <= time.monotonic() - started < 0.5 + 1.0
    assert kazoo_lock.contenders() == ["operator"]  # our contender node was removed on the timeout
    kazoo_lock.release()
    with store.restart_lock("agent-1", timeout=5) as granted:
        assert granted
        assert operator.Lock(paths.restart_lock).contenders() == ["agent-1"]  # kazoo sees our node as the holder
        with pytest.raises(LockTimeout):
            operator.Lock(paths.restart_lock, "op2").acquire(timeout=0.3)
    assert kazoo_lock.acquire(timeout=5)
    kazoo_lock.release()


# --- config -------------------------------------------------------------------------------------------------------
def test_config_get_set_with_version_conflicts(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    paths = ClusterPaths(cluster)
    store, _, log = make_store(zookeeper_module.hosts, cluster, ready=True)
    assert store.get_config() == {} and store.config_version() == -1

    store.set_config({"alluxio.block_size": "8MB"}, expected_version=-1)
    assert store.read_config() == ({"alluxio.block_size": "8MB"}, 0)
    with pytest.raises(ConfigConflict) as conflict:
        store.set_config({"x": 1}, expected_version=-1)  # someone created it first
    assert not isinstance(conflict.value, ClusterUnavailable)  # ZooKeeper answered: a conflict is no outage
    store.set_config({"alluxio.block_size": "16MB", "mesos.attributes": {"az": "eu-de-01"}}, expected_version=0)
    with pytest.raises(ConfigConflict):
        store.set_config({"alluxio.block_size": "32MB"}, expected_version=0)  # stale read
    assert store.get_config() == {"alluxio.block_size": "16MB", "mesos.attributes": {"az": "eu-de-01"}}
    store.set_config({})  # unconditional
    assert store.read_config() == ({}, 2)
    with pytest.raises(ValueError):
        store.set_config({"bad": float("nan")})

    operator = make_client(zookeeper_module.hosts)
    operator.set(paths.config, b"[1, 2, 3]")
    with pytest.raises(ConfigInvalid):
        store.get_config()  # the daemon keeps the overrides it had, exactly as when ZooKeeper is away
    with pytest.raises(ConfigInvalid):
        store.get_config()
    assert len(log.named("config_invalid")) == 1
    operator.delete(paths.config)
    with pytest.raises(ConfigConflict):
        store.set_config({"x": 1}, expected_version=3)
    assert store.get_config() == {}


def test_restart_guard_passes_the_body_s_own_error_through_once(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    """A session lost while the agent restarts its units (inside the lock) is the body's error: the guard hands
    it on unchanged and releases the lock, instead of yielding a second time ("generator didn't stop")."""
    from bootstrap_agent.daemon import restart_guard

    paths = ClusterPaths(cluster)
    store, _, log = make_store(zookeeper_module.hosts, cluster, ready=True)
    with pytest.raises(ClusterUnavailable, match="lost in the body"), \
            restart_guard(store, "agent-1", 5.0, log) as granted:
        assert granted
        raise ClusterUnavailable("lost in the body")
    assert make_client(zookeeper_module.hosts).get_children(paths.restart_lock) == []
    assert log.named("restart_lock_acquired") and not log.named("restart_lock_unavailable")


def test_restart_guard_without_zookeeper_yields_false_once(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, cluster: str
) -> None:
    from bootstrap_agent.daemon import restart_guard

    store, _, log = make_store(zookeeper_module.hosts, cluster, ready=True)
    store.stop()  # asking for the lock now fails: restarts wait for the next pass
    with restart_guard(store, "agent-1", 1.0, log) as granted:
        assert granted is False
    assert log.named("restart_lock_unavailable")
