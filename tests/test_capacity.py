"""Capacity at a glance (issue 17): a member's CPUs, memory and Alluxio RAM, the cluster's totals, how people
read them, and the landing page that stays readable at 1,000 members (groups, totals on top, agents' pages that
a join changes one at a time). Pure: no ZooKeeper, no nginx (the browser test shows the pages for real)."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from bootstrap_agent.capacity import (
    Capacity,
    human_bytes,
    human_duration,
    node_capacity,
    totals,
    totals_line,
)
from bootstrap_agent.desired import Peers
from bootstrap_agent.member import Member, PeerInvalid
from bootstrap_agent.node_paths import DASHBOARD_INDEX, DASHBOARD_STATUS
from bootstrap_agent.plan import member_overview, plan
from bootstrap_agent.plan.member_overview import overview
from bootstrap_agent.plan.member_pages import PAGE_SIZE, Pager
from bootstrap_agent.plan.memory import agent_memory
from bootstrap_agent.schema import validate
from bootstrap_agent.sizes import GiB
from tests.test_plan import MASTER_IP, facts, user_data

NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def fresh_pager(monkeypatch: pytest.MonkeyPatch) -> None:
    """plan()'s pager is the process' (a daemon's page boundaries live as long as it): each test gets its own."""
    monkeypatch.setattr(member_overview, "PAGER", Pager())
CAP = {"cpus": 8, "memory_bytes": 32 * GiB, "alluxio_bytes": 9 * GiB}


def agent(i: int, state: str = "ready", **extra: Any) -> dict[str, Any]:
    """A synthetic agent member as the member cache hands it out (``dataclasses.asdict(Member)``)."""
    return {"uuid": f"u-{i:05d}", "role": "agent", "ip": f"10.20.{i // 250}.{i % 250 + 2}",
            "hostname": f"agent-{i:05d}", "state": state, "reason": "", "since": NOW - 60 * i,
            "services": {"alluxio-worker": "active", "mesos-agent": "active", "spark-shuffle": "active"},
            "load": None, "drain": None, "capacity": dict(CAP), **extra}


def master(i: int) -> dict[str, Any]:
    return {"uuid": f"m-{i}", "role": "master", "ip": f"10.20.0.{200 + i}", "hostname": f"master-{i}",
            "state": "ready", "reason": "", "since": NOW - 7200, "services": {"zookeeper": "active"}, "load": None,
            "drain": None, "capacity": {"cpus": 4, "memory_bytes": 16 * GiB, "alluxio_bytes": 0}}


def view(members: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The member cache's order: masters first, then by address as text, then uuid."""
    return tuple(sorted(members, key=lambda m: (m["role"] != "master", m["ip"], m["uuid"])))


# --- the figures -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "0 s"), (0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3 * 60 + 59, "3 min"), (3599, "59 min"),
    (7200, "2 h"), (86399, "23 h"), (86400 * 5 + 10, "5 d"),
])
def test_time_in_state_reads_as_people_say_it(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(("size", "text"), [
    (0, "0"), (512, "512 B"), (512 << 20, "512 MiB"), (int(15.6 * GiB), "15.6 GiB"), (32 * GiB, "32 GiB"),
    (8000 * GiB, "7.8 TiB"), (250 << 40, "250 TiB"),
])
def test_sizes_read_in_binary_units(size: int, text: str) -> None:
    assert human_bytes(size) == text


def test_totals_count_agents_in_all_and_by_state() -> None:
    members = [master(1), agent(1), agent(2), agent(3, "degraded"), agent(4, "draining"),
               agent(5, capacity=None), agent(6, capacity={"cpus": "lots"})]
    summary = totals(members)
    assert summary["masters"] == 1 and summary["agents"] == 6 and summary["unreported"] == 2
    assert (summary["cpus"], summary["memory_bytes"], summary["alluxio_bytes"]) == (32, 128 * GiB, 36 * GiB)
    assert summary["by_state"]["ready"] == {"agents": 4, "cpus": 16, "memory_bytes": 64 * GiB,
                                            "alluxio_bytes": 18 * GiB}
    assert summary["by_state"]["degraded"]["cpus"] == 8 and summary["by_state"]["bootstrapping"]["agents"] == 0
    line = totals_line(summary)
    assert line.startswith("6 agent(s): 32 CPUs, 128 GiB memory, 36 GiB Alluxio RAM; ready 4: 16 CPUs")
    assert line.endswith("2 agent(s) report no capacity")


def test_an_agent_reports_its_facts_and_the_plans_alluxio_ram_disk() -> None:
    settings = validate(user_data("agent"))
    node = facts(memory=32 * GiB, cpus=8)
    assert node_capacity(settings, node) == Capacity(8, 32 * GiB, agent_memory(settings, node).ramdisk)
    assert node_capacity(settings, node).alluxio_bytes > 0
    assert node_capacity(validate(user_data("agent", alluxio=None)), node).alluxio_bytes == 0
    assert node_capacity(validate(user_data("master")), facts(ip=MASTER_IP)) == Capacity(8, 32 * GiB, 0)


# --- the member parser ---------------------------------------------------------------------------------------------

BODY = {"uuid": "u-1", "role": "agent", "ip": "10.20.0.31", "hostname": "a1", "state": "ready", "reason": "",
        "services": {"mesos-agent": "active"}, "since": NOW, "capacity": dict(CAP)}


def parse(body: dict[str, Any]) -> Member:
    return Member.from_json("u-1", json.dumps(body).encode(), cluster_ips_ok=lambda ip: True)


def test_member_round_trips_its_capacity_and_old_members_keep_their_bytes() -> None:
    member = parse(BODY)
    assert member.capacity == Capacity(8, 32 * GiB, 9 * GiB)
    assert json.loads(member.to_json()) == BODY
    old = {k: v for k, v in BODY.items() if k != "capacity"}
    assert parse(old).capacity is None and json.loads(parse(old).to_json()) == old


@pytest.mark.parametrize(("value", "words"), [
    ([], "capacity [] is not an object"),
    ({"memory_bytes": 1, "alluxio_bytes": 0}, "capacity.cpus None"),
    ({**CAP, "cpus": 0}, "capacity.cpus 0"),
    ({**CAP, "cpus": 2.5}, "capacity.cpus 2.5"),
    ({**CAP, "cpus": True}, "capacity.cpus True"),
    ({**CAP, "cpus": 10**9}, "capacity.cpus"),
    ({**CAP, "memory_bytes": "32GB"}, "capacity.memory_bytes '32GB'"),
    ({**CAP, "memory_bytes": -1}, "capacity.memory_bytes -1"),
    ({**CAP, "alluxio_bytes": -1}, "capacity.alluxio_bytes -1"),
    ({**CAP, "alluxio_bytes": 64 * GiB}, "within the memory"),
])
def test_garbage_capacity_is_refused_in_one_line(value: Any, words: str) -> None:
    with pytest.raises(PeerInvalid) as caught:
        parse({**BODY, "capacity": value})
    assert words in str(caught.value) and "\n" not in str(caught.value)


# --- the landing page at 1,000 members -----------------------------------------------------------------------------

def thousand() -> tuple[dict[str, Any], ...]:
    return view([master(i) for i in range(3)] + [agent(i, "degraded" if i % 97 == 0 else "ready")
                                                  for i in range(997)])


def rows(text: str) -> list[str]:
    return re.findall(r'<tr class="member" data-uuid="([^"]+)"', text)


def test_a_thousand_members_render_as_bounded_pages_with_totals_on_top() -> None:
    members = thousand()
    data = user_data("master", dashboard={"password_hash": "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"})
    rendered = plan(validate(data), facts(ip=MASTER_IP), Peers(members, read_at=NOW))
    index = rendered.file(DASHBOARD_INDEX).content.decode()
    pages = {f.path: f.content.decode() for f in rendered.files if "/www/members/" in f.path}
    assert len(pages) == 14  # 997 agents, 100 a page at most, cut at 75 a page at first (room for joins)
    seen: list[str] = []
    for text in pages.values():
        listed = rows(text)
        assert 0 < len(listed) <= PAGE_SIZE and len(text) < 60_000  # each page's size is bounded
        seen += listed
    assert sorted(seen) == sorted(m["uuid"] for m in members if m["role"] == "agent")  # each agent once
    # The landing page: totals first (before links, groups and rows), groups with counts, masters' rows only.
    assert len(index) < 20_000 and rows(index) == ["m-0", "m-1", "m-2"]
    assert index.index('id="totals"') < index.index("/mesos/") < index.index('id="groups"') < index.index(
        'id="pages"')
    totals_block = index[index.index('id="totals"'):index.index("</table>", index.index('id="totals"'))]
    assert "<th>all agents</th><td class=\"n\">997</td><td class=\"n\">7976</td>" in totals_block
    assert "<th>degraded</th><td class=\"n\">11</td>" in totals_block
    assert '<td>agent</td><td class="degraded">degraded</td><td class="n">11</td>' in index
    assert all(f'href="/members/{path.rsplit("/", 1)[1]}"' in index for path in pages)
    status = json.loads(rendered.file(DASHBOARD_STATUS).content)
    assert status["totals"]["agents"] == 997 and status["totals"]["by_state"]["ready"]["agents"] == 986
    assert status["members"][5]["capacity"] == CAP


def test_a_page_shows_capacity_and_time_in_state_escaped() -> None:
    pager = Pager()
    odd = agent(1, "degraded", reason="<script>alert(1)</script>", since=NOW - 3 * 3600 - 5)
    page = pager.pages("c", view([master(1), odd]), NOW)[0]
    assert "3 h</td><td class=\"n\">8</td><td class=\"n\">32 GiB</td><td class=\"n\">9 GiB</td>" in page.rows
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def files_of(pager: Pager, members: tuple[dict[str, Any], ...], now: float = NOW) -> dict[str, bytes]:
    return {f.path: f.content for f in overview("c", members, now, pager).files}


def test_a_join_or_leave_renders_one_page_and_the_totals_not_every_page() -> None:
    pager = Pager()
    agents = [agent(i) for i in range(1000)]
    before = files_of(pager, view(agents))
    renders = {p.id: p.renders for p in pager.pages("c", view(agents), NOW)}
    assert len(before) == 14

    joined = view([*agents, agent(5000, ip="10.20.1.3", uuid="u-new")])  # lands amid the second page
    after = files_of(pager, joined, NOW + 1)
    changed = [path for path in after if after[path] != before.get(path)]
    assert len(changed) == 1 and b"u-new" in after[changed[0]]
    assert sum(p.renders - renders[p.id] for p in pager.pages("c", joined, NOW + 1)) == 1
    index = overview("c", joined, NOW + 1, pager).members
    assert "(1001)" in index

    left = view([a for a in agents if a["uuid"] != "u-00900"])  # the new one and u-00900 gone
    again = files_of(pager, left, NOW + 2)
    assert sum(again[path] != after[path] for path in again) == 2


def test_a_full_page_splits_and_only_it_and_its_neighbours_change() -> None:
    pager = Pager(page_size=10)
    agents = [agent(i, ip=f"10.20.0.{2 * i + 2}") for i in range(24)]  # gaps between the addresses
    before = files_of(pager, view(agents))
    assert len(before) == 4  # 7, 7, 7 and 3: the first cut leaves room
    grown = view([*agents, *(agent(200 + i, ip=f"10.20.0.{2 * i + 3}", uuid=f"u-fill{i}") for i in range(3))])
    before = files_of(pager, grown)  # the first page is full now (10)
    agents = list(grown)
    grown = view([*agents, agent(100, ip="10.20.0.5", uuid="u-split")])  # into the full first page
    after = files_of(pager, grown, NOW + 1)
    assert len(after) == 5  # the first page split in two
    changed = [path for path in after if after[path] != before.get(path)]
    assert len(changed) == 3  # the page that split, the new page, and the next page's "previous" link
    assert sum(b"u-split" in after[path] for path in changed) == 1
    assert len([path for path in after if after[path] == before.get(path)]) == 2  # the others: untouched


def test_pages_that_merge_away_leave_a_note_not_stale_rows() -> None:
    pager = Pager(page_size=10)
    agents = [agent(i) for i in range(30)]
    first = files_of(pager, view(agents))
    shrunk = files_of(pager, view(agents[:12]), NOW + 1)
    gone = [path for path in shrunk if b"no longer exists" in shrunk[path]]
    assert gone and set(shrunk) == set(first)  # every file once installed is still written
    assert all(b"u-000" not in shrunk[path] for path in gone)
    single = overview("c", view(agents[:5]), NOW + 2, pager)
    assert rows(single.members) == [a["uuid"] for a in agents[:5]]  # one page: the rows are on the landing page
    assert all(b"no longer exists" in f.content for f in single.files)


def test_times_in_state_are_refreshed_one_stale_page_a_pass() -> None:
    pager = Pager(refresh=60)
    members = view([agent(i) for i in range(300)])
    pages = pager.pages("c", members, NOW)
    counts = [p.renders for p in pages]
    assert [p.renders for p in pager.pages("c", members, NOW + 30)] == counts  # idle, fresh: nothing rendered
    later = pager.pages("c", members, NOW + 61)
    assert sum(p.renders for p in later) == sum(counts) + 1
    assert "as of 2027-01-15 08:01:01 UTC" in next(p.text for p in later if p.as_of == NOW + 61)


def test_a_burst_of_joins_is_cut_into_bounded_pages_in_address_order() -> None:
    pager = Pager()
    pager.pages("c", view([agent(i) for i in range(3)]), NOW)  # one small page first
    pages = pager.pages("c", view([agent(i) for i in range(1000)]), NOW + 1)
    assert len(pages) == 14 and all(0 < len(p.members) <= PAGE_SIZE for p in pages)
    listed = [m["uuid"] for p in pages for m in p.members]
    assert listed == [f"u-{i:05d}" for i in range(1000)]  # by address as people read it (.9 before .10)


def test_a_small_cluster_keeps_its_rows_on_the_landing_page() -> None:
    members = view([master(1), *(agent(i) for i in range(40))])
    rendered = plan(validate(user_data("master")), facts(ip=MASTER_IP), Peers(members, read_at=NOW))
    index = rendered.file(DASHBOARD_INDEX).content.decode()
    assert len(rows(index)) == 41 and 'id="pages"' not in index
    assert not [f for f in rendered.files if "/www/members/" in f.path]


def test_pages_stay_whole_ordered_and_bounded_through_random_joins_and_leaves() -> None:
    """Whatever joins and leaves in whatever bursts: every agent on exactly one page, pages in address order,
    none past the size, none empty (unless there are no agents)."""
    rng = random.Random(17)
    pager = Pager(page_size=10)
    present: dict[int, dict[str, Any]] = {}
    for step in range(300):
        for _ in range(rng.choice((1, 1, 1, 5, 40))):
            i = rng.randrange(400)
            if i in present and rng.random() < 0.6:
                del present[i]
            else:
                present[i] = agent(i, state=rng.choice(("ready", "degraded")))
        pages = pager.pages("c", view(list(present.values())), NOW + step)
        listed = [m["uuid"] for p in pages for m in p.members]
        assert listed == [f"u-{i:05d}" for i in sorted(present)], step
        assert all(len(p.members) <= 10 for p in pages)
        assert all(p.members for p in pages) or (len(pages) == 1 and not present)
        assert len({p.id for p in pages}) == len(pages)
