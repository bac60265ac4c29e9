"""A master's documents follow the member view's delta (``member_rows``, ``plan.fragments.Folded``): what a pass
derives from a view made from the last one by a few joins, leaves and changes is exactly what it would derive
from all the members anew, and it costs what changed, not the cluster's size (issue 17).

No ZooKeeper here: the views are made by the member cache's own bookkeeping (``member_rows.RowBook``: the
rows kept in order, each change a row that went and one that came, unchanged rows the very same objects);
tests/test_member_cache.py checks the cache's own views against a real ZooKeeper.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

from prometheus_client import CollectorRegistry

from bootstrap_agent.capacity import add_up, share
from bootstrap_agent.member_rows import MemberRows, RowBook
from bootstrap_agent.metrics_cluster import ClusterMetrics
from bootstrap_agent.plan.cluster_status import STATUS_SCHEMA, counts, iso_time, member_entry, status_document
from bootstrap_agent.plan.member_overview import overview
from bootstrap_agent.plan.member_pages import Pager
from bootstrap_agent.plan.scrape_targets import targets_document
from tests.test_cluster import member


def _reference_order(row: dict[str, Any]) -> tuple[bool, str, str]:
    return row["role"] != "master", str(row["ip"]), str(row["uuid"])


class Cache:
    """The member cache's bookkeeping without ZooKeeper (``member_rows.RowBook``, as ``zk.member_cache`` keeps
    it): ordered rows, and each new view with its delta."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.book = RowBook()
        for row in rows:
            self.book.place(None, row)
        self.view: MemberRows = self.book.view(None)
        self.rows = list(self.view)

    def place(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        self.book.place(old, new)

    def next_view(self) -> MemberRows:
        self.view = self.book.view(self.view)
        return self.view


def row(index: int, row_type: type[dict[str, Any]] = dict, **kw: Any) -> dict[str, Any]:
    role = "master" if index < 2 else "agent"
    cap = {"cpus": 4 + index % 3, "memory_bytes": 2**30 * (8 + index % 2), "alluxio_bytes": 2**29}
    fields = dataclasses.asdict(member(f"i-{index:05d}", role=role, ip=f"10.{index // 60000}.{index // 250 % 240}."
                                       f"{index % 250 + 1}", since=1700000000.0 + index, **kw))
    if role == "agent" and index % 7:
        fields["capacity"] = cap  # some agents report no capacity: "unreported" in the totals
    return row_type(fields)


def reference_status(members: tuple[dict[str, Any], ...], read_at: float) -> str:
    """status.json made the straightforward way from every member (no memo, no fold)."""
    entries = sorted((member_entry(m) for m in members), key=lambda e: (e["role"] != "master", e["ip"], e["uuid"]))
    document = {"schema": STATUS_SCHEMA, "cluster": "eo", "rendered_at": iso_time(read_at), "counts": counts(entries),
                "totals": add_up(map(share, members)), "members": entries}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def reference_targets(members: tuple[dict[str, Any], ...]) -> str:
    groups = [{"targets": [f"{m['ip']}:9110"], "labels": {"cluster": "eo", "role": m["role"], "uuid": m["uuid"],
                                                          "hostname": m["hostname"]}}
              for m in sorted(members, key=_reference_order) if m.get("ip")]
    return json.dumps(groups, indent=1, sort_keys=True) + "\n" if groups else "[]\n"


def pages_of(pager: Pager, members: tuple[dict[str, Any], ...], now: float) -> list[tuple[int, list[str]]]:
    return [(p.id, [m["uuid"] for m in p.members]) for p in pager.pages("eo", members, now)]


def samples(metrics: ClusterMetrics) -> list[tuple[str, dict[str, str], float]]:
    """The members by role and state and the join latencies' buckets (not the series' creation times)."""
    return [(s.name, s.labels, s.value) for f in [*metrics.members.collect(), *metrics.join.collect()]
            for s in f.samples if not s.name.endswith("_created")]


def test_documents_pages_and_metrics_folded_from_deltas_equal_those_made_anew() -> None:
    rng = random.Random(17)
    cache = Cache([row(i) for i in range(700)])
    folded_pager, whole_pager = Pager(), Pager()
    folded_metrics, whole_metrics = ClusterMetrics(CollectorRegistry()), ClusterMetrics(CollectorRegistry())
    present = {r["uuid"]: r for r in cache.rows}
    next_index = 700
    view: tuple[dict[str, Any], ...] = cache.view
    for step in range(60):
        read_at = 1700001000.0 + step
        # Each step a few joins (a burst now and then: pages split), leaves (pages merge) and state changes.
        burst = 150 if step % 20 == 5 else rng.randint(0, 3)
        for _ in range(burst):
            new = row(next_index)
            next_index += 1
            present[new["uuid"]] = new
            cache.place(None, new)
        for uuid in rng.sample(sorted(present), 120 if step % 20 == 12 else rng.randint(0, 3)):
            if uuid in ("i-00000", "i-00001"):
                continue
            cache.place(present.pop(uuid), None)
        for uuid in rng.sample(sorted(present), rng.randint(0, 2)):
            old = present[uuid]
            new = {**old, "state": rng.choice(["ready", "degraded", "draining"]), "reason": "x < y & z"}
            present[uuid] = new
            cache.place(old, new)
        view = cache.next_view()
        whole = tuple(view)  # a plain tuple: no delta, everything derived anew
        assert status_document("eo", view, read_at) == reference_status(whole, read_at), step
        assert targets_document("eo", view) == reference_targets(whole), step
        assert pages_of(folded_pager, view, read_at) == pages_of(whole_pager, whole, read_at), step
        folded_metrics.rendered_members(view, read_at, read_at + 0.5)
        whole_metrics.rendered_members(whole, read_at, read_at + 0.5)
        assert samples(folded_metrics) == samples(whole_metrics), step
    assert len(view) > 700  # the bursts grew the cluster past its start


class CountedRow(dict[str, Any]):
    """A member row that counts how often a renderer looks into it."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        CountedRow.reads += 1
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        CountedRow.reads += 1
        return super().__getitem__(key)


def test_a_join_costs_its_page_not_the_cluster() -> None:
    """After a join the renderers look into the rows of the joined member's page and a few page boundaries:
    not into every one of 5,000 members (before the view carried its delta: several reads of each)."""
    n = 5000
    cache = Cache([row(i, CountedRow) for i in range(n)])
    pager, metrics = Pager(), ClusterMetrics(CollectorRegistry())

    def render(view: tuple[dict[str, Any], ...], at: float) -> None:
        overview("eo", view, at, pager=pager)
        status_document("eo", view, at)
        targets_document("eo", view)
        metrics.rendered_members(view, at, at)

    render(cache.view, 1700001000.0)
    renders = {p.id: p.renders for p in pager.pages("eo", cache.view, 1700001000.0)}
    cache.place(None, row(n + 1, CountedRow))
    view = cache.next_view()
    CountedRow.reads = 0
    render(view, 1700001001.0)
    assert CountedRow.reads < n // 2, CountedRow.reads
    rendered = [p.id for p in pager.pages("eo", view, 1700001001.0) if p.renders != renders.get(p.id)]
    assert len(rendered) == 1  # the joined member's page only
    assert '"uuid": "i-05001"' in status_document("eo", view, 1700001001.0)
