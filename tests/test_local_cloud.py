"""The local cloud end to end: ``provision-min up|status|scale|down --cloud local`` run as a user runs them.

Everything is real: the node image (``image.local``), systemd in systemd-nspawn containers, nginx, ZooKeeper,
the agent, the metadata service in its own namespace, the bridge; Mesos and Alluxio are the image's
stand-ins. The test drives the CLI as subprocesses and looks at the result the way an operator would: the
status output, the master's HTTPS dashboard (this machine has an address on the cluster's bridge), the
node's own nginx from inside, and what is left on this machine after ``down``.

Each test uses a cluster name of its own and a state folder below its tmp_path, and runs ``down`` in a
``finally`` (then checks that nothing is left), so a failure leaves no container, link, namespace, cgroup or
mount behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.daemon import DaemonOptions
from bootstrap_agent.zk.paths import CLIENT_PORT
from tests.support.local_cloud import S3_SECRET, LocalCloud, by_name, inside, ready_names, torn_down
from tests.support.mesos_framework import MesosFramework
from tests.support.netns import https_get
from tests.support.waiting import wait_for
from tests.support.zookeeper import four_letter_word
from tests.test_local_cloud_scaler import POLICY as SCALER_POLICY
from tests.test_local_cloud_scaler import agents, as_events

pytestmark = pytest.mark.usefixtures("containers_required")

ZK_SESSION_TIMEOUT = DaemonOptions.zk_session_timeout  # what the nodes' bootstrap-agent run asks ZooKeeper for
SCALER_INTERVAL = 2.0  # the scaler policy's interval (SCALER_POLICY)

@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    with torn_down(LocalCloud(tmp_path, f"e2e-{os.getpid()}")) as cloud:
        yield cloud


_GET = ("import json, sys, urllib.request as u\n"
        "r = u.build_opener(u.ProxyHandler({})).open('http://localhost/user-data', timeout=10)\n"
        "print(json.dumps({'status': r.status, 'cache': r.headers.get('X-Cache-Status'), 'body': r.read().decode()}))")


def test_up_scale_reboot_from_the_stale_copy_and_down(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    # A poweroff drains the agent first (drain.stop_timeout bounds it; the unit's stop timeout is 30 s more).
    cloud.config.write_text(cloud.config.read_text() + "drain: {stop_timeout: 30}\n")
    # -- up: 1 master + 2 agents, all ready ------------------------------------------------------------------
    up = cloud.ok("up")
    assert f"cluster {c} (local): ready in" in up.stdout
    report = cloud.status()
    assert report["complete"] is True, report
    assert ready_names(report) == {f"{c}-master-1", f"{c}-agent-1", f"{c}-agent-2"}
    assert report["members_listed"] == 3 and report["unknown_members"] == []
    master_ip = by_name(report)[f"{c}-master-1"]["ip"]
    assert report["dashboard"] == f"https://{master_ip}/" and f"dashboard: https://{master_ip}/" in up.stdout
    # Safe traffic: the subnet overlaps nothing else of this machine, 169.254.169.254 is on no host interface.
    addresses = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    ours = [line for line in addresses.splitlines() if report["subnet"].rsplit(".", 1)[0] + "." in line]
    assert len(ours) == 1 and cloud.names.bridge in ours[0] and report["host_ip"] in ours[0], ours
    assert "169.254.169.254" not in addresses
    # The secret is in the state file (0600) and nowhere in what the commands printed.
    assert cloud.state_file.stat().st_mode & 0o777 == 0o600
    secret = json.loads(cloud.state_file.read_text())["secret"]
    assert secret not in up.stdout + up.stderr and S3_SECRET not in up.stdout + up.stderr
    # Agents run the whole original service set under systemd: docker, the Spark shuffle service, and the
    # Mesos work dir, Docker data and Alluxio tier 0 as RAM-backed mount units of the configured sizes.
    agent_one = by_name(report)[f"{c}-agent-1"]
    assert {"docker", "spark-shuffle", "mesos-agent", "alluxio-worker", "var-lib-mesos.mount",
            "var-lib-docker.mount"} <= set(agent_one["member"]["services"]), agent_one["member"]
    assert all(state == "active" for state in agent_one["member"]["services"].values()), agent_one["member"]
    for folder in ("/var/lib/mesos", "/var/lib/docker"):
        mount = inside(agent_one["pid"], ["findmnt", "-no", "FSTYPE,OPTIONS", folder]).stdout
        assert mount.startswith("tmpfs") and "size=262144k" in mount, (folder, mount)
    # ssh and logs reach a node by the name status lists: a command runs inside it with its exit code, the
    # journal of a unit comes from the node's own journald; an unknown name is one line, exit 2.
    hostname = cloud.run("ssh", f"{c}-agent-1", "--", "hostname; exit 7")
    assert hostname.returncode == 7 and hostname.stdout.strip() == f"{c}-agent-1", hostname
    by_ip = cloud.ok("ssh", agent_one["ip"], "--", "cat", "/proc/sys/kernel/hostname")
    assert by_ip.stdout.strip() == f"{c}-agent-1"
    journal = cloud.ok("logs", f"{c}-master-1", "-n", "400")
    assert "member_registered" in journal.stdout and "bootstrap-agent" in journal.stdout, journal.stdout[-2000:]
    assert secret not in journal.stdout
    unit_journal = cloud.ok("logs", f"{c}-agent-1", "nginx.service", "--lines", "50")
    assert "nginx" in unit_journal.stdout.lower()
    unknown = cloud.run("ssh", f"{c}-agent-9", "--", "true")
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        f"provision-min: {c}-agent-9: no such node in cluster {c} (nodes: {c}-master-1, {c}-agent-1, {c}-agent-2)")
    # `status` (text) shows the group and every member.
    text = cloud.run("status").stdout
    assert "desired 2, 2 instance(s)" in text and text.count(" ready") >= 3 and "complete" in text

    # -- scale 4: the new agents join by themselves and the master's dashboard lists them ---------------------
    scaled = cloud.ok("scale", "4")
    assert "desired 2 -> 4" in scaled.stdout
    report = cloud.status()
    agents = {n["name"]: n["ip"] for n in report["nodes"] if n["role"] == "agent"}
    assert set(agents) == {f"{c}-agent-{i}" for i in range(1, 5)} and report["complete"], report
    assert https_get(f"https://{master_ip}/", timeout=10).status == 401  # auth on by default
    page = https_get(f"https://{master_ip}/", auth=("admin", cloud.dashboard_password()), timeout=10)
    assert page.status == 200
    html = page.body.decode()
    for ip in agents.values():
        assert ip in html, f"{ip} not on the dashboard"

    # -- scale 1: three idle agents drain and leave ZooKeeper -----------------------------------------------
    # scale picks the least loaded (tasks, then unpersisted and cached bytes, then the newest); all four are idle,
    # so which three go depends on their caches. Each goes through its drain (the lifecycle hook): an idle agent
    # notices its removal at its next poll (drain.poll, 15 s by default), has nothing to wait for, deregisters,
    # calls back CONTINUE itself and powers off.
    scaled_in = cloud.ok("scale", "1")
    report = cloud.status()
    kept = ready_names(report) - {f"{c}-master-1"}
    assert len(kept) == 1 and report["members_listed"] == 2, report
    (keep,) = kept
    leavers = sorted(set(agents) - kept)
    for name in leavers:
        leaver = f"{name} ({agents[name]})"
        assert f"removing {leaver}: idle" in scaled_in.stderr, scaled_in.stderr[-3000:]
        assert f"{leaver}: clean drain after" in scaled_in.stderr, scaled_in.stderr[-3000:]
    # scale returns once they are gone: one lifecycle poll, the idle drain and a clean poweroff.
    settled = re.search(r"settled in ([0-9.]+) s", scaled_in.stdout)
    assert settled is not None and float(settled.group(1)) < 15 + 20.0, scaled_in.stdout
    removed_ips = [agents[name] for name in leavers]
    wait_for("removed agents off the dashboard",
             lambda: not any(ip in https_get(f"https://{master_ip}/", auth=("admin", cloud.dashboard_password()),
                                             timeout=10).body.decode() for ip in removed_ips), timeout=15)

    # -- the metadata service stops, an agent reboots: it comes back from its nginx's stale copy -------------
    md_pid = report["metadata_service"]["pid"]
    os.kill(md_pid, signal.SIGTERM)
    wait_for("metadata service stopped", lambda: not cloud.status()["metadata_service"]["running"], timeout=15)
    agent = by_name(report)[keep]
    assert inside(agent["pid"], ["systemctl", "reboot"]).returncode == 0
    back = wait_for(f"{keep} rebooted and ready", lambda: next(
        (n for n in cloud.status()["nodes"] if n["name"] == keep and n["boots"] == 2 and n["member"]
         and n["member"]["state"] == "ready"), None), timeout=120)
    answer = inside(back["pid"], ["python3", "-c", _GET])
    assert answer.returncode == 0, answer.stderr
    fetched = json.loads(answer.stdout)
    assert fetched["status"] == 200 and fetched["cache"] == "STALE", fetched
    assert json.loads(fetched["body"])["role"] == "agent"
    assert cloud.status()["complete"] is True
    assert "drain_started" not in cloud.ok("logs", keep, "-n", "400").stdout  # a reboot does not drain

    # -- an agent powers itself off: it drains and leaves (issue 15), status says the cluster is incomplete -------
    assert inside(back["pid"], ["systemctl", "poweroff"]).returncode == 0
    wait_for(f"{keep} off", lambda: not by_name(cloud.status())[keep]["running"], timeout=120)
    incomplete = cloud.run("status")
    assert incomplete.returncode == 1 and "NOT complete" in incomplete.stdout
    off = cloud.run("logs", keep)
    assert off.returncode == 2 and off.stderr.strip() == (
        f"provision-min: {keep}: is not running (powered off); provision-min up starts it again"), off

    # -- up boots it again: its shutdown drain ended with that boot, so it brings its Mesos machine up (the
    #    drain left it DOWN) and joins as ready; the master offers it again and a task lands and runs there ------
    booted = time.monotonic()
    again = cloud.run("up", "--wait-timeout", "120")
    if again.returncode != 0:
        raise AssertionError(f"{again.stdout}{again.stderr[-1500:]}\n--- {keep}:\n"
                             + cloud.run("logs", keep, "-n", "100").stdout[-5000:])
    assert "1 instance(s) started" in again.stdout, again.stdout
    report = cloud.status()
    assert report["complete"] is True and keep in ready_names(report), report
    with MesosFramework(f"{master_ip}:5050", name="rejoin-e2e") as framework:
        framework.subscribe(timeout=30)
        task = framework.launch("true", ip=by_name(report)[keep]["ip"], timeout=60)
        framework.wait_state(task, "TASK_FINISHED", timeout=60)
    wait_for("the rejoin in its journal (the DOWN machine up, the agent offered)",  # within one 2 s look
             lambda: '"mesos_rejoined"' in cloud.run("logs", keep, "-n", "100").stdout, timeout=20)
    up_seconds = re.search(r"ready in ([0-9.]+) s", again.stdout)
    print(f"\npowered-off agent booted again: up returned in {up_seconds and up_seconds.group(1)} s, a task ran on "
          f"it {time.monotonic() - booted:.1f} s after up started")

    # -- down: nothing left (checked again by the fixture) ------------------------------------------------------
    gone = cloud.ok("down", "--yes", timeout=300)
    assert "removed" in gone.stdout
    assert cloud.leftovers() == []
    assert "nothing to remove" in cloud.ok("down", "--yes").stdout


def test_down_after_up_was_killed_midway(local_cloud: LocalCloud) -> None:
    """``provision-min`` SIGKILLed while its nodes boot: ``down`` still finds and removes everything."""
    cloud = local_cloud
    proc = subprocess.Popen(cloud.argv("up"), env=cloud.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        wait_for("instances booting", lambda: proc.poll() is None and cloud.state_file.exists()
                 and sum(1 for p in (cloud.state_root / cloud.cluster / "nodes").glob("*/supervisor.json")) == 3,
                 timeout=300, interval=0.05)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert any(line.startswith("link ") for line in cloud.leftovers())  # there is something to remove
    result = cloud.ok("down", "--yes", timeout=300)
    assert f"instance {cloud.cluster}-master-1" in result.stdout and "netns" in result.stdout
    assert cloud.leftovers() == []


def test_three_masters_keep_the_cluster_and_its_scaler_when_the_leading_one_powers_off(
        local_cloud: LocalCloud) -> None:
    """``masters: 3`` with ``autoscaling`` on: a ZooKeeper ensemble of three nodes and one scaler leading. A stand-in
    framework's load makes the scaler raise the group's desired count; the leading scaler's master powers off right
    after that raise, before the new agents are ready. The two masters left keep quorum and every member ready;
    another master's scaler leads within the ZooKeeper session timeout, goes on from ``scaler/state`` and raises
    nothing twice (the AS service saw one desired-count request per decision); the new agents join and take tasks;
    the idle ones are given back down to min by the new leader; ``up`` boots the missing master back."""
    cloud = local_cloud
    c = cloud.cluster
    cloud.write(masters=3, desired=1, max_agents=3)
    cloud.config.write_text(cloud.config.read_text() + SCALER_POLICY)
    cloud.ok("up", timeout=900)
    report = cloud.status()
    masters = {n["name"]: n for n in report["nodes"] if n["role"] == "master"}
    network = report["subnet"].rsplit(".", 1)[0]
    assert [n["ip"] for n in masters.values()] == [f"{network}.10", f"{network}.11", f"{network}.12"]
    assert report["complete"] and ready_names(report) == {*masters, f"{c}-agent-1"}, report
    # One master's scaler leads, named ``<hostname> (<address>)``; the idle cluster stays at min.
    leader = wait_for("a scaler leader", lambda: cloud.status()["scaler"]["leader"], timeout=60)
    leading = leader.split(" (")[0]
    assert leading in masters and f"({masters[leading]['ip']})" in leader, leader
    others = set(masters) - {leading}
    master_ips = {n["ip"] for n in masters.values()}
    seen = len(as_events(cloud))
    ensemble_leader = [ip for ip, mode in zk_modes(master_ips).items() if mode == "leader"]
    with MesosFramework(",".join(f"{ip}:5050" for ip in sorted(master_ips)), name="failover-e2e") as framework:
        framework.subscribe(timeout=30)
        # The load step: 90 % of the one agent's cpus.
        load = [framework.launch_sleep(3600, ip=by_name(report)[f"{c}-agent-1"]["ip"], cpus=0.9, mem=32.0,
                                       timeout=60) for _ in range(2)]
        for task in load:
            framework.wait_state(task, "TASK_RUNNING", timeout=60)
        stepped = time.time()
        # -- mid-scale-out: the AS service took the leader's raise; its master goes before a new agent is ready --
        wait_for("the scaler's raise of the desired count", lambda: raises(cloud, seen, master_ips),
                 timeout=300, interval=0.1)
        off_at = time.time()
        assert inside(masters[leading]["pid"], ["systemctl", "poweroff"]).returncode == 0
        serving: list[float] = []  # when the two masters left serve as an ensemble, its ZooKeeper gone
        watch = threading.Thread(target=lambda: serving.append(wait_for(
            "the ensemble serving without it", lambda: (modes := zk_modes(master_ips)) and masters[leading][
                "ip"] not in modes and sorted(modes.values()) == ["follower", "leader"] and time.time(),
            timeout=300, interval=0.2)), daemon=True)
        watch.start()
        print(f"\nscaler leader {leading} powered off {off_at - stepped:.1f} s after the load step, right after "
              "its raise")
        wait_for(f"{leading} off", lambda: not by_name(cloud.status())[leading]["running"], timeout=60)
        # The ensemble may have lost its leader: the two left elect one (a few seconds), then serve as before.
        started = time.monotonic()
        wait_for("two masters serving with every earlier member ready", lambda: (lambda r: r if (
            r["zookeeper"] == "reachable" and {*others, f"{c}-agent-1"} <= ready_names(r)
            and leading not in ready_names(r)) else None)(cloud.status()), timeout=60)
        print(f"quorum of two serving {time.monotonic() - started:.1f} s after {leading} was off")
        # Another master's scaler leads within the session timeout and goes on from the stored state.
        summary = wait_for("another master's scaler leading", lambda: (s := cloud.status()["scaler"]) and (
            s.get("leader") and leading not in s["leader"] and any(d.get("leader") == s["leader"]
                                                                  for d in s["decisions"])) and s, timeout=60)
        successor = summary["leader"]
        assert successor.split(" (")[0] in others, successor
        first = next(d for d in summary["decisions"] if d.get("leader") == successor)
        # When it took over: its ``scaler_leading`` event (the journal's clock is this machine's).
        leading_at = max(at for at, _ in agent_events(cloud, successor.split(" (")[0], "scaler_leading"))
        gone = journal_on_disk(cloud, leading)
        watch.join(300)
        # The scaler's master is gone once its daemon heard SIGTERM (``leaving``; a loaded machine's systemd may
        # take seconds to send it): it releases the leadership then. If that master led the ZooKeeper ensemble,
        # nobody can take over before the two left serve again (and an unreleased leadership would expire a
        # session timeout after that, ZooKeeper restarting every session's clock with a new leader).
        stopping = max([off_at, *(at for at, e in parsed(gone) if e["event"] == "leaving" and at > off_at)])
        assert serving, "the two masters left never served as an ensemble again"
        took = leading_at - max([stopping, *serving])
        print(f"scaler takeover: {successor} leading {leading_at - off_at:.2f} s after the poweroff, {took:.2f} s "
              f"after the later of its daemon's stop and the ensemble serving without it (session timeout "
              f"{ZK_SESSION_TIMEOUT:.0f} s); ensemble led by {leading}: {masters[leading]['ip'] in ensemble_leader}, "
              f"serving again +{serving[0] - off_at:.2f} s; {leading}'s daemon: " + ", ".join(
                  f"{e['event']} +{at - off_at:.2f} s" for at, e in parsed(gone) if at > off_at and e["event"] in (
                      "leaving", "scaler_stopped", "scaler_stop_slow", "scaler_release_deferred", "left")))
        if took > ZK_SESSION_TIMEOUT:  # what the masters left did meanwhile, for the failure
            for name in sorted(others):
                for at, e in agent_events(cloud, name, None):
                    if off_at - 1 < at < leading_at + 1 and e["event"] != "scaler_decision":
                        print(f"  {name} +{at - off_at:.2f} s {json.dumps(e)[:400]}")
        assert took <= ZK_SESSION_TIMEOUT
        # A new leader first warms up its own window (and waits for the agents its predecessor asked for).
        assert first["action"] == "none", first
        print(f"its first decision: {first['reason']}, {first['signals'].get('joining')} agent(s) joining")

        # -- the new agents join and take tasks; every member is ready, the powered-off master's znode is gone --
        report = wait_for("every agent the group wants ready", lambda: (r := cloud.status()) and (
            r["group"]["desired"] == len(agents(r)) >= 2 and ready_names(r) == {*others, *agents(r)}
            and r["members_listed"] == len(others) + len(agents(r))) and r, timeout=600, interval=2.0)
        fresh = sorted(agents(report) - {f"{c}-agent-1"})
        # When the first new agent became ready: status gives whole seconds in state, read between two clocks.
        before, report, after = time.time(), cloud.status(), time.time()
        in_state = max(by_name(report)[name]["member"]["in_state_seconds"] for name in fresh)
        assert before - in_state - 1 > off_at, "a new agent was ready before the poweroff: not mid-scale-out"
        print(f"load step → first new agent ready, the scaler's failover in between: "
              f"{(before + after) / 2 - in_state - 0.5 - stepped:.0f} ± 1 s ({len(fresh)} new)")
        grown = report["group"]["desired"]
        decisions = report["scaler"]["decisions"]
        out = [d for d in decisions if d["action"] == "out"]
        # One decision, one raise: by the dead leader, carried out once; the successor added none for that load.
        assert [(d["leader"], d["desired"]) for d in out] == [(leader, grown)], decisions
        assert len(raises(cloud, seen, master_ips)) == len(out) == 1, "the desired count was raised twice"
        launched = [e for e in as_events(cloud)[seen:] if e.get("event") == "instance_launched"]
        assert len(launched) == grown - 1 == len(fresh), launched
        assert report["scaler"]["intent"] is None and report["scaler"]["leader"] == successor
        if framework.leader and framework.leader.rpartition(":")[0] in (masters[leading]["ip"], leading):
            framework.subscribe(timeout=60)  # it was the Mesos leader too: the framework follows the new one
        placed = [framework.launch_sleep(3600, ip=by_name(report)[name]["ip"], cpus=0.2, mem=32.0, timeout=60)
                  for name in fresh]
        for task in placed:
            framework.wait_state(task, "TASK_RUNNING", timeout=60)
        text = cloud.run("status", timeout=60).stdout
        assert f"scaler: leader {successor}" in text and "out scale_out" in text, text
        print("\n".join(line for line in text.splitlines() if "scaler" in line or line.startswith("    ")))

    # -- the load ends (the framework's teardown): the new leader gives the idle agents back down to min -------
    ended = time.monotonic()
    report = wait_for("back to min through the drain", lambda: (r := cloud.status()) and len(agents(r)) == 1
                      and r["group"]["desired"] == 1 and r, timeout=900, interval=2.0)
    print(f"load end → back to min: {time.monotonic() - ended:.1f} s")
    scale_in = [d for d in report["scaler"]["decisions"] if d["action"] == "in"]
    assert scale_in and {d["leader"] for d in scale_in} == {successor}, report["scaler"]["decisions"]
    assert sum(len(d["remove"]) for d in scale_in) == grown - 1
    assert ready_names(report) == {*others, *agents(report)}
    assert not by_name(report)[leading]["running"]
    assert "1 instance(s) started" in cloud.ok("up").stdout
    assert cloud.status()["complete"] is True


def raises(cloud: LocalCloud, seen: int, masters: set[str]) -> list[dict[str, Any]]:
    """The AS service's accepted desired-count changes (``PUT /scaling_group/<id>``) from a master's address (the
    scaler's) since the first ``seen`` lines of its log."""
    return [e for e in as_events(cloud)[seen:] if e.get("event") == "request" and e["method"] == "PUT"
            and re.search(r"/scaling_group/[^/]+$", e["path"]) and e["status"] < 300 and e["client"] in masters]


def journal_on_disk(cloud: LocalCloud, name: str) -> str:
    """A powered-off node's bootstrap-agent journal, read from its disk (for a failure's message)."""
    folder = cloud.state_root / cloud.cluster / "nodes" / name / "disk" / "upper" / "var" / "log" / "journal"
    result = subprocess.run(["journalctl", "-D", str(folder), "-u", "bootstrap-agent", "-o", "short-precise",
                             "--no-pager"], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout + result.stderr


def parsed(journal: str) -> list[tuple[float, dict[str, Any]]]:
    """The daemon's JSON events in journal lines, with their timestamps as epoch seconds."""
    found = []
    for line in journal.splitlines():
        _, brace, rest = line.partition(": {")
        try:
            event = json.loads(brace[-1:] + rest) if brace else None
        except ValueError:
            continue
        if isinstance(event, dict) and "timestamp" in event and "event" in event:
            found.append((datetime.fromisoformat(event["timestamp"]).timestamp(), event))
    return found


def agent_events(cloud: LocalCloud, name: str, event: str | None) -> list[tuple[float, dict[str, Any]]]:
    """``event`` (None: every event) in a running node's bootstrap-agent journal (``provision-min logs``)."""
    journal = cloud.ok("logs", name, "bootstrap-agent.service", "-n", "3000", timeout=60).stdout
    return [(at, e) for at, e in parsed(journal) if event is None or e["event"] == event]


def zk_modes(ips: set[str]) -> dict[str, str]:
    """``srvr``'s mode (leader, follower) of each master's ZooKeeper that serves; none while it cannot."""
    modes = {}
    for ip in ips:
        try:
            found = re.search(r"^Mode: (\w+)", four_letter_word(ip, CLIENT_PORT, "srvr", timeout=1.0), re.M)
        except OSError:
            continue
        if found:
            modes[ip] = found.group(1)
    return modes
