"""The daemon's ZooKeeper side (``daemon.py``'s ``Daemon`` mixes it in): the watches, the pass's read of the
cluster (run-time config overrides; on masters the member view), the cluster-wide restart lock agents
restart under, leaving the old ensemble when the masters or the secret change, and the drain's
deregistration. ZooKeeper being away is a problem the pass reports, never a reason to end the loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bootstrap_agent.cluster import ClusterUnavailable, Store
from bootstrap_agent.desired import Peers
from bootstrap_agent.inputs import Inputs
from bootstrap_agent.scaler.node import MasterScaler
from bootstrap_agent.schema import Settings

if TYPE_CHECKING:
    from bootstrap_agent.daemon import DaemonOptions


class DaemonCluster:
    """The ZooKeeper methods; the attributes are the daemon's own (set in ``Daemon.__init__``)."""

    options: DaemonOptions
    log: Any
    store: Store | None
    watching: bool
    registered: bool
    inputs: Inputs | None
    overrides: dict[str, Any]
    peers: Peers
    scaler: MasterScaler

    def _drop_store(self, why: str) -> None:
        """Leave the old ensemble (or the old secret's session) so that the next step builds the store and its
        watches from the current user-data: growing 3 → 5 masters, or a rotated secret, takes effect at once."""
        self.log.info("store_rebuilding", why=why)
        assert self.store is not None
        self.scaler.stop(why)  # it runs on this store's session: rebuilt with the store at the next pass
        self.scaler.forget()
        with contextlib.suppress(ClusterUnavailable):
            if self.registered:
                self.store.deregister()
        self.store.stop()
        self.store, self.watching, self.registered = None, False, False

    def _ensure_watches(self) -> None:
        if self.watching or self.store is None or self.inputs is None or not self.store.connected():
            return
        try:
            self.store.ensure_tree()
            if self.inputs.settings.role == "master":
                self.store.watch_members()
            else:
                self.store.watch_masters(self.inputs.settings.masters)
            self.store.watch_config()
        except ClusterUnavailable as exc:
            self.log.warning("watch_failed", error=str(exc))
            return
        self.watching = True

    def _refresh_cluster(self, problems: list[str], relist: bool) -> None:
        assert self.inputs is not None
        if self.store is None:
            return
        if not self.store.connected():
            problems.append("ZooKeeper unreachable")
            return
        self._ensure_watches()
        settings = self.inputs.settings
        try:
            self.overrides = self.store.get_config()
            if settings.role == "master":
                # Only the member znodes that changed are read (zk/member_cache.py); an unchanged view is the
                # same tuple, so the dashboard's renderers redo only what changed (plan/fragments.py).
                view = self.store.member_view(relist)
                self.peers = Peers(view.members, read_at=time.time())
            elif relist:
                self.store.masters(settings.masters)  # the tick's re-read: proves the masters' znodes are reachable
        except ClusterUnavailable as exc:
            problems.append(f"ZooKeeper: {exc}")

    @contextlib.contextmanager
    def _restart_guard(self) -> Iterator[bool]:
        """Agents restart under the cluster-wide lock, so the cluster never loses all its workers at once."""
        if self.store is None or self.inputs is None or not self.store.connected():
            yield False
            return
        with restart_guard(self.store, self.inputs.meta.uuid, self.options.restart_lock_timeout, self.log) as granted:
            yield granted

    def _leave_cluster(self) -> None:
        """The drain's deregistration: the member znodes go now; ZooKeeper away raises (retried next pass)."""
        if self.store is None or not self.store.connected():
            raise ClusterUnavailable("ZooKeeper unreachable: cannot deregister yet")
        self.store.deregister()
        self.registered = False
        self.log.info("member_deregistered", why="drained")


@contextlib.contextmanager
def restart_guard(store: Store, identifier: str, timeout: float, log: Any) -> Iterator[bool]:
    """The restart lock for the ``with`` body, or False when ZooKeeper cannot be asked (restarts wait for the
    next pass). Only asking for the lock fails quietly: what the guarded body raises passes through unchanged,
    since a generator context manager must yield exactly once."""
    with contextlib.ExitStack() as held:
        try:
            granted = held.enter_context(store.restart_lock(identifier, timeout))
        except ClusterUnavailable as exc:
            log.warning("restart_lock_unavailable", error=str(exc))
            granted = False
        if granted:
            log.info("restart_lock_acquired")
        yield granted
        if granted:
            log.info("restart_lock_released")


def store_inputs(settings: Settings) -> tuple[object, ...]:
    """What the ZooKeeper store and the watches are built from."""
    return (tuple(settings.masters), settings.secret, settings.cluster)
