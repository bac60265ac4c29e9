"""Scale-in on OTC: ``scale N`` lowering the count picks the least loaded agents, removes exactly those through
the group's lifecycle hook and waits until each has left, saying how; ``up`` makes the hook and its SMN topic.

The OTC API is the fake of ``shared/reference/otc-api.md`` (its AS lifecycle calls and the SMN v2 topic
calls); the nodes' side — a member's ``load`` and ``drain`` in the master's status document, the node's own
callback — is played by an observer of the fake's calls, the way a node would act while ``scale`` polls.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from provision_min.victims import Candidate, Load, candidates, choose
from tests.support.fake_otc import FakeOtc, Recorded
from tests.support.provision_env import Env, cluster_document

# --- the choice (pure) -----------------------------------------------------------------------------------------


def member(uuid: str, tasks: int | None = 0, unpersisted: int | None = 0, cache: int | None = 0,
           frameworks: int = 0) -> dict[str, Any]:
    return {"uuid": uuid, "role": "agent", "ip": f"192.168.0.{100 + len(uuid)}", "state": "ready",
            "load": {"tasks": tasks, "frameworks": frameworks, "cache_bytes": cache, "unpersisted_bytes": unpersisted}}


def instance(iid: str, state: str = "INSERVICE", created: str = "2026-11-29T10:00:00Z") -> dict[str, Any]:
    return {"instance_id": iid, "instance_name": f"agents-{iid}", "life_cycle_state": state, "create_time": created}


def picked(instances: list[dict[str, Any]], members: list[dict[str, Any]], count: int) -> list[str]:
    return [v.instance_id for v in choose(candidates(instances, members), count)]


def test_fewest_tasks_go_first_then_least_unpersisted_then_least_cached() -> None:
    members = [member("a", tasks=2), member("b", tasks=0, unpersisted=5 << 20),
               member("c", tasks=0, unpersisted=1 << 20, cache=9 << 30), member("d", tasks=0, unpersisted=1 << 20,
                                                                                 cache=1 << 20)]
    instances = [instance(i) for i in "abcd"]

    assert picked(instances, members, 3) == ["d"]
    assert picked(instances, members, 1) == ["d", "c", "b"]
    assert picked(instances, members, 4) == []


def test_unknown_unpersisted_counts_the_cache_and_unknown_load_goes_last() -> None:
    old_agent = {"uuid": "z", "role": "agent", "ip": "192.168.0.9", "state": "ready"}  # reports no load
    members = [member("a", tasks=1, unpersisted=None, cache=8 << 20), member("b", tasks=1, unpersisted=1 << 30),
               old_agent]
    instances = [instance(i) for i in "abz"]

    assert picked(instances, members, 0) == ["a", "b", "z"]


def test_an_instance_without_a_member_goes_first_and_newest_breaks_ties() -> None:
    instances = [instance("a", created="2026-11-29T10:00:00Z"), instance("b", created="2026-11-29T11:00:00Z"),
                 instance("ghost")]
    members = [member("a"), member("b")]

    assert picked(instances, members, 2) == ["ghost"]
    assert picked(instances, members, 1) == ["ghost", "b"]


def test_leaving_instances_count_as_gone_and_starting_ones_cannot_be_picked() -> None:
    instances = [instance("a"), instance("b", state="REMOVING_WAIT"), instance("c", state="PENDING"), instance("d")]
    members = [member("a", tasks=3), member("b"), member("c"), member("d", tasks=1)]

    assert picked(instances, members, 2) == ["d"]  # a, c, d stay: one too many; c is not in service yet
    assert picked(instances, members, 0) == ["d", "a"]  # c would be needed too: scale refuses, the choice does not


def test_the_reason_for_a_choice_is_one_line_for_a_person() -> None:
    members = [member("a", tasks=2, unpersisted=3 << 20), member("b")]
    (busy,) = choose(candidates([instance("a")], members), 0)
    (idle,) = choose(candidates([instance("b")], members), 0)
    (ghost,) = choose([Candidate("g", "agents-g", "INSERVICE")], 0)

    assert busy.describe() == "2 task(s), 3.0 MB unpersisted"
    assert idle.describe() == "idle"
    (quiet,) = choose(candidates([instance("a")], [member("a", tasks=1)]), 0)
    assert quiet.describe() == "1 task(s), nothing unpersisted"
    assert ghost.describe() == "not registered (nothing runs there)"
    assert Load.of({"tasks": -1, "cache_bytes": "x"}) == Load()


# --- on OTC (the fake API) --------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_document(alluxio=None, credentials=None, agents={"min": 1, "max": 10, "desired": 3},
                                        drain={"grace": 600, "stop_timeout": 120, "poll": 10}))
    return desk


def agents(cloud: FakeOtc) -> dict[str, dict[str, Any]]:
    """The group's instances by id, each with its server's address."""
    (group,) = cloud.groups.values()
    return {i["instance_id"]: {**i, "ip": cloud.servers[i["instance_id"]].data["ip"]}
            for i in group.data["instances"]}


def set_loads(cloud: FakeOtc, loads: dict[str, dict[str, Any]]) -> None:
    for iid, load in loads.items():
        cloud.master_status.loads[cloud.servers[iid].data["ip"]] = load


IDLE = {"tasks": 0, "frameworks": 0, "cache_bytes": 0, "unpersisted_bytes": 0}


def busy(tasks: int, unpersisted: int) -> dict[str, Any]:
    return {"tasks": tasks, "frameworks": 1, "cache_bytes": unpersisted * 2, "unpersisted_bytes": unpersisted}


def nodes(cloud: FakeOtc, ending: Callable[[str], str | None]) -> None:
    """The removed nodes as the drain makes them act: on each instance list ``scale`` reads, a node with a
    HANGING action first reports ``draining``, then its outcome (``ending``: clean, grace_expired; None: a node
    that never calls back) and calls back CONTINUE itself."""
    steps: dict[str, int] = {}

    def act(record: Recorded) -> None:
        if not (record.method == "GET" and record.path.startswith("/scaling_group_instance/")):
            return
        for action in list(cloud.hanging.values()):
            iid = action["instance_id"]
            if action["lifecycle_hook_status"] != "HANGING" or iid not in cloud.servers:
                continue
            ip = cloud.servers[iid].data["ip"]
            steps[iid] = steps.get(iid, 0) + 1
            result = ending(iid)
            drain = {"reason": "lifecycle", "started": 1, "deadline": 601, "phase": "tasks",
                     "waiting_for": "1 running task", "outcome": None}
            cloud.master_status.states[ip] = ("draining", "1 running task")
            if steps[iid] >= 2 and result is not None:
                drain.update(phase="done", waiting_for="", outcome=result)
                cloud.master_status.drains[ip] = drain
                cloud.node_callback(iid)
            else:
                cloud.master_status.drains[ip] = drain

    cloud.observers.append(act)


def test_up_creates_the_topic_and_the_hook_and_hands_the_agents_lifecycle_and_drain(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0

    (topic,) = cloud.topics.values()
    assert topic["name"] == "analytics11-agents-leaving"
    (group_id,) = cloud.groups
    (hook,) = cloud.hooks[group_id].values()
    assert (hook["lifecycle_hook_name"], hook["lifecycle_hook_type"], hook["default_result"]) == (
        "analytics11-drain", "INSTANCE_TERMINATING", "CONTINUE")
    assert hook["default_timeout"] == 3600 and hook["notification_topic_urn"] == topic["topic_urn"]
    (config,) = cloud.configs.values()
    agent = json.loads(base64.b64decode(config.data["instance_config"]["user_data"]))
    assert agent["lifecycle"] == {"endpoint": cloud.bases["as"], "group": "analytics11-agents",
                                  "hook": "analytics11-drain", "poll": 10}
    assert agent["drain"] == {"grace": 600, "stop_timeout": 120}
    assert agent["drain"]["grace"] < hook["default_timeout"]
    master = next(doc for name, doc in cloud.user_data.items() if "master" in name)
    assert "lifecycle" not in master and "drain" not in master
    # idempotent: a second up looks, and creates nothing
    before = len(cloud.calls)
    assert env.run("up").code == 0
    assert [c for c in cloud.calls[before:] if c.method != "GET" and c.service != "iam"] == []


def test_up_puts_back_a_hook_someone_changed_and_down_removes_the_topic(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    (group_id,) = cloud.groups
    (hook,) = cloud.hooks[group_id].values()
    hook["default_result"], hook["default_timeout"] = "ABANDON", 300

    plan = env.run("plan")
    assert "PUT    lifecycle hook analytics11-drain (default_result ABANDON -> CONTINUE, default_timeout 300 -> " \
           "3600) (lifecycle_hook_updated)" in plan.out
    assert env.run("up").code == 0
    assert (hook["default_result"], hook["default_timeout"]) == ("CONTINUE", 3600)

    assert env.run("down", "--yes").code == 0
    assert cloud.topics == {} and cloud.hooks == {} and cloud.empty()


def test_scale_in_removes_exactly_the_idle_agent_and_reports_a_clean_drain(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    a, b, c = agents(cloud)
    set_loads(cloud, {a: busy(2, 1 << 20), b: IDLE, c: busy(1, 0)})
    nodes(cloud, lambda iid: "clean")
    before = len(cloud.calls)

    result = env.run("scale", "2")

    assert result.code == 0, result.err
    mutating = [(c.method, c.path, c.body) for c in cloud.calls[before:] if c.method != "GET" and c.service != "iam"]
    (group_id,) = cloud.groups
    assert mutating == [("POST", f"/scaling_group_instance/{group_id}/action",
                         {"action": "REMOVE", "instances_id": [b], "instance_delete": "yes"})]  # no desired PUT
    assert set(agents(cloud)) == {a, c}
    assert b not in cloud.servers
    assert cloud.callbacks and cloud.groups[group_id].data["desire_instance_number"] == 2
    assert f"removing analytics11-agents-{b[7:11]}" in result.out and ": idle" in result.out
    assert "clean drain after" in result.out
    assert "desired 3 -> 2" in result.out


def test_scale_in_takes_the_busy_agent_with_less_unpersisted_cache_and_says_so(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    a, b, c = agents(cloud)
    set_loads(cloud, {a: busy(1, 50 << 20), b: busy(1, 2 << 20), c: busy(3, 0)})
    nodes(cloud, lambda iid: "grace_expired")

    result = env.run("scale", "2", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    (removed,) = report["removed"]
    assert removed["instance_id"] == b and removed["chosen_because"] == "1 task(s), 2.0 MB unpersisted"
    assert removed["outcome"] == "grace expired"
    assert set(agents(cloud)) == {a, c}


def test_a_node_that_never_calls_back_leaves_when_the_hook_times_out(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    a, b, c = agents(cloud)
    set_loads(cloud, {a: IDLE, b: busy(1, 0), c: busy(1, 0)})
    nodes(cloud, lambda iid: None)
    start = env.clock.now

    def group_times_out(record: Recorded) -> None:
        if env.clock.now - start >= 3600:
            cloud.expire_hooks()

    cloud.observers.append(group_times_out)

    result = env.run("scale", "2")

    assert result.code == 0, result.err
    assert "hook timeout after" in result.out
    assert cloud.callbacks == [] and set(agents(cloud)) == {b, c}


def test_no_wait_returns_once_the_agents_are_asked_to_leave(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    a, b, c = agents(cloud)
    set_loads(cloud, {a: busy(1, 0), b: busy(1, 0), c: IDLE})

    result = env.run("scale", "1", "--no-wait")

    assert result.code == 0, result.err
    states = {iid: i["life_cycle_state"] for iid, i in agents(cloud).items()}
    assert sorted(s for s in states.values()) == ["INSERVICE", "REMOVING_WAIT", "REMOVING_WAIT"]
    assert states[c] == "REMOVING_WAIT"
    assert result.out.count("removal requested") == 2


def test_raising_the_count_only_sets_the_desired_number(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    before = len(cloud.calls)

    assert env.run("scale", "4").code == 0

    assert [(c.method, c.body) for c in cloud.calls[before:] if c.method != "GET" and c.service != "iam"] == [
        ("PUT", {"desire_instance_number": 4})]


def test_a_group_without_the_hook_is_refused_before_anything_is_removed(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    cloud.hooks.clear()
    before = len(cloud.calls)

    result = env.run("scale", "1")

    assert result.code == 1
    assert result.error_line() == ("provision-min: AS group analytics11-agents has no INSTANCE_TERMINATING "
                                   "lifecycle hook (analytics11-drain): run up first, so that removed agents drain "
                                   "before they go")
    assert all(c.method == "GET" for c in cloud.calls[before:]) and len(agents(cloud)) == 3


def test_an_unreadable_instance_list_is_one_line_and_changes_nothing(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    cloud.fail("GET", r"^/scaling_group_instance/", status=403, code="AS.0001", message="forbidden", times=5)

    result = env.run("scale", "1")

    assert result.code == 1
    assert result.error_line().startswith("provision-min: the instance list of AS group analytics11-agents is "
                                          "unreadable: GET /scaling_group_instance/")
    assert "HTTP 403 AS.0001: forbidden" in result.error_line()
    assert len(agents(cloud)) == 3


def test_without_the_agents_load_the_newest_go_with_a_warning(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    env.state_file.unlink()  # the status document's login and pin are gone
    nodes(cloud, lambda iid: "clean")

    result = env.run("scale", "2")

    assert result.code == 0, result.err
    assert "warning: the agents' load is unknown" in result.err
    assert len(agents(cloud)) == 2


def test_status_shows_the_hook_and_the_agents_waiting_for_their_drain(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    a, b, c = agents(cloud)
    set_loads(cloud, {a: busy(1, 0), b: busy(1, 0), c: IDLE})
    assert env.run("scale", "2", "--no-wait").code == 0
    cloud.master_status.states[cloud.servers[c].data["ip"]] = ("draining", "waiting for 1 framework's executors")

    status = env.run("status")

    assert status.code == 1  # a node is not ready: it is leaving
    assert "hook       analytics11-drain" in status.out and "INSTANCE_TERMINATING, CONTINUE after 3600 s" in status.out
    assert "analytics11-agents-leaving  present" in status.out
    assert "REMOVING_WAIT" in status.out and "draining, waits for its own callback (lifecycle hook)" in status.out
    assert "draining (waiting for 1 framework's executors)" in status.out
    report = json.loads(env.run("status", "--json").out)
    assert report["lifecycle_hook"] == {"name": "analytics11-drain", "status": "present", "default_timeout": 3600,
                                        "default_result": "CONTINUE"}
    cloud.hooks.clear()
    assert json.loads(env.run("status", "--json").out)["resources_complete"] is False


@pytest.mark.parametrize(("drain", "error"), [
    ({"grace": 3600}, "drain.grace: must be a whole number from 0 to 3599, got 3600"),
    ({"stop_timeout": 0}, "drain.stop_timeout: must be a whole number from 1 to 3600, got 0"),
    ({"poll": "15"}, 'drain.poll: must be a whole number from 1 to 600, got "15"'),
    ({"grace_period": 10}, "drain.grace_period: unknown key (known: grace, poll, stop_timeout)"),
    ([], "drain: expected a mapping with grace, stop_timeout and poll, got a list"),
])
def test_a_bad_drain_setting_is_one_line_before_any_call(env: Env, cloud: FakeOtc, drain: Any, error: str) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None, drain=drain))

    result = env.run("up")

    assert result.code == 2
    assert result.error_line() == f"provision-min: {env.cluster_file}: {error}"
    assert cloud.calls == []


def test_how_an_agent_left_when_its_last_drain_report_was_missed() -> None:
    from provision_min.scale import outcome

    assert outcome({"outcome": "clean"}, 10, 3600) == "clean drain"
    assert outcome({"outcome": "grace_expired"}, 10, 3600) == "grace expired"
    assert outcome({"phase": "tasks", "deadline": 2000.0}, 3600, 3600) == "hook timeout"
    assert outcome({"phase": "tasks", "deadline": 2000.0}, 50, 3600, now=2001.0) == "grace expired"
    assert outcome({"phase": "blocks", "deadline": 2000.0}, 50, 3600, now=1500.0) == "clean drain"
    assert outcome({}, 5, 3600) == "clean drain"  # an idle node drained between two polls
