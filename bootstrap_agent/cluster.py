"""The agent's ZooKeeper edge: membership, watches, the cluster config and the restart lock.

Layout (every znode at and below ``/bootstrap-agent/<cluster>`` carries ONLY the digest ACL derived from the
cluster secret; ``/bootstrap-agent`` itself is open so that it can hold more than one cluster)::

    /bootstrap-agent/<cluster>/nodes/<instance uuid>   ephemeral member JSON (every node)
    /bootstrap-agent/<cluster>/masters/<master ip>     ephemeral member JSON (masters only), so agents watch
                                                       exactly the masters from their user-data: O(masters)
    /bootstrap-agent/<cluster>/config                  persistent JSON object of run-time overrides; absent = {}
    /bootstrap-agent/<cluster>/locks/restart           the restart lock (kazoo ``Lock`` protocol)

Why it looks the way it does (lessons from Patroni, Synapse and confd; docs/architecture.md, "Lessons kept"):

* Every ZooKeeper call has a deadline. kazoo ≥ 2.7 queues requests while the connection is SUSPENDED, so a
  plain synchronous call can hang for as long as ZooKeeper is away. Public methods wait at most
  ``call_timeout`` in total and then raise :class:`ClusterUnavailable` (one line, never the secret).
* The state listener only sets flags and calls ``on_event("session", state)``; it makes no ZooKeeper call.
* kazoo re-sends no watches after a reconnect: on every SUSPENDED and LOST it drops its watch table and fires
  each watcher with a ``NONE`` event, and the server forgot them with the old connection. So this module
  does not rely on kazoo's recipes for its own watches: one worker thread re-arms every watch (pipelined
  ``exists``/``get_children`` calls) after each CONNECTED and reports what changed meanwhile, and re-creates
  the member znodes after a session loss. Watch callbacks only hand the path to that worker; the worker
  re-arms the watch and then calls ``on_event``, so a change made between the event and the re-arm is
  covered by the same event (level-triggered, nothing lost).
* Peer data is untrusted: :meth:`Member.from_json` validates it, and listings skip and log what is invalid.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import json
import logging
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, KazooState
from kazoo.retry import KazooRetry
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from bootstrap_agent import logs
from bootstrap_agent.errors import AgentError
from bootstrap_agent.member import Member, PeerInvalid, private_ipv4

ROOT = "/bootstrap-agent"
AUTH_USER = "bootstrap-agent"
SESSION_EVENTS = (KazooState.CONNECTED, KazooState.SUSPENDED, KazooState.LOST)

_LOCK_MARK = "__lock__"  # kazoo's Lock node names: <uuid4 hex>__lock__<10-digit sequence>
_LOCK_NODE = re.compile(r"__lock__(-?\d{10})$")
_UNSET: Any = object()


class ClusterUnavailable(AgentError):
    """ZooKeeper did not answer in time, the session is gone, or the secret does not open the cluster's tree.

    The single error the daemon has to catch around any call of this module: it reports ``degraded`` and
    keeps going; the worker thread keeps trying by itself.
    """

    exit_code = 1


class ConfigConflict(ClusterUnavailable):
    """The config znode changed (or appeared, or vanished) since the version the caller read: nothing written."""


class ConfigInvalid(ClusterUnavailable):
    """The config znode holds something that is not a JSON object.

    A subclass of :class:`ClusterUnavailable` on purpose: callers keep the overrides they had, exactly as when
    ZooKeeper is away, instead of falling back to ``{}`` and restarting services across the cluster.
    """


@dataclass(frozen=True)
class ClusterPaths:
    """The znode paths of one cluster (the contract; other tools and tests use these, never string literals)."""

    cluster: str

    def __post_init__(self) -> None:
        if not self.cluster or "/" in self.cluster or self.cluster in (".", "..") or not self.cluster.isprintable():
            raise ValueError(f"cluster name {self.cluster!r} cannot be a znode name")

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.cluster}"

    @property
    def nodes(self) -> str:
        return f"{self.base}/nodes"

    @property
    def masters(self) -> str:
        return f"{self.base}/masters"

    @property
    def config(self) -> str:
        return f"{self.base}/config"

    @property
    def locks(self) -> str:
        return f"{self.base}/locks"

    @property
    def restart_lock(self) -> str:
        return f"{self.locks}/restart"

    def node(self, uuid: str) -> str:
        return f"{self.nodes}/{uuid}"

    def master(self, ip: str) -> str:
        return f"{self.masters}/{ip}"

    def tree(self) -> tuple[str, ...]:
        """The persistent znodes below ROOT, parents first (``config`` is created on the first ``set``)."""
        return (self.base, self.nodes, self.masters, self.locks, self.restart_lock)


@dataclass
class _Registration:
    uuid: str
    master: bool
    member: Member
    data: bytes
    paths: tuple[str, ...]


@dataclass
class _Watch:
    kind: str  # the on_event kind: "members" | "masters" | "config"
    children: bool = False  # a children watch (nodes/); otherwise an exists watch (create/change/delete)
    member_of: str | None = None  # data watch of a child, kept in step with its parent's children watch
    snapshot: Any = _UNSET  # children tuple, or (czxid, mzxid) / None; _UNSET until armed once


class _KazooLogBridge(logging.Handler):
    """kazoo's own log lines (WARNING and up) as ``zk_client`` events of the store's structured log.

    Without it they would reach stderr as plain text through logging's last-resort handler, in the middle of
    the JSON lines. A message repeating the previous one (``Connection refused`` on every reconnect attempt
    while ZooKeeper is down) is logged once.
    """

    def __init__(self, log: Any) -> None:
        super().__init__(logging.WARNING)
        self._log = log
        self._last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = logs.mask(record.getMessage())
            if message == self._last:
                return
            self._last = message
            report = self._log.error if record.levelno >= logging.ERROR else self._log.warning
            report("zk_client", message=message)
        except Exception:  # logging must never break the connection thread
            return


def _kazoo_logger(cluster: str, log: Any) -> logging.Logger:
    """A private logger for one kazoo client, outside logging's tree (nobody can raise it to DEBUG by
    configuration: at DEBUG kazoo logs every request, the Auth packet with the secret included)."""
    logger = logging.Logger(f"bootstrap_agent.kazoo.{cluster}", logging.WARNING)
    logger.propagate = False
    logger.addHandler(_KazooLogBridge(log))
    return logger


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
    ) -> None:
        if not secret:
            raise ValueError("the cluster secret must not be empty")
        self.hosts = hosts
        self.paths = ClusterPaths(cluster)
        self.call_timeout = call_timeout
        self.session_timeout = session_timeout
        self.log = log if log is not None else logs.get()
        logs.register_secrets(secret, source="zookeeper")
        self._on_event = on_event
        self._ip_ok = ip_ok
        self._acl = make_digest_acl(AUTH_USER, secret, all=True)
        self._closing = threading.Event()
        self._connected = threading.Event()
        self._started = False
        self._client = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            auth_data=[("digest", f"{AUTH_USER}:{secret}")],
            default_acl=[self._acl],
            # Unlimited reconnects with a short maximum back-off: ZooKeeper being away is an outage to ride out,
            # never a reason to give up; `interrupt` lets stop() end a back-off sleep at once.
            connection_retry=KazooRetry(
                max_tries=-1, delay=0.1, backoff=2, max_jitter=0.4, max_delay=reconnect_max_delay,
                interrupt=self._closing.is_set,
            ),
            # Only kazoo internals use this; every call of ours has its own deadline.
            command_retry=KazooRetry(max_tries=3, delay=0.1, deadline=call_timeout, ignore_expire=False),
            logger=_kazoo_logger(cluster, self.log),
        )
        self._client.add_listener(self._on_state)
        # Guarded by _cond (never held across a ZooKeeper call).
        self._cond = threading.Condition()
        self._resync = False
        self._fired: set[str] = set()
        self._to_arm: set[str] = set()
        self._watches: dict[str, _Watch] = {}
        self._reg_dirty = False
        self._lock_prefixes: set[str] = set()  # lock nodes whose creation may or may not have happened
        self._lock_deletes: set[str] = set()  # lock nodes to delete (a release that timed out)
        self._retry_at = 0.0
        self._failures = 0
        self._session_log: collections.deque[str] = collections.deque(maxlen=64)
        # Serialises writes of our own member znodes (callers and worker).
        self._reg_lock = threading.Lock()
        self._registration: _Registration | None = None
        self._lock_waiters: set[threading.Event] = set()
        self._invalid_seen: dict[str, int] = {}
        self._config_invalid_seen: int | None = None
        self._worker = threading.Thread(target=self._work, name=f"zk-worker-{cluster}", daemon=True)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting in the background and return at once, even when ZooKeeper is down."""
        if self._started:
            return
        self._started = True
        self._worker.start()
        self._client.start_async()

    def connected(self) -> bool:
        """Whether the session is connected right now (calls would not have to wait for a reconnect)."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a connected session; False if there is none by then."""
        return self._connected.wait(timeout) and not self._closing.is_set()

    def stop(self) -> None:
        """Close the session (the server removes our ephemeral znodes at once) and end the worker."""
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        for waiter in list(self._lock_waiters):
            waiter.set()
        try:
            self._client.stop()
            self._client.close()
        except Exception as exc:  # closing is best effort; the process is usually about to exit
            self.log.warning("zk_close_failed", error=f"{type(exc).__name__}: {exc}")
        self._connected.clear()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(self.call_timeout + 1.0)

    # --- tree -----------------------------------------------------------------------------------------------
    def ensure_tree(self) -> None:
        """Create the cluster's persistent znodes with the digest ACL if missing, and repair a foreign ACL.

        Idempotent. A tree created without our ACL (by hand, or by an older tool) would be readable by anyone,
        so an ACL that is not exactly ours is replaced and logged (``zk_acl_fixed``).
        """
        deadline = self._deadline()
        self._ensure_tree(deadline)
        paths = self.paths.tree()
        self._ready(deadline, "ensure_tree")
        pending = [(path, self._client.get_acls_async(path)) for path in paths]
        for path, result in pending:
            acls, stat = self._wait(result, deadline, "ensure_tree")
            if set(acls) != {self._acl}:
                self._ready(deadline, "ensure_tree")
                self._wait(self._client.set_acls_async(path, [self._acl], stat.aversion), deadline, "ensure_tree")
                # A digest id is a hash of a password: name the scheme only.
                previous = [a.id.scheme if a.id.scheme == "digest" else f"{a.id.scheme}:{a.id.id}" for a in acls]
                self.log.warning("zk_acl_fixed", path=path, previous=previous)

    def _ensure_tree(self, deadline: float) -> None:
        self._ready(deadline, "ensure_tree")
        # ZooKeeper answers one session's requests in order, so parents are created before their children.
        pending = [self._client.create_async(ROOT, b"", acl=OPEN_ACL_UNSAFE)]
        pending += [self._client.create_async(path, b"", acl=[self._acl]) for path in self.paths.tree()]
        for result in pending:
            with contextlib.suppress(NodeExistsError):
                self._wait(result, deadline, "ensure_tree", expect=(NodeExistsError,))

    # --- own membership ------------------------------------------------------------------------------------
    def register(self, uuid: str, member: Member, *, master: bool) -> None:
        """Create (or take over) this node's ephemeral znode(s) and remember them.

        Remembered first: if ZooKeeper is away this raises :class:`ClusterUnavailable`, and the worker creates
        them as soon as the session is connected; after a session loss they are re-created the same way.
        """
        if member.uuid != uuid:
            raise ValueError(f"member uuid {member.uuid!r} is not the registered uuid {uuid!r}")
        if master and member.role != "master":
            raise ValueError("only a master registers under masters/")
        with self._reg_lock:
            previous = self._registration
            registration = self._new_registration(uuid, member, master)
            self._registration = registration
            try:
                deadline = self._deadline()
                if previous is not None:
                    self._delete_paths(set(previous.paths) - set(registration.paths), deadline)
                for path in registration.paths:
                    self._put_ephemeral(path, registration.data, deadline)
            except BaseException:
                self._mark_dirty()  # the worker writes it once the session is connected
                raise
            self._mark_clean(registration)

    def update(self, member: Member) -> None:
        """Write ``member`` into the registered znode(s), only if it differs from what was written last."""
        with self._reg_lock:
            previous = self._registration
            if previous is None:
                raise ValueError("update() before register()")
            if member.uuid != previous.uuid:
                raise ValueError(f"member uuid {member.uuid!r} is not the registered uuid {previous.uuid!r}")
            registration = self._new_registration(previous.uuid, member, previous.master)
            with self._cond:
                dirty = self._reg_dirty
            if registration.data == previous.data and registration.paths == previous.paths and not dirty:
                return
            self._registration = registration
            try:
                self._write_registration(previous, registration)
            except BaseException:
                self._mark_dirty()
                raise
            self._mark_clean(registration)

    def _write_registration(self, previous: _Registration, registration: _Registration) -> None:
        deadline = self._deadline()
        self._delete_paths(set(previous.paths) - set(registration.paths), deadline)
        self._ready(deadline, "update")
        pending = [(path, self._client.set_async(path, registration.data)) for path in registration.paths]
        missing = []
        for path, result in pending:
            try:
                self._wait(result, deadline, "update", expect=(NoNodeError,))
            except NoNodeError:  # the session was lost and the worker has not re-created it yet
                missing.append(path)
        for path in missing:
            self._put_ephemeral(path, registration.data, deadline)

    def deregister(self) -> None:
        """Delete this node's znodes at once (SIGTERM) and forget them; already gone is fine."""
        with self._reg_lock:
            registration, self._registration = self._registration, None
            with self._cond:
                self._reg_dirty = False
            if registration is not None:
                self._delete_paths(set(registration.paths), self._deadline())

    def _new_registration(self, uuid: str, member: Member, master: bool) -> _Registration:
        paths = (self.paths.node(uuid), self.paths.master(member.ip)) if master else (self.paths.node(uuid),)
        return _Registration(uuid, master, member, member.to_json(), paths)

    def _mark_dirty(self) -> None:
        with self._cond:
            self._reg_dirty = True
            self._cond.notify_all()

    def _mark_clean(self, registration: _Registration) -> None:
        with self._cond:
            if self._registration is registration:
                self._reg_dirty = False

    def _delete_paths(self, paths: set[str], deadline: float) -> None:
        if not paths:
            return
        self._ready(deadline, "deregister")
        pending = [self._client.delete_async(path) for path in sorted(paths)]
        for result in pending:
            with contextlib.suppress(NoNodeError):
                self._wait(result, deadline, "deregister", expect=(NoNodeError,))

    def _put_ephemeral(self, path: str, data: bytes, deadline: float) -> str:
        """Make ``path`` an ephemeral of THIS session holding ``data``; returns created/updated/unchanged.

        A znode left by an earlier session of ours (a restarted daemon, before the old session expired) is
        deleted and created again: otherwise it would vanish when that old session expires.
        """
        for _ in range(4):
            self._ready(deadline, "register")
            client_id = self._client.client_id
            session = client_id[0] if client_id else None
            try:
                create = self._client.create_async(path, data, acl=[self._acl], ephemeral=True)
                self._wait(create, deadline, "register", expect=(NodeExistsError, NoNodeError))
                return "created"
            except NoNodeError:
                self._ensure_tree(deadline)
                continue
            except NodeExistsError:
                pass
            try:
                current, stat = self._wait(self._client.get_async(path), deadline, "register", expect=(NoNodeError,))
            except NoNodeError:
                continue
            if stat.ephemeralOwner == session:
                if current == data:
                    return "unchanged"
                try:
                    setter = self._client.set_async(path, data, stat.version)
                    self._wait(setter, deadline, "register", expect=(NoNodeError, BadVersionError))
                    return "updated"
                except (NoNodeError, BadVersionError):
                    continue
            self.log.warning("zk_member_replaced", path=path, previous_owner=hex(stat.ephemeralOwner))
            with contextlib.suppress(NoNodeError, BadVersionError):
                deleter = self._client.delete_async(path, stat.version)
                self._wait(deleter, deadline, "register", expect=(NoNodeError, BadVersionError))
        raise ClusterUnavailable(f"register: {path} keeps changing under us")

    def _sync_registration(self) -> None:
        """Worker: make the remembered znodes exist, owned by this session (after LOST, or a failed write)."""
        with self._reg_lock:
            registration = self._registration
            if registration is None:
                with self._cond:
                    self._reg_dirty = False
                return
            deadline = self._deadline()
            for path in registration.paths:
                outcome = self._put_ephemeral(path, registration.data, deadline)
                if outcome == "created":
                    self.log.info("zk_member_recreated", path=path)
                elif outcome == "updated":
                    self.log.info("zk_member_rewritten", path=path)
            self._mark_clean(registration)

    # --- reading peers --------------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        """Every valid member under ``nodes/`` (a full re-list: masters, status, and the tick's backstop).

        Members leaving between the listing and the read are skipped (a normal race); invalid data is skipped
        and logged once per znode version (``peer_invalid``), never raised.
        """
        deadline = self._deadline()
        self._ready(deadline, "members")
        try:
            children = self._wait(self._client.get_children_async(self.paths.nodes), deadline, "members",
                                  expect=(NoNodeError,))
        except NoNodeError:
            return []
        self._ready(deadline, "members")
        pending = [(child, self._client.get_async(self.paths.node(child))) for child in children]
        found: list[Member] = []
        for child, result in pending:
            try:
                raw, stat = self._wait(result, deadline, "members", expect=(NoNodeError,))
            except NoNodeError:
                continue
            try:
                found.append(Member.from_json(child, raw, cluster_ips_ok=self._ip_ok))
            except PeerInvalid as exc:
                self._peer_invalid(self.paths.node(child), child, stat.mzxid, str(exc))
        present = {self.paths.node(child) for child in children}
        for path in [p for p in self._invalid_seen if p.startswith(self.paths.nodes + "/") and p not in present]:
            self._invalid_seen.pop(path, None)
        return sorted(found, key=lambda m: (m.role != "master", m.ip, m.uuid))

    def masters(self, ips: Sequence[str]) -> list[Member]:
        """The masters' znodes ``masters/<ip>`` for the given IPs, in that order; missing or invalid: skipped."""
        deadline = self._deadline()
        self._ready(deadline, "masters")
        pending = [(ip, self._client.get_async(self.paths.master(ip))) for ip in ips]
        found: list[Member] = []
        for ip, result in pending:
            try:
                raw, stat = self._wait(result, deadline, "masters", expect=(NoNodeError,))
            except NoNodeError:
                continue
            path = self.paths.master(ip)
            try:
                member = Member.from_json(None, raw, cluster_ips_ok=self._ip_ok)
                if member.role != "master" or member.ip != ip:
                    raise PeerInvalid(f"{member.role} {member.ip} written under masters/{ip}")
            except PeerInvalid as exc:
                self._peer_invalid(path, ip, stat.mzxid, str(exc))
                continue
            found.append(member)
        return found

    def _peer_invalid(self, path: str, name: str, version: int, reason: str) -> None:
        if self._invalid_seen.get(path) != version:
            self._invalid_seen[path] = version
            self.log.warning("peer_invalid", uuid=name, path=path, reason=reason)

    # --- watches --------------------------------------------------------------------------------------------
    def watch_members(self) -> None:
        """Masters: watch ``nodes/`` (children) and every member's znode; changes → ``on_event("members", path)``.

        Returns at once: the worker arms the watches as soon as the session is connected, reports the first
        arming as one event, and re-arms them after every reconnect (reporting what changed meanwhile).
        """
        self._want({self.paths.nodes: _Watch("members", children=True)})

    def watch_masters(self, ips: Sequence[str]) -> None:
        """Agents: one watch per ``masters/<ip>`` (never ``nodes/``); changes → ``on_event("masters", path)``.

        Calling it again with another list replaces the set of watched masters.
        """
        for ip in ips:
            ipaddress.IPv4Address(ip)  # a programming error, not a peer problem: raise ValueError
        wanted = {self.paths.master(ip): _Watch("masters") for ip in ips}
        with self._cond:
            for path in [p for p, w in self._watches.items() if w.kind == "masters" and p not in wanted]:
                del self._watches[path]
        self._want(wanted)

    def watch_config(self) -> None:
        """Watch the cluster config znode (also while it does not exist); changes → ``on_event("config", path)``."""
        self._want({self.paths.config: _Watch("config")})

    def _want(self, watches: dict[str, _Watch]) -> None:
        with self._cond:
            for path, watch in watches.items():
                if path not in self._watches:
                    self._watches[path] = watch
                    self._to_arm.add(path)
            self._cond.notify_all()

    def _on_watch(self, event: Any) -> None:
        """kazoo's callback thread: hand the path to the worker. NONE events (connection changes) are left to
        the re-arm that follows every CONNECTED."""
        try:
            if event.type == EventType.NONE:
                return
            with self._cond:
                self._fired.add(event.path)
                self._cond.notify_all()
        except Exception as exc:  # never raise into kazoo
            with contextlib.suppress(Exception):
                self.log.error("watch_callback_failed", error=f"{type(exc).__name__}: {exc}")

    def _arm(self, paths: set[str], fired: set[str]) -> None:
        """Worker: (re-)arm the watches on ``paths`` and emit one event per watch that fired or changed.

        Nothing is committed unless the whole batch succeeded, so a failed batch is simply tried again.
        """
        with self._cond:
            table = {path: self._watches[path] for path in paths if path in self._watches}
        if not table:
            return
        deadline = self._deadline()
        self._ready(deadline, "watch")
        children_of: dict[str, tuple[str, ...] | None] = {}
        again: set[str] = set()
        for path in [p for p, w in table.items() if w.children]:
            try:
                listing = self._client.get_children_async(path, watch=self._on_watch)
                children_of[path] = tuple(sorted(self._wait(listing, deadline, "watch", expect=(NoNodeError,))))
            except NoNodeError:  # watch for its creation instead
                if self._wait(self._client.exists_async(path, watch=self._on_watch), deadline, "watch") is not None:
                    again.add(path)
                children_of[path] = None
        new_members = {f"{parent}/{child}": parent for parent, kids in children_of.items() for child in kids or ()}
        with self._cond:
            new_members = {p: parent for p, parent in new_members.items() if p not in self._watches}
        data_paths = [p for p, w in table.items() if not w.children] + sorted(new_members)
        self._ready(deadline, "watch")
        pending = [(path, self._client.exists_async(path, watch=self._on_watch)) for path in data_paths]
        stats: dict[str, Any] = {}
        for path, result in pending:
            stat = self._wait(result, deadline, "watch")
            stats[path] = None if stat is None else (stat.czxid, stat.mzxid)
        emits: list[tuple[str, str]] = []
        with self._cond:
            for parent, kids in children_of.items():
                watch = self._watches.get(parent)
                if watch is None:
                    continue
                if parent in fired or watch.snapshot is _UNSET or watch.snapshot != kids:
                    emits.append((watch.kind, parent))
                watch.snapshot = kids
                listed = {f"{parent}/{child}" for child in kids or ()}
                for path in [p for p, w in self._watches.items() if w.member_of == parent and p not in listed]:
                    del self._watches[path]
                for path in listed - set(self._watches):
                    self._watches[path] = _Watch(watch.kind, member_of=parent, snapshot=stats.get(path, _UNSET))
                    if path not in stats:
                        again.add(path)
            for path, snapshot in stats.items():
                watch = self._watches.get(path)
                if watch is None or path in new_members:
                    continue  # gone meanwhile, or a new member: its parent's event covers it
                if path in fired or watch.snapshot is _UNSET or watch.snapshot != snapshot:
                    emits.append((watch.kind, path))
                watch.snapshot = snapshot
            self._to_arm |= again
        for kind, path in emits:
            self._emit(kind, path)

    # --- config ---------------------------------------------------------------------------------------------
    def read_config(self) -> tuple[dict[str, Any], int]:
        """The run-time overrides and the znode version to pass as ``expected_version`` (-1: absent)."""
        deadline = self._deadline()
        self._ready(deadline, "config")
        try:
            raw, stat = self._wait(self._client.get_async(self.paths.config), deadline, "config",
                                   expect=(NoNodeError,))
        except NoNodeError:
            return {}, -1
        if not raw:
            return {}, stat.version
        problem: str | None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            data, problem = None, f"not JSON ({type(exc).__name__})"
        else:
            problem = None if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"
        if problem is not None:
            if self._config_invalid_seen != stat.mzxid:
                self._config_invalid_seen = stat.mzxid
                self.log.error("config_invalid", path=self.paths.config, reason=problem)
            raise ConfigInvalid(f"{self.paths.config} is {problem}; keeping the previous overrides")
        return cast(dict[str, Any], data), stat.version

    def get_config(self) -> dict[str, Any]:
        """The run-time overrides (``{}`` when the znode is absent); see :meth:`read_config`."""
        return self.read_config()[0]

    def config_version(self) -> int:
        """The config znode's version, -1 when absent (``set_config(expected_version=-1)`` = create only)."""
        return self.read_config()[1]

    def set_config(self, overrides: dict[str, Any], *, expected_version: int | None = None) -> None:
        """Replace the run-time overrides. With ``expected_version`` (from :meth:`read_config`) the write only
        happens if nobody changed the znode since; otherwise :class:`ConfigConflict` and nothing is written.
        ``-1`` means "must not exist yet"; ``None`` writes unconditionally. Validation against the schema is
        the caller's (the CLI's) job; this only refuses what is not a JSON object.
        """
        if not isinstance(overrides, dict) or not all(isinstance(key, str) for key in overrides):
            raise ValueError("cluster config overrides must be a dict with string keys")
        try:
            data = json.dumps(overrides, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cluster config overrides are not JSON: {exc}") from None
        deadline = self._deadline()
        path = self.paths.config
        self._ready(deadline, "set_config")
        version: int
        if expected_version is None:
            for _ in range(4):
                try:
                    stat = self._wait(self._client.set_async(path, data), deadline, "set_config",
                                      expect=(NoNodeError,))
                    version = stat.version
                    break
                except NoNodeError:
                    pass
                try:
                    self._wait(self._client.create_async(path, data, acl=[self._acl]), deadline, "set_config",
                               expect=(NodeExistsError, NoNodeError))
                    version = 0
                    break
                except NoNodeError:
                    self._ensure_tree(deadline)
                except NodeExistsError:
                    pass
            else:
                raise ClusterUnavailable(f"set_config: {path} keeps changing under us")
        elif expected_version < 0:
            try:
                self._wait(self._client.create_async(path, data, acl=[self._acl]), deadline, "set_config",
                           expect=(NodeExistsError,))
            except NodeExistsError:
                raise ConfigConflict(f"{path} was created by someone else meanwhile: nothing written") from None
            version = 0
        else:
            try:
                stat = self._wait(self._client.set_async(path, data, expected_version), deadline, "set_config",
                                  expect=(BadVersionError, NoNodeError))
            except BadVersionError:
                raise ConfigConflict(
                    f"{path} changed meanwhile (expected version {expected_version}): nothing written"
                ) from None
            except NoNodeError:
                raise ConfigConflict(f"{path} was deleted meanwhile: nothing written") from None
            version = stat.version
        self.log.info("config_set", path=path, keys=sorted(overrides), version=version)

    # --- restart lock ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def restart_lock(self, identifier: str, timeout: float) -> Iterator[bool]:
        """Hold the cluster-wide restart lock for the ``with`` body: yields True when acquired within
        ``timeout`` seconds, False otherwise; released on exit.

        Same znodes as kazoo's ``Lock`` (``<uuid hex>__lock__<seq>`` holding ``identifier``) so kazoo's
        ``Lock(...).contenders()`` and a kazoo ``Lock`` in an operator tool interoperate; implemented here
        because kazoo's recipe makes untimed calls (it hangs while SUSPENDED) and releases with an untimed
        retry. The lock is held as long as the session lives: a session loss releases it for the others.
        """
        node = self._lock_acquire(self.paths.restart_lock, identifier, timeout)
        try:
            yield node is not None
        finally:
            if node is not None:
                self._lock_release(node)

    def _lock_acquire(self, lock_path: str, identifier: str, timeout: float) -> str | None:
        prefix = uuidlib.uuid4().hex + _LOCK_MARK
        end = time.monotonic() + timeout
        node: str | None = None
        try:
            while True:
                deadline = self._deadline()
                self._ready(deadline, "restart_lock")
                if node is None:
                    try:
                        create = self._client.create_async(
                            f"{lock_path}/{prefix}", identifier.encode(), acl=[self._acl], ephemeral=True,
                            sequence=True,
                        )
                        node = cast(str, self._wait(create, deadline, "restart_lock", expect=(NoNodeError,)))
                    except NoNodeError:
                        self._ensure_tree(deadline)
                        continue
                listing = self._client.get_children_async(lock_path)
                children = self._wait(listing, deadline, "restart_lock")
                name = node.rsplit("/", 1)[1]
                if name not in children:  # our session was lost meanwhile: contend again
                    node = None
                    continue
                contenders = sorted((c for c in children if _LOCK_NODE.search(c)), key=_lock_sequence)
                position = contenders.index(name)
                if position == 0:
                    return node
                if time.monotonic() >= end:
                    self._lock_give_up(node)
                    return None
                woken = threading.Event()
                with self._cond:
                    self._lock_waiters.add(woken)
                try:
                    predecessor = f"{lock_path}/{contenders[position - 1]}"
                    watched = self._client.exists_async(predecessor, watch=_waker(woken))
                    if self._wait(watched, deadline, "restart_lock") is None:
                        continue
                    woken.wait(max(0.0, end - time.monotonic()))
                finally:
                    with self._cond:
                        self._lock_waiters.discard(woken)
                if self._closing.is_set():
                    raise ClusterUnavailable("restart_lock: the store is stopping")
        except BaseException:
            if node is not None:
                self._lock_give_up(node)
            else:  # the create may have happened without us seeing the answer: the worker looks for it
                with self._cond:
                    self._lock_prefixes.add(prefix)
                    self._cond.notify_all()
            raise

    def _lock_give_up(self, node: str) -> None:
        try:
            self._delete_paths({node}, self._deadline())
        except ClusterUnavailable:
            with self._cond:
                self._lock_deletes.add(node)
                self._cond.notify_all()

    def _lock_release(self, node: str) -> None:
        deadline = self._deadline()
        try:
            self._ready(deadline, "restart_lock")
            self._wait(self._client.delete_async(node), deadline, "restart_lock", expect=(NoNodeError,))
        except NoNodeError:
            self.log.warning("restart_lock_lost", path=node, reason="the session ended while the lock was held")
        except ClusterUnavailable as exc:
            self.log.warning("restart_lock_release_deferred", path=node, error=str(exc))
            with self._cond:
                self._lock_deletes.add(node)
                self._cond.notify_all()

    def _lock_cleanup(self, prefixes: set[str], deletes: set[str]) -> None:
        """Worker: delete lock nodes of timed-out releases, and of creates whose answer was lost."""
        deadline = self._deadline()
        targets = set(deletes)
        if prefixes:
            self._ready(deadline, "restart_lock")
            children = self._wait(self._client.get_children_async(self.paths.restart_lock), deadline,
                                  "restart_lock", expect=(NoNodeError,))
            targets |= {f"{self.paths.restart_lock}/{c}" for c in children if c.startswith(tuple(prefixes))}
        self._delete_paths(targets, deadline)
        with self._cond:
            self._lock_prefixes -= prefixes
            self._lock_deletes -= deletes

    # --- session state and the worker ------------------------------------------------------------------------
    def _on_state(self, state: str) -> None:
        """kazoo's connection thread: set flags, wake the worker and lock waiters, enqueue; nothing else."""
        try:
            if state == KazooState.CONNECTED:
                self._connected.set()
                with self._cond:
                    self._resync = True
                    self._retry_at = 0.0
                    self._cond.notify_all()
            else:
                self._connected.clear()
            self._session_log.append(str(state))
            with self._cond:
                self._cond.notify_all()
            for waiter in list(self._lock_waiters):
                waiter.set()
            self._emit("session", str(state))
        except Exception:  # never raise into kazoo's connection thread
            return

    def _emit(self, kind: str, detail: str) -> None:
        try:
            self._on_event(kind, detail)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.log.error("event_callback_failed", kind=kind, detail=detail,
                               error=f"{type(exc).__name__}: {exc}")

    def _has_work(self) -> bool:
        return bool(self._resync or self._fired or self._to_arm or self._reg_dirty or self._lock_prefixes
                    or self._lock_deletes)

    def _work(self) -> None:
        """The worker: re-creates member znodes, (re-)arms watches, cleans up locks; never dies, backs off."""
        while True:
            with self._cond:
                while not self._closing.is_set() and not self._session_log:
                    now = time.monotonic()
                    if self._has_work() and self._connected.is_set() and now >= self._retry_at:
                        break
                    timeout = self._retry_at - now if self._has_work() and self._retry_at > now else None
                    self._cond.wait(timeout)
                if self._closing.is_set():
                    return
                resync, self._resync = self._resync, False
                fired, self._fired = self._fired, set()
                to_arm, self._to_arm = self._to_arm, set()
                registration_dirty = self._reg_dirty
                prefixes, deletes = set(self._lock_prefixes), set(self._lock_deletes)
                if resync:
                    to_arm |= set(self._watches)
            while self._session_log:
                state = self._session_log.popleft()
                client_id = self._client.client_id
                self.log.info("zk_session", state=state, hosts=self.hosts,
                              session=hex(client_id[0]) if client_id else None)
            if not (resync or fired or to_arm or registration_dirty or prefixes or deletes):
                continue
            if not self._connected.is_set():
                self._put_back(resync, fired, to_arm)
                continue
            try:
                if resync or registration_dirty:
                    self._sync_registration()
                self._arm(to_arm | fired, fired)
                if prefixes or deletes:
                    self._lock_cleanup(prefixes, deletes)
                self._failures = 0
            except Exception as exc:
                self._put_back(resync, fired, to_arm)
                self._failures += 1
                delay = min(5.0, 0.2 * 2 ** min(self._failures, 5))
                with self._cond:
                    self._retry_at = time.monotonic() + delay
                if isinstance(exc, ClusterUnavailable):
                    self.log.warning("zk_sync_failed", error=str(exc), retry_in=round(delay, 1))
                else:
                    self.log.error("zk_worker_error", error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 1))

    def _put_back(self, resync: bool, fired: set[str], to_arm: set[str]) -> None:
        with self._cond:
            self._resync = self._resync or resync
            self._fired |= fired
            self._to_arm |= to_arm

    # --- deadlines --------------------------------------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.call_timeout

    def _ready(self, deadline: float, what: str) -> None:
        """Wait (until the deadline) for a connected session: requests are only queued while connected."""
        if self._closing.is_set():
            raise ClusterUnavailable(f"{what}: the ZooKeeper session is closed")
        if not self._started:
            raise ClusterUnavailable(f"{what}: the ZooKeeper session is not started")
        with self._cond:  # woken by every session state change and by stop()
            self._cond.wait_for(lambda: self._connected.is_set() or self._closing.is_set(),
                                max(0.0, deadline - time.monotonic()))
        if self._closing.is_set():
            raise ClusterUnavailable(f"{what}: the ZooKeeper session is closed")
        if self._connected.is_set():
            return
        raise ClusterUnavailable(f"{what}: no ZooKeeper session at {self.hosts} within {self.call_timeout:g} s")

    def _wait(
        self, result: Any, deadline: float, what: str, expect: tuple[type[Exception], ...] = ()
    ) -> Any:
        """The value of an async kazoo call by the deadline; ``expect``-ed errors pass, the rest is one error."""
        try:
            return result.get(timeout=max(0.0, deadline - time.monotonic()))
        except expect:
            raise
        except KazooTimeoutError:
            raise ClusterUnavailable(f"{what}: no answer from ZooKeeper within {self.call_timeout:g} s") from None
        except KazooException as exc:
            name = type(exc).__name__
            if name == "NoAuthError":
                raise ClusterUnavailable(
                    f"{what}: not authorized: the cluster secret does not open {self.paths.base}"
                ) from None
            raise ClusterUnavailable(f"{what}: ZooKeeper {name}") from None


def _waker(event: threading.Event) -> Callable[[Any], None]:
    """A watch callback that only wakes a waiting lock contender (any event, NONE included: re-check)."""

    def wake(_watched: Any) -> None:
        event.set()

    return wake


def _lock_sequence(name: str) -> str:
    match = _LOCK_NODE.search(name)
    return match.group(1) if match else ""
