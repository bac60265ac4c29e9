"""``scale N`` lowering the count on the local cloud, under real systemd: the provisioner picks the idle agent
(from the members' ``load`` in ZooKeeper), removes exactly that instance through the AS service, and the busy
agents keep their running stand-in tasks.

One master and three agents; a stand-in framework runs ``sleep`` tasks on the two newest agents, so the AS
group's own policy (newest first) and ``scale``'s fallback without loads would both pick a busy one: only the
victim choice by load picks the idle, oldest one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision_min.local.as_host import HOOK_TIMEOUT_ENV
from tests.support.local_cloud import LocalCloud, by_name, ready_names, torn_down
from tests.support.mesos_framework import MesosFramework
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("containers_required")


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"si-{os.getpid()}", env={HOOK_TIMEOUT_ENV: "300"})
    cloud.write(masters=1, desired=3)
    with torn_down(cloud):
        yield cloud


def test_scale_in_removes_the_idle_agent_and_keeps_the_busy_ones_working(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.ok("up")
    nodes = by_name(cloud.status())
    master_ip = nodes[f"{c}-master-1"]["ip"]
    busy = [f"{c}-agent-2", f"{c}-agent-3"]
    with MesosFramework(f"{master_ip}:5050", name="scale-in-test") as framework:
        framework.subscribe(timeout=30)
        tasks = {name: framework.launch_sleep(600, ip=nodes[name]["ip"], timeout=60) for name in busy}
        for task in tasks.values():
            framework.wait_state(task, "TASK_RUNNING", timeout=60)

        def loads_reported() -> bool:
            members = {n["name"]: n["member"] for n in cloud.status()["nodes"] if n["member"]}
            return all((members.get(name) or {}).get("load", {}) and members[name]["load"]["tasks"] >= 1
                       for name in busy)

        wait_for("the busy agents to report their tasks in their load", loads_reported, timeout=180)

        started = time.monotonic()
        result = cloud.ok("scale", "2", timeout=900)
        seconds = time.monotonic() - started

        assert f"removing {c}-agent-1" in result.stderr and ": idle" in result.stderr, result.stderr[-3000:]
        assert f"{c}-agent-1" in result.stderr and "clean drain after" in result.stderr, result.stderr[-3000:]
        assert "desired 3 -> 2" in result.stdout
        report = cloud.status()
        assert ready_names(report) == {f"{c}-master-1", *busy}, report
        assert all(framework.state(task) == "TASK_RUNNING" for task in tasks.values())  # nothing was killed
        print(f"\nscale-in of an idle agent: {seconds:.1f} s from the command to the instance gone")


def test_a_changed_setting_replaces_the_agents_through_their_drain(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.write(masters=1, desired=2)
    cloud.ok("up")
    before = {n["name"]: n["uuid"] for n in cloud.status()["nodes"] if n["role"] == "agent"}
    assert sorted(before) == [f"{c}-agent-1", f"{c}-agent-2"]
    cloud.config.write_text(cloud.config.read_text() + "drain: {grace: 600, stop_timeout: 120}\n")

    result = cloud.ok("up", timeout=1200)

    assert "new AS configuration (user-data: drain)" in result.stderr, result.stderr[-3000:]
    report = cloud.status()
    agents = {n["name"]: n["uuid"] for n in report["nodes"] if n["role"] == "agent"}
    assert len(agents) == 2 and not set(agents.values()) & set(before.values()), report
    assert report["complete"], report
    assert "clean drain after" in result.stderr, result.stderr[-3000:]
