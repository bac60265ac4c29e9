"""Figures of the local cloud: time to a ready 1 + 2 cluster, time per agent added, memory per node.

Run: ``python3 -m pytest tests/bench/test_bench_local_cloud.py -m bench -s`` (as root; ~2 min with a cached
image). ``BA_BENCH_COLD=1`` adds a cluster whose image is built from nothing in a temporary cache (debootstrap
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from image.local import CACHE_ROOT_ENV, LocalBuilder
from provision_min.local.layout import STATE_ROOT_ENV
from tests.support.container import Container, TestNetwork

pytestmark = [pytest.mark.bench, pytest.mark.usefixtures("containers_required")]

CLUSTER_FILE = """\
cluster: {cluster}
region: eu-de
availability_zone: eu-de-02
vpc_cidr: 192.168.0.0/16
subnet_cidr: 192.168.0.0/24
masters: 1
master_flavor: s3.xlarge.4
agent_flavor: s3.2xlarge.8
image_id: 00000000-0000-0000-0000-000000000000
key_name: my-keypair
agents: {{min: 1, max: 6, desired: 2}}
mesos: {{version: "1.11", containerizers: [mesos]}}
alluxio: {{version: "2.9", root_ufs: "s3://eo-data/alluxio", worker_ramdisk: 512MB}}
credentials: {{source: keys, access_key_id: EXAMPLEACCESSKEY0001, secret_access_key: bench-secret-key-000000000000}}
"""


def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\nBENCH {name} " + json.dumps(figures), flush=True)


def used_mib() -> float:
    memory = psutil.virtual_memory()
    return (memory.total - memory.available) / 2**20


class Cli:
    def __init__(self, folder: Path, cluster: str, env: dict[str, str] | None = None) -> None:
        self.config = folder / f"{cluster}.yaml"
        self.config.write_text(CLUSTER_FILE.format(cluster=cluster))
        self.env = {**os.environ, STATE_ROOT_ENV: str(folder / "state"), **(env or {})}

    def timed(self, *args: str) -> float:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "provision_min", *args, "--cloud", "local", "--config",
                                 str(self.config)], capture_output=True, text=True, env=self.env, timeout=1800,
                                check=False)
        seconds = time.monotonic() - started
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr[-3000:]}"
        return seconds

    def status(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "provision_min", "status", "--json", "--cloud", "local",
                              "--config", str(self.config)], capture_output=True, text=True, env=self.env,
                             timeout=120, check=False).stdout
        report: dict[str, Any] = json.loads(out)
        return report

    def down(self) -> None:
        subprocess.run([sys.executable, "-m", "provision_min", "down", "--cloud", "local", "--config",
                        str(self.config)], capture_output=True, env=self.env, timeout=600, check=False)


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
    cli = Cli(tmp_path, f"bench-{os.getpid()}")
    before = used_mib()
    try:
        up = cli.timed("up")
        status = cli.status()
        assert status["complete"], status
        ready_used = used_mib()
        rss = {n["role"]: round(n["memory_rss_bytes"] / 2**20, 1) for n in status["nodes"]}
        one = cli.timed("scale", "3")
        two = cli.timed("scale", "5")
        five_used = used_mib()
        assert cli.status()["complete"]
    finally:
        cli.down()
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
    cli = Cli(tmp_path, f"cold-{os.getpid()}", env={CACHE_ROOT_ENV: str(cache)})
    try:
        up = cli.timed("up")
        assert cli.status()["complete"]
    finally:
        cli.down()
        subprocess.run(["rm", "-rf", "--one-file-system", str(cache)], check=False)
    assert not cache.exists() or not any(cache.iterdir())
    shutil.rmtree(cache, ignore_errors=True)
    report("local_cloud_cold", {"up_1_master_2_agents_cold_image_s": round(up, 1)})
