"""The master's cluster status document: rendered by the real daemon, served by real nginx over HTTPS behind
the dashboard's password, and read by provision-min's own client with the cluster's pinned certificate.

A master and an agent run ``bootstrap-agent run`` in one test network (tests/support/daemon_node.py); the
master's user-data carries a TLS pair made by provision-min, as ``up`` hands it on OTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from provision_min import dashboard_tls
from provision_min.node_readiness import assess
from provision_min.status_client import (
    CertificateRefused,
    NoAnswer,
    StatusAccess,
    StatusAnswer,
    StatusRefused,
    fetch,
)
from tests.support.daemon_node import AGENT_IPS, DASHBOARD_AUTH, MASTER_IP, DaemonNode, cluster_user_data
from tests.support.node import MASTER_IP as ONCE_MASTER_IP
from tests.support.node import Node, user_data

STATUS_URL = f"https://{MASTER_IP}/status.json"


def test_status_document_behind_the_password_and_read_with_the_pinned_certificate(
        cluster: Callable[..., DaemonNode]) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    certificate, key = dashboard_tls.make_pair("eo-live", (MASTER_IP,))
    data = cluster_user_data("master")
    data["dashboard"].update(tls_certificate=certificate, tls_key=key)
    master = cluster("master", MASTER_IP, data).start()
    agent = cluster("agent", AGENT_IPS[0]).start()
    access = StatusAccess(MASTER_IP, *DASHBOARD_AUTH, certificate=certificate)

    def both_ready() -> StatusAnswer | None:
        try:
            answer: StatusAnswer = net.call(fetch, access)
        except NoAnswer:  # not served yet
            return None
        ready = answer.document["counts"]["ready"] == 2
        # an agent's ``load`` comes with its first measured pass, which may follow its first report
        return answer if ready and all("load" in m for m in answer.document["members"] if m["role"] == "agent") \
            else None

    answer = master.wait_for("master and agent ready in status.json", both_ready, timeout=60)
    doc = answer.document
    assert set(doc) == {"schema", "cluster", "rendered_at", "counts", "totals", "members"}
    assert doc["schema"] == 1 and doc["cluster"] == "eo-live"
    assert doc["counts"] == {"members": 2, "ready": 2, "masters": 1, "masters_ready": 1, "agents": 1,
                             "agents_ready": 1}
    assert [m["role"] for m in doc["members"]] == ["master", "agent"]
    first = doc["members"][1]
    assert set(first) == {"uuid", "role", "ip", "hostname", "state", "reason", "services", "since", "load",
                          "capacity"}
    # What the agent has (its facts; no Alluxio here), and the cluster's totals of it (issue 17).
    capacity = first["capacity"]
    assert capacity["cpus"] >= 1 and capacity["memory_bytes"] > 1 << 28 and capacity["alluxio_bytes"] == 0
    assert doc["totals"]["agents"] == 1 and doc["totals"]["masters"] == 1
    assert doc["totals"]["by_state"]["ready"] == {"agents": 1, **capacity}
    assert set(first["load"]) == {"tasks", "frameworks", "cache_bytes", "unpersisted_bytes"}  # scale's victim choice
    assert first["ip"] == agent.ip and first["uuid"] == agent.uuid and first["state"] == "ready"
    assert first["services"] == {"mesos-agent": "active", "spark-shuffle": "active"}
    assert first["since"].endswith("Z") and doc["rendered_at"].endswith("Z")
    assert answer.age is not None and answer.age < 60  # by the master's own clock (nginx's Date header)
    assert assess(answer, masters=1, agents=1).complete
    late = assess(answer, masters=1, agents=2)
    assert not late.complete and late.problems == ("1 of 2 agent(s) not registered yet",)

    # Never without the password; served as JSON, never cached.
    assert net.https_get(STATUS_URL).status == 401
    assert net.https_get(STATUS_URL, auth=("admin", "wrong")).status == 401
    raw = net.https_get(STATUS_URL, auth=DASHBOARD_AUTH)
    assert raw.status == 200 and json.loads(raw.body)["cluster"] == "eo-live"
    assert raw.header("content-type") == "application/json" and raw.header("cache-control") == "no-store"
    assert raw.header("x-test-peer-certificate") == certificate  # the user-data's pair, not one of its own

    # Another certificate is refused before the password leaves; a wrong password is refused by nginx.
    other, _ = dashboard_tls.make_pair("eo-live", (MASTER_IP,))
    with pytest.raises(CertificateRefused, match="not the cluster's"):
        net.call(fetch, StatusAccess(MASTER_IP, *DASHBOARD_AUTH, certificate=other))
    with pytest.raises(StatusRefused, match="HTTP 401"):
        net.call(fetch, StatusAccess(MASTER_IP, "admin", "wrong", certificate=certificate))

    # The agent leaves: the document follows.
    assert agent.stop() == 0
    master.wait_for("agent gone from status.json",
                    lambda: net.call(fetch, access).document["counts"]["members"] == 1, timeout=15)
    gone = assess(net.call(fetch, access), masters=1, agents=1)
    assert not gone.complete and "1 of 1 agent(s) not registered yet" in gone.problems


def test_status_document_needs_the_password_even_when_the_pages_are_open(make_node: Callable[..., Node]) -> None:
    data = user_data("master")
    data["dashboard"] = {"auth": False}
    node = make_node("master", data=data)
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert node.ns.https_get(f"https://{ONCE_MASTER_IP}/").status == 200
    refused = node.ns.https_get(f"https://{ONCE_MASTER_IP}/status.json")
    assert refused.status == 403 and b"needs dashboard auth" in refused.body
    # once reads no ZooKeeper: the rendered document says so (no members, never refreshed).
    rendered = json.loads((node.root / "var/lib/bootstrap-agent/www/status.json").read_text())
    assert rendered["rendered_at"] is None and rendered["members"] == []
