"""Readiness is what ZooKeeper says: a node is ready when its member znode says ``ready``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bootstrap_agent.cluster import ClusterStore, ClusterUnavailable, Store
from bootstrap_agent.zk.paths import ensemble
from provision_min.errors import ProvisionError
from provision_min.local import machine
from provision_min.local.layout import CloudState, NodeRecord, Paths
from provision_min.local.progress import Progress, Row

DEFAULT_READY_TIMEOUT = 600.0


class NotReady(ProvisionError):
    """Nodes did not become ready in time; the message names them, their last state and where to look."""


class QuietLog:
    """A logger for the probing ZooKeeper client: connection refusals while masters boot are expected."""

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *a, **k: None

    def bind(self, **_kw: Any) -> QuietLog:
        return self


def store_of(state: CloudState) -> ClusterStore:
    """A quiet store of the cluster's ZooKeeper, with the operator credential when the state has one."""
    return ClusterStore(ensemble([n.ip for n in state.masters()]), state.cluster, state.secret,
                        on_event=lambda kind, detail: None, log=QuietLog(), call_timeout=3.0,
                        operator_secret=state.operator_secret or None)


@contextlib.contextmanager
def cluster_view(state: CloudState, *, repair: bool = False) -> Iterator[Callable[[], dict[str, Any] | None]]:
    """A function returning ``{uuid: member}`` from ZooKeeper (None while it cannot be asked). With ``repair``
    (``up``, ``scale``) and the operator credential, the tree gets its node/operator ACLs once it can be reached
    (``bootstrap_agent.zk.tree``: the operator's tools repair, nodes only report drift)."""
    store = store_of(state)
    store.start()
    pending = [repair and bool(state.operator_secret)]

    def view() -> dict[str, Any] | None:
        if pending[0] and store.connected():
            with contextlib.suppress(ClusterUnavailable):  # asked again on the next poll
                store.ensure_tree()
                pending[0] = False
        return read_members(store)

    try:
        yield view
    finally:
        store.stop()


def read_members(store: Store) -> dict[str, Any] | None:
    """``{uuid: member}``, or None while ZooKeeper cannot be asked (asked again on the next poll). Anything
    else is a bug and is raised: reported as an outage it would cost a user a 600 s wait for nothing."""
    if not store.connected():
        return None
    try:
        return {m.uuid: m for m in store.members()}
    except ClusterUnavailable:
        return None


def node_row(paths: Paths, node: NodeRecord, members: dict[str, Any] | None) -> Row:
    folder = paths.node_dir(node.name)
    status = machine.read_status(folder)
    member = (members or {}).get(node.uuid)
    if machine.supervisor_pid(folder) is None:
        return Row(node.name, node.role, node.ip, "off", f"see {folder / 'console.log'}")
    if member is not None:
        return Row(node.name, node.role, node.ip, member.state, member.reason)
    if machine.systemd_pid(folder) is None:
        return Row(node.name, node.role, node.ip, "starting" if status.get("state") != "rebooting" else "rebooting")
    return Row(node.name, node.role, node.ip, "booting")


def wait_ready(paths: Paths, state: CloudState, nodes: Sequence[NodeRecord], progress: Progress, timeout: float,
               gone: Sequence[NodeRecord] = ()) -> float:
    """Until every one of ``nodes`` is a ready member and every one of ``gone`` has left ZooKeeper."""
    started = time.monotonic()
    deadline = started + timeout
    with cluster_view(state, repair=True) as view:
        while True:
            members = view()
            rows = [node_row(paths, n, members) for n in nodes]
            rows += [Row(n.name, n.role, n.ip, "leaving" if members is None or n.uuid in members else "gone")
                     for n in gone]
            progress.update(rows)
            if members is not None and all(r.state == "ready" for r in rows[:len(nodes)]) \
                    and all(r.state == "gone" for r in rows[len(nodes):]):
                return time.monotonic() - started
            if time.monotonic() > deadline or any(r.state == "off" for r in rows[:len(nodes)]):
                late = [f"{r.name} {r.state}{f' ({r.detail})' if r.detail else ''}" for r in rows if
                        r.state not in ("ready", "gone")]
                raise NotReady(f"not ready after {time.monotonic() - started:.0f} s: {'; '.join(late)}. Look "
                               f"inside with: nsenter -t <pid from status --json> -a journalctl -u bootstrap-agent; "
                               f"up or scale again continues, down removes everything")
            time.sleep(0.2)
