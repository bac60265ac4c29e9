"""The agent's ZooKeeper store: one session composing the recipes of ``bootstrap_agent.zk``, and one worker.

Layout (every znode at and below ``/bootstrap-agent/<cluster>`` carries ONLY digest ACLs: the cluster secret's
before the split, the node and operator credentials' after it, ``zk.acls``; ``/bootstrap-agent`` itself is open
so that it can hold more than one cluster)::

    /bootstrap-agent/<cluster>/nodes/<instance uuid>   ephemeral member JSON (every node)
    /bootstrap-agent/<cluster>/masters/<master ip>     ephemeral member JSON (masters only), so agents watch
                                                       exactly the masters from their user-data: O(masters)
    /bootstrap-agent/<cluster>/config                  persistent JSON object of run-time overrides; absent = {}
    /bootstrap-agent/<cluster>/locks/restart           the restart lock (kazoo ``Lock`` protocol)

Why it looks the way it does (lessons from Patroni, Synapse and confd; docs/architecture.md, "Lessons kept"):
the daemon types against :class:`Store` (Patroni's ``AbstractDCS``), never against kazoo; every call has a
deadline (``zk.session``); one worker thread re-creates the member znodes after a session loss, re-arms every
watch after each reconnect and cleans up the lock's leftovers, so callbacks from kazoo's threads only hand
work over and never call ZooKeeper themselves.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bootstrap_agent import logs
from bootstrap_agent.member import Member, private_ipv4
from bootstrap_agent.zk.config import ClusterConfig
from bootstrap_agent.zk.errors import ClusterUnavailable, ConfigConflict, ConfigInvalid, NotAuthorized
from bootstrap_agent.zk.lock import RestartLock
from bootstrap_agent.zk.member_cache import MemberCache, MemberView
from bootstrap_agent.zk.paths import AUTH_USER, ROOT, ClusterPaths
from bootstrap_agent.zk.peers import PeerReader
from bootstrap_agent.zk.registration import Registration
from bootstrap_agent.zk.session import Session
from bootstrap_agent.zk.tree import ensure_tree
from bootstrap_agent.zk.watches import WatchTable

__all__ = [
    "AUTH_USER", "ROOT", "ClusterConfig", "ClusterPaths", "ClusterStore", "ClusterUnavailable", "ConfigConflict",
    "ConfigInvalid", "MemberView", "NotAuthorized", "Store",
]


class Store(Protocol):
    """What the daemon needs from the cluster's store: the seam where another store could be put."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def connected(self) -> bool: ...
    def wait_connected(self, timeout: float) -> bool: ...
    def ensure_tree(self) -> None: ...
    def register(self, uuid: str, member: Member, *, master: bool) -> None: ...
    def update(self, member: Member) -> None: ...
    def deregister(self) -> None: ...
    def members(self) -> list[Member]: ...
    def member_view(self, relist: bool = False) -> MemberView: ...
    def masters(self, ips: Sequence[str]) -> list[Member]: ...
    def watch_members(self) -> None: ...
    def watch_masters(self, ips: Sequence[str]) -> None: ...
    def watch_config(self) -> None: ...
    def get_config(self) -> dict[str, Any]: ...
    def restart_lock(self, identifier: str, timeout: float) -> contextlib.AbstractContextManager[bool]: ...


class ClusterStore:
    """One ZooKeeper session of the agent, authenticated with the cluster secret.

    Thread-safe. ``on_event(kind, detail)`` is called with ``("session", "CONNECTED"|"SUSPENDED"|"LOST")``
    from kazoo's connection thread, and with ``("members"|"masters"|"config", path)`` from the store's worker
    thread; it must only enqueue (the daemon's queue ``put``).
    """

    def __init__(
        self,
        hosts: str,
        cluster: str,
        secret: str,
        *,
        on_event: Callable[[str, str], None],
        call_timeout: float = 5.0,
        session_timeout: float = 10.0,
        log: Any = None,
        ip_ok: Callable[[str], bool] = private_ipv4,
        reconnect_max_delay: float = 2.0,
        operator_secret: str | None = None,
        masters: Sequence[str] | None = None,
        operator_acl_id: str | None = None,
    ) -> None:
        self.hosts = hosts
        self.paths = ClusterPaths(cluster)
        self.call_timeout = call_timeout
        self.session_timeout = session_timeout
        self.log = log if log is not None else logs.get()
        self._on_event = on_event
        self.session = Session(hosts, self.paths, secret, call_timeout=call_timeout,
                               session_timeout=session_timeout, log=self.log,
                               reconnect_max_delay=reconnect_max_delay, on_state=self._on_state,
                               operator_secret=operator_secret, masters=masters, operator_acl_id=operator_acl_id)
        self.registration = Registration(self.session)
        self.peers = PeerReader(self.session, ip_ok)
        self.watches = WatchTable(self.session)
        self.member_cache = MemberCache(self.session, ip_ok, self.watches.take_member_changes)
        self.config = ClusterConfig(self.session)
        self.lock = RestartLock(self.session, self.paths.restart_lock)
        # The worker's own flags, guarded by session.cond.
        self._resync = False
        self._retry_at = 0.0
        self._failures = 0
        self._session_log: collections.deque[str] = collections.deque(maxlen=64)
        self._worker = threading.Thread(target=self._work, name=f"zk-worker-{cluster}", daemon=True)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background and return at once, even when ZooKeeper is down."""
        if self.session.started:
            return
        self._worker.start()
        self.session.start()

    def connected(self) -> bool:
        """Whether the session is connected right now (calls would not have to wait for a reconnect)."""
        return self.session.connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a connected session; False if there is none by then."""
        return self.session.connected.wait(timeout) and not self.session.closing.is_set()

    def stop(self) -> None:
        """Close the session (the server removes our ephemeral znodes at once) and end the worker."""
        self.session.stop()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(self.call_timeout + 1.0)

    # --- the recipes ------------------------------------------------------------------------------------------
    def ensure_tree(self) -> None:
        """Create the cluster's persistent znodes with the digest ACL if missing, and repair a foreign ACL."""
        ensure_tree(self.session)

    def register(self, uuid: str, member: Member, *, master: bool) -> None:
        """Create (or take over) this node's ephemeral znode(s); if ZooKeeper is away this raises
        :class:`ClusterUnavailable` and the worker creates them as soon as the session is connected."""
        self.registration.register(uuid, member, master=master)

    def update(self, member: Member) -> None:
        """Write ``member`` into the registered znode(s), only if it differs from what was written last."""
        self.registration.update(member)

    def deregister(self) -> None:
        """Delete this node's znodes at once (SIGTERM) and forget them; already gone is fine."""
        self.registration.deregister()

    def members(self) -> list[Member]:
        """Every valid member under ``nodes/``; invalid ones are skipped and logged (``peer_invalid``)."""
        return self.peers.members()

    def member_view(self, relist: bool = False) -> MemberView:
        """Masters' passes: every member as fields, reading only the znodes that changed since the last call
        (``zk.member_cache``); ``relist`` also lists ``nodes/`` (the tick's backstop)."""
        return self.member_cache.refresh(relist)

    def masters(self, ips: Sequence[str]) -> list[Member]:
        """The masters' znodes ``masters/<ip>`` for the given IPs, in that order; missing or invalid: skipped."""
        return self.peers.masters(ips)

    def watch_members(self) -> None:
        """Masters: ``nodes/`` and every member; changes → ``on_event("members", path)``. Returns at once: the
        worker arms the watches when connected, reports the first arming, and re-arms after every reconnect."""
        self.watches.watch_members()

    def watch_masters(self, ips: Sequence[str]) -> None:
        """Agents: one watch per ``masters/<ip>``; changes → ``on_event("masters", path)``."""
        self.watches.watch_masters(ips)

    def watch_config(self) -> None:
        """The config znode (also while absent); changes → ``on_event("config", path)``."""
        self.watches.watch_config()

    def read_config(self) -> tuple[dict[str, Any], int]:
        """The run-time overrides and the znode version to pass as ``expected_version`` (-1: absent)."""
        return self.config.read()

    def get_config(self) -> dict[str, Any]:
        return self.config.read()[0]

    def config_version(self) -> int:
        return self.config.read()[1]

    def set_config(self, overrides: dict[str, Any], *, expected_version: int | None = None) -> None:
        """Replace the overrides, with compare-and-set when ``expected_version`` is given (see ``zk.config``)."""
        self.config.set(overrides, expected_version=expected_version)

    def restart_lock(self, identifier: str, timeout: float) -> contextlib.AbstractContextManager[bool]:
        """Hold the cluster-wide restart lock for the ``with`` body: True when acquired within ``timeout``."""
        return self.lock.hold(identifier, timeout)

    # --- session state and the worker ------------------------------------------------------------------------
    def _on_state(self, state: str) -> None:
        """kazoo's connection thread (after the session's flags): note it, wake the worker, enqueue."""
        with self.session.cond:
            if state == "CONNECTED":
                self._resync = True
                self.member_cache.invalidate()  # read every member once: the server may not be the same
                self._retry_at = 0.0
            self._session_log.append(state)
            self.session.cond.notify_all()
        self._emit("session", state)

    def _emit(self, kind: str, detail: str) -> None:
        try:
            self._on_event(kind, detail)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.log.error("event_callback_failed", kind=kind, detail=detail,
                               error=f"{type(exc).__name__}: {exc}")

    def _has_work(self) -> bool:
        return self._resync or self.watches.pending() or self.registration.dirty or self.lock.pending()

    def _next_batch(self) -> tuple[bool, set[str], set[str], bool, bool] | None:
        """Block until there is work and a session to do it with (or a state to log); None: stopping."""
        session = self.session
        with session.cond:
            while not session.closing.is_set() and not self._session_log:
                now = time.monotonic()
                if self._has_work() and session.connected.is_set() and now >= self._retry_at:
                    break
                timeout = self._retry_at - now if self._has_work() and self._retry_at > now else None
                session.cond.wait(timeout)
            if session.closing.is_set():
                return None
            resync, self._resync = self._resync, False
            fired, to_arm = self.watches.take(resync)
            return resync, fired, to_arm, self.registration.dirty, self.lock.pending()

    def _work(self) -> None:
        """The worker: re-creates member znodes, (re-)arms watches, cleans up locks; never dies, backs off."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            resync, fired, to_arm, registration_dirty, locks = batch
            while self._session_log:
                state = self._session_log.popleft()
                session_id = self.session.session_id()
                self.log.info("zk_session", state=state, hosts=self.hosts,
                              session=hex(session_id) if session_id is not None else None)
            if not (resync or fired or to_arm or registration_dirty or locks):
                continue
            if not self.session.connected.is_set():
                self._put_back(resync, fired, to_arm)
                continue
            try:
                if resync or registration_dirty:
                    self.registration.sync()
                for kind, path in self.watches.arm(to_arm | fired, fired):
                    self._emit(kind, path)
                if locks:
                    self.lock.cleanup()
                self._failures = 0
            except Exception as exc:
                self._put_back(resync, fired, to_arm)
                self._failures += 1
                delay = min(5.0, 0.2 * 2 ** min(self._failures, 5))
                with self.session.cond:
                    self._retry_at = time.monotonic() + delay
                if isinstance(exc, ClusterUnavailable):
                    self.log.warning("zk_sync_failed", error=str(exc), retry_in=round(delay, 1))
                else:
                    self.log.error("zk_worker_error", error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 1))

    def _put_back(self, resync: bool, fired: set[str], to_arm: set[str]) -> None:
        with self.session.cond:
            self._resync = self._resync or resync
            self.watches.put_back(fired, to_arm)

