"""Issue 15's headline scenario end to end through the user's command, with the data proof: the local cloud under
real systemd (systemd-nspawn), Alluxio 2.9 stand-ins (agents run ``alluxio-job-worker``, the master
``alluxio-job-master``: 2.9 persists through the job service), Alluxio's root UFS on moto's S3 server on this
machine's bridge address, one master and three agents.

Two agents run a stand-in task each (launched through the Mesos master's scheduler API) and hold files written
``MUST_CACHE`` through their own Alluxio proxy (so ``LocalFirstPolicy`` puts the blocks on their own worker, never
persisted); ``agent-1`` holds fewer bytes than ``agent-3``; ``agent-2`` is idle. So neither the group's own policy
(oldest or newest first) nor a choice without the bytes would pick what ``scale`` must pick:

* ``provision-min scale 2`` removes exactly the idle ``agent-2`` through its (clean) drain, without waiting on the
  busy ones, whose tasks keep running and which stay ``ready`` (the idle agent is picked by load, neither the
  oldest nor the newest);
* ``provision-min scale 1`` drains ``agent-1`` (one task like ``agent-3``, fewer unpersisted bytes): no new task
  lands there although a framework keeps trying (``DEACTIVATE_AGENT``), its running task completes
  (``TASK_FINISHED``), its unpersisted files are in S3 with the right bytes while the instance is still listed,
  the AS service hears ``CONTINUE`` from the node itself (its address, its temporary key), and only then does the
  instance go.

The tasks wait for a marker file in their container, so the test decides how long the victim's task still runs
once the drain began; the job framework whose task ran there ends with it (an application ending), which lets the
shuffle phase end. Printed: the idle removal's seconds, the busy drain's overhead beyond the task's own remaining
run time, and the tasks killed and files lost (both asserted 0).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from provision_min.local import network
from provision_min.local.as_host import HOOK_TIMEOUT_ENV
from provision_min.local.layout import AUTO_SUBNETS
from tests.support.local_cloud import LocalCloud, by_name, inside, ready_names, torn_down
from tests.support.mesos_framework import MesosFramework
from tests.support.moto_s3 import moto_server_on
from tests.support.waiting import NotReached, wait_for

pytestmark = pytest.mark.usefixtures("containers_required")

BUCKET = "e2e-cache"
ALLUXIO_CLI = "/opt/alluxio/bin/alluxio"
RELEASE = "/tmp/e2e-release"  # in the agent's container: its task ends once this exists
TASK = f"while [ ! -e {RELEASE} ]; do sleep 0.2; done"
# Tasks that did not end by themselves (killed, lost with their agent, ...): each one is a loss.
LOST_TASK = {"TASK_KILLED", "TASK_KILLING", "TASK_LOST", "TASK_FAILED", "TASK_ERROR", "TASK_DROPPED",
             "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE"}


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of the local cloud's pool that no address of this machine overlaps, from the pool's end (``up``
    without ``--subnet`` takes the first free one: a cluster started meanwhile is unlikely to take it)."""
    host = network.host_ipv4_networks()
    for candidate in reversed(list(AUTO_SUBNETS.subnets(new_prefix=24))):
        if not any(i.network.overlaps(candidate) for i in host):
            return candidate
    raise AssertionError(f"no free /24 in {AUTO_SUBNETS}")


@dataclass
class Scene:
    cloud: LocalCloud
    subnet: ipaddress.IPv4Network
    s3: Any  # a boto3 S3 client of the moto server the nodes persist to

    @property
    def host_ip(self) -> str:
        return str(self.subnet.network_address + 2)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    """The subnet is fixed before ``up`` so the S3 endpoint (the bridge's ``.2``) can go into the cluster file;
    moto listens there from before the bridge exists (``IP_FREEBIND``) until after ``down``, also on failure.
    Nothing can reach it before ``up`` made the bridge (the test creates the bucket then); the Alluxio stand-ins
    touch S3 only to persist or delete a persisted file, never at start (``standins/alluxio_ufs.py``)."""
    subnet = free_subnet()
    cloud = LocalCloud(tmp_path, f"gd-{os.getpid()}", env={HOOK_TIMEOUT_ENV: "600"})
    cloud.write(masters=1, desired=3)
    with moto_server_on(str(subnet.network_address + 2)) as endpoint:
        text = cloud.config.read_text()
        ufs = 'root_ufs: "s3://eo-data/alluxio"'
        assert ufs in text
        cloud.config.write_text(
            text.replace(ufs, f'root_ufs: "s3://{BUCKET}/alluxio", s3_endpoint: "{endpoint}", s3_region: eu-de')
            + "drain: {grace: 150, stop_timeout: 60, poll: 1}\n")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-de", aws_access_key_id="EXAMPLEACCESSKEY0001",
                          aws_secret_access_key="unchecked", config=Config(signature_version="s3v4"))
        with torn_down(cloud):
            yield Scene(cloud, subnet, s3)


# -- helpers -----------------------------------------------------------------------------------------------------
def write_must_cache(ip: str, path: str, data: bytes) -> None:
    """One file through the agent's own Alluxio proxy (REST, port 39999), blocks only in the cache."""
    proxy = f"http://{ip}:39999/api/v1"
    with requests.Session() as http:
        http.trust_env = False  # the bridge, never a proxy of this machine
        created = http.post(f"{proxy}/paths{path}/create-file", json={"writeType": "MUST_CACHE", "recursive": True},
                            timeout=30)
        assert created.status_code == 200, created.text
        stream = created.json()
        wrote = http.post(f"{proxy}/streams/{stream}/write", data=data,
                          headers={"Content-Type": "application/octet-stream"}, timeout=30)
        assert wrote.status_code == 200 and wrote.json() == len(data), wrote.text
        closed = http.post(f"{proxy}/streams/{stream}/close", timeout=30)
        assert closed.status_code == 200, closed.text


def alluxio(pid: int, *args: str) -> str:
    done = inside(pid, [ALLUXIO_CLI, *args])
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def fs_ls(pid: int) -> dict[str, list[str]]:
    """``alluxio fs ls -R /`` on a node: path → fields (state ``[-5]``, size ``[-6]``, in Alluxio ``[-2]``)."""
    return {f[-1]: f for f in (line.split() for line in alluxio(pid, "fs", "ls", "-R", "/").splitlines()) if f}


def s3_objects(scene: Scene) -> dict[str, bytes]:
    keys = [o["Key"] for o in scene.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: scene.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def as_log(cloud: LocalCloud) -> list[dict[str, Any]]:
    path = cloud.state_root / cloud.cluster / "as-service.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def member(cloud: LocalCloud, name: str) -> dict[str, Any]:
    node = by_name(cloud.status()).get(name) or {}
    return dict(node.get("member") or {})


def start(cloud: LocalCloud, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cloud.argv(*args), env=cloud.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-3000:]}"
    return out, err


def framework(stack: contextlib.ExitStack, master_ip: str, name: str) -> MesosFramework:
    """A subscribed stand-in framework, closed (TEARDOWN) when the test ends, also on failure."""
    subscribed = MesosFramework(f"{master_ip}:5050", name=name)
    stack.callback(subscribed.close)
    subscribed.subscribe(timeout=30)
    return subscribed


def step_back(job: MesosFramework) -> None:
    """A job framework with its one task running declines what it holds for an hour (as a scheduler without more
    work does), so other frameworks get offers for those agents."""
    time.sleep(0.5)  # the re-offer after its launch (refuse_seconds 0.2)
    held = [o["id"]["value"] for o in job.offers()]
    if held:
        job.decline(held, refuse_seconds=3600)


class KeepLaunching:
    """A framework that keeps trying to launch a task on one agent (as a scheduler with work would)."""

    def __init__(self, framework: MesosFramework, ip: str) -> None:
        self.framework, self.ip = framework, ip
        self.attempts = 0
        self.landed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keep-launching", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.landed.append(self.framework.launch_sleep(1, ip=self.ip, timeout=1.0))
            except NotReached:
                self.attempts += 1

    def __enter__(self) -> KeepLaunching:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# -- the scenario ------------------------------------------------------------------------------------------------
def test_scale_in_removes_the_idle_agent_then_drains_a_busy_one_losing_no_task_and_no_block(scene: Scene) -> None:
    cloud = scene.cloud
    c = cloud.cluster
    cloud.ok("up", "--subnet", str(scene.subnet), timeout=900)
    report = cloud.status()
    assert report["host_ip"] == scene.host_ip, report
    scene.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-de"})
    nodes = by_name(report)
    master = nodes[f"{c}-master-1"]
    small, idle, large = (nodes[f"{c}-agent-{i}"] for i in (1, 2, 3))
    asc, group = cloud.agents_group()
    operator_key = json.loads(cloud.state_file.read_text())["as_access_key"]

    def listed() -> dict[str, str]:
        return {i.id: i.state for i in asc.instances(group.id)}

    # -- unpersisted files, each written through its agent's own proxy: blocks on that agent's worker ----------
    written: dict[str, tuple[dict[str, Any], bytes]] = {}
    for agent, sizes in ((small, (2048, 2048)), (large, (8192, 8192, 8192))):
        for n, size in enumerate(sizes):
            path = f"/e2e/{agent['name']}/part-{n}"
            written[path] = (agent, os.urandom(size))
            write_must_cache(agent["ip"], path, written[path][1])
    listing = fs_ls(master["pid"])
    for path, (agent, data) in written.items():
        assert listing[path][-5] == "NOT_PERSISTED" and int(listing[path][-6]) == len(data), listing[path]
        hosts = alluxio(master["pid"], "fs", "location", path).splitlines()[1:]
        assert hosts == [agent["ip"]], (path, hosts)  # LocalFirst: only on the writer's own worker
    assert s3_objects(scene) == {}

    with contextlib.ExitStack() as stack:
        jobs = {a["name"]: framework(stack, master["ip"], f"job-{a['name']}") for a in (small, large)}
        tasks = {}
        for agent in (small, large):
            tasks[agent["name"]] = jobs[agent["name"]].launch(TASK, ip=agent["ip"], timeout=60)
            jobs[agent["name"]].wait_state(tasks[agent["name"]], "TASK_RUNNING", timeout=60)
            step_back(jobs[agent["name"]])

        def loads_reported() -> bool:
            members = {name: member(cloud, name) for name in (small["name"], idle["name"], large["name"])}
            loads = {name: m.get("load") or {} for name, m in members.items()}
            return (loads[idle["name"]].get("tasks") == 0 and loads[idle["name"]].get("cache_bytes") == 0
                    and all(loads[a["name"]].get("tasks") == 1 and (loads[a["name"]].get("cache_bytes") or 0)
                            >= sum(len(d) for p, (w, d) in written.items() if w is a) for a in (small, large)))

        wait_for("the agents' loads (tasks, cached bytes) in their members", loads_reported, timeout=120)

        # -- scale 2: exactly the idle one goes, at once -------------------------------------------------------
        began = time.monotonic()
        scaling = start(cloud, "scale", "2")
        wait_for("the idle instance gone", lambda: idle["uuid"] not in listed(), timeout=180, interval=0.2)
        idle_seconds = time.monotonic() - began
        out, err = finish(scaling, 300)
        said = [line.strip() for line in err.splitlines() if line.startswith("removing ") or " after " in line]
        assert f"removing {idle['name']} ({idle['ip']}): idle" in err, err[-3000:]
        assert f"{idle['name']} ({idle['ip']}): clean drain after" in out + err, out + err[-3000:]
        assert f"removing {small['name']}" not in err and f"removing {large['name']}" not in err, err[-3000:]
        assert "desired 3 -> 2" in out, out
        assert set(listed()) == {small["uuid"], large["uuid"]}
        assert all(jobs[name].state(task) == "TASK_RUNNING" for name, task in tasks.items())
        assert {member(cloud, a["name"]).get("state") for a in (small, large)} == {"ready"}
        assert ready_names(cloud.status()) == {master["name"], small["name"], large["name"]}

        # -- scale 1: the least loaded busy agent drains -------------------------------------------------------
        victim, stayer = small, large
        node_key = json.loads((cloud.state_root / c / "metadata" / victim["ip"] / "securitykey").read_text())
        for job in jobs.values():
            step_back(job)
        prober = framework(stack, master["ip"], "keeps-launching")
        prober.wait_offer(ip=victim["ip"], timeout=30)  # before the drain its launches would land there
        began = time.monotonic()
        scaling = start(cloud, "scale", "1")
        draining = wait_for("the victim in its drain's tasks phase", lambda: (m := member(cloud, victim["name"]))
                            and (m.get("drain") or {}).get("phase") == "tasks" and m, timeout=60, interval=0.2)
        assert draining["state"] == "draining" and draining["drain"]["reason"] == "lifecycle", draining
        assert draining["reason"] == "lifecycle drain: 1 running task(s) to finish", draining
        assert member(cloud, stayer["name"]).get("state") == "ready"
        assert prober.offers(ip=victim["ip"]) == []  # deactivated: its offer rescinded
        with KeepLaunching(prober, victim["ip"]) as launching:
            wait_for("a few launches that found no offer there", lambda: launching.attempts >= 3, timeout=30)
            assert jobs[victim["name"]].state(tasks[victim["name"]]) == "TASK_RUNNING"
            assert listed()[victim["uuid"]] == "REMOVING_WAIT"
            assert inside(victim["pid"], ["touch", RELEASE]).returncode == 0  # its work ends now
            jobs[victim["name"]].wait_state(tasks[victim["name"]], "TASK_FINISHED", timeout=30)
            task_done = time.monotonic()
            jobs[victim["name"]].close()  # the application ends with its work: nothing fetches shuffle files there

            theirs = {f"alluxio{p}": d for p, (a, d) in written.items() if a is victim}
            proof: dict[str, float] = {}

            def gone() -> bool:
                in_s3 = s3_objects(scene)  # first S3, then the group: S3 complete while the instance is listed
                still = victim["uuid"] in listed()
                if still and all(in_s3.get(k) == d for k, d in theirs.items()):
                    proof.setdefault("in_s3_while_listed", time.monotonic())
                return not still

            wait_for("the drained instance gone", gone, timeout=180, interval=0.3)
            gone_at = time.monotonic()
        out, err = finish(scaling, 300)
        said += [line.strip() for line in err.splitlines() if line.startswith("removing ") or " after " in line]
        assert f"removing {victim['name']} ({victim['ip']}): 1 task(s)" in err, err[-3000:]
        assert f"removing {stayer['name']}" not in err, err[-3000:]
        assert f"{victim['name']} ({victim['ip']}): clean drain after" in out + err, out + err[-3000:]
        assert "in_s3_while_listed" in proof, "the victim's files were not all in S3 before its instance went"
        assert set(listed()) == {stayer["uuid"]}

        # -- no new task landed there; the AS service heard CONTINUE from the node, then removed it --------------
        assert launching.landed == [] and prober.updates == [], (launching.landed, prober.updates)
        events = as_log(cloud)
        callbacks = [e for e in events if e.get("event") == "request" and e["method"] == "PUT"
                     and e["path"].endswith("/callback")]
        # each leaver called back itself: the idle one (scale 2), then the victim, with its own temporary key
        assert [(e["client"], e["status"]) for e in callbacks] == [(idle["ip"], 204), (victim["ip"], 204)], callbacks
        assert callbacks[1]["access"] == node_key["credential"]["access"] != operator_key, callbacks
        for leaver, callback in ((idle, callbacks[0]), (victim, callbacks[1])):
            states = [(e["new"], e["ts"]) for e in events
                      if e.get("event") == "instance_state" and e.get("instance") == leaver["uuid"]]
            waited = [ts for new, ts in states if new == "REMOVING_WAIT"]
            removing = [ts for new, ts in states if new == "REMOVING"]
            # held in REMOVING_WAIT until its CONTINUE moved it on: the service logs a request once it answered it,
            # so the state change caused by the callback comes within that request, just before its line
            assert waited and removing and waited[0] < removing[0] <= callback["ts"] < removing[0] + 1.0, (
                leaver["name"], states, callback)
        assert not [e for e in events if e.get("event") == "lifecycle_timeout"], "the hook's timeout let it go"

        # -- what was lost: nothing ----------------------------------------------------------------------------
        assert jobs[stayer["name"]].state(tasks[stayer["name"]]) == "TASK_RUNNING"
        assert inside(stayer["pid"], ["touch", RELEASE]).returncode == 0
        jobs[stayer["name"]].wait_state(tasks[stayer["name"]], "TASK_FINISHED", timeout=30)
        updates = [u for fw in (*jobs.values(), prober) for u in fw.updates]
        killed = [u for u in updates if u.get("state") in LOST_TASK]
        metrics = requests.get(f"http://{master['ip']}:5050/metrics/snapshot", timeout=10).json()
        master_lost = sum(int(metrics.get(f"master/{k}", 0)) for k in (
            "tasks_killed", "tasks_lost", "tasks_failed", "tasks_gone_by_operator", "tasks_unreachable"))
        listing = fs_ls(master["pid"])
        in_s3 = s3_objects(scene)

        def lost_file(path: str, agent: dict[str, Any], data: bytes) -> bool:
            """Gone from the namespace or LOST; the victim's: not persisted or not in S3 with its bytes; the
            stayer's (still unpersisted, rightly): no longer in the cache."""
            fields = listing.get(path)
            if fields is None or fields[-5] == "LOST":
                return True
            if agent is victim:
                return fields[-5] != "PERSISTED" or in_s3.get(f"alluxio{path}") != data
            return fields[-2] != "100%"

        lost = [path for path, (agent, data) in written.items() if lost_file(path, agent, data)]
        overhead = gone_at - task_done
        print("\n" + "\n".join(dict.fromkeys(said)))
        print(f"scale 2 (idle agent): command -> instance gone {idle_seconds:.1f} s"
              f"\nscale 1 (busy agent): command -> task finished {task_done - began:.1f} s (its remaining run time), "
              f"-> instance gone {gone_at - began:.1f} s; drain overhead beyond the task {overhead:.1f} s "
              f"(S3 complete {proof['in_s3_while_listed'] - task_done:.1f} s after the task)"
              f"\nlaunch attempts on the draining agent {launching.attempts}, landed {len(launching.landed)}"
              f"\ntasks killed {len(killed)} (master counters {master_lost}); unpersisted files lost {len(lost)} "
              f"of {len(written)}")
        assert killed == [] and master_lost == 0, (killed, metrics)
        assert lost == [], (lost, {p: listing.get(p) for p in lost})
