"""The cluster's figures a master adds to its metrics: members by role and state, and join→rendered latency.

Why on masters: they are the nodes that read every member and render the dashboard (every master does, each
its own view; one master's series are the cluster's figures). The latency is what a user waits for: from the
moment a new member reported itself (its znode's ``since``: when it entered its first state) to the end of the
master's pass that rendered it into the dashboard, ``status.json`` and ``prometheus/targets.json``.

What counts as a join: a uuid this master has not rendered before whose ``since`` is not older than the
master's previous read (minus ``SKEW``). Members already there when the master starts are its baseline, not
joins; a rebooted node that rejoins with the ``since`` of its earlier life is not a join either. ``since`` is
the node's clock and the end of the pass the master's: the figure includes their offset (both keep NTP time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from bootstrap_agent.member import ROLES, STATES
from bootstrap_agent.member_rows import delta_of
from bootstrap_agent.plan.fragments import Folded

JOIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
SKEW = 5.0  # seconds a node's clock may be behind the master's and its join still count


def join_latencies(previous: set[str] | None, previous_read: float | None, members: Iterable[Mapping[str, Any]],
                   rendered_at: float) -> list[float]:
    """Seconds from each new member's ``since`` to ``rendered_at``; none on the first call (``previous`` None)."""
    if previous is None:
        return []
    out = []
    for member in members:
        since = member.get("since")
        if member.get("uuid") in previous or isinstance(since, bool) or not isinstance(since, int | float):
            continue
        if previous_read is not None and since < previous_read - SKEW:
            continue
        out.append(max(0.0, rendered_at - float(since)))
    return out


def _role_state(member: Mapping[str, Any]) -> tuple[str, str]:
    return str(member.get("role")), str(member.get("state"))


def _tally(members: tuple[Mapping[str, Any], ...]) -> Counter[tuple[str, str]]:
    return Counter(map(_role_state, members))


def _fold_tally(tally: Counter[tuple[str, str]], removed: tuple[Mapping[str, Any], ...],
                added: tuple[Mapping[str, Any], ...]) -> Counter[tuple[str, str]]:
    tally.subtract(map(_role_state, removed))
    tally.update(map(_role_state, added))
    return tally


class ClusterMetrics:
    """Registered into the node's registry the first time the node renders as a master."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Not "role"/"state": the discovery document's target labels already name the scraped node's role.
        self.members = Gauge("bootstrap_agent_cluster_members", "Members this master sees, by role and state",
                             ["member_role", "member_state"], registry=registry)
        self.join = Histogram("bootstrap_agent_member_join_rendered_seconds",
                              "From a new member's report (its since) to the end of the master's pass that "
                              "rendered it", buckets=JOIN_BUCKETS, registry=registry)
        self.rendered: set[str] | None = None  # the uuids of the view last rendered with a new read
        self._rendered_view: tuple[Any, ...] | None = None  # that view (its successor says what changed)
        self._tally: Folded[Counter[tuple[str, str]]] = Folded(_tally, _fold_tally)
        self._last_view: object = None
        self.read_at: float | None = None
        for role in ROLES:
            for state in STATES:
                self.members.labels(role, state).set(0)

    def rendered_members(self, members: Iterable[Mapping[str, Any]], read_at: float | None,
                         rendered_at: float) -> None:
        """A pass rendered ``members`` (read from ZooKeeper at ``read_at``; None: not read, nothing new).

        An unchanged view is the very same object (``zk.member_cache``): then nothing joined or changed, and an
        idle pass costs nothing here whatever the cluster's size."""
        if members is self._last_view:
            self.read_at = read_at if read_at is not None else self.read_at
            return
        self._last_view = members
        rows = members if isinstance(members, tuple) else tuple(members)
        tally = self._tally.get(rows)
        for role in ROLES:
            for state in STATES:
                self.members.labels(role, state).set(tally[(role, state)])
        if read_at is None or read_at == self.read_at:
            return  # the same view as last time: nothing was read, so nothing joined
        delta = delta_of(rows, self._rendered_view) if self.rendered is not None else None
        if delta is None:
            latencies = join_latencies(self.rendered, self.read_at, rows, rendered_at)
            self.rendered = {str(m.get("uuid")) for m in rows}
        else:  # only the rows that came can be new members (a changed member is one that went and came)
            assert self.rendered is not None
            removed, added = delta
            latencies = join_latencies(self.rendered, self.read_at, added, rendered_at)
            self.rendered.difference_update(str(m.get("uuid")) for m in removed)
            self.rendered.update(str(m.get("uuid")) for m in added)
        for seconds in latencies:
            self.join.observe(seconds)
        self._rendered_view = rows
        self.read_at = read_at
