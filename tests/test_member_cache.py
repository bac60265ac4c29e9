"""``zk.member_cache`` against a real ZooKeeper: a master's pass reads only the member znodes that changed, and
the view stays right through state changes, garbage, deletions, rejoins and session loss.

The store's worker arms the watches (as in the daemon) and the test waits for its events before asking for
the view, as the daemon's pass would; ``MemberView.reads`` says how many znodes that refresh read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from bootstrap_agent.cluster import AUTH_USER, ClusterPaths, ClusterStore
from bootstrap_agent.member import Member
from bootstrap_agent.member_rows import MemberRows
from bootstrap_agent.zk.watches import _UNSET
from tests import test_cluster as _cluster_tests
from tests.support.waiting import wait_for
from tests.support.zookeeper import ZooKeeperServer
from tests.test_cluster import SECRET, ClientFactory, Recorder, StoreFactory, expire_session, member

# The fixtures of tests/test_cluster.py (stores, clients and a cluster name of their own, all stopped after).
make_store, make_client, cluster = _cluster_tests.make_store, _cluster_tests.make_client, _cluster_tests.cluster

AGENTS = 40


def agent(index: int, **kw: Any) -> Member:
    return member(f"i-{index:03d}", ip=f"10.0.1.{index + 1}", **kw)


def writer(make_client: ClientFactory, hosts: str) -> KazooClient:
    """A client holding the cluster secret whose znodes carry the cluster's digest ACL (like a node's)."""
    return make_client(hosts, default_acl=[make_digest_acl(AUTH_USER, SECRET, all=True)])


def watched_master(make_store: StoreFactory, hosts: str, cluster: str) -> tuple[ClusterStore, Recorder, Any]:
    store, events, log = make_store(hosts, cluster, ready=True)
    store.watch_members()
    events.wait("members", ClusterPaths(cluster).nodes)
    return store, events, log


def settled(store: ClusterStore, events: Recorder, mark: int, detail: str | None = None) -> None:
    """Wait for the worker's report of a change (what starts the daemon's pass)."""
    events.wait("members", detail, after=mark)


def armed(store: ClusterStore) -> int:
    """Member znodes whose watch the worker has armed (the table's own state, read under its lock)."""
    with store.session.cond:
        return sum(1 for w in store.watches._watches.values() if w.member_of and w.snapshot not in (_UNSET, None))


def uuids(store: ClusterStore) -> list[str]:
    return [m["uuid"] for m in store.member_view().members]


def test_a_pass_reads_only_the_members_that_changed(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    hosts, paths = zookeeper_module.hosts, ClusterPaths(cluster)
    store, events, _ = watched_master(make_store, hosts, cluster)
    client = writer(make_client, hosts)
    mark = events.mark()
    for i in range(AGENTS):
        client.create(paths.node(agent(i).uuid), agent(i).to_json(), ephemeral=True)
    client.create(paths.node("i-m"), member("i-m", role="master", ip="10.0.0.10").to_json(), ephemeral=True)
    settled(store, events, mark)
    wait_for("every member armed", lambda: armed(store) == AGENTS + 1, timeout=10, interval=0.02)

    first = store.member_view()
    assert first.reads == AGENTS + 1  # the first refresh reads everything
    assert [m["uuid"] for m in first.members][:2] == ["i-m", "i-000"]  # masters first, then by address
    idle = store.member_view()
    assert idle.reads == 0 and not idle.changed and idle.members is first.members
    assert store.member_view(relist=True).reads == 0  # the tick's listing finds nothing to read

    # One member changes state: one read, the others are the very same objects.
    mark = events.mark()
    client.set(paths.node(agent(7).uuid), agent(7, state="degraded", reason="mesos-agent: failed").to_json())
    settled(store, events, mark, paths.node(agent(7).uuid))
    view = store.member_view()
    assert view.reads == 1 and view.changed
    changed = next(m for m in view.members if m["uuid"] == agent(7).uuid)
    assert (changed["state"], changed["reason"]) == ("degraded", "mesos-agent: failed")
    before = {m["uuid"]: m for m in first.members}
    assert all(m is before[m["uuid"]] for m in view.members if m["uuid"] != agent(7).uuid)
    # The view says what changed since the one before it: the old row went, the new one came.
    assert isinstance(view.members, MemberRows) and view.members.previous is first.members
    assert view.members.removed == (before[agent(7).uuid],) and view.members.added == (changed,)

    # A join reads the new member only; a leave reads nothing.
    mark = events.mark()
    client.create(paths.node(agent(AGENTS).uuid), agent(AGENTS).to_json(), ephemeral=True)
    settled(store, events, mark, paths.nodes)
    joined = store.member_view()
    assert joined.reads == 1 and agent(AGENTS).uuid in [m["uuid"] for m in joined.members]
    assert isinstance(joined.members, MemberRows) and joined.members.previous is view.members
    assert joined.members.removed == () and [m["uuid"] for m in joined.members.added] == [agent(AGENTS).uuid]
    assert isinstance(view.members, MemberRows) and view.members.previous is None  # only the newest links back
    mark = events.mark()
    client.delete(paths.node(agent(3).uuid))
    settled(store, events, mark, paths.nodes)
    view = store.member_view()
    assert view.reads == 0 and agent(3).uuid not in [m["uuid"] for m in view.members]
    assert isinstance(view.members, MemberRows) and view.members.previous is joined.members
    assert [m["uuid"] for m in view.members.removed] == [agent(3).uuid] and view.members.added == ()
    assert len(view.members) == AGENTS + 1


def test_garbage_keeps_the_last_good_member_and_says_why(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    hosts, paths = zookeeper_module.hosts, ClusterPaths(cluster)
    store, events, log = watched_master(make_store, hosts, cluster)
    client = writer(make_client, hosts)
    good, path = agent(1), paths.node(agent(1).uuid)
    mark = events.mark()
    client.create(path, good.to_json(), ephemeral=True)
    client.create(paths.node("i-junk"), b"not json {", ephemeral=True)  # garbage from the start
    settled(store, events, mark)
    view = store.member_view()
    assert [m["uuid"] for m in view.members] == [good.uuid]
    assert "not JSON" in view.invalid["i-junk"]

    mark = events.mark()
    client.set(path, json.dumps({**json.loads(good.to_json()), "state": "happy"}).encode())
    settled(store, events, mark, path)
    view = store.member_view()
    kept = next(m for m in view.members if m["uuid"] == good.uuid)
    assert kept["state"] == "ready"  # the last good data, not dropped from the dashboard
    assert "state 'happy'" in view.invalid[good.uuid]
    logged = [e for e in log.named("peer_invalid") if e["uuid"] == good.uuid]
    assert len(logged) == 1 and logged[0]["keeping"] == "last good"
    store.member_view(relist=True)
    assert len([e for e in log.named("peer_invalid") if e["uuid"] == good.uuid]) == 1  # once per version

    mark = events.mark()
    client.set(path, agent(1, state="draining", reason="stopping").to_json())
    settled(store, events, mark, path)
    view = store.member_view()
    assert next(m for m in view.members if m["uuid"] == good.uuid)["state"] == "draining"
    assert good.uuid not in view.invalid
    mark = events.mark()
    client.delete(paths.node("i-junk"))
    settled(store, events, mark, paths.nodes)
    assert store.member_view().invalid == {}


def test_deleted_and_rejoined_members(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    hosts, paths = zookeeper_module.hosts, ClusterPaths(cluster)
    store, events, _ = watched_master(make_store, hosts, cluster)
    client = writer(make_client, hosts)
    mark = events.mark()
    for i in range(5):
        client.create(paths.node(agent(i).uuid), agent(i).to_json(), ephemeral=True)
    settled(store, events, mark)
    wait_for("five listed", lambda: len(uuids(store)) == 5, timeout=5, interval=0.02)

    # Deleted while a change of it was pending, and one that rejoins at once with other data.
    mark = events.mark()
    client.set(paths.node(agent(0).uuid), agent(0, state="degraded", reason="x").to_json())
    client.delete(paths.node(agent(0).uuid))
    client.delete(paths.node(agent(1).uuid))
    client.create(paths.node(agent(1).uuid), agent(1, state="bootstrapping").to_json(), ephemeral=True)
    settled(store, events, mark)
    wait_for("the deleted one gone and the rejoined one re-read", lambda: [
        (m["uuid"], m["state"]) for m in store.member_view().members][:2] == [
        (agent(1).uuid, "bootstrapping"), (agent(2).uuid, "ready")], timeout=5, interval=0.02)

    # A writer's session ends: its ephemeral members go.
    mark = events.mark()
    client.stop()
    settled(store, events, mark, paths.nodes)
    wait_for("all gone", lambda: uuids(store) == [], timeout=5, interval=0.02)


def test_session_loss_reads_everything_once_and_sees_what_changed_meanwhile(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    hosts, paths = zookeeper_module.hosts, ClusterPaths(cluster)
    store, events, _ = watched_master(make_store, hosts, cluster)
    client = writer(make_client, hosts)
    mark = events.mark()
    for i in range(10):
        client.create(paths.node(agent(i).uuid), agent(i).to_json(), ephemeral=True)
    settled(store, events, mark)
    wait_for("ten listed", lambda: len(uuids(store)) == 10, timeout=5, interval=0.02)
    assert store.member_view().reads == 0

    mark = events.mark()
    expire_session(hosts, store.session.client.client_id)
    events.wait("session", "LOST", after=mark)
    # Changed while the master had no session: no watch of the old session can report it.
    client.set(paths.node(agent(4).uuid), agent(4, state="draining", reason="lifecycle").to_json())
    client.delete(paths.node(agent(5).uuid))
    events.wait("session", "CONNECTED", after=mark)
    view = store.member_view()
    assert view.reads == 9  # everything, once
    assert {m["uuid"]: m["state"] for m in view.members}[agent(4).uuid] == "draining"
    assert agent(5).uuid not in [m["uuid"] for m in view.members]
    settled(store, events, mark, paths.nodes)  # the worker re-armed every watch
    wait_for("nothing more to read", lambda: store.member_view().reads == 0, timeout=5, interval=0.02)


def test_without_armed_watches_every_refresh_reads_everything(
    zookeeper_module: ZooKeeperServer, make_store: StoreFactory, make_client: ClientFactory, cluster: str
) -> None:
    """Before the worker armed ``nodes/`` (a master's first pass) nothing may be trusted: read it all."""
    hosts, paths = zookeeper_module.hosts, ClusterPaths(cluster)
    store, _, _ = make_store(hosts, cluster, ready=True)
    client = writer(make_client, hosts)
    client.create(paths.node(agent(1).uuid), agent(1).to_json(), ephemeral=True)
    assert store.member_view().reads == 1
    client.set(paths.node(agent(1).uuid), agent(1, state="degraded", reason="y").to_json())
    view = store.member_view()
    assert view.reads == 1 and view.members[0]["state"] == "degraded"


# --- the master's documents, rendered per member version (plan/fragments.py) -----------------------------------
def _fields(index: int, **kw: Any) -> dict[str, Any]:
    role = "master" if index == 0 else "agent"
    return dataclasses.asdict(member(f"i-{index:03d}", role=role, ip=f"10.0.{index // 200}.{index % 200 + 1}", **kw))


def test_status_document_is_the_plain_json_dump_and_follows_each_change() -> None:
    from bootstrap_agent.plan.cluster_status import STATUS_SCHEMA, counts, member_entry, status_document

    def reference(members: tuple[dict[str, Any], ...], read_at: float) -> str:
        """The plain ``json.dumps`` of the document, its members and counts made here the straightforward way
        (what else the document holds, e.g. capacity totals, is taken as rendered)."""
        entries = sorted((member_entry(m) for m in members), key=lambda e: (e["role"] != "master", e["ip"], e["uuid"]))
        document = {**json.loads(status_document("eo", members, read_at)), "schema": STATUS_SCHEMA, "cluster": "eo",
                    "rendered_at": iso(read_at), "counts": counts(entries), "members": entries}
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    from bootstrap_agent.plan.cluster_status import iso_time as iso

    members = tuple(_fields(i) for i in (5, 0, 3, 1, 4, 2))  # not in order: the document sorts
    assert status_document("eo", members, 1700000000.0) == reference(members, 1700000000.0)
    assert status_document("eo", (), 1700000000.0) == reference((), 1700000000.0)
    # One member changes (a new dict, as the member cache hands out): the document follows it exactly.
    changed = tuple(_fields(3, state="draining", reason="stopping (SIGTERM)") if m["uuid"] == "i-003" else m
                    for m in members)
    assert status_document("eo", changed, 1700000009.0) == reference(changed, 1700000009.0)
    assert json.loads(status_document("eo", changed, 1700000009.0))["counts"]["ready"] == 5
    fewer = changed[1:]
    assert status_document("eo", fewer, 1700000010.0) == reference(fewer, 1700000010.0)


def test_member_documents_are_installed_whole_without_backup(tmp_path: Path) -> None:
    """status.json & co. are remade on every pass (megabytes at 10,000 members): renamed in whole, no .bak."""
    from bootstrap_agent.desired import DesiredFile
    from bootstrap_agent.install import install
    from bootstrap_agent.layout import Layout

    layout = Layout(str(tmp_path))
    view, kept = "/var/lib/bootstrap-agent/www/status.json", "/etc/zookeeper/conf/zoo.cfg"
    for content in (b"one\n", b"two\n"):
        result = install([DesiredFile(view, content, durable=False), DesiredFile(kept, content)], layout)
        assert result.changed == [view, kept] and not result.failed
    assert (tmp_path / view.lstrip("/")).read_bytes() == b"two\n"
    assert not (tmp_path / (view.lstrip("/") + ".bak")).exists()
    assert (tmp_path / (kept.lstrip("/") + ".bak")).read_bytes() == b"one\n"
    assert not [p for p in (tmp_path / "var/lib/bootstrap-agent/www").iterdir() if p.name.endswith(".staged")]


def test_an_unchanged_document_is_left_alone_and_one_changed_behind_the_agents_back_is_put_right(
        tmp_path: Path) -> None:
    """The install skips reading back a file it wrote from the very same bytes while the file's inode, mtime,
    size, mode and owner are as it left them; any change to the file on disk is noticed and undone."""
    import os

    from bootstrap_agent.desired import DesiredFile
    from bootstrap_agent.install import install
    from bootstrap_agent.layout import Layout

    layout = Layout(str(tmp_path))
    path = "/var/lib/bootstrap-agent/www/status.json"
    target = tmp_path / path.lstrip("/")
    content = b'{"members": []}\n' * 64
    assert install([DesiredFile(path, content, durable=False)], layout).changed == [path]
    inode = target.stat().st_ino
    assert install([DesiredFile(path, content, durable=False)], layout).changed == []
    assert target.stat().st_ino == inode  # not written again
    target.write_bytes(content.replace(b"[]", b"{}"))  # same size, written in place by someone else
    assert install([DesiredFile(path, content, durable=False)], layout).changed == [path]
    assert target.read_bytes() == content
    os.chmod(target, 0o600)
    assert install([DesiredFile(path, content, durable=False)], layout).changed == [path]
    assert target.stat().st_mode & 0o777 == 0o644 and target.read_bytes() == content
