"""The master's members, kept by znode version: a pass reads only the member znodes that changed.

Why: a master used to re-read and re-parse every ``nodes/<uuid>`` on every pass, so a single join cost it in
proportion to the cluster's size (2.8 s at 10,000 members, issue 17). The watch table already watches every
member znode and knows the version (``czxid``, ``mzxid``) it saw when it armed each watch; it also notes which
members it armed anew, saw fire, or saw go (``WatchTable.take_member_changes``). So a pass takes those names,
reads the ones whose version differs from the one it holds (or is not known yet), and drops the ones gone.
Level-triggered as before: a change after that fires a watch, whose re-arm notes the name again and brings an
event. Until ``nodes/`` itself is listed and watched, every refresh reads everything.

Rules kept from ``zk.peers``: peer data is untrusted; what fails ``Member.from_json`` is logged once per
znode version (``peer_invalid``) and never rendered. A member whose znode turns invalid keeps its last good
data in the view (the node is still there; a writer's mistake must not make it vanish from the dashboard) and
the reason is kept beside it (``MemberView.invalid``). Everything is read again once after each reconnect
(``invalidate``): a ZooKeeper restored or rebuilt meanwhile may reuse versions.

``MemberView.members`` are the members' fields as plain mappings (``Peers.members``), sorted masters first,
then by address and uuid; an unchanged member is the same object from pass to pass, and an unchanged view the
same tuple, which is what lets the dashboard's renderers skip unchanged work (``plan.fragments``). Read-only.
A changed view is a ``MemberRows`` that also says how it differs from the view before it (``previous`` and the
rows that went and came, ``removed`` and ``added``), so a renderer that saw that view updates what it derived
instead of going over 10,000 members again (``member_rows``, ``plan.fragments.Folded``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import NoNodeError

from bootstrap_agent.member import Member, PeerInvalid
from bootstrap_agent.member_rows import RowBook
from bootstrap_agent.zk.session import Session

Version = tuple[int, int]  # (czxid, mzxid): a re-created znode differs even when its mzxid repeats
# What changed since the last call: listed names with the version their watch was armed at (None: not armed,
# or fired since), and the names gone; None as a whole while nodes/ is not listed and watched yet.
Changes = Callable[[], tuple[dict[str, Version | None], set[str]] | None]


@dataclass(frozen=True)
class MemberView:
    members: tuple[dict[str, Any], ...]  # read-only: shared from pass to pass
    invalid: Mapping[str, str]  # uuid -> why its current znode is refused (its last good data is in members)
    reads: int  # member znodes read by the refresh that made this view
    changed: bool  # whether that refresh changed the view


@dataclass
class _Entry:
    version: Version
    raw: bytes
    fields: dict[str, Any] | None  # the last good member's fields; None: never valid
    invalid: str | None = None


class MemberCache:
    """Used by the daemon's thread only; ``invalidate`` may be called from any thread.

    The members are kept in view order (``member_rows.RowBook``), so a change costs a lookup and an insertion,
    and the view is one ``tuple()`` of that list.
    """

    def __init__(self, session: Session, ip_ok: Callable[[str], bool], changes: Changes) -> None:
        self._session = session
        self._ip_ok = ip_ok
        self._changes = changes
        self._entries: dict[str, _Entry] = {}
        # the rows in order, and those that left / came since the last view was made (kept across a refresh
        # that failed half-way)
        self._book = RowBook()
        self._invalid: dict[str, str] = {}
        self._logged: dict[str, Version] = {}  # the version each invalid znode was last logged for
        self._view = MemberView((), {}, 0, False)
        self._lock = threading.Lock()
        self._full = True  # read everything at the next refresh

    def invalidate(self) -> None:
        """Read every member again at the next refresh (after a reconnect)."""
        with self._lock:
            self._full = True

    def refresh(self, relist: bool = False) -> MemberView:
        """Bring the view up to date, reading only what changed; ``relist`` also lists ``nodes/`` itself (the
        tick's backstop against a watch table that fell behind). Raises ``ClusterUnavailable``."""
        with self._lock:
            full, self._full = self._full, False
        try:
            return self._refresh(full, relist)
        except BaseException:
            self.invalidate()  # the changes taken are lost with this refresh: read everything next time
            raise

    def _refresh(self, full: bool, relist: bool) -> MemberView:
        changes = self._changes()  # taken first: whatever changes after this is reported again
        changed = False
        if full or changes is None:
            listed = self._list()
            changed |= self._drop(set(self._entries).difference(listed))
            names = listed
        else:
            versions, gone = changes
            changed |= self._drop(gone.intersection(self._entries))
            names = [n for n, version in versions.items()
                     if version is None or (entry := self._entries.get(n)) is None or entry.version != version]
            if relist:
                listed = self._list()
                changed |= self._drop(set(self._entries).difference(listed))
                names = sorted(set(names).union(set(listed).difference(self._entries)))
        changed |= self._read(names)
        if changed or full:
            self._view = MemberView(self._book.view(self._view.members), dict(self._invalid), len(names), True)
        else:
            self._view = dataclasses.replace(self._view, reads=len(names), changed=False)
        return self._view

    def _list(self) -> list[str]:
        session = self._session
        deadline = session.deadline()
        session.ready(deadline, "members")
        try:
            children: list[str] = session.wait(session.client.get_children_async(session.paths.nodes), deadline,
                                               "members", expect=(NoNodeError,))
        except NoNodeError:
            return []
        return children

    def _read(self, names: list[str]) -> bool:
        """Read ``names`` (pipelined); True when the view changed."""
        if not names:
            return False
        session, paths = self._session, self._session.paths
        deadline = session.deadline()
        session.ready(deadline, "members")
        pending = [(name, session.client.get_async(paths.node(name))) for name in names]
        changed = False
        for name, result in pending:
            try:
                raw, stat = session.wait(result, deadline, "members", expect=(NoNodeError,))
            except NoNodeError:  # left between the listing and the read: a normal race
                changed |= self._drop({name})
                continue
            changed |= self._update(name, (stat.czxid, stat.mzxid), raw or b"")
        return changed

    def _update(self, name: str, version: Version, raw: bytes) -> bool:
        entry = self._entries.get(name)
        if entry is not None and entry.raw == raw:
            entry.version = version  # same data (a rewrite, or re-read after a reconnect): nothing to parse
            return False
        try:
            member = Member.from_json(name, raw, cluster_ips_ok=self._ip_ok)
        except PeerInvalid as exc:
            last_good = entry.fields if entry is not None else None
            if self._logged.get(name) != version:
                self._logged[name] = version
                self._session.log.warning("peer_invalid", uuid=name, path=self._session.paths.node(name),
                                          reason=str(exc), keeping="last good" if last_good else "nothing")
            self._entries[name] = _Entry(version, raw, last_good, str(exc))
            before, self._invalid[name] = self._invalid.get(name), str(exc)
            return before != str(exc)
        self._logged.pop(name, None)
        self._invalid.pop(name, None)
        fields = dataclasses.asdict(member)
        self._entries[name] = _Entry(version, raw, fields)
        self._book.place(entry.fields if entry is not None else None, fields)
        return True

    def _drop(self, names: set[str]) -> bool:
        for name in names:
            entry = self._entries.pop(name, None)
            if entry is None:
                continue
            self._book.place(entry.fields, None)
            self._invalid.pop(name, None)
            self._logged.pop(name, None)
        return bool(names)
