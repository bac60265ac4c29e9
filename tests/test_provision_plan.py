"""``provision-min plan``: every call ``up`` would make, as JSON lines, with every secret masked; changes nothing.

``--offline`` assumes an empty project and needs no credentials at all; online, ``plan`` looks up what exists
(GET calls only) and prints only what is missing, with the ids it found filled in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.support import fake_otc
from tests.support.fake_otc import FakeOtc
from tests.support.provision_env import Env, cluster_document

ACCESS_KEY = "PLANACCESSKEY0000001"
SECRET_KEY = "plan-secret-access-key-000000000000000"


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_document(
        alluxio={"version": "2.9", "root_ufs": "s3://eo-data/alluxio"},
        credentials={"source": "keys", "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    ))
    return desk


def parse(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines()]
    for line in lines:
        assert set(line) == {"method", "url", "body"}
    return lines


def files_under(path: Path) -> set[Path]:
    return set(path.rglob("*"))


def test_plan_offline_needs_no_credentials_and_prints_no_secret(env: Env) -> None:
    # A state file with a real secret exists (from an earlier up): it must not leak into the plan either.
    secret = "real-cluster-secret-0123456789abcdefghijkl"
    env.state_file.write_text(json.dumps({"cluster": "analytics11", "secret": secret, "masters": ["192.168.0.10"]}))
    env.state_file.chmod(0o600)
    before = files_under(env.root)
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(env.home)}

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:  # any HTTP call would fail
        result = env.run("plan", "--offline", "--json", env=bare)
        assert len(rsps.calls) == 0

    assert result.code == 0, result.err
    calls = parse(result.out)
    for value in (secret, SECRET_KEY, ACCESS_KEY, "placeholder-secret"):
        assert value not in result.out and value not in result.err
    assert files_under(env.root) == before, "plan must not write anything"
    server = next(c for c in calls if c["url"].endswith("/cloudservers"))
    user_data = server["body"]["server"]["user_data"]
    assert user_data["role"] == "master" and user_data["masters"] == ["192.168.0.10"]
    assert user_data["secret"] == "***"
    assert user_data["credentials"] == {"source": "keys", "access_key_id": "***", "secret_access_key": "***"}
    agent = next(c for c in calls if c["url"].endswith("/scaling_configuration"))
    assert agent["body"]["instance_config"]["user_data"]["role"] == "agent"


def test_plan_offline_lists_the_calls_of_up_in_order(env: Env) -> None:
    calls = parse(env.run("plan", "--offline", "--json").out)

    summary = [(c["method"], re.sub(r"^https://[^/]+", "", c["url"])) for c in calls]
    assert summary[0] == ("POST", "/v1/{project_id}/vpcs")
    assert summary[1] == ("POST", "/v1/{project_id}/subnets")
    groups = [s for s in summary if s[1].endswith("/security-groups")]
    assert groups == [("POST", "/v1/{project_id}/security-groups")] * 4
    assert len([s for s in summary if s[1].endswith("/security-group-rules")]) == 15
    assert summary[-9:] == [
        ("POST", "/v1/{project_id}/cloudservers"),
        ("POST", "/v1/{project_id}/publicips"),
        ("GET", "/v1/{project_id}/cloudservers/{server:analytics11-master-1}/os-interface"),
        ("PUT", "/v1/{project_id}/publicips/{eip}"),
        ("POST", "/v2/{project_id}/notifications/topics"),
        ("POST", "/autoscaling-api/v1/{project_id}/scaling_configuration"),
        ("POST", "/autoscaling-api/v1/{project_id}/scaling_group"),
        ("POST", "/autoscaling-api/v1/{project_id}/scaling_lifecycle_hook/{as_group}"),
        ("POST", "/autoscaling-api/v1/{project_id}/scaling_group/{as_group}/action"),
    ]
    assert len(summary) == 2 + 4 + 15 + 9
    world = [c["body"]["security_group_rule"] for c in calls if c["url"].endswith("/security-group-rules")
             and c["body"]["security_group_rule"]["remote_ip_prefix"] == "0.0.0.0/0"]
    assert {(r["security_group_id"], r["port_range_min"]) for r in world} == {
        ("{sg:analytics11-public}", 22), ("{sg:analytics11-public}", 443), ("{sg:analytics11-public}", 5443)}
    ui = next(r for r in world if r["port_range_min"] == 5443)
    assert ui["port_range_max"] == 5444  # the Mesos and Alluxio UIs' own HTTPS servers


def test_plan_prints_exactly_the_changes_up_then_makes(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None))  # no bucket to check: OTC calls only
    planned = parse(env.run("plan", "--json").out)
    assert {c.method for c in cloud.calls if c.service != "iam"} == {"GET"}
    assert cloud.empty()
    start = len(cloud.calls)

    assert env.run("up").code == 0

    made = [c for c in cloud.calls[start:] if c.method != "GET" or c.path.endswith("/os-interface")]
    assert [(p["method"], p["url"].split("/")[2]) for p in planned] == [(c.method, c.url.split("/")[2]) for c in made]
    for plan_call, call in zip(planned, made, strict=True):
        pattern = re.escape(plan_call["url"]).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", pattern)
        assert re.fullmatch(pattern, call.url.split("?")[0]), (plan_call["url"], call.url)
    assert fake_otc.PROJECT_ID in planned[0]["url"]


def test_plan_on_a_complete_cluster_prints_nothing(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None))
    assert env.run("up").code == 0
    start = len(cloud.calls)

    result = env.run("plan", "--detailed-exitcode")

    assert result.code == 0, result.err  # 0: nothing pending
    assert result.out == "plan: 0 to create, 12 existing: cluster analytics11 is complete; up would make no change\n"
    assert {c.method for c in cloud.calls[start:]} == {"GET"}


def test_plan_after_a_partial_up_fills_in_the_ids_it_found(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None))
    cloud.fail("POST", r"^/cloudservers$", status=400, code="Ecs.0005", message="quota exceeded")
    assert env.run("up").code == 1

    calls = parse(env.run("plan", "--json").out)

    (vpc_id,) = cloud.vpcs
    (subnet_id,) = cloud.subnets
    assert calls[0]["method"] == "POST" and calls[0]["url"].endswith("/cloudservers")
    server = calls[0]["body"]["server"]
    assert server["vpcid"] == vpc_id and server["nics"] == [{"subnet_id": subnet_id, "ip_address": "192.168.0.10"}]
    assert all(re.fullmatch(r"sg-\d{4}-[0-9a-f-]+", g["id"]) for g in server["security_groups"])


def test_the_agency_reaches_every_node_and_its_absence_is_warned_about(env: Env, cloud: FakeOtc) -> None:
    """The nodes' temporary keys come from the IAM agency attached to them: ``up`` attaches the cluster file's
    ``agency`` to each master's server and to the agents' AS configuration (ECS metadata ``agency_name``)."""
    env.write_cluster(cluster_document(alluxio=None, credentials=None, agency="eo-cluster-nodes"))
    planned = parse(env.run("plan", "--offline", "--json").out)
    server = next(c for c in planned if c["url"].endswith("/cloudservers"))
    assert server["body"]["server"]["metadata"]["agency_name"] == "eo-cluster-nodes"
    configuration = next(c for c in planned if c["url"].endswith("/scaling_configuration"))
    assert configuration["body"]["instance_config"]["metadata"] == {"agency_name": "eo-cluster-nodes"}
    result = env.run("up")
    assert result.code == 0 and "agency" not in result.err, result.err
    made = [c.body for c in cloud.calls if c.method == "POST" and c.path.endswith(("/cloudservers",
                                                                                   "/scaling_configuration"))]
    assert [b.get("server", b.get("instance_config"))["metadata"]["agency_name"] for b in made] == [
        "eo-cluster-nodes", "eo-cluster-nodes"]

    env.write_cluster(cluster_document(alluxio=None, credentials=None, agency="eo nodes!"))
    refused = env.run("plan", "--offline")
    assert refused.code == 2
    assert refused.error_line().endswith("cluster.yaml: agency: 'eo nodes!' is not an IAM agency name (1 to 64 "
                                         "letters, digits, '_' and '-')")

    env.write_cluster(cluster_document(alluxio=None, credentials=None))
    warned = env.run("up")
    assert warned.code == 0
    assert ("provision-min: warning: agency: not set: agents cannot call back their lifecycle hook"
            in warned.err), warned.err
