"""Benchmark of the cluster layer: how fast a joining agent shows up on the master's dashboard, against
ZooKeeper's own watch latency measured in the same run; what a join costs the master (reconciles) and the
other agents (ZooKeeper requests, reconciles); what the daemons cost when nothing happens.

Run: ``python3 -m pytest tests/bench/test_bench_cluster.py -m bench -s`` (as root: network namespaces).

Set-up, all in one test network (``TestNode``) as in tests/test_daemon.py:

* one real master daemon (``DaemonNode``) with its own ZooKeeper, nginx and Mesos stand-in, started by the
  daemon through the process service manager, run with the production defaults ``--debounce-min 0.2
  --debounce-max 2 --zk-session-timeout 10`` (given explicitly) and ``--tick 600`` so no tick falls into a
  measurement;
* one real agent daemon (no Alluxio) with the same options: the bystander whose ZooKeeper traffic is counted;
* simulated agents: plain kazoo sessions in this process, authenticated with the cluster secret, started inside
  the namespace (``TestNode.call``) and sharing one kazoo callback handler, so each costs one connection
  thread. Each joins by creating a valid ephemeral ``nodes/<uuid>`` (``Member.to_json``: role agent, state
  ready, a unique address in 10.88.1.0-10.88.2.255).

Stages: N = 50 and N = 200 simulated agents present, then 30 single joins (each waits until it is listed and
the master's pass is logged) and one burst of 50 joins (creates issued back to back, asynchronously). The
population grows through the run: 50 → 80 → 130, topped up to 200 → 230 → 280.

How "listed" is detected (no inotify): the rendered file ``<master root>/var/lib/bootstrap-agent/www/
index.html`` (what nginx serves at ``https://<master ip>/``, checked over HTTP at the end) is polled every
5 ms: ``stat`` (inode, mtime, size), and only when that changed the file is read and its ``data-uuid``
attributes collected. The master replaces the file atomically (rename), so a read never sees half a file. A
join's latency is the time from its ``create()`` returning (for the burst: the completion callback of each
``create_async``) to the first poll that saw the uuid. Resolution: the poll gap (5 ms sleep + a ``stat``;
``poll_gap_p99_ms``/``poll_gap_max_ms`` report the gaps actually observed per phase: the poller shares two
cores with the master, ZooKeeper and nginx), i.e. figures are upper bounds by at most that gap.
``p50_mtime_ms`` is a lower bound from the same files: the file's mtime (when the master wrote the content,
before its fsync and rename; kernel timestamps use the coarse clock, ±1 jiffy) minus the wall time at which
``create()`` returned.

The floor is raw ZooKeeper on the same server under the same load: client A arms a one-shot watch
(``get_children`` for a child create, ``get`` for a data change), client B creates/sets; the time from B
issuing the call to A's watch callback running (kazoo's callback thread included, as in the daemon).

Percentiles are nearest-rank: with 30 samples p99 is the maximum, with 50 the maximum as well.

ZooKeeper requests of the real agent during a burst come from ZooKeeper's ``cons`` (enabled in the rendered
zoo.cfg): per connection ``recved`` (packets received from the client: requests AND pings), ``sent``
(responses, pings' answers and watch notifications) and ``lcxid``, the last client xid. kazoo numbers every
request 1, 2, 3, ... per connection and sends pings with xid -2 (auth -4); ZooKeeper only updates ``lcxid`` for
xids >= 0, so the ``lcxid`` delta is exactly the number of non-ping requests (reads and writes) the agent made
in the window. ``sent - recved`` deltas count the watch notifications it received. As a cross-check,
``recved`` minus the pings expected from the agent's idle packet rate (measured over 4 s just before the
burst) is reported too, and the ping count kazoo's rule predicts from the session timeout. Asserted: the
``lcxid`` delta is exactly 0, and the ``recved``-based estimate is within ±0.1 per join (±5 packets in a burst
window that holds about one ping). The master's own ``lcxid`` delta is reported as well (``master_zk_requests``):
what a join costs the master in ZooKeeper requests. A daemon's connection is found by the local port of its
socket to the master's ZooKeeper (``/proc/<pid>/fd`` + ``/proc/<pid>/net/tcp``): inside the test network every
connection to the master's address comes FROM the master's address (the kernel picks the destination as the
source on ``lo``; the daemon does not bind its ZooKeeper socket to ``--ip``), so the source address alone does
not tell the agent apart.

Idle cost: ``psutil`` on the ``bootstrap-agent run`` processes themselves (found among the namespace's pids
by command line, not the ``ip netns exec`` wrapper; services excluded): CPU time (user + system) over 60 s
of wall time, RSS at the end (and the largest RSS seen, sampled every second).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.security import make_digest_acl

from bootstrap_agent.cluster import AUTH_USER, ClusterPaths
from bootstrap_agent.member import Member
from tests.support.daemon_node import DASHBOARD_AUTH, MASTER_IP, SECRET, DaemonNode, new_daemon_node
from tests.support.metadata_server import MetadataServer
from tests.support.netns import TestNode
from tests.support.zookeeper import four_letter_word

pytestmark = pytest.mark.bench

AGENT_IP = "10.88.0.21"
CLUSTER = "eo-live"  # cluster_user_data's
ZK_PORT = 2181
SCALES = (50, 200)
SINGLES = 30
BURST = 50
SIM_TOTAL = SCALES[-1] + SINGLES + BURST  # sessions needed by the last stage
POLL_S = 0.005
DEBOUNCE_MIN, DEBOUNCE_MAX = 0.2, 2.0
ZK_SESSION_TIMEOUT = 10.0  # the daemon's default
TICK = 600.0
DAEMON_ARGS = ("--debounce-min", str(DEBOUNCE_MIN), "--debounce-max", str(DEBOUNCE_MAX),
               "--zk-session-timeout", str(ZK_SESSION_TIMEOUT))
SIM_SESSION_TIMEOUT = 30.0  # fewer pings from 280 idle sessions
FLOOR_SAMPLES = 40
BASELINE_S = 4.0  # idle window before each burst, for the agent's ping rate
SETTLE_QUIET_S = DEBOUNCE_MAX + 1.0  # no new pass for this long = the burst's passes are all done
IDLE_S = 60.0
# Aims (issue 3) and what is asserted on a noisy 2-core machine.
AIM_P99_S = DEBOUNCE_MAX + 0.1
MAX_RECONCILES_PER_BURST = 3
MAX_READS_PER_JOIN_NOISE = 0.1  # of the recved-based estimate; the lcxid count must be exactly 0
MAX_RSS_MB = 60.0
MAX_IDLE_CPU_PCT = 2.0  # "≈ 0": anything polling or spinning would show well above this

_UUID_ATTR = re.compile(r'data-uuid="([^"]+)"')
_CONS_LINE = re.compile(r"/(\d+\.\d+\.\d+\.\d+):(\d+)\[\d+\]\(([^)]*)\)")


# --- figures ---------------------------------------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: always one of the samples)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\nBENCH {name} " + json.dumps(figures), flush=True)


# --- the rendered dashboard, polled -------------------------------------------------------------------------
@dataclass
class Seen:
    at: float  # perf_counter of the poll that first saw it
    mtime_ns: int  # mtime of the file version it was seen in


class DashboardPoller:
    """Polls the master's rendered index.html: ``stat`` every POLL_S, read only when the file changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.signature: tuple[int, int, int] | None = None
        self.mtime_ns = 0
        self.uuids: set[str] = set()
        self.gaps: list[float] = []  # between consecutive polls: the detection's resolution

    def poll(self) -> float:
        now = time.perf_counter()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return now
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature != self.signature:
            text = self.path.read_text(errors="replace")
            self.signature, self.mtime_ns = signature, st.st_mtime_ns
            self.uuids = set(_UUID_ATTR.findall(text))
        return now

    def resolution(self) -> dict[str, float]:
        """The poll gaps since the last call (and forget them)."""
        gaps, self.gaps = self.gaps or [0.0], []
        return {"poll_ms": POLL_S * 1000, "poll_gap_p99_ms": ms(percentile(gaps, 0.99)),
                "poll_gap_max_ms": ms(max(gaps))}

    def wait(self, wanted: Iterable[str], timeout: float, what: str) -> dict[str, Seen]:
        pending = set(wanted)
        seen: dict[str, Seen] = {}
        deadline = time.monotonic() + timeout
        last = time.perf_counter()
        while True:
            now = self.poll()
            self.gaps.append(now - last)
            last = now
            for uuid in pending & self.uuids:
                seen[uuid] = Seen(now, self.mtime_ns)
            pending -= self.uuids
            if not pending:
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {len(pending)} of {len(seen) + len(pending)} not on the dashboard "
                                     f"within {timeout} s")
            time.sleep(POLL_S)


# --- daemon logs, read incrementally ------------------------------------------------------------------------
class LogTail:
    """The JSON events a daemon logged since the last ``read()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events


def reconciles(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == "reconciled"]


def wait_reconciled(tail: LogTail, into: list[dict[str, Any]], timeout: float) -> None:
    """Until ``tail`` logs a pass (collecting everything read into ``into``)."""
    deadline = time.monotonic() + timeout
    while True:
        new = tail.read()
        into.extend(new)
        if reconciles(new):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no pass logged in {tail.path} within {timeout} s")
        time.sleep(0.01)


def settle(tails: Sequence[LogTail], since: float, timeout: float = 60.0) -> list[list[dict[str, Any]]]:
    """Collect the daemons' events until none logged a pass for SETTLE_QUIET_S (counted from ``since``, a
    monotonic time, at the earliest): a pass still in its debounce window starts within DEBOUNCE_MAX."""
    collected: list[list[dict[str, Any]]] = [[] for _ in tails]
    last = since
    deadline = time.monotonic() + timeout
    while True:
        for events, tail in zip(collected, tails, strict=True):
            new = tail.read()
            events.extend(new)
            if reconciles(new):
                last = time.monotonic()
        if time.monotonic() - last >= SETTLE_QUIET_S:
            return collected
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemons kept reconciling for {timeout} s")
        time.sleep(0.05)


# --- processes and ZooKeeper connections --------------------------------------------------------------------
def daemon_process(net: TestNode, node: DaemonNode) -> psutil.Process:
    """The ``bootstrap-agent run`` process of ``node`` among the namespace's processes."""
    found = []
    for pid in net.pids():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            argv = process.cmdline()
            if argv and argv[0] != "ip" and "bootstrap_agent.cli" in argv and "run" in argv \
                    and str(node.root) in argv:
                found.append(process)
    assert len(found) == 1, f"expected one daemon process for {node.root}, found {found}"
    return found[0]


def _proc_hex_ip(ip: str) -> str:
    return socket.inet_aton(ip)[::-1].hex().upper()


def zk_local_port(pid: int) -> int:
    """Local port of ``pid``'s established TCP connection to the master's ZooKeeper."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    remote = f"{_proc_hex_ip(MASTER_IP)}:{ZK_PORT:04X}"
    ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == remote and fields[3] == "01" and fields[9] in inodes:
            ports.append(int(fields[1].split(":")[1], 16))
    assert len(ports) == 1, f"pid {pid}: expected one ZooKeeper connection, found ports {ports}"
    return ports[0]


@dataclass(frozen=True)
class ZkCounters:
    at: float
    source: str
    port: int
    sid: str
    recved: int
    sent: int
    lcxid: int
    timeout_ms: int  # the negotiated session timeout


def zk_counters(net: TestNode, port: int) -> ZkCounters:
    """The ``cons`` line of the connection with local port ``port``."""
    answer = net.call(four_letter_word, MASTER_IP, ZK_PORT, "cons", 5.0)
    at = time.monotonic()
    for source, found_port, body in _CONS_LINE.findall(answer):
        if int(found_port) != port:
            continue
        fields = dict(item.split("=", 1) for item in body.split(",") if "=" in item)
        return ZkCounters(at, source, port, fields["sid"], int(fields["recved"]), int(fields["sent"]),
                          int(fields.get("lcxid", "0x0"), 16), int(fields["to"]))
    raise AssertionError(f"no connection with port {port} in cons:\n{answer}")


# --- simulated agents ---------------------------------------------------------------------------------------
class SharedHandler(SequentialThreadingHandler):  # type: ignore[misc]
    """One pair of kazoo callback threads for every simulated session: a client's own start/stop must not stop
    it (kazoo stops the handler in every ``start_async`` and ``stop``); ``shutdown()`` does, at the end."""

    def stop(self) -> None:
        return

    def shutdown(self) -> None:
        super().stop()


@dataclass
class SimAgent:
    index: int
    client: KazooClient
    uuid: str = field(init=False)
    ip: str = field(init=False)
    hostname: str = field(init=False)

    def __post_init__(self) -> None:
        self.uuid = f"sim-{os.getpid()}-{self.index:04d}"
        self.ip = f"10.88.{1 + self.index // 250}.{1 + self.index % 250}"
        self.hostname = f"sim-agent-{self.index:04d}"

    def znode(self) -> bytes:
        return Member(uuid=self.uuid, role="agent", ip=self.ip, hostname=self.hostname, state="ready", reason="",
                      services={"mesos-agent": "active"}, since=time.time()).to_json()


class SimAgents:
    """Kazoo sessions that play agents; ``take()`` hands out connected sessions that have not joined yet."""

    def __init__(self, net: TestNode) -> None:
        self.net = net
        self.paths = ClusterPaths(CLUSTER)
        self.handler = SharedHandler()
        self.agents: list[SimAgent] = []
        self.next = 0

    def connect(self, count: int, timeout: float = 60.0) -> None:
        acl = make_digest_acl(AUTH_USER, SECRET, all=True)

        def start_all() -> None:  # inside the namespace: the connection threads start here and stay there
            started = []
            for _ in range(count):
                client = KazooClient(hosts=f"{MASTER_IP}:{ZK_PORT}", timeout=SIM_SESSION_TIMEOUT,
                                     handler=self.handler, auth_data=[("digest", f"{AUTH_USER}:{SECRET}")],
                                     default_acl=[acl])
                self.agents.append(SimAgent(len(self.agents), client))  # before start: closed on any failure
                started.append(client.start_async())
            deadline = time.monotonic() + timeout
            for live in started:
                if not live.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"simulated sessions not connected within {timeout} s")

        self.net.call(start_all)

    def take(self, count: int) -> list[SimAgent]:
        assert self.next + count <= len(self.agents), "not enough simulated sessions"
        taken = self.agents[self.next:self.next + count]
        self.next += count
        return taken

    def join(self, agent: SimAgent) -> tuple[float, int]:
        """Create the member znode; (perf_counter, wall ns) when ``create()`` returned."""
        agent.client.create(self.paths.node(agent.uuid), agent.znode(), ephemeral=True)
        return time.perf_counter(), time.time_ns()

    def burst(self, agents: Sequence[SimAgent], timeout: float = 30.0) -> tuple[float, dict[str, tuple[float, int]]]:
        """All creates issued back to back; (perf_counter of the first, per uuid: when its create returned)."""
        returned: dict[str, tuple[float, int]] = {}

        def on_return(uuid: str) -> Callable[[Any], None]:
            def record(_result: Any) -> None:
                returned[uuid] = (time.perf_counter(), time.time_ns())
            return record

        results = []
        first = time.perf_counter()
        for agent in agents:
            result = agent.client.create_async(self.paths.node(agent.uuid), agent.znode(), ephemeral=True)
            result.rawlink(on_return(agent.uuid))
            results.append(result)
        for result in results:
            result.get(timeout=timeout)  # raises a create's error
        deadline = time.monotonic() + timeout
        while len(returned) < len(agents):  # the callbacks run on kazoo's completion thread, maybe just after
            assert time.monotonic() < deadline, "create callbacks did not run"
            time.sleep(0.001)
        return first, returned

    def close(self) -> None:
        def stop(agent: SimAgent) -> None:
            with contextlib.suppress(Exception):
                agent.client.stop()
                agent.client.close()

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(stop, self.agents))
        self.handler.shutdown()


# --- the cluster ----------------------------------------------------------------------------------------------
@dataclass
class Bench:
    net: TestNode
    master: DaemonNode
    agent: DaemonNode
    sims: SimAgents


@pytest.fixture
def bench(test_node: Callable[..., TestNode], metadata_server: Callable[..., MetadataServer],
          tmp_path: Path) -> Iterator[Bench]:
    net = test_node(MASTER_IP, AGENT_IP)
    nodes: list[DaemonNode] = []
    sims = SimAgents(net)

    def make(role: str, ip: str) -> DaemonNode:
        node = new_daemon_node(net, metadata_server, tmp_path, role, ip)
        nodes.append(node)
        return node

    try:
        started = time.monotonic()
        master = make("master", MASTER_IP).start(*DAEMON_ARGS, tick=TICK)
        master.wait_for("registration", lambda: master.events("member_registered"), timeout=60)
        master_up = time.monotonic() - started
        agent = make("agent", AGENT_IP).start(*DAEMON_ARGS, tick=TICK)
        agent.wait_for("ready", lambda: agent.status().get("state") == "ready", timeout=60)
        report("cluster_setup", {"master_start_s": round(master_up, 1),
                                 "agent_start_s": round(time.monotonic() - started - master_up, 1),
                                 "daemon_args": " ".join([*DAEMON_ARGS, "--tick", str(TICK)])})
        yield Bench(net, master, agent, sims)
    finally:
        try:
            sims.close()  # while ZooKeeper is still there: sessions close at once
        finally:
            for node in reversed(nodes):
                node.close()


# --- the floor --------------------------------------------------------------------------------------------------
def _watch_sample(arm: Callable[[Callable[[Any], None]], Any], change: Callable[[], Any]) -> float:
    """Seconds from issuing ``change()`` to the callback of the watch that ``arm`` set."""
    fired = threading.Event()
    box: list[float] = []

    def callback(_event: Any) -> None:
        box.append(time.perf_counter())
        fired.set()

    arm(callback)
    issued = time.perf_counter()
    change()
    assert fired.wait(5), "a watch did not fire within 5 s"
    return box[0] - issued


def watch_floor(net: TestNode) -> dict[str, list[float]]:
    """Raw ZooKeeper watch latency on the master's ZooKeeper: B creates/sets → A's one-shot watch fires."""
    base = f"/bench-floor-{os.getpid()}"
    clients = [KazooClient(hosts=f"{MASTER_IP}:{ZK_PORT}", timeout=SIM_SESSION_TIMEOUT) for _ in range(2)]
    try:
        for client in clients:
            net.call(client.start, 15)
        a, b = clients
        b.ensure_path(base)
        b.create(f"{base}/data", b"0")
        children: list[float] = []
        data: list[float] = []
        for i in range(FLOOR_SAMPLES):
            children.append(_watch_sample(lambda cb: a.get_children(base, watch=cb),
                                          functools.partial(b.create, f"{base}/child-{i}")))
            data.append(_watch_sample(lambda cb: a.get(f"{base}/data", watch=cb),
                                      functools.partial(b.set, f"{base}/data", str(i).encode())))
        b.delete(base, recursive=True)
        return {"children": children, "data": data}
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.stop()
                client.close()


# --- the benchmark ------------------------------------------------------------------------------------------------
def test_cluster_join_latency_reconciles_and_idle_cost(bench: Bench) -> None:
    net, master, agent, sims = bench.net, bench.master, bench.agent, bench.sims
    failures: list[str] = []
    dashboard = DashboardPoller(master.root / "var/lib/bootstrap-agent/www/index.html")
    master_log, agent_log = LogTail(master.log_path), LogTail(agent.log_path)
    master_log.read()
    agent_log.read()
    agent_port = zk_local_port(daemon_process(net, agent).pid)
    master_port = zk_local_port(daemon_process(net, master).pid)

    started = time.monotonic()
    sims.connect(SIM_TOTAL)
    report("cluster_sessions", {"simulated_sessions": SIM_TOTAL, "connect_s": round(time.monotonic() - started, 1),
                                "test_process_threads": threading.active_count()})

    floor = watch_floor(net)
    floor_p50, floor_p99 = percentile(floor["children"], 0.5), percentile(floor["children"], 0.99)
    report("cluster_floor", {
        "samples": FLOOR_SAMPLES,
        "child_create_watch_p50_ms": ms(floor_p50), "child_create_watch_p99_ms": ms(floor_p99),
        "data_set_watch_p50_ms": ms(percentile(floor["data"], 0.5)),
        "data_set_watch_p99_ms": ms(percentile(floor["data"], 0.99)),
    })

    for n in SCALES:
        # Bring the population to n (not measured) and let the master settle.
        grow = sims.take(n - (sims.next))
        if grow:
            sims.burst(grow)
            dashboard.wait([s.uuid for s in grow], 30, f"population of {n}")
            settle([master_log, agent_log], time.monotonic())
        dashboard.resolution()

        # (a) single joins, one at a time.
        latencies: list[float] = []
        lower: list[float] = []
        master_events: list[dict[str, Any]] = []
        agent_before, master_before = zk_counters(net, agent_port), zk_counters(net, master_port)
        for sim in sims.take(SINGLES):
            returned, returned_ns = sims.join(sim)
            seen = dashboard.wait([sim.uuid], 15, f"single join {sim.index}")[sim.uuid]
            latencies.append(seen.at - returned)
            lower.append((seen.mtime_ns - returned_ns) / 1e9)
            wait_reconciled(master_log, master_events, 15)  # the pass that rendered it is over
        master_trailing, agent_events = settle([master_log, agent_log], time.monotonic())
        master_events += master_trailing
        agent_after, master_after = zk_counters(net, agent_port), zk_counters(net, master_port)
        passes = reconciles(master_events)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        report(f"cluster_join_single_n{n}", {
            "n": n, "samples": SINGLES, "p50_ms": ms(p50), "p99_ms": ms(p99),
            "max_ms": ms(max(latencies)), "p50_mtime_ms": ms(percentile(lower, 0.5)),
            "ratio_p50_to_floor": round(p50 / floor_p50, 1), "ratio_p99_to_floor": round(p99 / floor_p99, 1),
            "master_reconciles_per_join": round(len(passes) / SINGLES, 2),
            "master_pass_p50_ms": ms(percentile([float(e["seconds"]) for e in passes], 0.5)),
            "master_zk_requests_per_join": round((master_after.lcxid - master_before.lcxid) / SINGLES, 1),
            "agent_zk_requests": agent_after.lcxid - agent_before.lcxid,
            "agent_reconciles": len(reconciles(agent_events)),
            **dashboard.resolution(),
        })
        if n == SCALES[-1] and p99 > AIM_P99_S:
            failures.append(f"single joins at N={n}: p99 {ms(p99)} ms > {ms(AIM_P99_S)} ms")

        # (b) a burst of BURST joins; the agent's ZooKeeper connection counted around it.
        idle_start = zk_counters(net, agent_port)
        time.sleep(BASELINE_S)  # a measurement window (the agent's idle ping rate), not a wait for a condition
        before, master_before = zk_counters(net, agent_port), zk_counters(net, master_port)
        agent_log.read()
        master_log.read()
        burst = sims.take(BURST)
        first, returned_at = sims.burst(burst)
        seen_at = dashboard.wait([s.uuid for s in burst], 30, f"burst at N={n}")
        last_seen = max(s.at for s in seen_at.values())
        master_events, agent_events = settle([master_log, agent_log], time.monotonic())
        after, master_after = zk_counters(net, agent_port), zk_counters(net, master_port)
        per_agent = [seen_at[s.uuid].at - returned_at[s.uuid][0] for s in burst]
        lower = [(seen_at[s.uuid].mtime_ns - returned_at[s.uuid][1]) / 1e9 for s in burst]
        passes = reconciles(master_events)
        p50, p99 = percentile(per_agent, 0.5), percentile(per_agent, 0.99)
        report(f"cluster_join_burst_n{n}", {
            "n": n, "joins": BURST, "span_first_create_to_last_listed_ms": ms(last_seen - first),
            "creates_span_ms": ms(max(t for t, _ in returned_at.values()) - first),
            "p50_ms": ms(p50), "p99_ms": ms(p99), "p50_mtime_ms": ms(percentile(lower, 0.5)),
            "ratio_p50_to_floor": round(p50 / floor_p50, 1), "ratio_p99_to_floor": round(p99 / floor_p99, 1),
            "master_reconciles": len(passes), "master_pass_events": [e.get("events") for e in passes],
            "master_pass_ms": [ms(float(e["seconds"])) for e in passes],
            "master_zk_requests": master_after.lcxid - master_before.lcxid,
            **dashboard.resolution(),
        })
        if n == SCALES[-1] and p99 > AIM_P99_S:
            failures.append(f"burst at N={n}: per-join p99 {ms(p99)} ms > {ms(AIM_P99_S)} ms")
        if not 1 <= len(passes) <= MAX_RECONCILES_PER_BURST:
            failures.append(f"burst at N={n}: {len(passes)} master passes (expected 1-{MAX_RECONCILES_PER_BURST})")

        # The real agent during the burst.
        assert idle_start.sid == before.sid == after.sid, "the agent's ZooKeeper session changed"
        idle_rate = (before.recved - idle_start.recved) / (before.at - idle_start.at)
        window = after.at - before.at
        requests = after.lcxid - before.lcxid
        recved = after.recved - before.recved
        pings_expected = idle_rate * window
        # kazoo pings after read_timeout / 2 - U(0.01, 0.40) s without sending; read_timeout = 2/3 session timeout
        ping_interval = after.timeout_ms / 1000 * 2 / 3 / 2 - 0.205
        corrected = (recved - pings_expected) / BURST
        agent_passes = len(reconciles(agent_events))
        report(f"cluster_agent_zk_n{n}", {
            "n": n, "joins": BURST, "window_s": round(window, 2), "connection": f"{after.source}:{after.port}",
            "recved_delta": recved, "sent_delta": after.sent - before.sent,
            "requests_lcxid_delta": requests, "notifications_received": (after.sent - before.sent) - recved,
            "idle_packets_per_s": round(idle_rate, 2), "pings_expected_idle_rate": round(pings_expected, 1),
            "pings_expected_session_timeout": round(window / ping_interval, 1),
            "reads_per_join": round(requests / BURST, 3), "reads_per_join_recved_minus_idle": round(corrected, 3),
            "agent_reconciles": agent_passes,
        })
        if requests != 0 or abs(corrected) > MAX_READS_PER_JOIN_NOISE:
            failures.append(f"burst at N={n}: the agent made {requests} ZooKeeper requests "
                            f"({corrected:.3f} reads per join from recved) while others joined")
        if agent_passes:
            failures.append(f"burst at N={n}: the agent reconciled {agent_passes} times while others joined")

    # Everything joined is served by nginx as well.
    page = net.https_get(f"https://{MASTER_IP}/", auth=DASHBOARD_AUTH).body.decode()
    listed = set(_UUID_ATTR.findall(page))
    assert {s.uuid for s in sims.agents[:sims.next]} | {master.uuid, agent.uuid} <= listed

    # Idle cost over IDLE_S, both daemons in the same window.
    processes = {"master": daemon_process(net, master), "agent": daemon_process(net, agent)}
    master_log.read()
    agent_log.read()
    cpu0 = {name: p.cpu_times() for name, p in processes.items()}
    rss_max = dict.fromkeys(processes, 0)
    start = time.monotonic()
    end = start + IDLE_S
    while (now := time.monotonic()) < end:  # a measurement window, sampled once a second
        for name, process in processes.items():
            rss_max[name] = max(rss_max[name], process.memory_info().rss)
        time.sleep(min(1.0, end - now))
    wall = time.monotonic() - start
    idle: dict[str, Any] = {"window_s": round(wall, 1)}
    for name, process in processes.items():
        cpu = process.cpu_times()
        used = (cpu.user - cpu0[name].user) + (cpu.system - cpu0[name].system)
        rss = process.memory_info().rss
        rss_max[name] = max(rss_max[name], rss)
        idle[f"{name}_cpu_pct"] = round(100 * used / wall, 3)
        idle[f"{name}_cpu_s"] = round(used, 3)
        idle[f"{name}_rss_mb"] = round(rss / 2**20, 1)
        idle[f"{name}_rss_max_mb"] = round(rss_max[name] / 2**20, 1)
        if 100 * used / wall > MAX_IDLE_CPU_PCT:
            failures.append(f"idle {name}: {100 * used / wall:.2f} % CPU (aim ≈ 0)")
        if rss_max[name] / 2**20 > MAX_RSS_MB:
            failures.append(f"idle {name}: RSS {rss_max[name] / 2**20:.1f} MB > {MAX_RSS_MB} MB")
    idle["master_reconciles"] = len(reconciles(master_log.read()))
    idle["agent_reconciles"] = len(reconciles(agent_log.read()))
    idle["members_listed"] = len(listed)
    report("cluster_idle", idle)

    assert not failures, "\n".join(failures)
