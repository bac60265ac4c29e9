"""Changing a running cluster (issue 15, point 5): what ``up`` replaces, in which order, how many at a time.

The decision is pure (``provision_min.rollout``) and tested here thoroughly; the OTC side runs against the fake
API of ``shared/reference/otc-api.md``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from provision_min.rollout import (
    AgentRollout,
    Rollout,
    Spec,
    candidate,
    changes,
    configuration_name,
    digest,
    plan_agents,
    plan_masters,
)
from tests.support.fake_otc import FakeOtc, Recorded
from tests.support.provision_env import Env, cluster_document

IMAGE_A = "11111111-1111-4111-8111-111111111111"
IMAGE_B = "22222222-2222-4222-8222-222222222222"
AGENT = {"schema": 1, "cluster": "c1", "role": "agent", "secret": "s" * 43, "mesos": {"version": "1.11"},
         "drain": {"grace": 1800, "stop_timeout": 300}}


def doc(**overrides: Any) -> dict[str, Any]:
    return {**AGENT, **overrides}


def instances(*specs: tuple[str, str, str], loads: dict[str, int] | None = None) -> list[Any]:
    """(id, state, configuration id) each; ``loads``: running tasks by id (its member's load)."""
    loads = loads or {}
    found = []
    for iid, state, config in specs:
        member = {"uuid": iid, "role": "agent", "ip": "10.0.0.1",
                  "load": {"tasks": loads.get(iid, 0), "frameworks": 0, "cache_bytes": 0, "unpersisted_bytes": 0}}
        found.append(candidate({"instance_id": iid, "instance_name": f"c1-agents-{iid}", "life_cycle_state": state,
                                "scaling_configuration_id": config}, member))
    return found


# --- what changed ----------------------------------------------------------------------------------------------


def test_changes_name_the_settings_never_the_values() -> None:
    have = Spec(IMAGE_A, "s3.large.2", doc())
    want = Spec(IMAGE_B, "s3.xlarge.4", doc(secret="t" * 43, mesos={"version": "1.11", "attributes": {"az": "x"}}))

    found = changes(have, want)

    assert found == (f"image_id {IMAGE_A} -> {IMAGE_B}", "flavor s3.large.2 -> s3.xlarge.4",
                     "user-data: mesos, secret")
    assert "t" * 43 not in " ".join(found) and "attributes" not in " ".join(found)


def test_the_same_spec_has_no_changes_and_a_new_section_is_one() -> None:
    assert changes(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_A, "f", doc())) == ()
    without = {k: v for k, v in AGENT.items() if k != "drain"}
    assert changes(Spec(IMAGE_A, "f", without), Spec(IMAGE_A, "f", doc())) == ("user-data: drain",)


def test_a_master_is_compared_by_the_digest_it_carries_and_not_at_all_without_one() -> None:
    master = doc(role="master")
    assert changes(Spec(IMAGE_A, "f", digest=digest(master)), Spec(IMAGE_A, "f", master)) == ()
    assert changes(Spec(IMAGE_A, "f", digest="0" * 64), Spec(IMAGE_A, "f", master)) == ("user-data",)
    assert changes(Spec(IMAGE_A, "f"), Spec(IMAGE_A, "f", master)) == ()  # made before digests: unknown
    assert changes(Spec("", ""), Spec(IMAGE_B, "g", master)) == ()  # the cloud did not say: no guess


def test_configuration_names_differ_with_what_they_make() -> None:
    one = configuration_name("c1", doc(), IMAGE_A, "f")
    assert one.startswith("c1-agents-") and len(one) == len("c1-agents-") + 8
    assert one == configuration_name("c1", doc(), IMAGE_A, "f")
    assert one != configuration_name("c1", doc(), IMAGE_B, "f")
    assert one != configuration_name("c1", doc(mesos={}), IMAGE_A, "f")


# --- agents ----------------------------------------------------------------------------------------------------


def test_every_agent_is_replaced_least_loaded_first_a_quarter_at_a_time() -> None:
    group = instances(*((f"i{n}", "INSERVICE", "cfg-1") for n in range(8)), loads={"i0": 5, "i1": 3, "i7": 1})

    plan = plan_agents(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_B, "f", doc()), "cfg-1", group, desired=8,
                       minimum=2, maximum=10)

    assert plan.changes == (f"image_id {IMAGE_A} -> {IMAGE_B}",)
    assert plan.batch == 2 and plan.surge == 0 and plan.blocked is None
    assert plan.replace[-3:] == ("i7", "i1", "i0")  # the busiest last
    assert [len(b) for b in plan.batches()] == [2, 2, 2, 2]


@pytest.mark.parametrize(("desired", "minimum", "maximum", "batch", "surge"), [
    (4, 1, 10, 1, 0),  # a quarter of 4
    (4, 3, 10, 1, 0),  # never below min: one may leave
    (4, 4, 10, 1, 1),  # none may leave: the group grows by one first
    (12, 10, 20, 2, 0),  # a quarter would be 3, only 2 may leave
    (1, 0, 1, 1, 0),  # the only agent may go: min is 0
])
def test_a_batch_never_takes_capacity_below_min(desired: int, minimum: int, maximum: int, batch: int,
                                                 surge: int) -> None:
    group = instances(*((f"i{n}", "INSERVICE", "cfg-1") for n in range(desired)))

    plan = plan_agents(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_B, "f", doc()), "cfg-1", group, desired, minimum,
                       maximum)

    assert (plan.batch, plan.surge, plan.blocked) == (batch, surge, None)
    assert desired + plan.surge - plan.batch >= minimum


def test_min_equal_to_max_is_refused_with_what_to_change() -> None:
    group = instances(("i0", "INSERVICE", "cfg-1"), ("i1", "INSERVICE", "cfg-1"))

    plan = plan_agents(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_B, "f", doc()), "cfg-1", group, 2, 2, 2)

    assert plan.blocked == ("agents.min 2 = desired 2 = max 2: no agent can leave without going below agents.min; "
                            "raise agents.max by one (or lower agents.min)")


def test_an_explicit_batch_size_is_capped_by_min() -> None:
    group = instances(*((f"i{n}", "INSERVICE", "cfg-1") for n in range(6)))
    plan = plan_agents(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_B, "f", doc()), "cfg-1", group, 6, 3, 6, batch=5)
    assert plan.batch == 3


def test_nothing_changed_but_instances_of_an_older_configuration_are_still_replaced() -> None:
    """An interrupted rollout: the group already uses the new configuration, two agents do not."""
    group = instances(("i0", "INSERVICE", "cfg-2"), ("i1", "INSERVICE", "cfg-1"), ("i2", "INSERVICE", "cfg-1"),
                      ("i3", "REMOVING_WAIT", "cfg-1"))

    plan = plan_agents(Spec(IMAGE_B, "f", doc()), Spec(IMAGE_B, "f", doc()), "cfg-2", group, 3, 1, 5)

    assert plan.changes == () and sorted(plan.replace) == ["i1", "i2"]  # i3 is leaving already


def test_an_unchanged_group_replaces_nothing_and_plan_says_nothing() -> None:
    group = instances(("i0", "INSERVICE", "cfg-1"))
    agents = plan_agents(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_A, "f", doc()), "cfg-1", group, 1, 1, 3)
    masters = plan_masters({"m-1": Spec(IMAGE_A, "f", digest=digest(doc(role="master")))},
                           Spec(IMAGE_A, "f", doc(role="master")), ["m-1"])

    rollout = Rollout(agents, masters)

    assert rollout.empty and rollout.lines() == []
    assert plan_agents(None, Spec(IMAGE_A, "f", doc()), None, [], 2, 1, 3) == AgentRollout((), (), 1, 0)


# --- masters ---------------------------------------------------------------------------------------------------


def test_masters_one_at_a_time_the_one_with_the_public_address_last() -> None:
    old = {f"c1-master-{n}": Spec(IMAGE_A, "f", digest=digest(doc(role="master"))) for n in (1, 2, 3)}

    plan = plan_masters(old, Spec(IMAGE_B, "f", doc(role="master")), ["c1-master-1", "c1-master-2", "c1-master-3"])

    assert [name for name, _ in plan.order] == ["c1-master-3", "c1-master-2", "c1-master-1"]
    assert plan.order[0][1] == (f"image_id {IMAGE_A} -> {IMAGE_B}",) and plan.blocked is None


def test_only_changed_masters_are_replaced() -> None:
    master = doc(role="master")
    old = {"m-1": Spec(IMAGE_A, "f", digest=digest(master)), "m-2": Spec(IMAGE_A, "g", digest=digest(master)),
           "m-3": Spec(IMAGE_A, "f", digest=digest(master))}

    plan = plan_masters(old, Spec(IMAGE_A, "f", master), ["m-1", "m-2", "m-3"])

    assert plan.order == (("m-2", ("flavor g -> f",)),)


def test_a_single_master_is_not_replaced_and_the_plan_says_why() -> None:
    plan = plan_masters({"m-1": Spec(IMAGE_A, "f")}, Spec(IMAGE_B, "f", doc(role="master")), ["m-1"])

    assert plan.order == ()
    assert plan.blocked is not None and plan.blocked.startswith("a single master cannot be replaced while the "
                                                                "cluster keeps working")
    assert Rollout(None, plan).lines()[0].startswith("masters NOT replaced: a single master")


def test_plan_lines_show_the_batches_by_name() -> None:
    group = instances(("i0", "INSERVICE", "cfg-1"), ("i1", "INSERVICE", "cfg-1"), loads={"i0": 2})
    agents = plan_agents(Spec(IMAGE_A, "f", doc()), Spec(IMAGE_A, "g", doc()), "cfg-1", group, 2, 1, 3)

    lines = Rollout(agents, None).lines({"i0": "c1-agents-a", "i1": "c1-agents-b"})

    assert lines == ["new AS configuration (flavor f -> g) and the group switched to it",
                     "replace 2 agent(s), 1 at a time, each drained first:",
                     "  batch 1: c1-agents-b", "  batch 2: c1-agents-a"]


# --- on OTC (the fake API) --------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(three_masters())
    return desk


def three_masters(**overrides: Any) -> dict[str, Any]:
    return cluster_document(**{"alluxio": None, "credentials": None, "masters": 3,
                               "agents": {"min": 2, "max": 10, "desired": 3}, **overrides})


def drained_nodes(cloud: FakeOtc) -> list[str]:
    """Nodes that drain and call back CONTINUE themselves on the second instance list after their removal."""
    seen: dict[str, int] = {}
    called: list[str] = []

    def act(record: Recorded) -> None:
        if not (record.method == "GET" and record.path.startswith("/scaling_group_instance/")):
            return
        for action in list(cloud.hanging.values()):
            iid = action["instance_id"]
            if action["lifecycle_hook_status"] == "HANGING" and iid in cloud.servers:
                seen[iid] = seen.get(iid, 0) + 1
                ip = cloud.servers[iid].data["ip"]
                cloud.master_status.drains[ip] = {"reason": "lifecycle", "phase": "done", "outcome": "clean"}
                if seen[iid] >= 2:
                    cloud.node_callback(iid)
                    called.append(iid)

    cloud.observers.append(act)
    return called


def quorum_watch(cloud: FakeOtc, minimum: int) -> list[str]:
    """Every master deletion and agent removal checked as it is asked: the others keep the masters' quorum and
    at least ``minimum`` agents stay in service."""
    problems: list[str] = []

    def check(record: Recorded) -> None:
        if record.method == "POST" and record.path == "/cloudservers/delete":
            leaving = {s["id"] for s in record.body["servers"]}
            up = [s for sid, s in cloud.servers.items() if not s.data.get("as_group") and sid not in leaving
                  and s.data["status"] == "ACTIVE"]
            if len(up) < 2:
                problems.append(f"master deleted with only {len(up)} other(s) up")
        if record.method == "POST" and record.path.endswith("/action") and record.body.get("action") == "REMOVE":
            (group,) = cloud.groups.values()
            serving = [i for i in group.data["instances"] if i["life_cycle_state"] == "INSERVICE"]
            if len(serving) - len(record.body["instances_id"]) < minimum:
                problems.append(f"{len(record.body['instances_id'])} of {len(serving)} agents removed at once")

    cloud.observers.append(check)
    return problems


def test_a_new_image_rolls_through_the_agents_and_then_the_masters(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    old_agents = {i["instance_id"] for g in cloud.groups.values() for i in g.data["instances"]}
    old_masters = {s.data["name"]: sid for sid, s in cloud.servers.items() if not s.data.get("as_group")}
    (eip,) = cloud.eips.values()
    address = eip.data["public_ip_address"]
    called = drained_nodes(cloud)
    problems = quorum_watch(cloud, minimum=2)
    env.write_cluster(three_masters(image_id=IMAGE_B))

    planned = env.run("plan", "--detailed-exitcode")
    assert planned.code == 3, planned.err
    assert f"new AS configuration (image_id 00000000-0000-0000-0000-000000000000 -> {IMAGE_B})" in planned.out
    assert "replace 3 agent(s), 1 at a time, each drained first:" in planned.out
    assert planned.out.index("replace master analytics11-master-3") < planned.out.index(
        "replace master analytics11-master-1")

    result = env.run("up")

    assert result.code == 0, result.err
    assert problems == []
    (config,) = cloud.configs.values()
    assert config.data["instance_config"]["imageRef"] == IMAGE_B  # the old configuration is gone
    (group,) = cloud.groups.values()
    agents_now = {i["instance_id"] for i in group.data["instances"]}
    assert len(agents_now) == 3 and not agents_now & old_agents
    assert sorted(called) == sorted(old_agents)  # each old agent left through its own callback
    assert all(i["scaling_configuration_id"] == config.data["scaling_configuration_id"]
               for i in group.data["instances"])
    masters_now = {s.data["name"]: s for sid, s in cloud.servers.items() if not s.data.get("as_group")}
    assert sorted(masters_now) == sorted(old_masters)
    assert all(s.data["image"] == IMAGE_B and s.data["id"] != old_masters[n] for n, s in masters_now.items())
    assert {s.data["ip"] for s in masters_now.values()} == {"192.168.0.10", "192.168.0.11", "192.168.0.12"}
    (eip,) = cloud.eips.values()
    assert eip.data["public_ip_address"] == address and eip.data["status"] == "ACTIVE"
    deletions = [c for c in cloud.calls if c.method == "POST" and c.path == "/cloudservers/delete"]
    assert [c.body["delete_publicip"] for c in deletions] == [False, False, False]
    assert "replaced 3 agent(s) and 3 master(s)" in result.out
    # nothing left to do
    assert env.run("plan", "--detailed-exitcode").code == 0


def test_a_changed_drain_setting_replaces_only_the_agents(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    drained_nodes(cloud)
    env.write_cluster(three_masters(drain={"grace": 900}))

    planned = env.run("plan")
    assert "new AS configuration (user-data: drain) and the group switched to it" in planned.out
    assert "replace master" not in planned.out

    result = env.run("up")

    assert result.code == 0, result.err
    assert "replaced 3 agent(s) and 0 master(s)" in result.out
    (config,) = cloud.configs.values()
    agent = json.loads(base64.b64decode(config.data["instance_config"]["user_data"]))
    assert agent["drain"]["grace"] == 900


def test_a_single_master_is_left_alone_with_a_warning(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None))
    assert env.run("up").code == 0
    drained_nodes(cloud)
    env.write_cluster(cluster_document(alluxio=None, credentials=None, master_flavor="s3.large.2"))

    planned = env.run("plan")
    assert "masters NOT replaced: a single master cannot be replaced" in planned.out
    result = env.run("up")

    assert result.code == 0, result.err
    assert "warning: masters not replaced: a single master" in result.err
    (master,) = [s for s in cloud.servers.values() if not s.data.get("as_group")]
    assert master.data["flavor"] == "s3.xlarge.4"


def test_with_desired_at_min_the_group_grows_by_one_first_and_shrinks_back(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(three_masters(agents={"min": 3, "max": 10, "desired": 3}))
    assert env.run("up").code == 0
    old_agents = {i["instance_id"] for g in cloud.groups.values() for i in g.data["instances"]}
    drained_nodes(cloud)
    problems = quorum_watch(cloud, minimum=3)
    env.write_cluster(three_masters(agents={"min": 3, "max": 10, "desired": 3}, agent_flavor="s3.large.2"))

    planned = env.run("plan")
    assert "replace 3 agent(s), 1 at a time, the group 1 larger meanwhile, each drained first:" in planned.out
    result = env.run("up")

    assert result.code == 0, result.err
    assert problems == []
    (group,) = cloud.groups.values()
    assert group.data["desire_instance_number"] == 3
    now = {i["instance_id"]: i for i in group.data["instances"]}
    assert len(now) == 3 and not set(now) & old_agents
    assert {cloud.servers[i].data["flavor"] for i in now} == {"s3.large.2"}
    assert "the group grows to 4 during the rollout" in result.out
    assert "replaced 3 agent(s) and 0 master(s)" in result.out


def test_a_cluster_from_before_the_hook_gets_it_and_its_agents_learn_to_drain(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    cloud.hooks.clear()
    cloud.topics.clear()
    (config,) = cloud.configs.values()
    older = json.loads(base64.b64decode(config.data["instance_config"]["user_data"]))
    del older["lifecycle"], older["drain"]
    config.data["instance_config"]["user_data"] = base64.b64encode(json.dumps(older).encode()).decode()
    drained_nodes(cloud)

    planned = env.run("plan")
    assert "POST   SMN topic analytics11-agents-leaving (smn_topic_created)" in planned.out
    assert "new AS configuration (user-data: drain, lifecycle) and the group switched to it" in planned.out
    assert "replace 3 agent(s), 1 at a time, made before the lifecycle hook, they cannot drain: each is let go " \
           "at once:" in planned.out
    start = env.clock.now
    result = env.run("up")

    assert result.code == 0, result.err
    assert len(cloud.topics) == 1 and len(next(iter(cloud.hooks.values()))) == 1
    (config,) = cloud.configs.values()
    agent = json.loads(base64.b64decode(config.data["instance_config"]["user_data"]))
    assert agent["lifecycle"]["hook"] == "analytics11-drain" and "drain" in agent
    assert "replaced 3 agent(s)" in result.out
    assert result.out.count("let go undrained (made before the lifecycle hook)") >= 3
    assert env.clock.now - start < 3600  # none waited out the hook's timeout
    assert [c["lifecycle_action_result"] for c in cloud.callbacks] == ["CONTINUE"] * 3
