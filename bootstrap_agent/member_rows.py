"""A master's member view that says how it differs from the view before it.

Why: at 10,000 members, going over every member to redo the dashboard's counts, totals, documents and pages
cost a master more than a join itself (issue 17). ``zk.member_cache`` knows exactly which rows it dropped and
placed, so the view it hands out carries them; whoever derived something from the previous view folds the
change in (``plan.fragments.Folded``) instead of starting over. Pure data, no I/O.
"""

from __future__ import annotations

from typing import Any

Rows = tuple[Any, ...]


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
