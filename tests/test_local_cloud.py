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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_cloud import S3_SECRET, LocalCloud, by_name, inside, ready_names, torn_down
from tests.support.netns import https_get
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("containers_required")

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

    # -- an agent powers itself off: it drains and leaves (issue 15), status says the cluster is incomplete -------
    assert inside(back["pid"], ["systemctl", "poweroff"]).returncode == 0
    wait_for(f"{keep} off", lambda: not by_name(cloud.status())[keep]["running"], timeout=120)
    incomplete = cloud.run("status")
    assert incomplete.returncode == 1 and "NOT complete" in incomplete.stdout
    off = cloud.run("logs", keep)
    assert off.returncode == 2 and off.stderr.strip() == (
        f"provision-min: {keep}: is not running (powered off); provision-min up starts it again"), off

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


def test_three_masters_keep_the_cluster_when_one_powers_off(local_cloud: LocalCloud) -> None:
    """``masters: 3``: a ZooKeeper ensemble of three nodes; with one master off the others keep quorum, the
    agent stays ready, and ``up`` boots the missing master back into the ensemble."""
    cloud = local_cloud
    c = cloud.cluster
    cloud.write(masters=3, desired=1)
    cloud.ok("up")
    report = cloud.status()
    masters = {n["name"]: n for n in report["nodes"] if n["role"] == "master"}
    network = report["subnet"].rsplit(".", 1)[0]
    assert [n["ip"] for n in masters.values()] == [f"{network}.10", f"{network}.11", f"{network}.12"]
    assert report["complete"] and ready_names(report) == {*masters, f"{c}-agent-1"}, report
    second = masters[f"{c}-master-2"]
    assert inside(second["pid"], ["systemctl", "poweroff"]).returncode == 0
    wait_for("master-2 off", lambda: not by_name(cloud.status())[f"{c}-master-2"]["running"], timeout=60)
    # The ensemble may have lost its leader: the two left elect one (a few seconds), then serve as before.
    started = time.monotonic()
    report = wait_for("two masters serving with every member ready", lambda: (lambda r: r if (
        r["zookeeper"] == "reachable" and r["members_listed"] == 3
        and ready_names(r) == {f"{c}-master-1", f"{c}-master-3", f"{c}-agent-1"}) else None)(cloud.status()),
        timeout=60)
    print(f"quorum of two serving {time.monotonic() - started:.1f} s after master-2 was off")
    assert not by_name(report)[f"{c}-master-2"]["running"]
    assert "1 instance(s) started" in cloud.ok("up").stdout
    assert cloud.status()["complete"] is True
