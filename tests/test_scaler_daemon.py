"""The scaler inside a master's `bootstrap-agent run`: a master daemon (the process manager running the Mesos
stand-ins) in the test network with ``autoscaling`` enabled, and the local cloud's real AS service (without
containers) in the same network, verifying every request's AK/SK signature.

What a user sees: the master signs its group calls with the agency's temporary keys from its metadata service
(keys the AS service does not know are refused, logged, and the daemon goes on); the scaler raises a group below
its min; a manual scale holds it off, and the dashboard (headless Chromium, from a screenshot) and
``status.json`` say so with the chart; turning the setting off stops the thread and gives up the leadership."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling
from bootstrap_agent.otc_signing import SigningKey
from bootstrap_agent.scaler.chart import DESIRED_COLOUR
from provision_min.files import write_private
from provision_min.local.layout import AS_PREFIX, CloudState, Paths
from tests.support.daemon_node import DASHBOARD_AUTH, MASTER_IP, DaemonNode, cluster_user_data
from tests.support.managed import ManagedProcess
from tests.support.netns import TestNode
from tests.test_daemon import BASE, zk
from tests.test_dashboard_browser import browse
from tests.test_local_as_service import AsServiceProcess
from tests.test_scaler_chart import read_png

CHROMIUM = shutil.which("chromium")
GROUP = "eo-live-agents"
AGENCY = {"access": "MASTERAGENCYAK000001", "secret": "master-agency-secret-000000000000000000",
          "securitytoken": "master-agency-token-0123456789", "expires_at": "2030-01-01T00:00:00.000000Z"}


class NetAsService(AsServiceProcess):
    """The AS service inside the test network (on its 127.0.0.1), where the master's daemon reaches it."""

    def __init__(self, net: TestNode, state_dir: Path) -> None:
        ManagedProcess.__init__(self, net, state_dir.parent / "as-work", prefix="ba-as-", log_name="as-service.log")
        self.state_dir, self.extra, self.port, self._offset = state_dir, ("--key-ttl", "3600"), 0, 0


@pytest.fixture
def as_service(cluster: Callable[..., DaemonNode], tmp_path: Path) -> Iterator[tuple[Paths, CloudState,
                                                                                     NetAsService]]:
    paths = Paths(tmp_path / "as")
    state = CloudState(cluster="eo-live", subnet="10.231.251.0/24", image="/nonexistent/image", image_digest="x",
                       as_access_key="OPERATORAK0000000002", as_secret_key="operator-secret-11111111111111111111111")
    paths.save(state)
    service = NetAsService(cluster.net, paths.root)  # type: ignore[attr-defined]
    try:
        yield paths, state, service.start()
    finally:
        service.close()


def endpoint(service: NetAsService) -> str:
    return f"http://127.0.0.1:{service.port}{AS_PREFIX}"


def operator(net: TestNode, service: NetAsService, state: CloudState) -> Callable[..., Any]:
    """Call ``fn(client)`` in the test network with the operator's client."""
    key = SigningKey(state.as_access_key, state.as_secret_key)
    client = AutoScaling(endpoint(service), AkSkAuth(lambda: key))
    return lambda fn: net.call(fn, client)


def make_group(client: AutoScaling) -> str:
    cid = client.create_configuration(f"{GROUP}-1", {
        "flavorRef": "local", "imageRef": "/nonexistent/image", "key_name": "local",
        "user_data": base64.b64encode(json.dumps({"schema": 1}).encode()).decode()})
    gid = client.create_group({"scaling_group_name": GROUP, "scaling_configuration_id": cid,
                               "desire_instance_number": 0, "min_instance_number": 0, "max_instance_number": 3,
                               "available_zones": ["eu-de-01"], "instance_terminate_policy": "OLD_CONFIG_NEW_INSTANCE"})
    client.group_action(gid, "resume")
    return gid


def master_data(service: NetAsService, **policy: Any) -> dict[str, Any]:
    data = cluster_user_data("master")
    data["autoscaling"] = {"enabled": True, "min": 1, "max": 3, "interval": 1, "window": 2, "cooldown_out": 300,
                           "cooldown_in": 300, "idle_before_removal": 1, "join_timeout": 600,
                           "endpoint": endpoint(service), "group": GROUP, **policy}
    return data


def leaders(net: TestNode) -> list[str]:
    return list(zk(net, lambda client: client.get_children(f"{BASE}/scaler/leader")))


def www(master: DaemonNode, name: str) -> str:
    path = master.root / "var/lib/bootstrap-agent/www" / name
    return path.read_text() if path.exists() else ""


def test_the_master_scales_with_its_agency_keys_and_shows_why(
        cluster: Callable[..., DaemonNode], as_service: tuple[Paths, CloudState, NetAsService],
        tmp_path: Path) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    paths, state, service = as_service
    ops = operator(net, service, state)
    gid = ops(make_group)
    master = cluster("master", MASTER_IP, master_data(service))
    master.metadata.set_security_key("UNKNOWNAGENCYAK00001", "nobody-knows-this-secret-00000000", "tok")
    master.start(tick=120.0)  # a slow tick: what the dashboard shows below comes from the scaler's own wake-ups

    # Keys the AS service does not know: refused, logged in one line, and the daemon's loop goes on.
    failed = master.wait_for("the group call refused", lambda: master.events("scaler_group_failed"), timeout=60)
    assert "Incorrect IAM authentication information" in failed[0]["error"]
    assert "nobody-knows-this-secret" not in (master.root.parent / f"{master.root.name}.log").read_text()
    master.wait_for("a pass after the refusal", lambda: len(master.events("reconciled")) >= 2)

    # The agency's real keys, as the local metadata service hands them to every node (and the AS service knows).
    write_private(paths.metadata_dir / MASTER_IP / "securitykey", json.dumps({"credential": AGENCY}).encode())
    master.metadata.set_security_key(AGENCY["access"], AGENCY["secret"], AGENCY["securitytoken"],
                                     AGENCY["expires_at"])
    master.wait_for("the scaler leading", lambda: master.events("scaler_leading"), timeout=60)
    master.wait_for("desired raised to min", lambda: ops(lambda c: c.group(gid).desired) == 1, timeout=60)
    raised = [d for d in master.events("scaler_decision") if d["action"] == "out"]
    assert raised[0]["reason"] == "below_min" and raised[0]["desired"] == 1
    assert {"allocation", "desired", "ready"} <= set(raised[0]["signals"])
    raised_by = [e for e in service.events("request") if e["method"] == "PUT" and e["status"] < 300]
    assert raised_by and {e["access"] for e in raised_by} == {AGENCY["access"]}  # the master's own agency key

    # A manual scale: the scaler holds off, and says so on the dashboard and in status.json.
    ops(lambda c: c.set_desired(gid, 2))
    master.wait_for("the manual scale seen", lambda: any(d["reason"] == "manual_scale"
                                                        for d in master.events("scaler_decision")), timeout=30)
    master.wait_for("the hold on the dashboard", lambda: "manual scale seen" in www(master, "index.html"), timeout=15)
    assert "scaler" in {r for e in master.events("reconciled") for r in e["reasons"]}
    status = json.loads(www(master, "status.json"))["scaler"]
    assert MASTER_IP in status["leader"] and status["holding_until"] is not None
    reasons = [d["reason"] for d in status["decisions"]]
    assert reasons.index("below_min") < reasons.index("manual_scale")
    assert ops(lambda c: c.group(gid).desired) == 2  # the manual scale wins

    if CHROMIUM is not None or os.environ.get("BA_REQUIRE_NETNS") == "1":
        user, password = DASHBOARD_AUTH
        shot = Path(os.environ.get("BA_SCREENSHOT_SCALER") or tmp_path / "scaler.png")
        dom = browse(net, f"https://{user}:{password}@{MASTER_IP}/", screenshot=str(shot))
        assert '<section id="scaler">' in dom and "held off until" in dom and "manual_scale" in dom
        _, _, rows = read_png(shot)
        orange = [(x, y) for y, row in enumerate(rows) for x in range(len(row) // 3)
                  if all(abs(a - b) <= 24 for a, b in zip(row[x * 3:x * 3 + 3], bytes.fromhex(DESIRED_COLOUR[1:]),
                                                          strict=True))]
        # The legend's sample is 18 × 3 pixels; the desired count's steps (0 → 1 → 2) span the plot.
        assert len({y for _, y in orange}) > 40 and max(x for x, _ in orange) - min(x for x, _ in orange) > 200, \
            "the chart's desired line is not drawn"

    # The setting goes off: the thread stops and leaves the election; the daemon keeps running.
    master.metadata.set_user_data(json.dumps(master_data(service, enabled=False)).encode())
    master.signal(signal.SIGHUP)
    stopped = master.wait_for("the scaler stopped", lambda: master.events("scaler_stopped"), timeout=30)
    assert stopped[0]["why"] == "autoscaling.enabled is off"
    master.wait_for("leadership given up", lambda: leaders(net) == [], timeout=15)
    assert master.proc is not None and master.proc.poll() is None
    assert not master.events("scaler_failed") and not master.events("reconcile_failed")

    # On again, then the daemon stops: the scaler first, its leadership with it, and the daemon exits 0.
    master.metadata.set_user_data(json.dumps(master_data(service)).encode())
    master.signal(signal.SIGHUP)
    master.wait_for("leading again", lambda: len(master.events("scaler_leading")) >= 2, timeout=30)
    master.signal(signal.SIGTERM)
    assert master.proc.wait(timeout=40) == 0
    assert master.events("scaler_stopped")[-1]["why"] == "stopping (SIGTERM)"
    assert leaders(net) == []
