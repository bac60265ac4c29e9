"""The agent's Prometheus metrics and the masters' service-discovery document, as a monitoring system sees them.

Daemons run against a real ZooKeeper and a real nginx in one test network (tests/support/daemon_node.py); the
exporter is scraped over HTTP on each node's private address, the discovery document fetched from the master's
dashboard. The exposition is checked by Prometheus' own linter (``promtool check metrics``) when Debian's
``prometheus`` package is installed (``.ci/setup`` installs it); tests/test_metrics_prometheus.py runs the real
Prometheus with the README's scrape config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.metrics import Exporter, NodeMetrics, pass_reason
from bootstrap_agent.metrics_cluster import ClusterMetrics, join_latencies
from bootstrap_agent.plan.scrape_targets import targets_document
from bootstrap_agent.schema import validate
from tests.support.daemon_node import (
    AGENT_IPS,
    DASHBOARD_AUTH,
    DASHBOARD_HASH,
    MASTER_IP,
    SECRET,
    DaemonNode,
    cluster_user_data,
)
from tests.support.netns import TestNode

PORT = 9110
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SD_LABELS = {"cluster", "role", "uuid", "hostname"}  # the target labels of plan/scrape_targets.py
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus' label name rule (docs: data model)


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape_text(net: TestNode, ip: str) -> str:
    response = net.http_get(f"http://{ip}:{PORT}/metrics")
    assert response.status == 200, response
    assert (response.header("content-type") or "").startswith("text/plain; version=0.0.4")
    return response.body.decode()


def scrape(net: TestNode, ip: str) -> Samples:
    return parse(scrape_text(net, ip))


def promtool_lint(text: str) -> None:
    """Prometheus' own exposition linter, when Debian's prometheus package is installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# --- the series without a daemon ------------------------------------------------------------------------------
def test_series_names_labels_and_lint() -> None:
    now = [1000.0]
    metrics = NodeMetrics(CollectorRegistry(), clock=lambda: now[0])
    metrics.identify()
    metrics.zk_session("CONNECTED")
    metrics.user_data_source("cache")
    metrics.member("ready")
    metrics.applied({"mesos-agent": "active", "spark-shuffle": "failed: exited 1"}, {"mesos-agent": "restarted"})
    metrics.observe_pass({"start"}, "ready", 0.3)
    now[0] = 1012.5
    cluster = ClusterMetrics(metrics.registry)
    cluster.rendered_members([{"uuid": "m", "role": "master", "state": "ready", "since": 990.0}], 1000.0, 1000.1)
    text = generate_latest(metrics.registry).decode()
    promtool_lint(text)
    samples = parse(text)
    assert value(samples, "bootstrap_agent_info", version="0.1.0") == 1
    # No series of a node uses a label its discovery target group sets (Prometheus would rename it exported_*).
    assert not any(set(dict(labels)) & SD_LABELS for _, labels in samples)
    assert value(samples, "bootstrap_agent_passes_total", reason="start", outcome="ready") == 1
    assert value(samples, "bootstrap_agent_pass_duration_seconds_count", reason="start") == 1
    assert value(samples, "bootstrap_agent_unit_restarts_total", unit="mesos-agent", cause="changed") == 1
    assert value(samples, "bootstrap_agent_unit_restarts_total", unit="spark-shuffle", cause="recovered") == 0
    assert value(samples, "bootstrap_agent_unit_state", unit="spark-shuffle", state="failed") == 1
    assert value(samples, "bootstrap_agent_unit_state", unit="spark-shuffle", state="active") == 0
    assert value(samples, "bootstrap_agent_member_state", state="ready") == 1
    assert total(samples, "bootstrap_agent_member_state") == 1
    assert value(samples, "bootstrap_agent_zookeeper_session_state", state="connected") == 1
    assert value(samples, "bootstrap_agent_user_data_source", source="cache") == 1
    assert value(samples, "bootstrap_agent_seconds_since_last_good_pass") == 12.5
    assert value(samples, "bootstrap_agent_cluster_members", member_role="master", member_state="ready") == 1
    assert value(samples, "bootstrap_agent_member_join_rendered_seconds_count") == 0  # the first view: baseline
    assert value(samples, "process_resident_memory_bytes")

    # A unit the plan no longer has leaves the unit series; the session going away is one state, not two.
    metrics.applied({"mesos-agent": "active"}, {})
    metrics.zk_connected(False)
    samples = parse(generate_latest(metrics.registry).decode())
    assert total(samples, "bootstrap_agent_unit_state", unit="spark-shuffle") == 0
    assert not any(n == "bootstrap_agent_unit_state" and ("unit", "spark-shuffle") in ls for n, ls in samples)
    assert value(samples, "bootstrap_agent_zookeeper_session_state", state="suspended") == 1
    assert total(samples, "bootstrap_agent_zookeeper_session_state") == 1


def test_pass_reason_prefers_what_caused_the_pass() -> None:
    assert pass_reason({"tick"}) == "tick"
    assert pass_reason({"tick", "members"}) == "members"
    assert pass_reason({"members", "start", "session"}) == "start"
    assert pass_reason({"tick", "lifecycle"}) == "lifecycle"  # a kind added later still names itself


def test_join_latency_counts_only_members_that_joined_since_the_last_read() -> None:
    members = [{"uuid": "old", "since": 100.0}, {"uuid": "new", "since": 205.0}, {"uuid": "rejoined", "since": 50.0}]
    assert join_latencies(None, None, members, 210.0) == []  # a master's first view is its baseline
    assert join_latencies({"old"}, 200.0, members, 210.0) == [5.0]  # a rebooted node's old since: no join
    assert join_latencies(set(), 200.0, [{"uuid": "x", "since": 211.0}], 210.0) == [0.0]  # clock ahead: 0, not <0


def test_cluster_figures_follow_the_masters_view() -> None:
    registry = CollectorRegistry()
    cluster = ClusterMetrics(registry)
    master = {"uuid": "m", "role": "master", "state": "ready", "since": 100.0}
    first = (master,)
    cluster.rendered_members(first, 200.0, 200.1)
    cluster.rendered_members(first, 201.0, 201.1)  # the same view again (the member cache's idle pass)
    joined = (master, {"uuid": "a", "role": "agent", "state": "bootstrapping", "since": 201.5})
    cluster.rendered_members(joined, 202.0, 202.25)
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "bootstrap_agent_member_join_rendered_seconds_count") == 1
    assert value(samples, "bootstrap_agent_member_join_rendered_seconds_sum") == 0.75
    assert value(samples, "bootstrap_agent_cluster_members", member_role="agent", member_state="bootstrapping") == 1
    cluster.rendered_members(first, 203.0, 203.1)  # the agent left
    samples = parse(generate_latest(registry).decode())
    assert total(samples, "bootstrap_agent_cluster_members", member_role="agent") == 0
    assert value(samples, "bootstrap_agent_member_join_rendered_seconds_count") == 1


def test_targets_document_is_prometheus_http_sd() -> None:
    """The format of https://prometheus.io/docs/prometheus/latest/http_sd/: a JSON list of target groups, each
    ``targets`` (host:port strings) and ``labels`` (string → string, valid label names); ``[]`` when empty."""
    members = [
        {"uuid": "uuid-agent-21", "role": "agent", "ip": "10.88.0.21", "hostname": "a-21", "state": "ready",
         "reason": "", "services": {}, "since": 1.0},
        {"uuid": "uuid-master-10", "role": "master", "ip": "10.88.0.10", "hostname": "m-10", "state": "degraded",
         "reason": "why", "services": {}, "since": 1.0},
    ]
    groups = json.loads(targets_document("eo-live", members))
    assert groups == [
        {"targets": ["10.88.0.10:9110"],
         "labels": {"cluster": "eo-live", "role": "master", "uuid": "uuid-master-10", "hostname": "m-10"}},
        {"targets": ["10.88.0.21:9110"],
         "labels": {"cluster": "eo-live", "role": "agent", "uuid": "uuid-agent-21", "hostname": "a-21"}},
    ]
    for group in groups:
        assert set(group) == {"targets", "labels"}
        assert all(isinstance(t, str) and re.fullmatch(r"[0-9.]+:\d+", t) for t in group["targets"])
        assert all(LABEL_NAME.fullmatch(k) and isinstance(v, str) for k, v in group["labels"].items())
    assert json.loads(targets_document("eo-live", [])) == []


def test_exporter_refuses_addresses_outside_the_cluster_network() -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    class Log:
        def error(self, event: str, **kw: Any) -> None:
            events.append((event, kw))

        def info(self, event: str, **kw: Any) -> None:
            events.append((event, kw))

    exporter = Exporter(PORT, CollectorRegistry(), Log())
    for address in ("0.0.0.0", "127.0.0.1", "8.8.8.8"):
        exporter.ensure(address)
        assert exporter.address is None
    assert [e for e, _ in events] == ["metrics_listen_failed"] * 3
    assert "private" in events[0][1]["error"]


def test_the_shuffle_service_cannot_take_the_metrics_port() -> None:
    data = {**cluster_user_data("agent"), "spark": {"shuffle_port": PORT}}
    with pytest.raises(InvalidInput) as info:
        validate(data)
    assert str(info.value) == "spark.shuffle_port: 9110 is taken by the agent's Mesos, Alluxio or metrics exporter"


# --- a real cluster ----------------------------------------------------------------------------------------
def _pid(node: DaemonNode, unit: str) -> int:
    record = json.loads((node.root / f"run/bootstrap-agent/process/{unit}.json").read_text())
    pid: int = record["pid"]
    return pid


def test_exporter_follows_a_live_cluster(cluster: Callable[..., DaemonNode]) -> None:
    """Every node answers on its private address with the documented series; they change as the node does
    (a unit killed and started again, a SIGHUP, agents joining and leaving, ZooKeeper going away); the master
    publishes every member for Prometheus behind the dashboard's password; no secret appears anywhere."""
    net = cluster.net  # type: ignore[attr-defined]
    master = cluster("master", MASTER_IP).start()
    before = master.wait_for("members read and rendered", lambda: net.port_open(MASTER_IP, PORT) and value(
        s := scrape(net, MASTER_IP), "bootstrap_agent_cluster_members", member_role="master",
        member_state="ready") == 1 and s,
        timeout=60)
    joins = value(before, "bootstrap_agent_member_join_rendered_seconds_count") or 0  # the master's own, if seen
    agent = cluster("agent", AGENT_IPS[0]).start()
    agent.wait_for("ready", lambda: agent.status().get("state") == "ready", timeout=40)
    # Ready, and past the pass of its start-up events (the first pass is the tick's: it falls due at once).
    seen = agent.wait_for("exporter up and ready", lambda: net.port_open(agent.ip, PORT) and value(
        s := scrape(net, agent.ip), "bootstrap_agent_member_state", state="ready") == 1
        and total(s, "bootstrap_agent_passes_total", reason="start") == 1 and s)

    # The agent's own series.
    assert value(seen, "bootstrap_agent_info", version="0.1.0") == 1
    assert value(seen, "bootstrap_agent_zookeeper_session_state", state="connected") == 1
    source = agent.status()["user_data_source"]
    assert value(seen, "bootstrap_agent_user_data_source", source=source) == 1
    assert total(seen, "bootstrap_agent_user_data_source") == 1
    assert value(seen, "bootstrap_agent_unit_state", unit="mesos-agent", state="active") == 1
    assert value(seen, "bootstrap_agent_unit_state", unit="spark-shuffle", state="active") == 1
    assert total(seen, "bootstrap_agent_passes_total", outcome="ready") >= 1
    assert total(seen, "bootstrap_agent_pass_duration_seconds_count") == total(seen, "bootstrap_agent_passes_total")
    assert value(seen, "bootstrap_agent_unit_restarts_total", unit="spark-shuffle", cause="recovered") == 0
    assert 0 <= (value(seen, "bootstrap_agent_seconds_since_last_good_pass") or -1) < 30
    assert not any(n.startswith(("bootstrap_agent_cluster_", "bootstrap_agent_member_join")) for n, _ in seen)
    # Bound to the private address only: nothing answers on the node's other addresses or its loopback.
    assert not net.port_open("127.0.0.1", PORT) and not net.port_open(AGENT_IPS[2], PORT)

    # A unit that dies is started again by the next pass (SIGHUP here): a restart, and a reload pass.
    os.kill(_pid(agent, "spark-shuffle"), signal.SIGKILL)
    agent.signal(signal.SIGHUP)
    seen = agent.wait_for("the restart and the reload pass counted", lambda: value(
        s := scrape(net, agent.ip), "bootstrap_agent_unit_restarts_total", unit="spark-shuffle",
        cause="recovered") == 1 and total(s, "bootstrap_agent_passes_total", reason="reload") >= 1 and s)
    assert value(seen, "bootstrap_agent_unit_restarts_total", unit="mesos-agent", cause="recovered") == 0

    # The master's cluster figures follow joins and leaves; each join is timed once.
    on_master = master.wait_for("the agent counted", lambda: value(
        s := scrape(net, MASTER_IP), "bootstrap_agent_cluster_members", member_role="agent",
        member_state="ready") == 1 and s)
    assert value(on_master, "bootstrap_agent_member_join_rendered_seconds_count") == joins + 1
    assert 0 <= (value(on_master, "bootstrap_agent_member_join_rendered_seconds_sum") or -1) < 20
    second = cluster("agent", AGENT_IPS[1]).start()
    on_master = master.wait_for("two agents", lambda: total(
        s := scrape(net, MASTER_IP), "bootstrap_agent_cluster_members", member_role="agent") == 2 and s, timeout=40)
    assert value(on_master, "bootstrap_agent_member_join_rendered_seconds_count") == joins + 2

    # The discovery document: every member, behind the password, as Prometheus' HTTP SD wants it.
    response = net.https_get(f"https://{MASTER_IP}/prometheus/targets.json", auth=DASHBOARD_AUTH)
    assert response.status == 200 and response.header("content-type") == "application/json"
    groups = json.loads(response.body)
    assert sorted((g["targets"][0], g["labels"]["role"], g["labels"]["uuid"]) for g in groups) == [
        (f"{MASTER_IP}:{PORT}", "master", master.uuid), (f"{agent.ip}:{PORT}", "agent", agent.uuid),
        (f"{second.ip}:{PORT}", "agent", second.uuid)]
    assert all(g["labels"]["cluster"] == "eo-live" for g in groups)
    assert net.https_get(f"https://{MASTER_IP}/prometheus/targets.json").status == 401
    assert net.https_get(f"https://{MASTER_IP}/prometheus/targets.json", auth=("admin", "wrong")).status == 401

    # No secret in any exposition or in the document (the cluster secret, the dashboard password and hash).
    second.wait_for("its exporter", lambda: net.port_open(second.ip, PORT), timeout=40)
    exposed = [scrape_text(net, ip) for ip in (MASTER_IP, agent.ip, second.ip)] + [response.body.decode()]
    for text in exposed:
        for secret in (SECRET, DASHBOARD_HASH, DASHBOARD_AUTH[1]):
            assert secret not in text
    for text in exposed[:3]:
        promtool_lint(text)

    assert second.stop() == 0
    master.wait_for("one agent again", lambda: total(
        scrape(net, MASTER_IP), "bootstrap_agent_cluster_members", member_role="agent") == 1)

    # ZooKeeper goes away with the master (its daemon and then its services): the agent's session and state say so.
    master.close()
    seen = agent.wait_for("session lost and degraded", lambda: value(
        s := scrape(net, agent.ip), "bootstrap_agent_zookeeper_session_state", state="connected") == 0
        and value(s, "bootstrap_agent_member_state", state="degraded") == 1 and s, timeout=30)
    assert total(seen, "bootstrap_agent_zookeeper_session_state") == 1
    assert total(seen, "bootstrap_agent_passes_total", outcome="degraded") >= 1


@pytest.mark.parametrize("port", ["0"])
def test_metrics_port_zero_turns_the_exporter_off(cluster: Callable[..., DaemonNode], port: str) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    agent = cluster("agent", AGENT_IPS[0]).start("--metrics-port", port)
    agent.wait_for("a pass", lambda: agent.events("reconciled"), timeout=40)
    assert not net.port_open(agent.ip, PORT)
    assert not agent.events("metrics_listening")
