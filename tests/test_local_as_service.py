"""The local cloud's AS service as a real process on loopback (``--machines none``: no containers), driven
with the shared AS client exactly as ``provision-min`` and the nodes drive it: signatures checked on every
request, instances walking PENDING → INSERVICE → REMOVING_WAIT → gone, the hook's callback and timeout, and a
restart that goes on where it stopped."""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, AutoScalingError
from bootstrap_agent.otc_signing import SigningKey, format_expiry, key_from_securitykey
from provision_min.files import write_private
from provision_min.local.as_state import AsState
from provision_min.local.layout import AS_PREFIX, CloudState, Paths
from tests.support.managed import ManagedProcess
from tests.support.waiting import wait_for

USER_DATA = {"schema": 1, "cluster": "as", "role": "agent"}  # only handed on: the service does not read it


class AsServiceProcess(ManagedProcess):
    def __init__(self, state_dir: Path, *extra: str) -> None:
        super().__init__(None, state_dir.parent / "work", prefix="ba-as-", log_name="as-service.log")
        self.state_dir, self.extra, self.port, self._offset = state_dir, extra, 0, 0

    def argv(self) -> Sequence[str]:
        return [sys.executable, "-m", "provision_min.local.as_service", "--state-dir", str(self.state_dir),
                "--bind", "127.0.0.1", "--port", "0", "--machines", "none", "--tick", "0.1",
                "--min-hook-timeout", "1", *self.extra]

    def prepare(self) -> None:
        self._offset = len(self.log_text())

    def ready(self) -> bool:
        found = re.search(r'"event": "listening".*?"port": (\d+)', self.log_text()[self._offset:])
        if found:
            self.port = int(found.group(1))
        return found is not None

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]
        return [e for e in lines if e.get("event") == name]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Paths, CloudState, AsServiceProcess]]:
    paths = Paths(tmp_path / "as")
    state = CloudState(cluster="as", subnet="10.231.250.0/24", image="/nonexistent/image", image_digest="x",
                       as_access_key="OPERATORAK0000000001", as_secret_key="operator-secret-00000000000000000000000")
    paths.save(state)
    service = AsServiceProcess(paths.root, "--key-ttl", "3600")
    try:
        yield paths, state, service.start()
    finally:
        service.close()


def endpoint(service: AsServiceProcess) -> str:
    return f"http://127.0.0.1:{service.port}{AS_PREFIX}"


def operator(service: AsServiceProcess, state: CloudState) -> AutoScaling:
    key = SigningKey(state.as_access_key, state.as_secret_key)
    return AutoScaling(endpoint(service), AkSkAuth(lambda: key))


def node_key(paths: Paths, ip: str) -> SigningKey:
    return key_from_securitykey(json.loads((paths.metadata_dir / ip / "securitykey").read_text())).key


def as_node(service: AsServiceProcess, key: SigningKey) -> AutoScaling:
    return AutoScaling(endpoint(service), AkSkAuth(lambda: key))


def make_group(asc: AutoScaling, desired: int, hook_timeout: int | None) -> str:
    cid = asc.create_configuration("as-agents-1", {
        "flavorRef": "local", "imageRef": "/nonexistent/image", "key_name": "local",
        "user_data": base64.b64encode(json.dumps(USER_DATA).encode()).decode()})
    gid = asc.create_group({"scaling_group_name": "as-agents", "scaling_configuration_id": cid,
                            "desire_instance_number": desired, "min_instance_number": 0,
                            "max_instance_number": 5, "available_zones": ["eu-de-02"],
                            "instance_terminate_policy": "OLD_CONFIG_NEW_INSTANCE"})
    if hook_timeout is not None:
        asc.create_hook(gid, "as-drain", topic_urn="urn:smn:local:local:as-agents-leaving",
                        default_timeout=hook_timeout)
    asc.group_action(gid, "resume")
    return gid


def states(asc: AutoScaling, gid: str) -> dict[str, str]:
    return {i.name: i.state for i in asc.instances(gid)}


def settled(asc: AutoScaling, gid: str, names: set[str]) -> None:
    wait_for(f"group settled on {sorted(names)}",
             lambda: states(asc, gid) == dict.fromkeys(names, "INSERVICE"), timeout=10)


def ip_of(paths: Paths, name: str) -> str:
    return next(i.ip for i in AsState.load(paths.as_state_file).instances if i.name == name)


def test_group_starts_instances_and_hands_out_keys(cloud: tuple[Paths, CloudState, AsServiceProcess]) -> None:
    paths, state, service = cloud
    asc = operator(service, state)
    gid = make_group(asc, 2, None)
    settled(asc, gid, {"as-agent-1", "as-agent-2"})
    group = asc.group(gid)
    assert (group.status, group.desired, group.current) == ("INSERVICE", 2, 2)
    for n, ip in ((1, "10.231.250.100"), (2, "10.231.250.101")):
        folder = paths.metadata_dir / ip
        assert json.loads((folder / "user_data").read_text()) == USER_DATA
        meta = json.loads((folder / "meta_data.json").read_text())
        assert meta["name"] == f"as-agent-{n}" and meta["availability_zone"] == "eu-de-02"
        assert (folder / "securitykey").stat().st_mode & 0o777 == 0o600
    keys = {node_key(paths, ip).access for ip in ("10.231.250.100", "10.231.250.101")}
    assert len(keys) == 2  # fresh keys per instance
    assert (paths.as_state_file.stat().st_mode & 0o777) == 0o600
    changes = [(e["name"], e["old"], e["new"]) for e in service.events("instance_state")]
    assert ("as-agent-1", None, "PENDING") in changes and ("as-agent-1", "PENDING", "INSERVICE") in changes
    # refused input changes nothing and says why in one line
    with pytest.raises(AutoScalingError, match=r"HTTP 400 AS.2008: desire_instance_number 9 must lie between"):
        asc.set_desired(gid, 9)
    assert asc.group(gid).desired == 2


def test_unsigned_wrongly_signed_expired_and_wrong_token_refused(
        cloud: tuple[Paths, CloudState, AsServiceProcess]) -> None:
    paths, state, service = cloud
    asc = operator(service, state)
    gid = make_group(asc, 1, None)
    settled(asc, gid, {"as-agent-1"})
    ip = ip_of(paths, "as-agent-1")
    key = node_key(paths, ip)
    assert as_node(service, key).hanging(gid) == []  # the node's own temporary key works

    unsigned = requests.get(f"{endpoint(service)}/scaling_group/{gid}", timeout=5)
    assert unsigned.status_code == 401 and "not signed" in unsigned.json()["error_msg"]

    def refused(key: SigningKey) -> str:
        with pytest.raises(AutoScalingError) as caught:
            as_node(service, key).hanging(gid)
        assert caught.value.status == 401 and caught.value.code == "APIGW.0301"
        return str(caught.value)

    assert "signature does not match" in refused(SigningKey(key.access, "not-the-secret", key.token))
    assert "does not belong to access key" in refused(SigningKey(key.access, key.secret, "stolen-token"))
    assert "X-Security-Token missing" in refused(SigningKey(key.access, key.secret, None))
    assert "unknown access key" in refused(SigningKey("NOBODY00000000000000", "x", None))
    assert "signature does not match" in refused(SigningKey(state.as_access_key, "guess", None))
    # the metadata service's document says the key expired: refused from then on
    document = json.loads((paths.metadata_dir / ip / "securitykey").read_text())
    document["credential"]["expires_at"] = format_expiry(time.time() - 1)
    write_private(paths.metadata_dir / ip / "securitykey", json.dumps(document).encode())
    assert "expired at" in refused(key)
    logged = [e for e in service.events("request") if e["status"] == 401]
    assert logged and all(e["reason"] for e in logged)
    assert key.secret not in service.log_text() and str(key.token) not in service.log_text()


def test_removal_waits_for_the_nodes_callback(cloud: tuple[Paths, CloudState, AsServiceProcess]) -> None:
    paths, state, service = cloud
    asc = operator(service, state)
    gid = make_group(asc, 3, 600)
    settled(asc, gid, {"as-agent-1", "as-agent-2", "as-agent-3"})
    first = next(i for i in asc.instances(gid) if i.name == "as-agent-1")
    asc.remove(gid, [first.id])  # exactly this one, not the policy's choice (the newest)
    assert states(asc, gid)["as-agent-1"] == "REMOVING_WAIT" and asc.group(gid).desired == 2
    time.sleep(1)  # held: the hook waits for the node
    assert states(asc, gid)["as-agent-1"] == "REMOVING_WAIT"
    node = as_node(service, node_key(paths, ip_of(paths, "as-agent-1")))
    (action,) = node.hanging(gid, first.id)
    assert (action.status, action.hook_name, action.default_result) == ("HANGING", "as-drain", "CONTINUE")
    assert node.hanging(gid, "someone-else") == []
    with pytest.raises(AutoScalingError, match=r"AS.4011: instance .* is already being removed"):
        asc.remove(gid, [first.id])

    # a restart in the middle: the wait goes on from the state file
    service.restart()
    node = as_node(service, node_key(paths, ip_of(paths, "as-agent-1")))
    assert states(operator(service, state), gid)["as-agent-1"] == "REMOVING_WAIT"
    node.callback(gid, action.action_key, "CONTINUE")
    asc = operator(service, state)
    settled(asc, gid, {"as-agent-2", "as-agent-3"})
    assert not (paths.metadata_dir / first_ip(service)).exists()
    walk = [e["new"] for e in service.events("instance_state") if e["name"] == "as-agent-1"]
    assert walk == ["PENDING", "INSERVICE", "REMOVING_WAIT", "REMOVING", "gone"], walk
    with pytest.raises(AutoScalingError, match=r"AS.3011: no hanging lifecycle action matches"):
        asc.callback(gid, action.action_key)  # already completed
    with pytest.raises(AutoScalingError, match=r"401 APIGW.0301: .*unknown access key"):
        node.hanging(gid)  # the removed instance's keys went with it


def first_ip(service: AsServiceProcess) -> str:
    return str(next(e["ip"] for e in service.events("instance_launched") if e["name"] == "as-agent-1"))


def test_hook_timeout_and_lowered_desire(cloud: tuple[Paths, CloudState, AsServiceProcess]) -> None:
    """A node that never calls back: the hook's default_timeout lets the group go on. The victim of a lowered
    desired count is the group's own choice (OLD_CONFIG_NEW_INSTANCE: the newest)."""
    _paths, state, service = cloud
    asc = operator(service, state)
    gid = make_group(asc, 2, 2)
    settled(asc, gid, {"as-agent-1", "as-agent-2"})
    asc.set_desired(gid, 1)
    wait_for("agent-2 held", lambda: states(asc, gid).get("as-agent-2") == "REMOVING_WAIT", timeout=5)
    held_since = time.monotonic()
    (action,) = asc.hanging(gid)
    asc.callback(gid, action.action_key, "EXTEND")  # another default_timeout
    settled(asc, gid, {"as-agent-1"})
    assert time.monotonic() - held_since >= 3.5  # 2 s, extended by 2 s
    assert [e["result"] for e in service.events("lifecycle_timeout")] == ["CONTINUE"]
    # without a hook: removed at once
    asc.delete_hook(gid, "as-drain")
    asc.set_desired(gid, 0)
    wait_for("group empty", lambda: states(asc, gid) == {}, timeout=3)
    assert not any(e["new"] == "REMOVING_WAIT" for e in service.events("instance_state")
                   if e["name"] == "as-agent-1")


def test_keys_are_renewed_before_they_expire(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "as")
    state = CloudState(cluster="as", subnet="10.231.250.0/24", image="/x", image_digest="x",
                       as_access_key="OPERATORAK0000000001", as_secret_key="operator-secret-00000000000000000000000")
    paths.save(state)
    with AsServiceProcess(paths.root, "--key-ttl", "6") as service:
        asc = operator(service, state)
        gid = make_group(asc, 1, None)
        settled(asc, gid, {"as-agent-1"})
        ip = ip_of(paths, "as-agent-1")
        old = node_key(paths, ip)
        renewed = wait_for("a renewed key", lambda: (k := node_key(paths, ip)).access != old.access and k, timeout=10)
        assert as_node(service, renewed).hanging(gid) == []
        assert any(e["event"] == "keys_renewed" for e in service.events("keys_renewed"))


def test_victims_follow_the_terminate_policy() -> None:
    from provision_min.local.as_state import AsInstance, victims

    old = AsInstance("a", "c-agent-1", 1, "ip1", "cfg-old", 10.0)
    early = AsInstance("b", "c-agent-2", 2, "ip2", "cfg-new", 20.0)
    late = AsInstance("c", "c-agent-3", 3, "ip3", "cfg-new", 30.0)
    group = [early, old, late]

    def names(policy: str, count: int) -> list[str]:
        return [i.name for i in victims(group, count, policy, "cfg-new")]

    assert names("OLD_CONFIG_NEW_INSTANCE", 2) == ["c-agent-1", "c-agent-3"]
    assert names("OLD_CONFIG_OLD_INSTANCE", 2) == ["c-agent-1", "c-agent-2"]
    assert names("NEW_INSTANCE", 1) == ["c-agent-3"]
    assert names("OLD_INSTANCE", 1) == ["c-agent-1"]
    assert names("NEW_INSTANCE", 0) == []


def test_up_makes_the_group_once(tmp_path: Path) -> None:
    """``provision-min up``'s part (``as_host.ensure_group``) against the real service: the configuration with
    the agents' user-data (their ``lifecycle`` pointing at the service), the group, its terminating hook,
    resumed; a second ``up`` creates nothing."""
    from provision_min import config as config_mod
    from provision_min.local import as_host

    config = config_mod.load(Path(config_mod.__file__).parent / "examples" / "cluster.yaml")
    paths = Paths(tmp_path / config.cluster)
    state = CloudState(cluster=config.cluster, subnet="10.231.250.0/24", image="/nonexistent/image",
                       image_digest="x", secret="s" * 43, as_access_key="OPERATORAK0000000001",
                       as_secret_key="operator-secret-00000000000000000000000", desired=config.agents.desired)
    paths.save(state)
    with AsServiceProcess(paths.root) as service:
        asc = operator(service, state)
        group = as_host.ensure_group(config, state, asc)
        assert (group.name, group.status, group.desired, group.min, group.max, group.terminate_policy) == (
            f"{config.cluster}-agents", "INSERVICE", config.agents.desired, config.agents.min, config.agents.max,
            "OLD_CONFIG_NEW_INSTANCE")
        (hook,) = asc.hooks(group.id)
        assert (hook.type, hook.default_result, hook.default_timeout) == ("INSTANCE_TERMINATING", "CONTINUE", 3600)
        (configuration,) = asc.configurations()
        document = json.loads(base64.b64decode(configuration["instance_config"]["user_data"]))
        assert document["role"] == "agent" and document["lifecycle"]["endpoint"] == state.as_url
        assert document["lifecycle"]["group"] == group.name and document["lifecycle"]["hook"] == hook.name
        assert configuration["instance_config"]["imageRef"] == state.image
        assert as_host.ensure_group(config, state, asc) == asc.group(group.id)
        assert len(asc.configurations()) == 1 and len(asc.hooks(group.id)) == 1
