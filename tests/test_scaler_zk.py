"""The scaler against a real ZooKeeper (Debian's 3.8): one leader among the masters, decision state that a new
leader continues from without acting twice, fenced writes, a manual scale seen and held off.

Two scalers run in this process, each with its own ClusterStore (its own session, as on two masters), on a
split tree seeded by a master (``operator_acl_id``). The clock is injected (a decision every call of ``step``).
The autoscaling group is an in-memory stand-in for the AS client (``GroupApi``) that records every call; the
AS client itself is tested by its own tests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from kazoo.client import KazooClient

from bootstrap_agent.autoscaling import AutoScaling, AutoScalingError, TokenAuth
from bootstrap_agent.cluster import ClusterStore
from bootstrap_agent.scaler.decide import InstanceView, hold_after_manual
from bootstrap_agent.scaler.leader import Leadership
from bootstrap_agent.scaler.loop import Scaler
from bootstrap_agent.scaler.report import lines, read
from bootstrap_agent.scaler.service import ScalerService
from bootstrap_agent.scaler.signals import Sample
from bootstrap_agent.scaler.state import LostLeadership, StateStore
from bootstrap_agent.schema import validate
from bootstrap_agent.schema.autoscaling import AutoscalingSettings
from bootstrap_agent.zk import acls
from bootstrap_agent.zk.errors import ClusterUnavailable, NotAuthorized
from tests.support.waiting import wait_for
from tests.support.zookeeper import ZooKeeperServer
from tests.test_credentials import OPERATOR as SPLIT_OPERATOR
from tests.test_credentials import own_address, zk_any  # noqa: F401  (fixture: ZooKeeper on every address)

SECRET = "s3cret-for-tests-0123456789"
OPERATOR = "operator-secret-for-tests-0123"
POLICY = AutoscalingSettings(enabled=True, min=1, max=10, max_step=2, cooldown_out=300, cooldown_in=600,
                             idle_before_removal=120, interval=15, window=60, join_timeout=600)


class Crash(Exception):
    """The leader's process dies right after the group call (before it could mark the intent done)."""


ENDPOINT = "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/0123456789abcdef0123456789abcdef"
GID = "4a3c2b1d-0000-4000-8000-000000000001"
TOKEN = "token-for-tests"


class FakeGroup:
    """OTC's AS API for one group, as otc-api.md documents it (``responses`` callbacks): the group
    (``desire_instance_number``...), its instance list (``scaling_group_instances[]``, ``life_cycle_state``,
    ``total_number``), ``PUT`` of the desired count, the ``REMOVE`` action with ``instance_delete``. Every
    change is recorded in ``calls``; a request without the token is refused as OTC does (401)."""

    def __init__(self, mock: responses.RequestsMock, ids: Sequence[str]) -> None:
        self.desired = len(ids)
        self.states = {i: "INSERVICE" for i in ids}
        self.calls: list[tuple[str, Any]] = []
        self.refuse = False  # answer REMOVE with OTC's error shape (400)
        self._serial = 0
        self._lock = threading.Lock()
        mock.add_callback(responses.GET, f"{ENDPOINT}/scaling_group/{GID}", self._group)
        mock.add_callback(responses.GET, re.compile(re.escape(f"{ENDPOINT}/scaling_group") + r"\?.*"), self._find)
        mock.add_callback(responses.PUT, f"{ENDPOINT}/scaling_group/{GID}", self._update)
        mock.add_callback(responses.GET, re.compile(re.escape(f"{ENDPOINT}/scaling_group_instance/{GID}/list")
                                                    + r"(\?.*)?$"), self._list)
        mock.add_callback(responses.POST, f"{ENDPOINT}/scaling_group_instance/{GID}/action", self._action)

    def _authorized(self, request: Any) -> bool:
        return bool(request.headers.get("X-Auth-Token") == TOKEN)

    def _group(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorized(request):
            return 401, {}, json.dumps({"error": {"code": "AS.0001", "message": "unauthorized"}})
        with self._lock:
            body = {"scaling_group": {"scaling_group_id": GID, "scaling_group_name": "eo-agents",
                                      "scaling_group_status": "INSERVICE", "desire_instance_number": self.desired,
                                      "min_instance_number": 0, "max_instance_number": 10,
                                      "current_instance_number": len(self.states)}}
        return 200, {}, json.dumps(body)

    def _find(self, request: Any) -> tuple[int, dict[str, str], str]:
        status, headers, body = self._group(request)
        if status != 200:
            return status, headers, body
        name = parse_qs(urlsplit(request.url).query)["scaling_group_name"][0]
        found = [json.loads(body)["scaling_group"]] if name in "eo-agents" else []  # OTC matches substrings
        return 200, {}, json.dumps({"total_number": len(found), "scaling_groups": found})

    def _update(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        assert set(body) == {"desire_instance_number"}, body
        with self._lock:
            self.calls.append(("set_desired", body["desire_instance_number"]))
            self.desired = body["desire_instance_number"]
            while len([s for s in self.states.values() if s not in ("REMOVING_WAIT", "REMOVING")]) < self.desired:
                self._serial += 1
                self.states[f"new-{self._serial}"] = "PENDING"
        return 200, {}, json.dumps({"scaling_group_id": GID})

    def _list(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url).query)
        start, limit = int(query["start_number"][0]), int(query["limit"][0])
        with self._lock:
            items = [{"instance_id": i, "instance_name": i, "life_cycle_state": s, "health_status": "NORMAL"}
                     for i, s in sorted(self.states.items())]
        body = {"total_number": len(items), "scaling_group_instances": items[start:start + limit]}
        return 200, {}, json.dumps(body)

    def _action(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        assert body["action"] == "REMOVE" and body["instance_delete"] == "yes", body
        if self.refuse:
            self.calls.append(("refused", tuple(body["instances_id"])))
            return 400, {}, json.dumps({"error": {"code": "AS.4014", "message": "the group is locked"}})
        with self._lock:
            self.calls.append(("remove", tuple(body["instances_id"])))
            for i in body["instances_id"]:
                self.states[i] = "REMOVING_WAIT"  # the lifecycle hook holds it while it drains
            self.desired -= len(body["instances_id"])
        return 204, {}, ""

    def join_all(self) -> None:
        with self._lock:
            self.states = {i: "INSERVICE" if s == "PENDING" else s for i, s in self.states.items()}


class CrashingClient(AutoScaling):
    """The real client; ``crash`` makes the process "die" right after a desired-count call went through."""

    crash = False

    def set_desired(self, gid: str, count: int) -> None:
        super().set_desired(gid, count)
        if self.crash:
            raise Crash


@pytest.fixture
def otc() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def client() -> CrashingClient:
    return CrashingClient(ENDPOINT, TokenAuth(lambda: TOKEN))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.records.append((event, fields))

    warning = error = info

    def named(self, event: str) -> list[dict[str, Any]]:
        return [f for e, f in self.records if e == event]


@pytest.fixture
def stores(zookeeper_module: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[list[ClusterStore]]:
    """Two masters' stores on a split tree (the first seeds it with the operator's digest id)."""
    cluster = f"sc-{request.node.name[-24:].lower().replace('_', '-').strip('-')}"[:32]
    made = []
    for _ in range(2):
        store = ClusterStore(zookeeper_module.hosts, cluster, SECRET, on_event=lambda kind, detail: None,
                             session_timeout=4.0, call_timeout=3.0, log=Log(),
                             operator_acl_id=acls.operator_id(OPERATOR))
        store.start()
        assert store.wait_connected(10)
        store.ensure_tree()
        made.append(store)
    yield made
    for store in made:
        store.stop()


def scaler(store: ClusterStore, group: FakeGroup, clock: Clock, load: list[float], name: str,
           busy: dict[str, int], api: AutoScaling | None = None) -> Scaler:
    def sample(now: float) -> Sample:
        return Sample(now, cpus_total=8, cpus_used=8 * load[0], mem_total=100, mem_used=5, frameworks_active=1)

    def agents() -> Mapping[str, InstanceView]:
        return {i: InstanceView(i, ready=True, tasks=busy.get(i, 0)) for i, s in group.states.items()
                if s == "INSERVICE"}

    return Scaler(store.session, POLICY, api or client(), GID, sample, agents, identifier=name, clock=clock,
                  log=Log())


def expire(store: ClusterStore, hosts: str) -> None:
    """End a store's ZooKeeper session from outside, as a dead master's session ends: ZooKeeper removes its
    ephemeral znodes (the leader's among them); its own client only learns it when it reconnects."""
    session_id, password = store.session.client.client_id
    killer = KazooClient(hosts=hosts, client_id=(session_id, password))
    killer.start(timeout=10)
    killer.stop()
    killer.close()


def steps(s: Scaler, node: str, clock: Clock, count: int) -> list[Any]:
    out = []
    for _ in range(count):
        clock.now += POLICY.interval
        out.append(s.step(node))
    return out


def test_one_leader_handover_continues_from_the_stored_state_without_double_counting(
        stores: list[ClusterStore], zookeeper_module: ZooKeeperServer, otc: responses.RequestsMock) -> None:
    group, clock, load = FakeGroup(otc, ["a-1", "a-2", "a-3", "a-4"]), Clock(), [0.95]
    busy: dict[str, int] = {}
    crashing = client()
    first = scaler(stores[0], group, clock, load, "master-a", busy, crashing)
    second = scaler(stores[1], group, clock, load, "master-b", busy)
    node_a = first.leadership.acquire("master-a", timeout=5)
    assert node_a is not None
    assert second.leadership.acquire("master-b", timeout=0.5) is None  # exactly one leads
    assert Leadership(stores[1].session).leader() == "master-a"

    decisions = steps(first, node_a, clock, 3)  # half a window of samples, then the first decision
    assert [d.reason for d in decisions[:2]] == ["warming_up"] * 2
    assert decisions[2].action == "out" and group.calls == [("set_desired", 6)]
    group.join_all()

    # The next scale-out: the leader writes its intent, the group takes it, and the leader dies before "done".
    crashing.crash = True
    with pytest.raises(Crash):  # the crash comes at the first step after the cooldown
        for _ in range(POLICY.cooldown_out // POLICY.interval + 1):
            assert steps(first, node_a, clock, 1)[0].reason == "cooldown_out"
    crashing.crash = False
    assert group.calls == [("set_desired", 6), ("set_desired", 8)]
    state, _ = StateStore(stores[1].session).load()
    assert state.intent is not None and state.intent["desired"] == 8 and state.decision_id == 2

    expire(stores[0], zookeeper_module.hosts)
    node_b = second.leadership.acquire("master-b", timeout=20)  # within the session timeout (4 s)
    assert node_b is not None
    assert second.step(node_b) is None  # the open intent is finished, not decided again
    assert group.calls == [("set_desired", 6), ("set_desired", 8)]  # the group already showed 8: no call
    assert second.log.named("scaler_intent_resumed")[0]["id"] == 2
    state, _ = StateStore(stores[1].session).load()
    assert state.intent is None and state.decision_id == 2 and state.history.last_set == 8

    # The new leader goes on from the stored cooldown (it began with the dead leader's decision).
    decisions = steps(second, node_b, clock, 4)
    assert {d.reason for d in decisions} <= {"warming_up", "waiting_for_joins", "cooldown_out"}
    assert group.calls == [("set_desired", 6), ("set_desired", 8)]

    # The old leader, back with a new session, can no longer write: its leader znode is gone (fenced).
    assert wait_for("the old master reconnected", stores[0].connected, timeout=15)
    with pytest.raises(LostLeadership):
        first.step(node_a)
    assert group.calls == [("set_desired", 6), ("set_desired", 8)]
    recorded = [d for d in StateStore(stores[0].session).load()[0].decisions if d["action"] != "none"]
    assert [(d["id"], d["action"], d["leader"]) for d in recorded] == [(1, "out", "master-a"), (2, "out", "master-a")]


def test_manual_scale_holds_off_and_scale_in_removes_idle_instances_once(stores: list[ClusterStore],
                                                                         otc: responses.RequestsMock) -> None:
    group, clock, load = FakeGroup(otc, [f"a-{n}" for n in range(6)]), Clock(), [0.7]
    busy = {"a-0": 2, "a-1": 1}
    lead = scaler(stores[0], group, clock, load, "master-a", busy)
    node = lead.leadership.acquire("master-a", timeout=5)
    assert node is not None
    assert steps(lead, node, clock, 5)[-1].reason == "within_band"

    client().set_desired(GID, 7)  # provision-min scale 7 (manual), through the same API
    decision = steps(lead, node, clock, 1)[0]
    assert (decision.action, decision.reason) == ("none", "manual_scale")
    group.join_all()
    load[0] = 0.1
    held = steps(lead, node, clock, 3)
    assert {d.reason for d in held} == {"manual_hold"}
    state, _ = StateStore(stores[1].session).load()
    assert state.history.manual_at is not None and state.history.last_set == 7
    assert any(d["reason"] == "manual_scale" for d in state.decisions)

    manual_at = state.history.manual_at
    reasons = []
    for _ in range(60):  # on until the hold ends and the agents have been idle long enough
        decision = steps(lead, node, clock, 1)[0]
        reasons.append(decision.reason)
        if decision.action != "none":
            break
    assert set(reasons[:-1]) == {"manual_hold"} and clock.now >= manual_at + POLICY.cooldown_in
    assert decision.action == "in" and len(decision.remove) == 2
    assert not set(decision.remove) & {"a-0", "a-1"}  # busy agents are never chosen
    assert group.calls == [("set_desired", 7), ("remove", decision.remove)] and group.desired == 5
    after = steps(lead, node, clock, 3)  # the removals drain: no second removal, no "manual" misreading
    assert {d.reason for d in after} <= {"cooldown_in", "waiting_for_removals"}
    assert group.calls == [("set_desired", 7), ("remove", decision.remove)]


def test_two_running_scalers_one_acts_and_the_other_takes_over(stores: list[ClusterStore],
                                                                otc: responses.RequestsMock) -> None:
    """``run()`` on both masters at real speed (interval 1 s): one leads; its master goes, the other leads."""
    policy = AutoscalingSettings(enabled=True, min=1, max=10, interval=1, window=2, cooldown_out=60,
                                 cooldown_in=60)
    group, load = FakeGroup(otc, ["a-1", "a-2"]), [0.95]
    runners = []
    for store, name in zip(stores, ("master-a", "master-b"), strict=True):
        s = Scaler(store.session, policy, client(), GID,
                   lambda now: Sample(now, 4, 4 * load[0], 10, 1), lambda: {}, identifier=name, log=Log())
        stop = threading.Event()
        thread = threading.Thread(target=s.run, args=(stop,), daemon=True)
        thread.start()
        runners.append((s, stop, thread))
    try:
        wait_for("a scale-out", lambda: group.calls, timeout=20)
        time.sleep(2)
        leaders = [s.identifier for s, _, _ in runners if s.log.named("scaler_leading")]
        assert len(leaders) == 1 and group.calls == [("set_desired", 3)]
        leading = next(i for i, (s, _, _) in enumerate(runners) if s.identifier == leaders[0])
        runners[leading][1].set()
        runners[leading][2].join(10)
        stores[leading].stop()
        other = runners[1 - leading][0]
        wait_for("the other master leads", lambda: other.log.named("scaler_leading"), timeout=20)
        wait_for("it decides", lambda: other.log.named("scaler_decision"), timeout=10)
        assert group.calls == [("set_desired", 3)]  # the cooldown came with the state: no second scale-out
        assert other.log.named("scaler_decision")[-1]["reason"] in ("warming_up", "waiting_for_joins",
                                                                    "cooldown_out")
    finally:
        for _, stop, thread in runners:
            stop.set()
            thread.join(10)


def test_a_new_leader_finishes_an_interrupted_scale_in_without_removing_twice(stores: list[ClusterStore],
                                                                              otc: responses.RequestsMock) -> None:
    group, clock, load = FakeGroup(otc, [f"a-{n}" for n in range(5)]), Clock(), [0.1]
    busy: dict[str, int] = {}

    class CrashAfterRemove(CrashingClient):
        def remove(self, gid: str, instance_ids: Iterable[str], delete: bool = True) -> None:
            super().remove(gid, instance_ids, delete)
            raise Crash

    crashing = CrashAfterRemove(ENDPOINT, TokenAuth(lambda: TOKEN))
    first = scaler(stores[0], group, clock, load, "master-a", busy, crashing)
    second = scaler(stores[1], group, clock, load, "master-b", busy)
    node_a = first.leadership.acquire("master-a", timeout=5)
    assert node_a is not None
    with pytest.raises(Crash):  # idle long enough after ten minutes of samples, then the leader dies
        for _ in range(60):
            assert steps(first, node_a, clock, 1)[0].action == "none"
    removed = group.calls[0][1]
    assert group.calls == [("remove", removed)] and len(removed) == 2
    stores[0].stop()  # the master goes: its session and its leader znode with it
    node_b = second.leadership.acquire("master-b", timeout=20)
    assert node_b is not None
    assert second.step(node_b) is None  # the intent is finished: the instances are already leaving
    assert group.calls == [("remove", removed)]
    state, _ = StateStore(stores[1].session).load()
    assert state.intent is None and set(state.history.pending) == set(removed) and state.history.last_set == 3
    later = steps(second, node_b, clock, 4)
    assert all(d.action == "none" for d in later) and group.calls == [("remove", removed)]


def test_only_the_masters_addresses_may_lead_or_write_the_state(
        zk_any: ZooKeeperServer, otc: responses.RequestsMock) -> None:  # noqa: F811
    """An agent holds the same node credential but connects from its own address: it may read who leads and
    the decisions, and may neither contend nor write the state."""
    mine = own_address()
    made = []
    try:
        for address, operator in ((mine, SPLIT_OPERATOR), (mine, None), ("127.0.0.1", None)):
            store = ClusterStore(f"{address}:{zk_any.port}", "sc-acl", SECRET, on_event=lambda kind, detail: None,
                                 session_timeout=4.0, call_timeout=3.0, log=Log(), masters=(mine,),
                                 operator_secret=operator)
            store.start()
            assert store.wait_connected(10)
            store.ensure_tree()
            made.append(store)
        _, master, agent = made
        group, clock = FakeGroup(otc, ["a-1", "a-2"]), Clock()
        lead = scaler(master, group, clock, [0.5], "master-a", {})
        node = lead.leadership.acquire("master-a", timeout=5)
        assert node is not None
        steps(lead, node, clock, 3)
        assert Leadership(agent.session).leader() == "master-a"  # readable by every node
        state, version = StateStore(agent.session).load()
        assert state.decisions and version >= 0
        with pytest.raises(NotAuthorized):
            Leadership(agent.session).acquire("agent", timeout=1)
        with pytest.raises(ClusterUnavailable):  # NoAuth inside the fenced transaction
            StateStore(agent.session).save(state, version, node)
    finally:
        for store in made:
            store.stop()


def test_status_shows_the_leader_the_hold_and_the_last_decisions(stores: list[ClusterStore],
                                                                 otc: responses.RequestsMock) -> None:
    group, clock, load = FakeGroup(otc, ["a-1", "a-2"]), Clock(), [0.5]
    lead = scaler(stores[0], group, clock, load, "master-a", {})
    node = lead.leadership.acquire("master-a", timeout=5)
    assert node is not None
    steps(lead, node, clock, 6)
    client().set_desired(GID, 3)  # a manual scale
    steps(lead, node, clock, 2)
    report, svg = read(stores[1].session, hold_after_manual(POLICY), now=clock.now)
    shown = "\n".join(lines(report))
    assert report["leader"] == "master-a" and report["holding_until"] is not None
    assert "held off until" in shown and "UTC: manual scale seen" in shown
    assert "none manual_scale" in shown and "none manual_hold" in shown and "within_band (×" in shown
    assert "allocation 50%" in shown
    assert svg.startswith("<svg") and 'class="desired"' in svg


def test_a_refused_group_call_is_retried_from_the_intent_then_given_up(stores: list[ClusterStore],
                                                                       otc: responses.RequestsMock) -> None:
    group, clock, load = FakeGroup(otc, [f"a-{n}" for n in range(4)]), Clock(), [0.1]
    group.refuse = True
    lead = scaler(stores[0], group, clock, load, "master-a", {})
    node = lead.leadership.acquire("master-a", timeout=5)
    assert node is not None
    with pytest.raises(AutoScalingError, match="the group is locked"):
        for _ in range(60):
            steps(lead, node, clock, 1)
    for _ in range(3):  # each pass retries the open intent (the same instances), not a new decision
        with pytest.raises(AutoScalingError):
            steps(lead, node, clock, 1)
    assert [c[0] for c in group.calls] == ["refused"] * 4 and len({c[1] for c in group.calls}) == 1
    assert steps(lead, node, clock, 1) == [None]  # given up, with an event
    assert lead.log.named("scaler_intent_abandoned")[0]["attempts"] == 3
    state, _ = StateStore(stores[1].session).load()
    assert state.intent is None and state.decision_id == 1
    assert state.history.pending == () and state.history.last_set == 4  # not waiting for removals that never came
    assert steps(lead, node, clock, 1)[0].reason == "cooldown_in"  # and not misread as a manual scale


def test_the_service_finds_its_group_leads_and_explains_without_a_signal(stores: list[ClusterStore],
                                                                          otc: responses.RequestsMock) -> None:
    """Built from a master's settings; Mesos is not reachable here (no request leaves the process: ``responses``
    refuses every address it does not fake), so each pass is a ``no_signal`` decision, and stop() ends it."""
    FakeGroup(otc, ["a-1", "a-2"])
    document = json.loads((Path(__file__).resolve().parents[1] / "bootstrap_agent/examples/agent.json").read_text())
    document.update(role="master", autoscaling={"enabled": True, "min": 1, "max": 4, "interval": 1, "window": 2,
                                                "endpoint": ENDPOINT, "group": "eo-agents"})
    settings = validate(document)
    log = Log()
    service = ScalerService.create(settings, stores[0].session, stores[0].members, client(), "master-a", log=log)
    assert service is not None
    service.start()
    try:
        wait_for("two decisions", lambda: len(log.named("scaler_decision")) >= 2, timeout=20)
        assert {d["reason"] for d in log.named("scaler_decision")} == {"no_signal"}
        failed = log.named("scaler_sample_failed")
        assert failed and "no leading Mesos master among 192.168.0.10:5050" in failed[0]["error"]
    finally:
        service.stop()
    assert not service.alive()
    disabled = {**document, "autoscaling": {"enabled": False}}
    assert ScalerService.create(validate(disabled), stores[0].session, stores[0].members, client(), "m") is None
    unconfigured = {**document, "autoscaling": {"enabled": True, "min": 1, "max": 4}}
    assert ScalerService.create(validate(unconfigured), stores[0].session, stores[0].members, client(), "m",
                                log=log) is None
    assert log.named("scaler_unconfigured")


def test_a_release_that_fails_is_finished_before_contending_again(zookeeper: ZooKeeperServer) -> None:
    """ZooKeeper away while the leader gives up: its contender znode stays (the session outlives the outage) and
    would lead for nobody; the next ``acquire`` deletes it first."""
    store = ClusterStore(zookeeper.hosts, "sc-release", SECRET, on_event=lambda kind, detail: None,
                         session_timeout=15.0, call_timeout=2.0, log=Log())
    other = ClusterStore(zookeeper.hosts, "sc-release", SECRET, on_event=lambda kind, detail: None,
                         session_timeout=15.0, call_timeout=2.0, log=Log())
    try:
        for s in (store, other):
            s.start()
            assert s.wait_connected(10)
            s.ensure_tree()
        leadership = Leadership(store.session)
        node = leadership.acquire("master-a", timeout=5)
        assert node is not None
        session_id = store.session.session_id()
        zookeeper.stop()
        leadership.release(node)  # cannot reach ZooKeeper: deferred
        assert store.log.named("scaler_release_deferred")
        zookeeper.start()
        assert wait_for("reconnected", store.connected, timeout=20)
        assert store.session.session_id() == session_id  # the same session: its znode is still there
        assert Leadership(other.session).leader() == "master-a"
        again = leadership.acquire("master-a", timeout=5)
        assert again is not None and again != node
        children = other.session.client.get_children(store.paths.scaler_leader)
        assert children == [again.rsplit("/", 1)[1]]
        leadership.release(again)
        assert Leadership(other.session).acquire("master-b", timeout=5) is not None
    finally:
        store.stop()
        other.stop()
