"""The landing page's members at any cluster size: the totals on top, members grouped by role and state with
counts, and the agents in pages of at most ``PAGE_SIZE`` rows, each a file of its own (``www/members/<id>.html``,
served by nginx as it is, behind the dashboard's password; no script).

Why pages with boundaries that stay put: at 1,000 members one table is unreadable, and pages cut by position
(rows 1–100, 101–200, …) would all shift on a single join, so every page would be rendered and installed again.
Here a page is a range of the agents' order (by address, then uuid) whose boundaries are kept between passes
(``Pager``): a join or leave changes the one page holding that address (a page that grows past ``PAGE_SIZE``
splits in two, one that shrinks below ``MIN_FILL`` merges into its neighbour; their neighbours' next/previous
links change with them). Unchanged pages keep their text, so the install writes nothing for them.

Time in state ages while nothing changes: a page says "as of" the time it was rendered, and each pass renders
again at most one page that is older than ``REFRESH`` seconds (the oldest), so an idle pass stays cheap and every
page is fresh again after a while. The boundaries depend on the pager's history (the daemon's process), not only
on the members; ``once`` and ``render`` start from none, so their pages are cut evenly.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup

from bootstrap_agent.capacity import capacity_of, human_bytes, human_duration
from bootstrap_agent.member_rows import delta_of
from bootstrap_agent.plan.fragments import FOLD_MAX, Memo
from bootstrap_agent.templates import environment

PAGE_SIZE = 100  # rows a page holds at most
MIN_FILL = PAGE_SIZE // 4  # a page this small merges into a neighbour that has room
REFRESH = 60.0  # seconds after which a page's times in state are rendered again (one page a pass)
PAGES_DIR = "members"  # beside index.html

Key = tuple[int, str]


def _key(member: Mapping[str, Any]) -> Key:
    """Address order as people read it (10.0.0.9 before 10.0.0.10), then uuid."""
    try:
        address = int(ipaddress.IPv4Address(str(member.get("ip"))))
    except ValueError:
        address = -1
    return address, str(member.get("uuid"))


_KEYS: Memo[Key] = Memo(_key)  # each member's key computed once per version of the member


def by_address(agents: Sequence[Mapping[str, Any]]) -> tuple[list[Key], tuple[Mapping[str, Any], ...]]:
    """The agents in address order, with their keys (the member view orders addresses as text)."""
    keys = _KEYS.map(agents)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return [keys[i] for i in order], tuple(agents[i] for i in order)


@functools.cache
def template(name: str) -> jinja2.Template:
    """Escaped: a member's ``reason`` and host name are written by any holder of the cluster secret."""
    return environment().overlay(autoescape=True).get_template(name)


def utc_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def row_html(member: Mapping[str, Any], now: float | None) -> str:
    """One member's row (``member_row.html.j2``): time in state relative to ``now`` (none without it)."""
    raw = member.get("since")
    since = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    cap = capacity_of(member)
    return template("member_row.html.j2").render(
        m=member, since=utc_text(since) + " UTC" if since is not None else "?",
        age=human_duration(now - since) if since is not None and now is not None else "?",
        cpus=str(cap.cpus) if cap else "?", memory=human_bytes(cap.memory_bytes) if cap else "?",
        alluxio=human_bytes(cap.alluxio_bytes) if cap else "?")


@dataclass
class Page:
    """A range of agents; ``text`` is its file, ``rows`` its table rows, both as of ``as_of``."""

    id: int
    members: tuple[Mapping[str, Any], ...]
    rows: Markup = field(default_factory=Markup)
    text: str = ""
    as_of: float | None = None
    links: tuple[int | None, int | None] = (None, None)  # the previous and next pages' ids it was rendered with
    renders: int = 0
    encoded: bytes = b""

    def content(self) -> bytes:
        """The file's bytes, encoded once per rendering (a pass hands the unchanged pages' bytes on as they are)."""
        if len(self.encoded) == 0 and self.text:
            self.encoded = self.text.encode()
        return self.encoded

    @property
    def path(self) -> str:
        return page_path(self.id)

    def first(self) -> str:
        return str(self.members[0].get("ip")) if self.members else ""

    def last(self) -> str:
        return str(self.members[-1].get("ip")) if self.members else ""


def page_path(page_id: int) -> str:
    return f"{PAGES_DIR}/{page_id}.html"


@dataclass
class _State:
    pages: list[Page] = field(default_factory=list)
    retired: set[int] = field(default_factory=set)  # ids of pages that merged away, free for new pages
    members: tuple[Mapping[str, Any], ...] | None = None  # the member view the pages were cut from
    next_id: int = 1
    published: set[int] = field(default_factory=set)  # ids of pages ever installed as files


class Pager:
    """The agents cut into pages whose boundaries are kept between calls (see the module's docstring)."""

    def __init__(self, page_size: int = PAGE_SIZE, min_fill: int | None = None, refresh: float = REFRESH) -> None:
        self.page_size = page_size
        self.min_fill = page_size // 4 if min_fill is None else min_fill
        self.refresh = refresh
        self._state = _State()
        self._lock = threading.Lock()

    def pages(self, cluster: str, members: tuple[Mapping[str, Any], ...], now: float | None) -> list[Page]:
        """The agents' pages of the member view ``members`` (an unchanged view is the same tuple: nothing is
        cut again), rendering only pages whose members or links changed, plus at most one whose times are
        older than ``refresh``."""
        with self._lock:
            state = self._state
            if members is not state.members:
                delta = delta_of(members, state.members) if state.pages else None
                moved = self._move(state.pages, *delta) if delta is not None else None
                if moved is None:
                    state.pages = self._recut(state, *by_address(split_roles(members)[1]))
                else:  # the view says which rows went and came: only their pages change
                    state.pages = self._balance(state, moved)
                state.members = members
            dirty = self._link(state.pages) | {page.id for page in state.pages if not page.text}
            if not dirty and now is not None:
                stale = [p for p in state.pages if p.as_of is None or now - p.as_of >= self.refresh]
                if stale:
                    dirty.add(min(stale, key=lambda p: p.as_of or 0.0).id)
            for page in state.pages:
                if page.id in dirty:
                    self._render(cluster, page, now)
            return list(state.pages)

    def published(self, pages: list[Page]) -> tuple[list[Page], list[int]]:
        """The pages to install as files, and the ids whose files now only say the page is gone. One page is
        no file (the landing page shows its rows); a page id once installed stays a file for good."""
        with self._lock:
            state = self._state
            shown = pages if len(pages) > 1 else []
            state.published.update(page.id for page in shown)
            return shown, sorted(state.published - {page.id for page in shown})

    def _recut(self, state: _State, keys: list[Key], agents: tuple[Mapping[str, Any], ...]) -> list[Page]:
        old = state.pages
        if not old:  # the first cut: pages three quarters full, so that joins fit before a page splits
            fill = self._fill()
            return [self._new(state, agents[i:i + fill]) for i in range(0, len(agents), fill)] \
                or [self._new(state, ())]
        cuts = [bisect.bisect_left(keys, _key(page.members[0])) for page in old[1:]]  # never empty (_balance)
        bounds = [0, *cuts, len(agents)]
        pages: list[Page] = []
        for page, start, end in zip(old, bounds[:-1], bounds[1:], strict=True):
            members = agents[start:max(start, end)]
            if len(members) != len(page.members) or any(a is not b for a, b in zip(members, page.members,
                                                                                    strict=True)):
                page.members, page.text = members, ""
            pages.append(page)
        return self._balance(state, pages)

    @staticmethod
    def _move(pages: list[Page], removed: tuple[Mapping[str, Any], ...],
              added: tuple[Mapping[str, Any], ...]) -> list[Page] | None:
        """The agents that went out of and came into their pages (the page whose range holds the agent's key),
        as ``_recut`` of the whole view would place them; the pages they touched are rendered again. None when
        a page after the first is empty (``_balance`` leaves none) or the delta is a burst: then the whole view
        is cut."""
        if len(removed) + len(added) > max(FOLD_MAX, len(pages)):
            return None  # a burst: one cut of the whole view beats many insertions into growing pages
        bounds = [_key(page.members[0]) for page in pages[1:] if page.members]
        if len(bounds) != len(pages) - 1:
            return None

        def page_of(key: Key) -> Page:
            return pages[bisect.bisect_right(bounds, key)]

        for member in removed:
            if member.get("role") != "agent":
                continue
            page = page_of(_key(member))
            kept = tuple(m for m in page.members if m is not member)
            if len(kept) != len(page.members):
                page.members, page.text = kept, ""
        for member in added:
            if member.get("role") != "agent":
                continue
            key = _key(member)
            page = page_of(key)
            at = bisect.bisect_left([_key(m) for m in page.members], key)
            page.members, page.text = (*page.members[:at], member, *page.members[at:]), ""
        return pages

    def _balance(self, state: _State, pages: list[Page]) -> list[Page]:
        """Split pages past ``page_size``, merge small ones into a neighbour with room, drop empty ones."""
        out: list[Page] = []
        for page in pages:
            members = page.members
            if len(members) > self.page_size:  # split evenly, as many pages as keep each three quarters full
                parts = -(-len(members) // self._fill())
                size = -(-len(members) // parts)
                page.members, page.text = members[:size], ""
                out += [page, *(self._new(state, members[i:i + size]) for i in range(size, len(members), size))]
                continue
            if out and (not members or len(members) < self.min_fill or len(out[-1].members) < self.min_fill) \
                    and len(out[-1].members) + len(members) <= self.page_size:
                out[-1].members, out[-1].text = out[-1].members + members, ""
                state.retired.add(page.id)
                continue
            out.append(page)
        kept = [page for page in out if page.members]
        state.retired.update(page.id for page in out if not page.members and page is not (kept or out)[0])
        return kept or out[:1] or [self._new(state, ())]

    def _fill(self) -> int:
        """Rows of a page as cut anew: three quarters full, so that joins fit before it splits."""
        return max(1, self.page_size * 3 // 4)

    @staticmethod
    def _new(state: _State, members: tuple[Mapping[str, Any], ...]) -> Page:
        """A page with a retired id if there is one (its file is reused), else a new id."""
        page_id = min(state.retired, default=None)
        if page_id is None:
            page_id, state.next_id = state.next_id, state.next_id + 1
        else:
            state.retired.discard(page_id)
        return Page(page_id, members)

    @staticmethod
    def _link(pages: list[Page]) -> set[int]:
        dirty = set()
        for at, page in enumerate(pages):
            links = (pages[at - 1].id if at else None, pages[at + 1].id if at + 1 < len(pages) else None)
            if links != page.links:
                page.links = links
                dirty.add(page.id)
        return dirty

    @staticmethod
    def _render(cluster: str, page: Page, now: float | None) -> None:
        page.rows = Markup("".join(row_html(m, now) for m in page.members))
        prev_id, next_id = page.links
        page.text = template("member_page.html.j2").render(
            cluster=cluster, page=page, rows=page.rows, as_of=utc_text(now) if now is not None else None,
            prev=f"/{page_path(prev_id)}" if prev_id else None, next=f"/{page_path(next_id)}" if next_id else None)
        page.as_of = now
        page.encoded = b""
        page.renders += 1


def retired_text(cluster: str) -> str:
    """The file of a page that merged away: a link back (a bookmark to it is not a 404 with stale rows)."""
    return template("member_page_gone.html.j2").render(cluster=cluster)


def leading_masters(members: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The masters of the member view (they come first in it), without going over the agents."""
    at = 0
    while at < len(members) and members[at].get("role") == "master":
        at += 1
    return list(members[:at])


def split_roles(members: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], tuple[Mapping[str, Any], ...]]:
    """Masters and agents of the member view (masters come first in it: ``zk.member_cache``)."""
    masters = leading_masters(members)
    agents = tuple(m for m in members[len(masters):] if m.get("role") == "agent")
    return masters, agents
