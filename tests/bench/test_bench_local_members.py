"""A master at 1,000 / 5,000 / 10,000 members on the local cloud, measured from outside as a user would.

Run: ``python3 -m pytest tests/bench/test_bench_local_members.py -m bench -s`` (as root; boots one master and
one agent with ``provision-min up --cloud local``, ~3 min with a cached image, then ~5 min of measurements).
``BA_BENCH_SCALES=1000,5000`` picks other populations, ``BA_BENCH_SAMPLES=20`` the joins (and as many leaves)
at each; ``BA_BENCH_ASSERT=0`` reports without checking the aims.

What is measured (issue 17, point 4), all in one run against one cluster:

* **synthetic members**: valid ``nodes/<uuid>`` znodes (``Member.to_json``: agent, ready, a unique private
  address) created as ephemerals by a few ZooKeeper sessions of this machine, through the cluster's bridge,
  with the node credential from the operator's 0600 ``cloud.json`` and the ACL an agent gives its own member
  (``zk.acls.member``), exactly as ``bootstrap_agent.member`` registration writes them;
* **join/leave → visible**: one member is created (deleted); the time from ``create()`` (``delete()``)
  returning to the first poll of ``https://<master>/status.json`` (the dashboard's login, one keep-alive TLS
  connection, ``If-None-Match``: an unchanged document costs a 304) whose body lists (no longer lists) it.
  Polled every 10 ms. Nearest-rank percentiles;
* **the master's idle pass**: SIGHUP to the master's ``bootstrap-agent`` (the pass a tick runs, nothing
  changed), its duration from the master's own metrics (``bootstrap_agent_pass_duration_seconds{reason=
  "reload"}``: the sum's increase for one more count), scraped on port 9110 on the cluster network;
  with the daemon's CPU time per idle pass beside it (``process_cpu_seconds_total``: less sensitive to a
  loaded machine than the wall-clock duration; it includes the daemon's other threads meanwhile);
* **RSS** of the master's daemon: ``process_resident_memory_bytes`` of the same metrics, the largest seen;
* **ZooKeeper watch latency** in the same run and tree: client A's one-shot watch on ``nodes/`` (children) and
  on one member (data), client B creating a member / rewriting it.

The machine's load average goes with each scale (it is shared: other work inflates the tails).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from bootstrap_agent.zk import acls
from bootstrap_agent.zk.paths import AUTH_USER, ClusterPaths, ensemble
from provision_min.local.layout import CloudState, Paths
from tests.bench import test_bench_members as members_bench
from tests.bench.test_bench_cluster import ms, percentile, report
from tests.bench.test_bench_members import synthetic
from tests.support.local_cloud import LocalCloud, by_name, inside, torn_down
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.bench, pytest.mark.usefixtures("containers_required")]

SCALES = tuple(int(n) for n in os.environ.get("BA_BENCH_SCALES", "1000,5000,10000").split(","))
SAMPLES = int(os.environ.get("BA_BENCH_SAMPLES", "20"))
ASSERT = os.environ.get("BA_BENCH_ASSERT", "1") != "0"
WRITERS = 4
POLL_S = 0.01
IDLE_PASSES = 5
FLOOR_SAMPLES = 50
METRICS_PORT = 9110

_UUID_FIELD = re.compile(rb'"uuid": "([^"]+)"')


class StatusPoller:
    """``status.json`` through the master's nginx over HTTPS with the dashboard's login, as a browser or a
    script of the user would fetch it; the member uuids of the last body seen."""

    def __init__(self, ip: str, user: str, password: str) -> None:
        self.status = members_bench.StatusConnection(ip, user, password)
        self.etag = ""
        self.uuids: set[bytes] = set()
        self.fetches = 0

    def poll(self) -> float:
        status, body, etag = self.status.get({"If-None-Match": self.etag} if self.etag else None)
        now = time.perf_counter()
        if status == 200:
            self.fetches += 1
            self.etag = etag
            self.uuids = set(_UUID_FIELD.findall(body))
        elif status != 304:
            raise AssertionError(f"status.json: HTTP {status}")
        return now

    def wait(self, check: Callable[[set[bytes]], bool], timeout: float, what: str) -> float:
        """perf_counter of the first poll whose document satisfies ``check``."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.poll()
            if check(self.uuids):
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not visible in status.json within {timeout} s")
            time.sleep(POLL_S)

    def close(self) -> None:
        self.status.close()


class Metrics:
    """The master's Prometheus metrics, scraped as a Prometheus on the cluster network would."""

    def __init__(self, ip: str) -> None:
        self.url = f"http://{ip}:{METRICS_PORT}/metrics"
        self.rss_max = 0.0

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url, timeout=10) as response:
            text = response.read().decode()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        rss = samples.get(("process_resident_memory_bytes", ()), 0.0)
        self.rss_max = max(self.rss_max, rss)
        return samples

    def reload_passes(self) -> tuple[float, float]:
        """(count, sum of seconds) of the passes a SIGHUP ran."""
        samples = self.scrape()
        label = (("reason", "reload"),)
        return (samples.get(("bootstrap_agent_pass_duration_seconds_count", label), 0.0),
                samples.get(("bootstrap_agent_pass_duration_seconds_sum", label), 0.0))

    def cpu_seconds(self) -> float:
        return self.scrape().get(("process_cpu_seconds_total", ()), 0.0)

    def rss_mb(self) -> float:
        return self.scrape().get(("process_resident_memory_bytes", ()), 0.0) / 2**20


class Writers(members_bench.Writers):
    """A few sessions of this machine that own the synthetic members' ephemeral znodes (populate, join, leave
    and close as on loopback; the cluster's ensemble, credential and member ACL here)."""

    def __init__(self, state: CloudState) -> None:
        self.paths = ClusterPaths(state.cluster)
        self.hosts = ensemble([n.ip for n in state.masters()])
        self.secret = state.secret
        operator = acls.operator_id(state.operator_secret) if state.operator_secret else None
        # What an agent gives its own member znode (zk.session.member_acl): the node credential reads and writes.
        self.acl = acls.member(acls.node_id(state.secret), operator, split=operator is not None)
        self.clients: list[KazooClient] = []
        self.present: dict[int, KazooClient] = {}

    def client(self) -> KazooClient:
        client = KazooClient(hosts=self.hosts, timeout=30.0, default_acl=self.acl,
                             auth_data=[("digest", f"{AUTH_USER}:{self.secret}")])
        client.start(20)
        return client

    def connect(self) -> None:
        self.clients = [self.client() for _ in range(WRITERS)]


def _watch_sample(arm: Callable[..., Any], change: Callable[[], Any]) -> float:
    fired: list[float] = []
    arm(watch=lambda _event: fired.append(time.perf_counter()))
    started = time.perf_counter()
    change()
    deadline = time.monotonic() + 10
    while not fired:
        assert time.monotonic() < deadline, "watch did not fire within 10 s"
        time.sleep(0.0002)
    return fired[0] - started


def watch_floor(writers: Writers, base_index: int) -> dict[str, list[float]]:
    """ZooKeeper's own watch latency in the cluster's tree: B creates a member (A's children watch on
    ``nodes/``) or rewrites one (A's data watch on it). The members made are deleted again."""
    a, b = writers.client(), writers.client()
    nodes = writers.paths.nodes
    made: list[str] = []
    try:
        data_path = writers.paths.node(synthetic(base_index).uuid)
        b.create(data_path, synthetic(base_index).to_json(), ephemeral=True)
        made.append(data_path)
        children: list[float] = []
        data: list[float] = []
        for i in range(1, FLOOR_SAMPLES + 1):
            member = synthetic(base_index + i)
            path = writers.paths.node(member.uuid)
            children.append(_watch_sample(functools.partial(a.get_children, nodes),
                                          functools.partial(b.create, path, member.to_json(), ephemeral=True)))
            made.append(path)
            data.append(_watch_sample(functools.partial(a.get, data_path),
                                      functools.partial(b.set, data_path, synthetic(base_index).to_json())))
        return {"children": children, "data": data}
    finally:
        for path in made:
            with contextlib.suppress(Exception):
                b.delete(path)
        for client in (a, b):
            with contextlib.suppress(Exception):
                client.stop()
                client.close()


def _counted(metrics: Metrics, count: float) -> tuple[float, float] | None:
    now = metrics.reload_passes()
    return now if now[0] > count else None


def idle_passes(master_pid: int, metrics: Metrics, count: int) -> list[float]:
    """SIGHUP to the master's daemon ``count`` times, one pass each with nothing changed: each one's seconds."""
    seconds = []
    for _ in range(count):
        before = metrics.reload_passes()
        signalled = inside(master_pid, ["systemctl", "kill", "--kill-whom=main", "-s", "HUP",
                                        "bootstrap-agent.service"])
        assert signalled.returncode == 0, signalled.stderr
        after = wait_for("a reload pass in the master's metrics", functools.partial(_counted, metrics, before[0]),
                         timeout=60)
        seconds.append((after[1] - before[1]) / (after[0] - before[0]))
    return seconds


def _listed(uuid: bytes, seen: set[bytes]) -> bool:
    return uuid in seen


def _gone(uuid: bytes, seen: set[bytes]) -> bool:
    return uuid not in seen


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"lcm-{os.getpid()}")
    cloud.write(masters=1, desired=1)
    with torn_down(cloud):
        yield cloud


def test_local_cloud_master_at_scale(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    started = time.monotonic()
    cloud.ok("up", timeout=1800)
    report("local_members_up", {"up_s": round(time.monotonic() - started, 1), "uptime": load()})
    state = Paths(cloud.state_root / cloud.cluster).load()
    assert state is not None
    master = by_name(cloud.status())[f"{cloud.cluster}-master-1"]
    poller = StatusPoller(master["ip"], state.dashboard_user, cloud.dashboard_password())
    metrics = Metrics(master["ip"])
    writers = Writers(state)
    failures: list[str] = []
    try:
        writers.connect()
        population = 0
        next_index = max(SCALES) + 10 * FLOOR_SAMPLES  # above every population and every floor member
        for n in SCALES:
            began = time.monotonic()
            writers.populate(range(population, n))
            population = n
            wanted = {synthetic(i).uuid.encode() for i in range(n)}
            poller.wait(wanted.issubset, 600, f"population of {n}")
            populated_s = time.monotonic() - began
            floor = watch_floor(writers, max(SCALES) + n // 1000 * FLOOR_SAMPLES)
            time.sleep(3)  # the floor's members came and went: let the master settle
            metrics.scrape()
            joins: list[float] = []
            leaves: list[float] = []
            for _ in range(SAMPLES):
                index, next_index = next_index, next_index + 1
                uuid = synthetic(index).uuid.encode()
                returned = writers.join(index)
                joins.append(poller.wait(functools.partial(_listed, uuid),
                                         60, f"join {index}") - returned)
                returned = writers.leave(index)
                leaves.append(poller.wait(functools.partial(_gone, uuid), 60, f"leave {index}") - returned)
                metrics.scrape()
            time.sleep(2)
            cpu = metrics.cpu_seconds()
            idle = idle_passes(master["pid"], metrics, IDLE_PASSES)
            idle_cpu = (metrics.cpu_seconds() - cpu) / IDLE_PASSES  # less sensitive to a loaded machine
            both = joins + leaves
            figures = {
                "n": n, "samples": SAMPLES, "populate_to_listed_s": round(populated_s, 1),
                **members_bench.latency_figures(joins, leaves, floor),
                "idle_pass_p50_ms": ms(percentile(idle, 0.5)), "idle_pass_max_ms": ms(max(idle)),
                "idle_pass_cpu_ms": ms(idle_cpu),
                "rss_mb": round(metrics.rss_mb(), 1), "rss_max_mb": round(metrics.rss_max / 2**20, 1),
                "status_fetches": poller.fetches, "uptime": load(),
            }
            report(f"local_members_n{n}", figures)
            print(f"BENCH-ROW {n} | {figures['join_leave_p50_ms']}/{figures['join_leave_p99_ms']} | "
                  f"{figures['idle_pass_p50_ms']} (max {figures['idle_pass_max_ms']}, "
                  f"cpu {figures['idle_pass_cpu_ms']}) | "
                  f"{figures['rss_max_mb']} | "
                  f"{figures['zk_child_watch_p99_ms']} | {figures['uptime']}", flush=True)
            if ASSERT and n == max(SCALES):
                failures += members_bench.missed_aims(n, both, idle, metrics.rss_max)
    finally:
        poller.close()
        writers.close()  # the synthetic members go with their sessions, before ``down``
    assert not failures, "\n".join(failures)
