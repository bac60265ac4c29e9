"""``up`` on a changed cluster file on the local cloud, under real systemd: a setting both roles get rolls
through the 3 agents (each through its drain) and then the 3 masters (one at a time, each only while every
master is ready) while the cluster keeps serving: a stand-in framework keeps launching short tasks through the
leading Mesos master (following it when it is replaced) and a probe asks every ZooKeeper server for its mode
every half second: a majority of them runs at every sample, and the only stretch without a leader is the short
election when the ZooKeeper leader's master is the one replaced. A second ``up`` replaces nothing.

One cluster of 3 masters (the fewest that keep a quorum while one is away) and 3 agents with ``agents.min`` 1:
the agents go one at a time and capacity never drops below 2.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision_min.local.as_host import HOOK_TIMEOUT_ENV
from tests.support.local_cloud import LocalCloud, by_name, torn_down
from tests.support.mesos_framework import MesosFramework
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("containers_required")

SERVING = ("leader", "follower")
BAD_TASK_STATES = {"TASK_LOST", "TASK_KILLED", "TASK_KILLING", "TASK_FAILED", "TASK_ERROR", "TASK_DROPPED",
                   "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE", "TASK_UNKNOWN"}
PROBE_TIMEOUT = 2.0  # a loaded machine answers slowly: slow is not down (down is refused or unreachable)
ELECTION_BOUND = 10.0  # seconds without a ZooKeeper leader while the other two elect one
LAUNCH_GAP_BOUND = 60.0  # seconds without an accepted launch while a leading Mesos master is replaced
PROGRESS_ROW = re.compile(r"^ *\d+\.\ds  \S+ +(master|agent) ")  # up's progress lines, one per change


def zookeeper_mode(ip: str) -> str:
    """The server's ``srvr`` answer reduced to its mode (leader, follower, or why it does not serve)."""
    try:
        with socket.create_connection((ip, 2181), timeout=PROBE_TIMEOUT) as conn:
            conn.settimeout(PROBE_TIMEOUT)
            conn.sendall(b"srvr")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
    except OSError as exc:
        return f"down ({type(exc).__name__})"
    found = re.search(rb"^Mode: (\w+)", answer, re.M)
    return found.group(1).decode() if found else "not serving"


class QuorumProbe(threading.Thread):
    """Every ~0.5 s, every master's ZooKeeper mode: a sample has quorum when one leader and a majority serve."""

    def __init__(self, ips: list[str]) -> None:
        super().__init__(daemon=True, name="quorum-probe")
        self.ips = ips
        self.samples: list[tuple[float, dict[str, str]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        with ThreadPoolExecutor(len(self.ips)) as pool:  # the servers at once: one slow answer delays no other
            while not self.done.is_set():
                at = time.monotonic()
                self.samples.append((at, dict(zip(self.ips, pool.map(zookeeper_mode, self.ips), strict=True))))
                self.done.wait(max(0.0, 0.5 - (time.monotonic() - at)))

    def without_quorum(self) -> list[tuple[float, dict[str, str]]]:
        """Samples where fewer than a majority of the servers run (the ensemble could not elect a leader)."""
        return [(t, modes) for t, modes in self.samples
                if sum(not m.startswith("down") for m in modes.values()) <= len(modes) // 2]

    def longest_without_leader(self) -> float:
        """The longest stretch without one leader and a majority serving: the election when the ZooKeeper
        leader's master is the one replaced (the other two elect a new one among themselves)."""
        longest, since = 0.0, None
        for t, modes in self.samples:
            serving = list(modes.values()).count("leader") == 1 and sum(m in SERVING for m in modes.values()) > 1
            if serving:
                since = None
            else:
                since = t if since is None else since
                longest = max(longest, t - since + 0.5)
        return longest


class Launcher(threading.Thread):
    """A framework that keeps launching one-second tasks, following the leading master when it goes away."""

    def __init__(self, framework: MesosFramework) -> None:
        super().__init__(daemon=True, name="task-launcher")
        self.framework = framework
        self.accepted: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.resubscribed = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                if self.framework.follow_leader(timeout=10):
                    self.resubscribed += 1
                task = self.framework.launch_sleep(1, timeout=5)
                self.accepted.append((time.monotonic(), task))
            except Exception as exc:  # no offer or no leader yet, a stream cut mid-answer: again, never die
                self.errors.append(f"{time.monotonic():.1f} {type(exc).__name__}: {str(exc)[:200]}")
            self.done.wait(0.5)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *(t for t, _ in self.accepted if start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(times))


def heard(framework: MesosFramework, task: str) -> list[str]:
    """The task's updates as the framework heard them, with the master's or agent's message."""
    return [f"{u['state']} {u.get('message', '')}".strip() for u in framework.updates
            if u["task_id"]["value"] == task]


def final_states(framework: MesosFramework, tasks: list[str]) -> dict[str, str]:
    """Each task's terminal state: what the framework heard, else the leading master's record of it (what an
    explicit reconciliation answers), else ``unknown``. Updates are reliable (rule MB11: the agent re-sends each
    until the framework acknowledges it, also across a master failover), so every task's end arrives; the test
    waits a while for the last ones."""
    assert framework.leader is not None
    with urllib.request.urlopen(f"http://{framework.leader}/master/state", timeout=5) as answer:
        state = json.load(answer)
    recorded = {t["id"]: t["state"] for f in state["frameworks"] if f["id"] == framework.framework_id
                for t in f["tasks"] + f["completed_tasks"]}
    found = {}
    for task in tasks:
        last = framework.state(task)
        if last not in ("TASK_FINISHED", *BAD_TASK_STATES):
            last = recorded.get(task)
        found[task] = str(last) if last in ("TASK_FINISHED", *BAD_TASK_STATES) else "unknown"
    return found


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"ro-{os.getpid()}", env={HOOK_TIMEOUT_ENV: "300"})
    cloud.write(masters=3, desired=3, max_agents=4)
    cloud.config.write_text(cloud.config.read_text() + "drain: {grace: 15, stop_timeout: 60, poll: 1}\n")
    with torn_down(cloud):
        yield cloud


def uuids(cloud: LocalCloud, role: str) -> dict[str, str]:
    return {n["name"]: n["uuid"] for n in cloud.status()["nodes"] if n["role"] == role}


def test_a_changed_setting_rolls_through_agents_then_masters_while_the_cluster_serves(local_cloud: LocalCloud
                                                                                      ) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.ok("up", timeout=1200)
    agents, masters = uuids(cloud, "agent"), uuids(cloud, "master")
    assert len(agents) == 3 and len(masters) == 3
    ips = [by_name(cloud.status())[f"{c}-master-{i}"]["ip"] for i in (1, 2, 3)]
    text = cloud.config.read_text()
    assert "docker_ramdisk: 256MB}" in text
    # mesos.attributes: in both roles' user-data (an agent offers it; a master's document changes with it)
    cloud.config.write_text(text.replace("docker_ramdisk: 256MB}", 'docker_ramdisk: 256MB, attributes: {wave: "2"}}'))

    # -- plan shows it first, and changes nothing --------------------------------------------------------------
    planned = cloud.run("plan", "--detailed-exitcode", timeout=120)
    assert planned.returncode == 3, (planned.stdout, planned.stderr[-2000:])
    shown = planned.stdout.splitlines()
    assert shown[0] == f"cluster {c} (local): runs" and not any("start:" in line for line in shown), shown
    assert "  new AS configuration (user-data: mesos) and the group switched to it" in shown, shown
    assert any(line.startswith("  replace 3 agent(s), 1 at a time") for line in shown), shown
    assert [re.sub(r" \(.*", "", line) for line in shown if line.startswith("  replace master")] == [
        f"  replace master {c}-master-{i}" for i in (3, 2, 1)], shown  # the first master last
    assert uuids(cloud, "agent") == agents and uuids(cloud, "master") == masters

    probe = QuorumProbe(ips)
    framework = MesosFramework(",".join(f"{ip}:5050" for ip in ips), name="rollout-e2e", timeout=3.0)
    framework.subscribe(timeout=60)
    launcher = Launcher(framework)
    probe.start()
    launcher.start()
    try:
        wait_for("the framework's first task", lambda: launcher.accepted, timeout=60)
        started = time.monotonic()
        result = cloud.ok("up", timeout=3000)
        ended = time.monotonic()
        print("\n".join(line for line in result.stderr.splitlines()
                        if not PROGRESS_ROW.match(line) or " gone (" in line))
        try:
            wait_for("a task launched after the rollout", lambda: launcher.accepted[-1][0] > ended, timeout=120)
        except AssertionError:
            print("launcher errors:", launcher.errors[-8:], "alive:", launcher.is_alive(),
                  "connected:", framework.connected.is_set(), "leader:", framework.leader)
            with urllib.request.urlopen(f"http://{ips[0]}:5050/master/state", timeout=5) as answer:
                state = json.load(answer)
            print("agents:", [(a.get("hostname"), a.get("active"), a.get("used_resources"))
                              for a in state.get("slaves", [])],
                  "frameworks:", [(f.get("name"), f.get("active"), len(f.get("tasks", [])),
                                   len(f.get("offers", []))) for f in state.get("frameworks", [])])
            raise
    finally:
        probe.done.set()
        launcher.done.set()
        probe.join(5)
        launcher.join(30)
    tasks = [task for _, task in launcher.accepted]
    try:
        deadline = time.monotonic() + 60
        ended_as = final_states(framework, tasks)
        while "unknown" in ended_as.values() and time.monotonic() < deadline:
            time.sleep(1)
            ended_as = final_states(framework, tasks)
    finally:
        framework.close()
    log = result.stderr

    # -- the agents first, one at a time through their drain, then the masters one at a time -------------------
    batches = [m.start() for m in re.finditer(r"agents: batch \d of 3: replacing", log)]
    replacing = [(m.start(), m.group(1)) for m in re.finditer(rf"masters: replacing ({c}-master-\d)", log)]
    # each agent left through its drain; the framework that ran executors on it keeps running, so the drain's
    # shuffle phase (Spark's shuffle files of a running framework) holds it until drain.grace
    outcomes = re.findall(rf"({c}-agent-\d) .* gone \(((?:clean drain|grace expired) after \d+ s)\)", log)
    assert len(batches) == 3 and len(dict(outcomes)) == 3, log[-4000:]
    assert "agents: new AS configuration (user-data: mesos); the group uses it from now on" in log, log[-4000:]
    assert [name for _, name in replacing] == [f"{c}-master-3", f"{c}-master-2", f"{c}-master-1"], log[-4000:]
    assert max(batches) < replacing[0][0], log[-4000:]
    done = [m.start() for m in re.finditer(rf"masters: {c}-master-\d replaced in", log)]
    assert len(done) == 3 and all(d < n for d, (n, _) in zip(done, replacing[1:], strict=False)), log[-4000:]
    report = cloud.status()
    assert report["complete"], report
    new_agents, new_masters = uuids(cloud, "agent"), uuids(cloud, "master")
    assert len(new_agents) == 3 and not set(new_agents.values()) & set(agents.values()), report
    assert sorted(new_masters) == sorted(masters) and not set(new_masters.values()) & set(masters.values()), report
    assert [by_name(report)[f"{c}-master-{i}"]["ip"] for i in (1, 2, 3)] == ips  # same addresses: same ensemble

    # -- serving throughout -----------------------------------------------------------------------------------
    samples = [(t, m) for t, m in probe.samples if started <= t <= ended]
    assert len(samples) > 100, len(samples)
    assert probe.without_quorum() == [], probe.without_quorum()[:5]
    election = probe.longest_without_leader()
    assert election < ELECTION_BOUND, election
    most_down = max(sum(mode.startswith("down") for mode in m.values()) for _, m in samples)
    assert most_down == 1  # each master was away once, never two at a time
    unknown = {t: heard(framework, t) for t, s in ended_as.items() if s == "unknown"}  # killed by the close
    bad = {t: heard(framework, t) for t in tasks if set(framework.states(t)) & BAD_TASK_STATES and t not in unknown}
    bad.update({t: [s, *heard(framework, t)] for t, s in ended_as.items() if s in BAD_TASK_STATES})
    gap = launcher.longest_gap(started, ended)
    assert gap < LAUNCH_GAP_BOUND, (gap, launcher.errors[-10:])

    # -- nothing changed: nothing replaced ----------------------------------------------------------------------
    after = cloud.run("plan", "--detailed-exitcode", timeout=120)
    assert after.returncode == 0 and "nothing to change" in after.stdout, (after.stdout, after.stderr[-2000:])
    again = cloud.ok("up", timeout=600)
    assert "replacing" not in again.stderr, again.stderr[-3000:]
    assert uuids(cloud, "master") == new_masters and uuids(cloud, "agent") == new_agents

    seconds = [int(s) for s in re.findall(rf"masters: {c}-master-\d replaced in (\d+) s", log)]
    print(f"\nagents: {dict(outcomes)}")
    print(f"rollout of 3 agents and 3 masters: {ended - started:.0f} s in all; per master {seconds} s; "
          f"{len(tasks)} tasks launched ({len(unknown)} of unknown end), longest gap between accepted launches "
          f"{gap:.1f} s "
          f"({launcher.resubscribed} re-subscription(s) to a new leader); {len(samples)} ZooKeeper samples, "
          f"none without quorum, longest without a leader {election:.1f} s; tasks lost or killed: {len(bad)}")
    # Every task ends where its framework hears it: none lost at an agent's machine down (the drain waited for
    # each), none killed, none still "running" at the end (each end reached the master and the framework).
    assert bad == {}, bad  # last: the figures show first
    assert unknown == {}, unknown
