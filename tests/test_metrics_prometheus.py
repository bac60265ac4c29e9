"""A real Prometheus (Debian's ``prometheus`` package, installed by ``.ci/setup``) with the README's scrape config
finds every node through the master's discovery document and scrapes each node's exporter.

The README's block is used as printed; the test only fills its placeholders (the master's address, the
password and certificate files) and shortens the intervals so that the test takes seconds, not minutes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.daemon_node import AGENT_IPS, DASHBOARD_AUTH, MASTER_IP, DaemonNode
from tests.support.managed import ManagedProcess
from tests.support.netns import TestNode

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="Debian's prometheus package is not installed (.ci/setup installs it)")


def readme_scrape_config() -> dict[str, Any]:
    """The README's example ``prometheus.yml`` (its one YAML block with ``http_sd_configs``)."""
    blocks = [textwrap.dedent(b) for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)]
    found = [b for b in blocks if "http_sd_configs" in b]
    assert len(found) == 1, "the README shows one Prometheus scrape config"
    config: dict[str, Any] = yaml.safe_load(found[0])
    return config


def filled(config: dict[str, Any], password_file: Path, ca_file: Path) -> dict[str, Any]:
    """The README's config with its placeholders filled, and test-sized intervals."""
    text = json.dumps(config).replace("MASTER_PRIVATE_IP", MASTER_IP)
    result: dict[str, Any] = json.loads(text)
    for job in result["scrape_configs"]:
        job["scrape_interval"] = "1s"
        for sd in job["http_sd_configs"]:
            sd["refresh_interval"] = "1s"
            sd["basic_auth"]["password_file"] = str(password_file)
            sd["tls_config"]["ca_file"] = str(ca_file)
    return result


class Prometheus(ManagedProcess):
    start_timeout = 30.0

    def __init__(self, net: TestNode, workdir: Path, config: Path) -> None:
        super().__init__(net, workdir, prefix="", log_name="prometheus.log")
        self.net, self.config = net, config
        self.port = net.free_port()

    def argv(self) -> list[str]:
        assert PROMETHEUS is not None
        return [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}"]

    def ready(self) -> bool:
        """Prometheus answers 503 until its storage is open: /-/ready says when it serves queries."""
        return self.net.port_open("127.0.0.1", self.port) and self.net.http_get(
            f"http://127.0.0.1:{self.port}/-/ready").status == 200

    def api(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        response = self.net.http_get(url)
        assert response.status == 200, response
        return json.loads(response.body)["data"]


def test_a_real_prometheus_finds_and_scrapes_every_node(cluster: Callable[..., DaemonNode], tmp_path: Path) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    master = cluster("master", MASTER_IP).start()
    master.wait_for("registration", lambda: master.events("member_registered"), timeout=40)
    agent = cluster("agent", AGENT_IPS[0]).start()
    agent.wait_for("ready", lambda: agent.status().get("state") == "ready", timeout=40)

    password = tmp_path / "dashboard.password"
    password.write_text(DASHBOARD_AUTH[1])
    password.chmod(0o600)
    ca_file = master.root / "etc/nginx/tls/bootstrap-agent-dashboard.crt"  # the master made its own pair
    config_file = tmp_path / "prometheus.yml"
    config = readme_scrape_config()
    assert config["scrape_configs"][0]["http_sd_configs"][0]["basic_auth"]["username"] == DASHBOARD_AUTH[0]
    config_file.write_text(yaml.safe_dump(filled(config, password, ca_file)))
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "config", str(config_file)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    prometheus = Prometheus(net, tmp_path / "prometheus", config_file)
    try:
        prometheus.start()

        def healthy_targets() -> list[dict[str, Any]]:
            active = prometheus.api("targets")["activeTargets"]
            return active if len(active) == 2 and all(t["health"] == "up" for t in active) else []

        try:
            targets = master.wait_for("both nodes discovered and up", healthy_targets, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{prometheus.log_tail()}") from None
        labels = sorted((t["labels"]["instance"], t["labels"]["role"], t["labels"]["uuid"], t["labels"]["cluster"])
                        for t in targets)
        assert labels == [(f"{MASTER_IP}:9110", "master", master.uuid, "eo-live"),
                          (f"{agent.ip}:9110", "agent", agent.uuid, "eo-live")]

        def ready_series() -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = prometheus.api("query", query='bootstrap_agent_member_state{state="ready"}')[
                "result"]
            return result if len(result) == 2 and all(r["value"][1] == "1" for r in result) else []

        series = master.wait_for("the nodes' state series in Prometheus", ready_series, timeout=30)
        assert {r["metric"]["role"] for r in series} == {"master", "agent"}
        members = prometheus.api("query", query='sum(bootstrap_agent_cluster_members{member_role="agent"})')["result"]
        assert members and members[0]["value"][1] == "1"
        assert prometheus.api("targets")["droppedTargets"] == []
    finally:
        prometheus.close()
