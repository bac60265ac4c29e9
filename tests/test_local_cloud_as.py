"""The local cloud's agents belong to its AS service: ``up`` creates the group and its terminating hook through
the service's API, ``scale`` sets the desired count there, and a removal waits in ``REMOVING_WAIT`` until the
node's own signed callback (its agency's temporary keys from the metadata service) lets it go.

One master, one agent, then two, then one again, under real systemd (systemd-nspawn); the test talks to the
service with the same client the nodes and ``provision-min`` use, signed with the operator's key from the
0600 state file, and checks that unsigned requests are refused on the bridge too.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, AutoScalingError
from bootstrap_agent.otc_signing import SigningKey, key_from_securitykey
from provision_min.local.as_host import HOOK_TIMEOUT_ENV
from tests.support.local_cloud import LocalCloud, by_name, ready_names, torn_down
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("containers_required")


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(tmp_path, f"as-{os.getpid()}", env={HOOK_TIMEOUT_ENV: "180"})
    cloud.write(masters=1, desired=1)
    with torn_down(cloud):
        yield cloud


def log_events(cloud: LocalCloud, name: str) -> list[dict[str, Any]]:
    path = cloud.state_root / cloud.cluster / "as-service.log"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("event") == name]


def test_scale_goes_through_the_as_service(local_cloud: LocalCloud) -> None:
    cloud = local_cloud
    c = cloud.cluster
    cloud.ok("up")
    saved = json.loads(cloud.state_file.read_text())
    operator = SigningKey(saved["as_access_key"], saved["as_secret_key"])
    endpoint = saved["as_endpoint"]
    assert endpoint == f"http://{saved['subnet'].rsplit('.', 1)[0]}.2:8180/autoscaling-api/v1/local"
    asc = AutoScaling(endpoint, AkSkAuth(lambda: operator))
    group = asc.find_group(f"{c}-agents")
    assert group is not None and (group.desired, group.status) == (1, "INSERVICE")
    (hook,) = asc.hooks(group.id)
    assert (hook.name, hook.type, hook.default_result, hook.default_timeout) == (
        f"{c}-drain", "INSTANCE_TERMINATING", "CONTINUE", 180)
    unsigned = requests.get(f"{endpoint}/scaling_group/{group.id}", timeout=10)
    assert unsigned.status_code == 401 and "not signed" in unsigned.json()["error_msg"]
    (first,) = asc.instances(group.id)
    report = cloud.status()
    assert first.state == "INSERVICE" and first.id == by_name(report)[f"{c}-agent-1"]["uuid"]

    # -- scale 2: the service starts the agent; provision-min waits until it is a ready member -------------
    assert "desired 1 -> 2" in cloud.ok("scale", "2").stdout
    assert {i.name: i.state for i in asc.instances(group.id)} == {f"{c}-agent-1": "INSERVICE",
                                                                    f"{c}-agent-2": "INSERVICE"}
    assert ready_names(cloud.status()) == {f"{c}-master-1", f"{c}-agent-1", f"{c}-agent-2"}
    second = next(i for i in asc.instances(group.id) if i.name == f"{c}-agent-2")
    second_ip = by_name(cloud.status())[f"{c}-agent-2"]["ip"]

    # -- scale 1: the newest waits for its lifecycle action; the node's own key completes it ----------------
    scale = subprocess.Popen(cloud.argv("scale", "1"), env=cloud.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        def held() -> Any:
            return asc.hanging(group.id, second.id) or scale.poll() is not None

        found = wait_for("agent-2 held by the hook", held, timeout=120)
        if isinstance(found, list):
            (action,) = found
            assert action.status == "HANGING" and action.hook_name == f"{c}-drain"
            keyfile = cloud.state_root / c / "metadata" / second_ip / "securitykey"
            node_key = key_from_securitykey(json.loads(keyfile.read_text())).key
            assert node_key.token  # a temporary key: signed with X-Security-Token
            node = AutoScaling(endpoint, AkSkAuth(lambda: node_key))
            try:
                node.callback(group.id, action.action_key, "CONTINUE")
            except AutoScalingError as exc:  # the node's own drain got there first: the same outcome
                assert exc.code == "AS.3011", exc
        out, err = scale.communicate(timeout=240)
    finally:
        if scale.poll() is None:
            scale.kill()
            scale.wait()
    assert scale.returncode == 0, err[-3000:]
    assert "desired 2 -> 1" in out
    walk = [e["new"] for e in log_events(cloud, "instance_state") if e["name"] == f"{c}-agent-2"]
    assert walk == ["PENDING", "INSERVICE", "REMOVING_WAIT", "REMOVING", "gone"], walk
    assert [i.name for i in asc.instances(group.id)] == [f"{c}-agent-1"]
    report = cloud.status()
    assert ready_names(report) == {f"{c}-master-1", f"{c}-agent-1"} and report["complete"], report
    assert not (cloud.state_root / c / "metadata" / second_ip).exists()  # its keys went with it
