"""The scaler's samples from a real (stand-in) Mesos cluster: the leading master found among several addresses,
allocation from ``/metrics/snapshot``, a framework that waits with nothing while no offer is out counted as
starving; and the agents' member znodes as the scaler reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.drain.report import Load
from bootstrap_agent.member import Member
from bootstrap_agent.scaler.signals import smooth
from bootstrap_agent.scaler.sources import MesosSignals, agents_from_members, capacity_from_master_info
from tests.support.mesos_framework import MesosFramework
from tests.support.waiting import wait_for


def test_samples_follow_the_allocation_and_see_a_starving_framework(mesos: Any, tmp_path: Path) -> None:
    cluster = mesos()
    leader = cluster.master("127.0.0.31")
    cluster.agent("127.0.0.41", "agent-41", resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    signals = MesosSignals(["127.0.0.1:9", leader])  # a dead address first: skipped
    assert signals.leader() == leader
    idle = signals(100.0)
    assert (idle.cpus_total, idle.mem_total, idle.allocation, idle.frameworks_starved) == (2, 1024, 0, 0)

    with MesosFramework(leader, name="busy") as busy, MesosFramework(leader, name="waiting") as waiting:
        busy.subscribe(timeout=10)
        task = busy.launch_sleep(cluster.token(120), hostname="agent-41", cpus=2, mem=1024, timeout=15)
        busy.wait_state(task, "TASK_RUNNING", timeout=15)
        waiting.subscribe(timeout=10)
        full = wait_for("the waiting framework counted as starving",
                        lambda: s if (s := signals(200.0)).frameworks_starved == 1 else None, timeout=15)
        assert full.allocation == pytest.approx(1.0) and full.outstanding_offers == 0
        assert full.frameworks_active == 2
        busy.kill(task)
        busy.wait_state(task, "TASK_KILLED", timeout=15)
        freed = wait_for("offers again", lambda: s if (s := signals(300.0)).outstanding_offers else None, timeout=15)
        smoothed = smooth([freed], 300.0, 60)
        assert freed.allocation == 0 and smoothed is not None and not smoothed.starved  # an offer is out


def test_no_leader_is_one_line() -> None:
    with pytest.raises(OSError, match=r"no leading Mesos master among 127\.0\.0\.1:9"):
        MesosSignals(["127.0.0.1:9"], timeout=0.5)(0.0)


def test_members_as_the_scaler_reads_them() -> None:
    def member(uuid: str, state: str, load: Load | None, role: str = "agent") -> Member:
        return Member(uuid, role, "10.0.0.20", "h", state, "", {}, 0.0, load)

    views = agents_from_members([
        member("a", "ready", Load(tasks=0, frameworks=0, cache_bytes=5, unpersisted_bytes=None)),
        member("b", "draining", Load(tasks=1, frameworks=1, cache_bytes=0, unpersisted_bytes=3)),
        member("c", "starting", None),
        member("m", "ready", None, role="master"),
    ])
    assert sorted(views) == ["a", "b", "c"]
    assert views["a"].ready and views["a"].tasks == 0 and views["a"].cache_bytes == 5
    assert views["b"].removing and views["b"].unpersisted_bytes == 3
    assert not views["c"].ready and views["c"].tasks is None  # unknown load: never a victim


def test_alluxio_capacity_from_the_master_info() -> None:
    assert capacity_from_master_info({"capacity": {"total": 100, "used": 40}}) == (40, 100)
    assert capacity_from_master_info({"capacity": {"total": "x"}}) is None
    assert capacity_from_master_info({}) is None
