"""A master's member view that says how it differs from the view before it.

Why: at 10,000 members, going over every member to redo the dashboard's counts, totals, documents and pages
cost a master more than a join itself (issue 17). ``zk.member_cache`` knows exactly which rows it dropped and
placed, so the view it hands out carries them; whoever derived something from the previous view folds the
change in (``plan.fragments.Folded``) instead of starting over. Pure data, no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

Rows = tuple[Any, ...]
Key = tuple[bool, str, str]  # the view's order: masters first, then by address and uuid


def view_key(fields: Mapping[str, Any]) -> Key:
    return fields["role"] != "master", str(fields["ip"]), str(fields["uuid"])


class MemberRows(tuple[dict[str, Any], ...]):
    """The view's members (a tuple: everything that took the view before still does); ``previous`` is the view
    this one was made from, ``removed``/``added`` the rows (the very objects) that left it and came into it.
    Only the newest view links to the one before it, so older views are not kept alive through the link."""

    previous: Rows | None = None
    removed: Rows = ()
    added: Rows = ()


def delta_of(members: Rows, last: Rows | None) -> tuple[Rows, Rows] | None:
    """(removed, added) from ``last`` to ``members`` when ``members`` was made from ``last``; else None: what
    was derived from ``last`` must be derived from ``members`` anew."""
    if last is None or not isinstance(members, MemberRows) or members.previous is not last:
        return None
    return members.removed, members.added


V = TypeVar("V")


class Ordered(Generic[V]):
    """Values kept in the order of their keys (``bisect``): a change costs a lookup and one insertion or
    deletion, not a sort of every member. The member cache keeps its rows so, and the documents that fold a
    view's delta in (``plan.cluster_status``, ``plan.scrape_targets``) their members' texts."""

    def __init__(self, pairs: Iterable[tuple[Any, V]] = ()) -> None:
        ordered = sorted(pairs, key=lambda pair: pair[0])
        self.keys: list[Any] = [key for key, _ in ordered]
        self.values: list[V] = [value for _, value in ordered]

    def remove(self, key: Any) -> bool:
        """Drop the value under ``key``; False when there is none."""
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            del self.keys[at], self.values[at]
            return True
        return False

    def insert(self, key: Any, value: V) -> None:
        at = bisect.bisect_left(self.keys, key)
        self.keys.insert(at, key)
        self.values.insert(at, value)


class RowBook:
    """The members in view order (``Ordered``), and the rows that left and came since the last view was made
    (kept until the next one is)."""

    def __init__(self) -> None:
        self._rows: Ordered[dict[str, Any]] = Ordered()
        self._removed: list[dict[str, Any]] = []
        self._added: list[dict[str, Any]] = []

    def place(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Replace ``old`` by ``new`` (either may be None)."""
        if old is not None and self._rows.remove(view_key(old)):
            self._removed.append(old)
        if new is not None:
            self._rows.insert(view_key(new), new)
            self._added.append(new)

    def view(self, last: Rows | None) -> MemberRows:
        """The rows as a new view made from ``last``, with what changed since (rows both added and removed since
        then never were in either view and are left out)."""
        rows = MemberRows(self._rows.values)
        came = {id(row): row for row in self._added}
        went = {id(row): row for row in self._removed}
        both = came.keys() & went.keys()
        if isinstance(last, MemberRows):
            last.previous = None  # one link only: older views are not kept alive through it
        rows.previous = last
        rows.removed = tuple(row for key, row in went.items() if key not in both)
        rows.added = tuple(row for key, row in came.items() if key not in both)
        self._removed, self._added = [], []
        return rows
