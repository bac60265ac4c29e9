"""``provision-min up`` waits until the cluster works and ``status`` says whether it does, on OTC.

The OTC API is the stateful fake; the first master's ``https://<eip>/status.json`` is answered from what the
fake holds (tests/support/fake_master.py), checking the pinned certificate as TLS would and the password
against the masters' user-data as nginx would. The real daemon behind real nginx is
tests/test_status_endpoint.py.
"""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from provision_min import dashboard_tls
from tests.support.fake_otc import FakeOtc
from tests.support.moto_s3 import S3Server
from tests.support.provision_env import Env, Result
from tests.test_provision_up_down import cluster_with_bucket, secrets_of


@pytest.fixture
def env(tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_with_bucket(s3))
    return desk


def state(env: Env) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(env.state_file.read_text())
    return data


def assert_no_secret(result: Result, env: Env, s3: S3Server, cloud: FakeOtc) -> None:
    kept = state(env)
    for value in [*secrets_of(env, s3, cloud), kept["dashboard_password"], kept["dashboard_tls_key"]]:
        assert value not in result.out + result.err


def agent_ips(cloud: FakeOtc) -> list[str]:
    return sorted(s.data["ip"] for s in cloud.servers.values() if s.data.get("as_group"))


def test_up_waits_until_every_node_is_ready(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    result = env.run("up")

    assert result.code == 0, result.err
    assert "cluster analytics11: ready (1 master(s), 2 agent(s))" in result.lines
    # Progress as on the local cloud: one line per node and state (not a terminal here).
    assert any("analytics11-master-1" in line and line.endswith("ready") for line in result.lines)
    # It asked through the EIP, with the password, after TLS with the cluster's certificate.
    seen = cloud.master_status.requests_seen
    assert seen and all(r["auth"] and r["url"].endswith("/status.json") for r in seen)
    # The pair: made once, kept 0600 in the state file, handed to the masters (the key as a secret), pinned.
    kept = state(env)
    assert stat.S_IMODE(env.state_file.stat().st_mode) == 0o600
    master = cloud.user_data["analytics11-master-1"]["dashboard"]
    assert master["tls_certificate"] == kept["dashboard_tls_certificate"]
    assert master["tls_key"] == kept["dashboard_tls_key"]
    assert master.get("user", "admin") == kept["dashboard_user"] and master["password_hash"].startswith("$6$")
    assert "dashboard" not in cloud.user_data["analytics11-agents"]
    assert_no_secret(result, env, s3, cloud)

    again = env.run("up")  # a complete cluster: GET calls only, ready at the first look
    assert again.code == 0 and "cluster analytics11: ready (1 master(s), 2 agent(s))" in again.lines


def test_up_exits_1_naming_each_node_that_is_not_ready_in_time(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    assert env.run("up").code == 0
    late = agent_ips(cloud)[1]
    cloud.master_status.states[late] = ("bootstrapping", "mesos-agent: not listening on 5051")

    result = env.run("up", "--wait-timeout", "60")

    assert result.code == 1
    line = result.error_line()
    assert line.startswith("provision-min: timed out after 60 s waiting for every node of the cluster to be ready")
    assert f"agent {late} (" in line and "bootstrapping (mesos-agent: not listening on 5051)" in line
    assert agent_ips(cloud)[0] not in line  # the ready one is not named
    assert env.clock.slept >= 60  # on the fake clock
    assert_no_secret(result, env, s3, cloud)

    # status says the same and exits 1; once the agent is ready, 0.
    status = env.run("status")
    assert status.code == 1 and "incomplete" in status.lines[0]
    assert any(late in row and "bootstrapping (mesos-agent: not listening on 5051)" in row for row in status.lines)
    del cloud.master_status.states[late]
    assert env.run("status").code == 0


def test_up_waits_for_agents_that_have_not_registered_yet(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    (group,) = cloud.groups.values()
    group.data["desire_instance_number"] = 3  # the group's count, not the cluster file's, is what up waits for

    result = env.run("up", "--wait-timeout", "30")

    assert result.code == 1
    assert "1 of 3 agent(s) not registered yet" in result.error_line()


def test_a_certificate_that_is_not_the_pinned_one_is_refused_before_the_password_is_sent(
        env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    assert env.run("up").code == 0
    before, slept = len(cloud.master_status.requests_seen), env.clock.slept
    cloud.master_status.serve_certificate, _ = dashboard_tls.make_pair("analytics11", ("192.168.0.10",))

    result = env.run("up")

    assert result.code == 1
    line = result.error_line()
    assert "the server's certificate is not the cluster's" in line and "the password was not sent" in line
    assert dashboard_tls.fingerprint(state(env)["dashboard_tls_certificate"]) in line
    assert len(cloud.master_status.requests_seen) == before  # nothing reached the server
    assert env.clock.slept == slept  # refused at once, not after the timeout
    assert_no_secret(result, env, s3, cloud)

    status = env.run("status", "--json")
    assert status.code == 1
    nodes = json.loads(status.out)["nodes"]
    assert not nodes["complete"] and "not the cluster's" in nodes["problems"][0]


def test_a_wrong_password_is_refused_at_once(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    slept = env.clock.slept
    kept = state(env)
    kept["dashboard_password"] = "not-the-password-000"
    env.state_file.write_text(json.dumps(kept))

    result = env.run("up")

    assert result.code == 1 and "HTTP 401" in result.error_line() and env.clock.slept == slept
    assert "not-the-password-000" not in result.out + result.err


def test_status_json_reports_every_node(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0

    result = env.run("status", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["complete"] and report["resources_complete"]
    nodes = report["nodes"]
    assert nodes["complete"] and nodes["problems"] == []
    assert nodes["counts"] == {"masters_expected": 1, "agents_expected": 2, "masters_ready": 1, "agents_ready": 2}
    assert [(m["role"], m["state"]) for m in nodes["members"]] == [("master", "ready"), ("agent", "ready"),
                                                                     ("agent", "ready")]
    assert nodes["rendered_at"].endswith("Z")
    text = env.run("status")
    assert text.code == 0 and sum(1 for line in text.lines if line.strip().startswith("node ")) == 3


OWN_HASH = "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"  # openssl passwd -apr1 -salt 3vT8N4I8 secretpw


def test_a_cluster_file_password_is_read_from_the_environment(env: Env, cloud: FakeOtc, s3: S3Server) -> None:
    env.write_cluster(cluster_with_bucket(s3, dashboard={"user": "ops", "password_hash": OWN_HASH}))

    unknown = env.run("up")  # provision-min does not know this password: it says so and does not wait
    assert unknown.code == 0
    assert "the nodes' readiness is not checked" in unknown.err and "PROVISION_MIN_DASHBOARD_PASSWORD" in unknown.err
    status = env.run("status")
    assert status.code == 1 and any("PROVISION_MIN_DASHBOARD_PASSWORD" in line for line in status.lines)

    with_password = {**env.vars, "PROVISION_MIN_DASHBOARD_PASSWORD": "secretpw"}
    ready = env.run("up", env=with_password)
    assert ready.code == 0 and "cluster analytics11: ready (1 master(s), 2 agent(s))" in ready.lines
    assert "secretpw" not in ready.out + ready.err
    assert env.run("status", env=with_password).code == 0


def test_plan_masks_the_dashboard_tls_key(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    cloud.servers.clear()  # the masters are gone: plan would create them again, with their user-data
    cloud.ports.clear()

    result = env.run("plan", "--json")  # (its exit code for "changes pending" is the CLI's business)

    kept = state(env)
    master = next(json.loads(line) for line in result.lines
                  if line.startswith("{") and '"name": "analytics11-master-1"' in line)
    dashboard = master["body"]["server"]["user_data"]["dashboard"]
    assert dashboard["tls_key"] == "***" and dashboard["tls_certificate"] == kept["dashboard_tls_certificate"]
    assert kept["dashboard_tls_key"] not in result.out + result.err


def test_a_status_view_the_master_no_longer_refreshes_counts_for_nothing(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    cloud.master_status.rendered_ago = 600  # the master's daemon stopped ten minutes ago; nginx still serves

    result = env.run("status", "--json")

    assert result.code == 1
    problems = json.loads(result.out)["nodes"]["problems"]
    assert any("600 s old" in p and "bootstrap-agent daemon is not running" in p for p in problems), problems
