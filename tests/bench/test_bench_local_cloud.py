"""Figures of the local cloud: time to a ready 1 + 2 cluster, time per agent added, memory per node.

Run: ``python3 -m pytest tests/bench/test_bench_local_cloud.py -m bench -s`` (as root; ~2 min with a cached
image; the cluster file of the end-to-end tests: docker, the shuffle service and RAM folders on agents).
``BA_BENCH_COLD=1`` adds a cluster whose image is built from nothing in a temporary cache (debootstrap
from the Debian mirror: several minutes).

The floor, measured in the same run: one bare boot of the same node image to ``running`` with the agent masked
(systemd, networkd and nginx only), on a test bridge: what any container of this image costs before the agent
does anything. Times are reported with their ratio to it. Memory: the machine's used memory (``MemTotal -
MemAvailable``) before ``up`` and with the cluster ready, per node; and each node's resident set (its cgroup's
processes, shared pages counted per node, so an upper bound).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from image.local import CACHE_ROOT_ENV, LocalBuilder
from tests.support.container import Container, TestNetwork
from tests.support.local_cloud import LocalCloud

pytestmark = [pytest.mark.bench, pytest.mark.usefixtures("containers_required")]

def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\nBENCH {name} " + json.dumps(figures), flush=True)


def used_mib() -> float:
    memory = psutil.virtual_memory()
    return (memory.total - memory.available) / 2**20


def timed(cloud: LocalCloud, *args: str) -> float:
    started = time.monotonic()
    cloud.ok(*args, timeout=1800)
    return time.monotonic() - started


def bare_boot_seconds(image: Path) -> float:
    """The floor: the image booted to ``running`` with bootstrap-agent masked."""
    with TestNetwork("10.231.250.0/24") as net:
        node = Container(image, network=net, ip="10.231.250.10",
                         boot_args=["systemd.mask=bootstrap-agent.service"])
        try:
            node.start()
            assert node.boot_seconds is not None
            return node.boot_seconds
        finally:
            node.stop()


def test_bench_local_cloud(tmp_path: Path) -> None:
    image = LocalBuilder().build()  # cached (or built now, outside the timings)
    floor = bare_boot_seconds(image.path)
    cloud = LocalCloud(tmp_path, f"bench-{os.getpid()}")
    before = used_mib()
    try:
        up = timed(cloud, "up")
        status = cloud.status()
        assert status["complete"], status
        ready_used = used_mib()
        rss = {n["role"]: round(n["memory_rss_bytes"] / 2**20, 1) for n in status["nodes"]}
        one = timed(cloud, "scale", "3")
        two = timed(cloud, "scale", "5")
        five_used = used_mib()
        assert cloud.status()["complete"]
    finally:
        cloud.run("down", "--yes")
    report("local_cloud", {
        "floor_bare_boot_s": round(floor, 2),
        "up_1_master_2_agents_cached_image_s": round(up, 2), "up_ratio_to_floor": round(up / floor, 2),
        "scale_2_to_3_s": round(one, 2), "scale_3_to_5_s": round(two, 2),
        "per_agent_added_s": round(two / 2, 2), "per_agent_ratio_to_floor": round(two / 2 / floor, 2),
        "machine_used_mib_per_node_3_nodes": round((ready_used - before) / 3, 1),
        "machine_used_mib_per_node_6_nodes": round((five_used - before) / 6, 1),
        "rss_mib_master": rss.get("master"), "rss_mib_agent": rss.get("agent"),
    })


@pytest.mark.skipif(os.environ.get("BA_BENCH_COLD") != "1", reason="BA_BENCH_COLD=1: a cold image build")
def test_bench_local_cloud_cold_image(tmp_path: Path) -> None:
    cache = Path(tempfile.mkdtemp(prefix="ba-bench-image-cache-", dir="/var/tmp"))
    cloud = LocalCloud(tmp_path, f"cold-{os.getpid()}", env={CACHE_ROOT_ENV: str(cache)})
    try:
        up = timed(cloud, "up")
        assert cloud.status()["complete"]
    finally:
        cloud.run("down", "--yes")
        subprocess.run(["rm", "-rf", "--one-file-system", str(cache)], check=False)
    assert not cache.exists() or not any(cache.iterdir())
    shutil.rmtree(cache, ignore_errors=True)
    report("local_cloud_cold", {"up_1_master_2_agents_cold_image_s": round(up, 1)})
