"""A master's member view that says how it differs from the view before it.

Why: at 10,000 members, going over every member to redo the dashboard's counts, totals, documents and pages
cost a master more than a join itself (issue 17). ``zk.member_cache`` knows exactly which rows it dropped and
placed, so the view it hands out carries them; whoever derived something from the previous view folds the
change in (``plan.fragments.Folded``) instead of starting over. Pure data, no I/O.
"""

from __future__ import annotations

import bisect
from typing import Any

Rows = tuple[Any, ...]
Key = tuple[bool, str, str]  # the view's order: masters first, then by address and uuid


def view_key(fields: dict[str, Any]) -> Key:
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


class RowBook:
    """The members in view order, kept sorted with ``bisect`` so that a change costs a lookup and an insertion,
    and the rows that left and came since the last view was made (kept until the next one is)."""

    def __init__(self) -> None:
        self._keys: list[Key] = []
        self._rows: list[dict[str, Any]] = []
        self._removed: list[dict[str, Any]] = []
        self._added: list[dict[str, Any]] = []

    def place(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Replace ``old`` by ``new`` (either may be None)."""
        if old is not None:
            at = bisect.bisect_left(self._keys, view_key(old))
            del self._keys[at], self._rows[at]
            self._removed.append(old)
        if new is not None:
            key = view_key(new)
            at = bisect.bisect_left(self._keys, key)
            self._keys.insert(at, key)
            self._rows.insert(at, new)
            self._added.append(new)

    def view(self, last: Rows | None) -> MemberRows:
        """The rows as a new view made from ``last``, with what changed since (rows both added and removed since
        then never were in either view and are left out)."""
        rows = MemberRows(self._rows)
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
