"""The user-data sections ``lifecycle`` and ``drain``, the member znode's ``load`` and ``drain`` fields, and the
agent's stop bound (a drop-in with TimeoutStopSec from drain.stop_timeout): what a user or provision-min sees."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bootstrap_agent.drain.report import Load
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.member import Member, PeerInvalid
from bootstrap_agent.plan import plan
from bootstrap_agent.plan.drain import DRAIN_DROPIN
from bootstrap_agent.schema import validate
from bootstrap_agent.schema.lifecycle import DrainSettings

AGENT: dict[str, Any] = {
    "schema": 1, "cluster": "c1", "role": "agent", "masters": ["10.0.0.11"], "secret": "s" * 16,
    "lifecycle": {"endpoint": "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/0123abcd",
                  "group": "c1-agents", "hook": "c1-drain"},
    "drain": {"grace": 900, "stop_timeout": 120},
}


def doc(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(AGENT)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if value is None:
            document[section].pop(name)
        else:
            document[section][name] = value
    return document


def test_sections_are_read_with_their_defaults() -> None:
    settings = validate(AGENT)
    assert settings.lifecycle is not None and settings.lifecycle.poll == 15
    assert settings.lifecycle.group == "c1-agents" and settings.lifecycle.hook == "c1-drain"
    assert settings.drain == DrainSettings(900, 120)
    bare = validate({k: v for k, v in AGENT.items() if k not in ("lifecycle", "drain")})
    assert bare.lifecycle is None and bare.drain == DrainSettings(1800, 300)


def test_local_cloud_endpoint_over_http_is_accepted() -> None:
    settings = validate(doc(lifecycle__endpoint="http://10.66.0.2:8180/autoscaling-api/v1/local/"))
    assert settings.lifecycle is not None
    assert settings.lifecycle.endpoint == "http://10.66.0.2:8180/autoscaling-api/v1/local"


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"drain__grace": 3600}, "drain.grace", "below the lifecycle hook's default timeout"),
    ({"drain__grace": -1}, "drain.grace", "0..3599"),
    ({"drain__grace": "30m"}, "drain.grace", "whole seconds"),
    ({"drain__grace": 1.5}, "drain.grace", "whole seconds"),
    ({"drain__stop_timeout": 0}, "drain.stop_timeout", "1..3600"),
    ({"drain__stop_timeout": True}, "drain.stop_timeout", "whole seconds"),
    ({"drain__later": 1}, "drain.later", "unknown key"),
    ({"lifecycle__endpoint": "https://as.example.com/v2/x"}, "lifecycle.endpoint", "/autoscaling-api/v1/"),
    ({"lifecycle__endpoint": "https://ak:sk@as.example.com/autoscaling-api/v1/p"}, "lifecycle.endpoint",
     "must not carry credentials"),
    ({"lifecycle__group": None}, "lifecycle.group", "required"),
    ({"lifecycle__group": "a b"}, "lifecycle.group", "AS group name"),
    ({"lifecycle__hook": "h" * 33}, "lifecycle.hook", "1-32"),
    ({"lifecycle__poll": 0}, "lifecycle.poll", "1..600"),
])
def test_bad_values_are_one_line_naming_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(doc(**changes))
    assert caught.value.path == field and words in caught.value.message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("section", ["lifecycle", "drain"])
def test_masters_refuse_the_agent_sections(section: str) -> None:
    master = {k: v for k, v in AGENT.items() if k not in ("lifecycle", "drain")}
    master.update(role="master", masters=["10.0.0.11"], **{section: AGENT[section]})
    with pytest.raises(InvalidInput) as caught:
        validate(master)
    assert caught.value.path == section and "only an agent's" in caught.value.message


def test_run_time_config_cannot_change_them() -> None:
    from bootstrap_agent.schema import with_overrides
    for key in ("drain.grace", "lifecycle.hook"):
        with pytest.raises(InvalidInput) as caught:
            with_overrides(AGENT, {key: 1})
        assert caught.value.path == key


def test_agent_plan_bounds_the_daemon_stop_by_the_stop_timeout() -> None:
    facts = Facts(ip="10.0.0.21", hostname="a1", cpus=4, memory=16 * 2**30, instance_uuid="u-1")
    dropin = plan(validate(AGENT), facts).file(DRAIN_DROPIN).content.decode()
    assert "[Service]\nTimeoutStopSec=150s\n" in dropin
    bare = {k: v for k, v in AGENT.items() if k not in ("lifecycle", "drain")}
    assert "TimeoutStopSec=330s" in plan(validate(bare), facts).file(DRAIN_DROPIN).content.decode()


# --- the member znode -------------------------------------------------------------------------------------------
MEMBER: dict[str, Any] = {"uuid": "u-1", "role": "agent", "ip": "10.0.0.21", "hostname": "a1", "state": "draining",
          "reason": "lifecycle drain: 2 running task(s) to finish", "services": {"mesos-agent": "active"},
          "since": 1.0,
          "load": {"tasks": 2, "frameworks": 1, "cache_bytes": 4096, "unpersisted_bytes": None},
          "drain": {"reason": "lifecycle", "started": 100.0, "deadline": 1900.0, "phase": "tasks",
                    "waiting_for": "2 running task(s) to finish", "outcome": None}}


def parse(body: dict[str, Any]) -> Member:
    return Member.from_json("u-1", json.dumps(body).encode(), cluster_ips_ok=lambda ip: True)


def test_member_round_trips_load_and_drain() -> None:
    member = parse(MEMBER)
    assert member.load == Load(2, 1, 4096, None) and member.drain is not None
    assert member.drain.phase == "tasks" and member.drain.outcome is None
    assert json.loads(member.to_json()) == MEMBER
    plain = {k: v for k, v in MEMBER.items() if k not in ("load", "drain")}
    assert json.loads(parse(plain).to_json()) == plain  # old members keep their exact bytes


def test_victim_order_is_fewest_tasks_then_least_unpersisted_else_cached() -> None:
    loads = [Load(2, 1, 0, 0), Load(0, 0, 10**9, None), Load(0, 0, 5, 7), Load(0, 0, 0, 6)]
    assert sorted(loads, key=Load.victim_key) == [Load(0, 0, 0, 6), Load(0, 0, 5, 7), Load(0, 0, 10**9, None),
                                                  Load(2, 1, 0, 0)]


@pytest.mark.parametrize(("path", "value", "words"), [
    ("load", [], "load [] is not an object"),
    ("load.tasks", -1, "load.tasks -1 is not a count"),
    ("load.cache_bytes", "1GB", "load.cache_bytes"),
    ("load.unpersisted_bytes", True, "load.unpersisted_bytes"),
    ("drain.phase", "sleeping", "drain.phase"),
    ("drain.reason", "bored", "drain.reason"),
    ("drain.outcome", "lost", "drain.outcome"),
    ("drain.waiting_for", "a\nb", "one line"),
    ("drain.deadline", 50.0, "before drain.started"),
    ("drain.started", float("inf"), "drain.started"),
])
def test_garbage_in_the_new_fields_is_refused(path: str, value: Any, words: str) -> None:
    body = copy.deepcopy(MEMBER)
    section, _, name = path.partition(".")
    if name:
        body[section][name] = value
    else:
        body[section] = value
    with pytest.raises(PeerInvalid) as caught:
        parse(body)
    assert words in str(caught.value)
