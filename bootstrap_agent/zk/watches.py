"""The watch table: which znodes the node watches, and what each looked like when last armed.

kazoo re-sends no watches after a reconnect: on every SUSPENDED and LOST it drops its watch table and fires
each watcher with a ``NONE`` event, and the server forgot them with the old connection. So kazoo's
``DataWatch``/``ChildrenWatch`` recipes are not used (a DataWatch cannot be stopped, a ChildrenWatch stops for
good on NoNode): watch callbacks only hand the path over, and the store's worker re-arms every watch after
each CONNECTED (pipelined ``exists``/``get_children``) and reports what changed meanwhile. The re-arm comes
before the report, so a change made between the event and the re-arm is covered by the same report
(level-triggered, nothing lost).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import EventType

from bootstrap_agent.zk.session import Session

_UNSET: Any = object()


@dataclass
class _Watch:
    kind: str  # the reported kind: "members" | "masters" | "config"
    children: bool = False  # a children watch (nodes/); otherwise an exists watch (create/change/delete)
    member_of: str | None = None  # data watch of a child, kept in step with its parent's children watch
    snapshot: Any = _UNSET  # children tuple, or (czxid, mzxid) / None; _UNSET until armed once


class WatchTable:
    """Every field is guarded by ``session.cond``; ``arm()`` makes the ZooKeeper calls without holding it."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._watches: dict[str, _Watch] = {}
        self._fired: set[str] = set()
        self._to_arm: set[str] = set()
        self._member_changes: set[str] = set()  # member paths whose watch fired, was armed anew, or went away

    # --- what to watch ----------------------------------------------------------------------------------
    def watch_members(self) -> None:
        """Masters: ``nodes/`` (children) and every member's znode."""
        self._want({self._session.paths.nodes: _Watch("members", children=True)})

    def watch_masters(self, ips: Sequence[str]) -> None:
        """Agents: one watch per ``masters/<ip>`` (never ``nodes/``); another list replaces the set."""
        for ip in ips:
            ipaddress.IPv4Address(ip)  # a programming error, not a peer problem: raise ValueError
        wanted = {self._session.paths.master(ip): _Watch("masters") for ip in ips}
        with self._session.cond:
            for path in [p for p, w in self._watches.items() if w.kind == "masters" and p not in wanted]:
                del self._watches[path]
        self._want(wanted)

    def watch_config(self) -> None:
        """The cluster config znode, also while it does not exist."""
        self._want({self._session.paths.config: _Watch("config")})

    def _want(self, watches: dict[str, _Watch]) -> None:
        with self._session.cond:
            for path, watch in watches.items():
                if path not in self._watches:
                    self._watches[path] = watch
                    self._to_arm.add(path)
            self._session.cond.notify_all()

    def on_watch(self, event: Any) -> None:
        """kazoo's callback thread: hand the path to the worker. NONE events (connection changes) are left to
        the re-arm that follows every CONNECTED."""
        try:
            if event.type == EventType.NONE:
                return
            with self._session.cond:
                self._fired.add(event.path)
                if event.path.startswith(self._session.paths.nodes + "/"):
                    self._member_changes.add(event.path)
                self._session.cond.notify_all()
        except Exception as exc:  # never raise into kazoo
            with contextlib.suppress(Exception):
                self._session.log.error("watch_callback_failed", error=f"{type(exc).__name__}: {exc}")

    def take_member_changes(self) -> tuple[dict[str, tuple[int, int] | None], set[str]] | None:
        """What changed under ``nodes/`` since the last call: the member znodes listed now with the version
        (czxid, mzxid) their watch was armed at (None: not armed yet, or fired since), and the names no longer
        listed; None while ``nodes/`` was never listed and watched (nothing can be trusted yet). What
        ``zk.member_cache`` reads, so that a pass costs what changed, not the cluster's size."""
        parent = self._session.paths.nodes
        cut = len(parent) + 1
        with self._session.cond:
            watch = self._watches.get(parent)
            if watch is None or watch.snapshot is _UNSET or watch.snapshot is None:
                return None
            changes, self._member_changes = self._member_changes, set()
            versions: dict[str, tuple[int, int] | None] = {}
            gone: set[str] = set()
            for path in changes:
                member = self._watches.get(path)
                if member is None or member.member_of != parent:
                    gone.add(path[cut:])
                else:
                    fresh = member.snapshot is not _UNSET and path not in self._fired
                    versions[path[cut:]] = member.snapshot if fresh else None
            return versions, gone

    # --- the worker's side (with session.cond held) ------------------------------------------------------
    def pending(self) -> bool:
        return bool(self._fired or self._to_arm)

    def take(self, resync: bool) -> tuple[set[str], set[str]]:
        """What fired and what to (re-)arm; everything after a reconnect."""
        fired, self._fired = self._fired, set()
        to_arm, self._to_arm = self._to_arm, set()
        if resync:
            to_arm |= set(self._watches)
        return fired, to_arm

    def put_back(self, fired: set[str], to_arm: set[str]) -> None:
        self._fired |= fired
        self._to_arm |= to_arm

    # --- arming ---------------------------------------------------------------------------------------------
    def arm(self, paths: set[str], fired: set[str]) -> list[tuple[str, str]]:
        """(Re-)arm the watches on ``paths``; returns one ``(kind, path)`` per watch that fired or changed.

        Nothing is committed unless the whole batch succeeded, so a failed batch is simply tried again.
        """
        session, client = self._session, self._session.client
        with session.cond:
            table = {path: self._watches[path] for path in paths if path in self._watches}
        if not table:
            return []
        deadline = session.deadline()
        session.ready(deadline, "watch")
        children_of: dict[str, tuple[str, ...] | None] = {}
        again: set[str] = set()
        for path in [p for p, w in table.items() if w.children]:
            try:
                listing = client.get_children_async(path, watch=self.on_watch)
                children_of[path] = tuple(sorted(session.wait(listing, deadline, "watch", expect=(NoNodeError,))))
            except NoNodeError:  # watch for its creation instead
                if session.wait(client.exists_async(path, watch=self.on_watch), deadline, "watch") is not None:
                    again.add(path)
                children_of[path] = None
        new_members = {f"{parent}/{child}": parent for parent, kids in children_of.items() for child in kids or ()}
        with session.cond:
            new_members = {p: parent for p, parent in new_members.items() if p not in self._watches}
        data_paths = [p for p, w in table.items() if not w.children] + sorted(new_members)
        session.ready(deadline, "watch")
        pending = [(path, client.exists_async(path, watch=self.on_watch)) for path in data_paths]
        stats: dict[str, Any] = {}
        for path, result in pending:
            stat = session.wait(result, deadline, "watch")
            stats[path] = None if stat is None else (stat.czxid, stat.mzxid)
        with session.cond:
            emits = self._commit(children_of, stats, new_members, fired, again)
            self._to_arm |= again
        return emits

    def _commit(self, children_of: dict[str, tuple[str, ...] | None], stats: dict[str, Any],
                new_members: dict[str, str], fired: set[str], again: set[str]) -> list[tuple[str, str]]:
        emits: list[tuple[str, str]] = []
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
                self._member_changes.add(path)
            for path in listed - set(self._watches):
                self._watches[path] = _Watch(watch.kind, member_of=parent, snapshot=stats.get(path, _UNSET))
                self._member_changes.add(path)
                if path not in stats:
                    again.add(path)
        for path, snapshot in stats.items():
            watch = self._watches.get(path)
            if watch is None or path in new_members:
                continue  # gone meanwhile, or a new member: its parent's event covers it
            if path in fired or watch.snapshot is _UNSET or watch.snapshot != snapshot:
                emits.append((watch.kind, path))
                if watch.member_of is not None:
                    self._member_changes.add(path)
            watch.snapshot = snapshot
        return emits
