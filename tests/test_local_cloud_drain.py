"""An agent's drain end to end on the local cloud, under real systemd (systemd-nspawn): the AS service removes a
busy instance on its own (as a scaling policy or the console would), the node notices its pending removal through
the lifecycle hook, drains, and lets the group go on with its own signed CONTINUE.

What a user sees: the draining agent gets no new task, its running task completes (never killed), its member
says what it waits for, the machine goes down at the Mesos master only after the task, the shuffle phase keeps
the node while the framework that ran there is alive, the AS service hears CONTINUE from the node's own address
with the node's temporary key, and only then does the instance go. A second removal whose task outlives
``drain.grace`` is removed anyway, with ``drain_grace_expired`` naming what was pending.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from provision_min.local.as_host import HOOK_TIMEOUT_ENV
from tests.support.local_cloud import LocalCloud, by_name, inside, torn_down
from tests.support.mesos_framework import MesosFramework
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("containers_required")

RELEASE = "/tmp/e2e-release"  # in the victim's container: its task ends once this exists
TASK = f"while [ ! -e {RELEASE} ]; do sleep 0.2; done"
# The stuck node's test: the master forgets an agent 3 x 3 s after its last ping (the stand-in agent pings every
# 0.5 s) instead of after Mesos' default 5 x 15 s, so the proof does not wait out the default.
QUICK_PING = "docker_ramdisk: 256MB, master_flags: {agent_ping_timeout: 3secs, max_agent_ping_timeouts: 3}}"


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"dr-{os.getpid()}", env={HOOK_TIMEOUT_ENV: "600"})
    cloud.write(masters=1, desired=2)
    cloud.config.write_text(cloud.config.read_text() + "drain: {grace: 240, stop_timeout: 60, poll: 2}\n")
    with torn_down(cloud):
        yield cloud


def requests_log(cloud: LocalCloud) -> list[dict[str, Any]]:
    path = cloud.state_root / cloud.cluster / "as-service.log"
    return [e for e in (json.loads(line) for line in path.read_text().splitlines() if line.startswith("{"))
            if e.get("event") == "request"]


def member(cloud: LocalCloud, name: str) -> dict[str, Any] | None:
    node = by_name(cloud.status()).get(name)
    found: dict[str, Any] | None = node["member"] if node else None
    return found


def journal_events(pid: int, name: str) -> list[dict[str, Any]]:
    out = inside(pid, ["journalctl", "-u", "bootstrap-agent", "-o", "cat", "--no-pager"]).stdout
    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                events.append(event)
    return events


def test_a_busy_agent_removed_by_the_group_drains_and_calls_back_itself(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.ok("up")
    asc, group = cloud.agents_group()
    operator_key = json.loads(cloud.state_file.read_text())["as_access_key"]
    nodes = by_name(cloud.status())
    master_ip, victim = nodes[f"{c}-master-1"]["ip"], nodes[f"{c}-agent-2"]
    with MesosFramework(f"{master_ip}:5050", name="drain-e2e") as framework:
        framework.subscribe(timeout=30)
        task = framework.launch(TASK, ip=victim["ip"], timeout=60)  # runs until the test releases it
        framework.wait_state(task, "TASK_RUNNING", timeout=60)
        wait_for("the task in the victim's load",
                 lambda: ((member(cloud, f"{c}-agent-2") or {}).get("load") or {}).get("tasks") == 1, timeout=120)

        removed = time.monotonic()
        asc.remove(group.id, [victim["uuid"]])  # the group's own decision: no provision-min involved
        draining = wait_for("the victim draining", lambda: (m := member(cloud, f"{c}-agent-2"))
                            and m["state"] == "draining" and m, timeout=60)
        assert draining["drain"]["reason"] == "lifecycle" and draining["drain"]["phase"] == "tasks"
        assert draining["reason"] == "lifecycle drain: 1 running task(s) to finish"
        noticed = time.monotonic() - removed
        time.sleep(2)
        assert framework.offers(ip=victim["ip"]) == []  # deactivated: no new task can land there
        assert framework.state(task) == "TASK_RUNNING"  # the drain waits for it
        assert inside(victim["pid"], ["touch", RELEASE]).returncode == 0  # its work ends now
        framework.wait_state(task, "TASK_FINISHED", timeout=90)
        task_done = time.monotonic()
        assert "TASK_KILLED" not in framework.states(task) and "TASK_LOST" not in framework.states(task)
        shuffle = wait_for("the shuffle phase", lambda: (m := member(cloud, f"{c}-agent-2"))
                           and (m.get("drain") or {}).get("phase") == "shuffle" and m, timeout=60)
        assert "1 running framework(s) with shuffle files here" in shuffle["reason"]
        (instance,) = [i for i in asc.instances(group.id) if i.id == victim["uuid"]]
        assert instance.state == "REMOVING_WAIT"  # the group waits for the node
        status = requests.get(f"http://{master_ip}:5050/master/maintenance/status", timeout=10).json()
        assert {"hostname": victim["ip"], "ip": victim["ip"]} in status.get("down_machines", [])
    framework_gone = time.monotonic()
    wait_for("the instance gone", lambda: victim["uuid"] not in {i.id for i in asc.instances(group.id)},
             timeout=120)
    gone = time.monotonic()
    callbacks = [e for e in requests_log(cloud) if e["method"] == "PUT" and e["path"].endswith("/callback")]
    assert [(e["client"], e["status"]) for e in callbacks] == [(victim["ip"], 204)], callbacks
    assert callbacks[0]["access"] != operator_key  # the node's temporary key, not the operator's
    slaves = requests.get(f"http://{master_ip}:5050/master/slaves", timeout=10).json()["slaves"]
    assert victim["ip"] not in {s["hostname"] for s in slaves}
    print(f"\nbusy drain: removal noticed after {noticed:.1f} s; task done → framework gone "
          f"{framework_gone - task_done:.1f} s (the shuffle wait); framework gone → instance gone "
          f"{gone - framework_gone:.1f} s (drain overhead beyond the work)")


def test_a_drain_past_its_grace_ends_with_the_instance_removed_and_a_clear_event(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.config.write_text(cloud.config.read_text().replace("grace: 240", "grace: 8"))
    cloud.ok("up")
    asc, group = cloud.agents_group()
    nodes = by_name(cloud.status())
    master_ip, victim = nodes[f"{c}-master-1"]["ip"], nodes[f"{c}-agent-2"]
    with MesosFramework(f"{master_ip}:5050", name="grace-e2e") as framework:
        framework.subscribe(timeout=30)
        task = framework.launch_sleep(600, ip=victim["ip"], timeout=60)
        framework.wait_state(task, "TASK_RUNNING", timeout=60)
        wait_for("the task in the load",
                 lambda: ((member(cloud, f"{c}-agent-2") or {}).get("load") or {}).get("tasks") == 1, timeout=120)
        asc.remove(group.id, [victim["uuid"]])
        seen: list[dict[str, Any]] = []

        def expired() -> bool:
            if victim["uuid"] not in {i.id for i in asc.instances(group.id)}:
                return True
            seen.extend(journal_events(victim["pid"], "drain_grace_expired"))
            return bool(seen)

        wait_for("the grace expired", expired, timeout=120)
        assert seen and seen[0]["pending"][0] == "1 running task(s)", seen
        wait_for("the instance gone", lambda: victim["uuid"] not in {i.id for i in asc.instances(group.id)},
                 timeout=120)
        framework.wait_state(task, "TASK_LOST", "TASK_GONE_BY_OPERATOR", timeout=60)


@pytest.fixture
def short_hook_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"dk-{os.getpid()}", env={HOOK_TIMEOUT_ENV: "20"})
    cloud.write(masters=1, desired=2)
    text = cloud.config.read_text()
    assert "docker_ramdisk: 256MB}" in text
    cloud.config.write_text(text.replace("docker_ramdisk: 256MB}", QUICK_PING)
                            + "drain: {grace: 240, stop_timeout: 60, poll: 2}\n")
    with torn_down(cloud):
        yield cloud


def test_a_node_stuck_mid_drain_is_removed_by_the_hook_timeout_and_the_master_forgets_it(
        short_hook_cloud: LocalCloud) -> None:
    cloud = short_hook_cloud
    c = cloud.cluster
    cloud.ok("up")
    asc, group = cloud.agents_group()
    nodes = by_name(cloud.status())
    master_ip, victim = nodes[f"{c}-master-1"]["ip"], nodes[f"{c}-agent-2"]
    with MesosFramework(f"{master_ip}:5050", name="stuck-e2e") as framework:
        framework.subscribe(timeout=30)
        task = framework.launch_sleep(600, ip=victim["ip"], timeout=60)
        framework.wait_state(task, "TASK_RUNNING", timeout=60)
        asc.remove(group.id, [victim["uuid"]])
        wait_for("the victim draining", lambda: ((member(cloud, f"{c}-agent-2") or {}).get("drain") or {})
                 .get("phase") == "tasks", timeout=60)
        # The node's agent stops (not a shutdown: no drain on stop) and nobody will call back.
        assert inside(victim["pid"], ["systemctl", "stop", "bootstrap-agent"]).returncode == 0
        stuck = time.monotonic()
        wait_for("the hook's timeout lets the group remove it",
                 lambda: victim["uuid"] not in {i.id for i in asc.instances(group.id)}, timeout=180)
        waited = time.monotonic() - stuck
        timeouts = [e for e in (json.loads(line) for line in (cloud.state_root / c / "as-service.log")
                                .read_text().splitlines() if line.startswith("{"))
                    if e.get("event") == "lifecycle_timeout" and e.get("instance") == victim["uuid"]]
        assert timeouts and timeouts[0]["result"] == "CONTINUE", timeouts

        def forgotten() -> bool:
            slaves = requests.get(f"http://{master_ip}:5050/master/slaves", timeout=10).json()["slaves"]
            return victim["ip"] not in {s["hostname"] for s in slaves}

        wait_for("the master forgets the agent", forgotten, timeout=240)
        forgot = time.monotonic() - stuck - waited
        framework.wait_state(task, "TASK_LOST", "TASK_UNREACHABLE", "TASK_GONE", timeout=60)
    print(f"\nstuck node: removed {waited:.1f} s after its agent stopped (hook timeout 20 s), forgotten by the "
          f"master {forgot:.1f} s later (agent_ping_timeout 3 s x 3)")
