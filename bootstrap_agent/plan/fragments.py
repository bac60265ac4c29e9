"""Per-member pieces of the master's documents, remembered between passes by the member's identity.

Why: a master renders every member into ``index.html``, ``status.json`` and the scrape targets on every pass;
at 10,000 members that alone took a quarter of a second, for a pass in which one member changed (issue 17).
The members come from ``zk.member_cache``, which hands out the very same mapping for a member whose znode did
not change; so a piece rendered from it last pass is still right, and only new or changed members are rendered
again. The documents stay pure functions of their inputs: the memo only skips recomputing a result that the
same (unchanged, read-only) object produced before. Only the items of the last call are kept (memory stays
proportional to the cluster, and a departed member's piece is dropped).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from bootstrap_agent.member_rows import delta_of

T = TypeVar("T")


class Memo(Generic[T]):
    """``fn(item)`` for each item, reusing the result for an item that is the same object as in the last call.

    The items of the last call are kept alive beside their results, so while an ``id()`` is in the memo no other
    object can have it: a hit is always the very same item. Lookups run in C (``map`` over ``dict.get``) and
    only the misses in Python, which is what makes 10,000 unchanged members cheap. Items must not be changed
    in place after they were passed (the member cache's never are).
    """

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self._fn = fn
        self._last: dict[int, Any] = {}
        self._items: list[Any] = []  # keeps the keys' objects alive
        self._lock = threading.Lock()

    def map(self, items: Iterable[Any]) -> list[T]:
        listed = list(items)
        with self._lock:
            ids = list(map(id, listed))
            results: list[Any] = list(map(self._last.get, ids, itertools.repeat(_MISS)))
            at = -1
            with contextlib.suppress(ValueError):  # index() raises when no miss is left
                while True:
                    at = results.index(_MISS, at + 1)
                    results[at] = self._fn(listed[at])
            self._last = dict(zip(ids, results, strict=True))
            self._items = listed
            return results


_MISS: Any = object()


class Last(Generic[T]):
    """The result of the last call, reused while the argument is the very same object (an unchanged member view
    is the same tuple: ``zk.member_cache``), so an idle pass skips even the per-member loop."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self._fn = fn
        self._last: tuple[Any, T] | None = None
        self._lock = threading.Lock()

    def get(self, item: Any) -> T:
        with self._lock:
            if self._last is None or self._last[0] is not item:
                self._last = (item, self._fn(item))
            return self._last[1]


S = TypeVar("S")
FOLD_MAX = 64  # rows a delta may change and still be folded in, at least (more: an eighth of the view)


class Folded(Generic[S]):
    """A state derived from a member view, kept up to date by the view's delta (``member_rows.MemberRows``:
    the rows that left and came since the view before it) when the view follows the one seen last; built anew
    from all members otherwise (the first view, ``once``/``render``, a view that skipped one). So a join costs
    what it changed, not the cluster's size. ``build(members)`` makes the state, ``fold(state, removed, added)``
    updates it in place and returns it; the state must come out the same either way (tests check both)."""

    def __init__(self, build: Callable[[tuple[Any, ...]], S],
                 fold: Callable[[S, tuple[Any, ...], tuple[Any, ...]], S]) -> None:
        self._build = build
        self._fold = fold
        self._last: tuple[Any, ...] | None = None
        self._state: S | None = None
        self._lock = threading.Lock()

    def get(self, members: tuple[Any, ...]) -> S:
        with self._lock:
            state = self._state
            if state is None or members is not self._last:
                delta = delta_of(members, self._last) if state is not None else None
                if delta is not None and len(delta[0]) + len(delta[1]) > max(FOLD_MAX, len(members) // 8):
                    delta = None  # a burst (the first members, a reconnect): one build beats many insertions
                state = self._build(members) if state is None or delta is None else self._fold(state, *delta)
                self._state, self._last = state, members
            return state
