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

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from bootstrap_agent.member import ROLES, STATES

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


class ClusterMetrics:
    """Registered into the node's registry the first time the node renders as a master."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Not "role"/"state": the discovery document's target labels already name the scraped node's role.
        self.members = Gauge("bootstrap_agent_cluster_members", "Members this master sees, by role and state",
                             ["member_role", "member_state"], registry=registry)
        self.join = Histogram("bootstrap_agent_member_join_rendered_seconds",
                              "From a new member's report (its since) to the end of the master's pass that "
                              "rendered it", buckets=JOIN_BUCKETS, registry=registry)
        self.rendered: set[str] | None = None
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
        listed = list(members)
        counts = {(role, state): 0 for role in ROLES for state in STATES}
        for member in listed:
            key = (str(member.get("role")), str(member.get("state")))
            if key in counts:
                counts[key] += 1
        for (role, state), count in counts.items():
            self.members.labels(role, state).set(count)
        if read_at is None or read_at == self.read_at:
            return  # the same view as last time: nothing was read, so nothing joined
        for seconds in join_latencies(self.rendered, self.read_at, listed, rendered_at):
            self.join.observe(seconds)
        self.rendered = {str(m.get("uuid")) for m in listed}
        self.read_at = read_at
