"""The landing page at 1,000 members, as a person sees it (issue 17, "capacity at a glance"): headless Chromium
(Debian's) against the real nginx of a master daemon whose real ZooKeeper holds 1,000 synthetic agents, and the
layout checked from the screenshot's pixels, not only from the text: the page's height stays bounded, the totals
block is at the top, the members' table never runs wider than the window (even for a 400-character reason)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl
from PIL import Image

from bootstrap_agent.capacity import Capacity
from bootstrap_agent.cluster import AUTH_USER, ClusterPaths
from bootstrap_agent.member import Member
from bootstrap_agent.sizes import GiB
from tests.support.daemon_node import DASHBOARD_AUTH, MASTER_IP, SECRET, DaemonNode
from tests.support.netns import TestNode
from tests.test_dashboard_browser import CHROMIUM, browse

AGENTS = 1000
WIDTH, TALL = 1200, 12000  # a window taller than any bounded page: the screenshot shows the whole page
TOTALS_BACKGROUND = (246, 246, 246)  # #f6f6f6 (dashboard_style.html.j2)
ROW_BORDER = (221, 221, 221)  # #ddd: the line under each table row
LONG_REASON = "mesos-agent-not-listening-" + "x" * 380  # no space to break at


def synthetic(index: int) -> Member:
    degraded = index % 50 == 7
    return Member(uuid=f"cap-{index:05d}", role="agent", ip=f"10.89.{index // 250}.{1 + index % 250}",
                  hostname=("a-very-long-host-name-label-of-sixty-characters-for-the-layout." if index == 7 else "")
                  + f"agent-{index:05d}.eu-de-02.compute.internal", state="degraded" if degraded else "ready",
                  reason=LONG_REASON if index == 7 else ("alluxio-worker: failed" if degraded else ""),
                  services={"alluxio-job-worker": "active", "alluxio-worker": "active", "mesos-agent": "active",
                            "spark-shuffle": "active"},
                  since=time.time() - 37 * index, capacity=Capacity(16, 64 * GiB, 20 * GiB))


@contextlib.contextmanager
def members_written(net: TestNode, count: int) -> Iterator[None]:
    """``count`` synthetic agents as ephemeral member znodes of a writer session holding the cluster secret."""
    paths = ClusterPaths("eo-live")
    client = KazooClient(hosts=f"{MASTER_IP}:2181", timeout=30.0,
                         default_acl=[make_digest_acl(AUTH_USER, SECRET, all=True)],
                         auth_data=[("digest", f"{AUTH_USER}:{SECRET}")])
    net.call(client.start, 30)
    try:
        client.ensure_path(paths.node("x").rsplit("/", 1)[0])
        pending = [client.create_async(paths.node(m.uuid), m.to_json(), ephemeral=True)
                   for m in map(synthetic, range(count))]
        for result in pending:
            result.get(timeout=60)
        yield
    finally:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()


def shot(net: TestNode, url: str, path: Path) -> Image.Image:
    browse(net, url, screenshot=str(path), flags=[f"--window-size={WIDTH},{TALL}"])
    return Image.open(path).convert("RGB")


def drawn(image: Image.Image) -> tuple[int, int, int, int]:
    """The box around everything that is not white (left, top, right, bottom)."""
    box = image.convert("L").point(lambda p: 255 if p < 250 else 0).getbbox()
    assert box is not None, "a blank page"
    return box


def rows_with(image: Image.Image, colour: tuple[int, int, int], share: float) -> list[int]:
    """The y of every pixel row in which at least ``share`` of the width is ``colour``."""
    width, height = image.size
    data = image.tobytes()
    wanted = bytes(colour)
    found = []
    for y in range(height):
        line = data[y * width * 3:(y + 1) * width * 3]
        if sum(1 for x in range(0, width * 3, 3 * 4) if line[x:x + 3] == wanted) >= share * width / 4:
            found.append(y)
    return found


def runs(ys: list[int]) -> int:
    """How many separate lines (runs of adjacent rows) ``ys`` holds."""
    return sum(1 for i, y in enumerate(ys) if i == 0 or y != ys[i - 1] + 1)


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("BA_REQUIRE_NETNS") != "1",
                    reason="Debian's chromium is not installed")
def test_a_thousand_members_stay_readable_in_the_browser(cluster: Callable[..., DaemonNode], tmp_path: Path) -> None:
    net: TestNode = cluster.net  # type: ignore[attr-defined]
    master = cluster("master", MASTER_IP).start()
    master.wait_for("ZooKeeper up", lambda: master.status().get("state") in ("ready", "degraded"), timeout=60)
    with members_written(net, AGENTS):
        def listed() -> dict[str, object] | None:
            answer = net.https_get(f"https://{MASTER_IP}/status.json", auth=DASHBOARD_AUTH)
            doc = json.loads(answer.body) if answer.status == 200 else None
            return doc if doc and doc["totals"]["agents"] == AGENTS else None

        doc = master.wait_for("1,000 agents rendered", listed, timeout=120)
        assert doc["totals"]["cpus"] == 16 * AGENTS and doc["totals"]["by_state"]["degraded"]["agents"] == 20
        auth = "{}:{}@".format(*DASHBOARD_AUTH)

        # The landing page: short, the totals block first, no member table of a thousand rows.
        index = shot(net, f"https://{auth}{MASTER_IP}/", tmp_path / "index.png")
        _left, _top, right, bottom = drawn(index)
        assert bottom < 2500, f"the landing page is {bottom} px high at {AGENTS} members"
        assert right <= WIDTH - 16, "the landing page runs wider than the window"
        totals = rows_with(index, TOTALS_BACKGROUND, 0.2)
        assert totals and totals[0] < 200, "the totals block is not at the top"
        assert totals[-1] - totals[0] < 250 and runs(totals) == 1  # one compact block
        dom = browse(net, f"https://{auth}{MASTER_IP}/")
        pages = re.findall(r'href="(/members/\d+\.html)"', dom)
        assert 10 <= len(pages) <= 20, pages
        assert "<th>all agents</th>" in dom and ">16000<" in dom

        # The page holding the member with the 400-character reason: bounded, one line per row, no overflow.
        holder = next(p for p in pages if b"cap-00007" in net.https_get(f"https://{MASTER_IP}{p}",
                                                                        auth=DASHBOARD_AUTH).body)
        page = shot(net, f"https://{auth}{MASTER_IP}{holder}", tmp_path / "page.png")
        _left, top, right, bottom = drawn(page)
        assert right <= WIDTH - 16, f"the members' table runs to x={right} in a {WIDTH} px window"
        assert 1500 < bottom < 9000, f"a page of at most 100 agents is {bottom} px high"
        lines = runs(rows_with(page, ROW_BORDER, 0.6))
        rows = len(re.findall(r'class="member"', net.https_get(f"https://{MASTER_IP}{holder}",
                                                                auth=DASHBOARD_AUTH).body.decode()))
        assert rows <= 100 and lines >= rows, (lines, rows)  # every row drawn as a table row across the width
        assert (bottom - top) / rows < 90, "rows grew tall: something does not wrap as it should"
