"""The AS client against ``responses`` fakes answering as OTC's AS API documents (shared/reference/otc-api.md:
groups by name, instances paged by ``start_number``/``limit``/``total_number``, REMOVE with
``instance_delete``, lifecycle hooks, ``instance_hanging_info``, the callback's 204)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import responses

from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, AutoScalingError, TokenAuth
from bootstrap_agent.otc_signing import KnownKey, SigningKey, verify_request

AS = "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/0123456789abcdef0123456789abcdef"
GID = "0a1b2c3d-0000-4000-8000-000000000001"
TEMP = SigningKey("TEMPORARYAK000000001", "temporary-secret-00000000000000000000000", "security-token-value")


def group_json(name: str, gid: str = GID, desired: int = 3) -> dict[str, Any]:
    return {"scaling_group_id": gid, "scaling_group_name": name, "scaling_group_status": "INSERVICE",
            "scaling_configuration_id": "cfg-1", "scaling_configuration_name": f"{name}-cfg",
            "current_instance_number": desired, "desire_instance_number": desired, "min_instance_number": 1,
            "max_instance_number": 6, "cool_down_time": 300, "available_zones": ["eu-de-02"],
            "instance_terminate_policy": "OLD_CONFIG_OLD_INSTANCE", "is_scaling": False}


def instance_json(i: int, state: str = "INSERVICE") -> dict[str, Any]:
    return {"instance_id": f"i-{i:03}", "instance_name": f"c-agents-{i:03}", "scaling_group_id": GID,
            "scaling_group_name": "c-agents", "life_cycle_state": state, "health_status": "NORMAL",
            "scaling_configuration_id": "cfg-1", "scaling_configuration_name": "c-agents-cfg",
            "create_time": "2026-11-29T10:00:00Z", "protect_from_scaling_down": False}


@pytest.fixture
def rsps():  # type: ignore[no-untyped-def]
    with responses.RequestsMock() as mock:
        yield mock


def token_client() -> AutoScaling:
    return AutoScaling(AS, TokenAuth(lambda: "iam-token"))


def sent(call: Any) -> dict[str, Any]:
    body = call.request.body
    return json.loads(body) if body else {}


def test_find_group_by_exact_name(rsps: responses.RequestsMock) -> None:
    """The API matches names by substring: ``c-agents`` must not pick ``c-agents-old``."""
    rsps.get(f"{AS}/scaling_group", json={"scaling_groups": [group_json("c-agents-old", "other"),
                                                             group_json("c-agents")],
                                          "total_number": 2, "start_number": 0, "limit": 20},
             match=[responses.matchers.query_param_matcher({"scaling_group_name": "c-agents"})])
    group = token_client().find_group("c-agents")
    assert group is not None and (group.id, group.desired, group.min, group.max) == (GID, 3, 1, 6)
    assert rsps.calls[0].request.headers["X-Auth-Token"] == "iam-token"
    rsps.get(f"{AS}/scaling_group", json={"scaling_groups": [], "total_number": 0, "start_number": 0, "limit": 20})
    assert token_client().find_group("nothing") is None


def test_instances_reads_every_page(rsps: responses.RequestsMock) -> None:
    everything = [instance_json(i) for i in range(230)]
    for start in (0, 100, 200):
        rsps.get(f"{AS}/scaling_group_instance/{GID}/list",
                 json={"scaling_group_instances": everything[start:start + 100], "total_number": 230,
                       "start_number": start, "limit": 100},
                 match=[responses.matchers.query_param_matcher({"start_number": str(start), "limit": "100"})])
    found = token_client().instances(GID)
    assert [i.id for i in found] == [f"i-{i:03}" for i in range(230)]
    assert found[0].state == "INSERVICE" and found[0].name == "c-agents-000"


def test_set_desired_remove_and_resume_payloads(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{AS}/scaling_group/{GID}", json={"scaling_group_id": GID})
    rsps.post(f"{AS}/scaling_group_instance/{GID}/action", status=204)
    rsps.post(f"{AS}/scaling_group/{GID}/action", status=204)
    asc = token_client()
    asc.set_desired(GID, 2)
    asc.remove(GID, ["i-001", "i-002"])
    asc.remove(GID, [])  # nothing to remove: no call
    asc.group_action(GID, "resume")
    assert sent(rsps.calls[0]) == {"desire_instance_number": 2}
    assert sent(rsps.calls[1]) == {"action": "REMOVE", "instances_id": ["i-001", "i-002"], "instance_delete": "yes"}
    assert sent(rsps.calls[2]) == {"action": "resume"}
    assert len(rsps.calls) == 3


def test_hooks_hanging_and_callback(rsps: responses.RequestsMock) -> None:
    hook = {"lifecycle_hook_name": "c-drain", "lifecycle_hook_type": "INSTANCE_TERMINATING",
            "default_result": "CONTINUE", "default_timeout": 3600,
            "notification_topic_urn": "urn:smn:eu-de:0123:c-agents-leaving", "notification_topic_name": "c",
            "create_time": "2026-11-29T10:00:00Z"}
    rsps.post(f"{AS}/scaling_lifecycle_hook/{GID}", json=hook)
    rsps.get(f"{AS}/scaling_lifecycle_hook/{GID}/list", json={"lifecycle_hooks": [hook]})
    rsps.get(f"{AS}/scaling_instance_hook/{GID}/list", json={"instance_hanging_info": [{
        "instance_id": "i-001", "scaling_group_id": GID, "lifecycle_hook_name": "c-drain",
        "lifecycle_action_key": "key-1", "lifecycle_hook_status": "HANGING", "timeout": "2026-11-29T11:00:00Z",
        "default_result": "CONTINUE"}]}, match=[responses.matchers.query_param_matcher({"instance_id": "i-001"})])
    rsps.put(f"{AS}/scaling_instance_hook/{GID}/callback", status=204)
    asc = token_client()
    created = asc.create_hook(GID, "c-drain", topic_urn="urn:smn:eu-de:0123:c-agents-leaving")
    assert sent(rsps.calls[0]) == {"lifecycle_hook_name": "c-drain", "lifecycle_hook_type": "INSTANCE_TERMINATING",
                                   "default_result": "CONTINUE", "default_timeout": 3600,
                                   "notification_topic_urn": "urn:smn:eu-de:0123:c-agents-leaving"}
    assert created.default_timeout == 3600 and asc.hooks(GID) == [created]
    (action,) = asc.hanging(GID, "i-001")
    assert (action.action_key, action.status, action.hook_name) == ("key-1", "HANGING", "c-drain")
    asc.callback(GID, action.action_key)
    assert sent(rsps.calls[-1]) == {"lifecycle_action_key": "key-1", "lifecycle_action_result": "CONTINUE"}
    with pytest.raises(AutoScalingError, match="result 'STOP': one of CONTINUE, ABANDON, EXTEND"):
        asc.callback(GID, "key-1", "STOP")


def test_configurations(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{AS}/scaling_configuration", json={"scaling_configuration_id": "cfg-2"})
    rsps.get(f"{AS}/scaling_configuration/cfg-2", json={"scaling_configuration": {
        "scaling_configuration_id": "cfg-2", "scaling_configuration_name": "c-agents-2",
        "instance_config": {"flavorRef": "s3.2xlarge.8", "imageRef": "img", "key_name": "k"}}})
    asc = token_client()
    config = {"flavorRef": "s3.2xlarge.8", "imageRef": "img", "key_name": "k", "user_data": "e30="}
    assert asc.create_configuration("c-agents-2", config) == "cfg-2"
    assert sent(rsps.calls[0]) == {"scaling_configuration_name": "c-agents-2", "instance_config": config}
    assert asc.configuration("cfg-2")["instance_config"]["imageRef"] == "img"


def test_errors_are_one_line(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{AS}/scaling_group/missing", status=404,
             json={"error": {"code": "AS.2007", "message": "The AS group does not exist."}})
    rsps.put(f"{AS}/scaling_group/{GID}", status=401,
             json={"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information"})
    rsps.get(f"{AS}/scaling_lifecycle_hook/{GID}/list", body=requests.ConnectionError("connection refused"))
    asc = token_client()
    with pytest.raises(AutoScalingError) as lost:
        asc.group("missing")
    assert str(lost.value) == "GET /scaling_group/missing: HTTP 404 AS.2007: The AS group does not exist."
    assert lost.value.status == 404 and lost.value.code == "AS.2007"
    with pytest.raises(AutoScalingError, match=r"^PUT /scaling_group/.*: HTTP 401 APIGW.0301: Incorrect IAM"):
        asc.set_desired(GID, 1)
    with pytest.raises(AutoScalingError, match="no answer: ConnectionError: connection refused") as down:
        asc.hooks(GID)
    assert "\n" not in str(down.value)


def test_aksk_requests_verify(rsps: responses.RequestsMock) -> None:
    """What the node sends with its agency's temporary key passes the verifier, body and query included;
    and a renewed key is used at once (the key source is asked on every call)."""
    keys = [TEMP]
    rsps.get(f"{AS}/scaling_instance_hook/{GID}/list", json={"instance_hanging_info": []})
    rsps.put(f"{AS}/scaling_instance_hook/{GID}/callback", status=204)
    asc = AutoScaling(AS, AkSkAuth(lambda: keys[-1]))
    assert asc.hanging(GID, "i-001") == []
    renewed = SigningKey("RENEWEDAK00000000001", "renewed-secret-000000000000000000000000", "token-2")
    keys.append(renewed)
    asc.callback(GID, "key-1", "EXTEND")
    table = {k.access: KnownKey(k, time.time() + 600) for k in keys}
    for call, key in zip(rsps.calls, keys, strict=True):
        request = call.request
        assert request.headers["X-Security-Token"] == key.token
        target = request.url.split("t-systems.com", 1)[1]
        headers = {**request.headers, "Host": "as.eu-de.otc.t-systems.com"}
        body = request.body or b""
        assert verify_request(request.method, target, headers, body if isinstance(body, bytes) else body.encode(),
                              table.get) is None, request.headers["Authorization"]
        assert key.secret not in str(request.headers)
