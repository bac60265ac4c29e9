"""The scaler's pure decision: each reason a user would see in ``status``, the signal values on every outcome,
and no flapping under a load that oscillates faster than the cooldowns (against a naive threshold rule)."""

from __future__ import annotations

import math

import pytest

from bootstrap_agent.autoscaling import Group, Instance
from bootstrap_agent.scaler.decide import GroupView, History, InstanceView, decide, track_idle
from bootstrap_agent.scaler.group import group_view
from bootstrap_agent.scaler.signals import Sample, sample_from, smooth, starved_frameworks
from bootstrap_agent.schema.autoscaling import AutoscalingSettings
from tests.support.scaler_sim import simulate, square_wave

POLICY = AutoscalingSettings(enabled=True, min=1, max=10, max_step=2, cooldown_out=300, cooldown_in=600,
                             idle_before_removal=600, interval=15, window=120, join_timeout=600)
NOW = 10_000.0


def samples(allocation: float, *, seconds: float = 120, starved: int = 0, offers: int = 0,
            alluxio: tuple[int, int] | None = None) -> list[Sample]:
    return [Sample(NOW - t, cpus_total=8, cpus_used=8 * allocation, mem_total=100, mem_used=10,
                   outstanding_offers=offers, frameworks_active=1, frameworks_starved=starved,
                   alluxio_used=None if alluxio is None else alluxio[0],
                   alluxio_total=None if alluxio is None else alluxio[1])
            for t in range(0, int(seconds), 15)]


def group(desired: int, ready: int | None = None, *, idle: int = 0, joining: int = 0) -> GroupView:
    ready = desired - joining if ready is None else ready
    instances = [InstanceView(f"i-{n}", ready=True, tasks=0 if n < idle else 3) for n in range(ready)]
    instances += [InstanceView(f"j-{n}", ready=False) for n in range(joining)]
    return GroupView(desired=desired, instances=tuple(instances), group_min=0, group_max=20)


def test_high_allocation_scales_out_toward_the_setpoint_by_at_most_max_step() -> None:
    decision = decide(POLICY, samples(0.95), group(4), History(last_set=4), NOW)
    assert (decision.action, decision.reason) == ("out", "scale_out")
    # ceil(4 × 0.95 / 0.6) = 7 agents wanted; max_step 2 → 6
    assert decision.add == 2 and decision.desired == 6
    assert decision.signals["allocation"] == pytest.approx(0.95) and decision.signals["desired"] == 4


@pytest.mark.parametrize(("view", "history", "reason"), [
    (group(10), History(last_set=10), "at_max"),
    (group(4), History(last_set=4, last_out=NOW - 100), "cooldown_out"),
    (group(6, joining=2), History(last_set=6, last_out=NOW - 400), "waiting_for_joins"),
    (group(5), History(last_set=4), "manual_scale"),
    (group(5), History(last_set=5, manual_at=NOW - 60), "manual_hold"),
])
def test_an_out_not_taken_says_why_with_the_signals(view: GroupView, history: History, reason: str) -> None:
    decision = decide(POLICY, samples(0.95), view, history, NOW)
    assert (decision.action, decision.reason) == ("none", reason)
    assert decision.desired == view.desired and decision.signals["allocation"] == pytest.approx(0.95)
    assert decision.manual == (reason == "manual_scale")


def test_a_join_that_takes_longer_than_join_timeout_no_longer_blocks() -> None:
    decision = decide(POLICY, samples(0.95), group(6, joining=2), History(last_set=6, last_out=NOW - 700), NOW)
    assert decision.action == "out"


def test_starving_framework_without_offers_scales_out_within_the_band() -> None:
    starving = decide(POLICY, samples(0.6, starved=1), group(4), History(last_set=4), NOW)
    assert starving.action == "out" and "framework waits" in starving.detail
    offered = decide(POLICY, samples(0.6, starved=1, offers=2), group(4), History(last_set=4), NOW)
    assert (offered.action, offered.reason) == ("none", "within_band")  # it holds offers: choosing, not starving
    # a mostly free cluster without offers out: the framework declined or suppressed them, it is not starving
    free = decide(POLICY, samples(0.1, starved=1), group(4), History(last_set=4), NOW)
    assert free.action != "out"


def test_alluxio_capacity_use_is_a_signal_only_when_asked_for() -> None:
    full = samples(0.6, alluxio=(95, 100))
    assert decide(POLICY, full, group(4), History(last_set=4), NOW).action == "none"
    policy = AutoscalingSettings(**{**POLICY.__dict__, "alluxio_above": 0.9})
    assert decide(policy, full, group(4), History(last_set=4), NOW).action == "out"


def test_scale_in_removes_only_agents_idle_long_enough_and_keeps_the_setpoint() -> None:
    view = group(6, idle=4)
    idle = {f"i-{n}": NOW - 700 for n in range(3)} | {"i-3": NOW - 100}  # i-3 idle for only 100 s
    decision = decide(POLICY, samples(0.2), view, History(last_set=6, idle_since=idle), NOW)
    assert decision.action == "in" and decision.desired == 6 - len(decision.remove)
    assert set(decision.remove) <= {"i-0", "i-1", "i-2"} and len(decision.remove) == 2  # max_step
    # keep ceil(6 × 0.2 / 0.6) = 2 agents at least; the step is the bound here
    assert math.ceil(6 * 0.2 / POLICY.setpoint) <= decision.desired


@pytest.mark.parametrize(("view", "history", "reason"), [
    (group(1, idle=1), History(last_set=1), "at_min"),
    (group(4, idle=4), History(last_set=4, last_out=NOW - 300), "cooldown_in"),  # delay after add
    (group(4, idle=4), History(last_set=4, last_in=NOW - 300), "cooldown_in"),
    (group(4, idle=0), History(last_set=4), "no_idle_agents"),
    (group(4, idle=4), History(last_set=3, pending=("i-9",)), "waiting_for_removals"),
])
def test_an_in_not_taken_says_why(view: GroupView, history: History, reason: str) -> None:
    history = History(**{**history.__dict__, "idle_since": {i.id: NOW - 1000 for i in view.instances}})
    decision = decide(POLICY, samples(0.1), view, history, NOW)
    assert (decision.action, decision.reason) == ("none", reason), decision.detail


def test_no_decision_without_a_signal_or_while_disabled_or_warming_up() -> None:
    assert decide(POLICY, [], group(4), History(), NOW).reason == "no_signal"
    assert decide(POLICY, samples(0.95, seconds=30), group(4), History(), NOW).reason == "warming_up"
    off = AutoscalingSettings()
    assert decide(off, samples(0.95), group(4), History(), NOW).reason == "disabled"


def test_idle_clock_restarts_on_any_task() -> None:
    first = track_idle({}, [InstanceView("a", ready=True, tasks=0)], 100)
    assert track_idle(first, [InstanceView("a", ready=True, tasks=0)], 200) == {"a": 100}
    assert track_idle(first, [InstanceView("a", ready=True, tasks=1)], 200) == {}
    assert track_idle(first, [InstanceView("a", ready=True, tasks=None)], 200) == {}


def test_signals_from_mesos_documents() -> None:
    metrics = {"master/cpus_total": 8, "master/cpus_used": 2, "master/mem_total": 1000, "master/mem_used": 750,
               "master/outstanding_offers": 0, "master/frameworks_active": 2}
    frameworks = {"frameworks": [
        {"active": True, "used_resources": {"cpus": 2, "mem": 750}, "offered_resources": {}},
        {"active": True, "used_resources": {"cpus": 0, "mem": 0}, "offered_resources": {"cpus": 0}},
        {"active": False, "used_resources": {}},
    ]}
    sample = sample_from(metrics, 5.0, starved=starved_frameworks(frameworks))
    assert sample.allocation == pytest.approx(0.75) and sample.frameworks_starved == 1
    with pytest.raises(ValueError, match="master/cpus_used is not a number"):
        sample_from({**metrics, "master/cpus_used": "x"}, 5.0)
    smoothed = smooth([sample, Sample(20.0, 8, 8, 1000, 0)], now=20.0, seconds=60)
    assert smoothed is not None and smoothed.allocation == pytest.approx((0.75 + 1.0) / 2)
    assert smooth([sample], now=200.0, seconds=60) is None


def test_the_group_joined_with_members() -> None:
    view = group_view(
        Group.of({"desire_instance_number": 3, "min_instance_number": 1, "max_instance_number": 9}),
        [Instance.of({"instance_id": "a", "life_cycle_state": "INSERVICE"}),
         Instance.of({"instance_id": "b", "life_cycle_state": "PENDING"}),
         Instance.of({"instance_id": "c", "life_cycle_state": "REMOVING_WAIT"})],
        {"a": InstanceView("a", ready=True, tasks=0), "c": InstanceView("c", ready=True, tasks=0)})
    assert (view.desired, view.group_min, view.group_max, view.ready, view.joining) == (3, 1, 9, 1, 1)
    assert [i.removing for i in view.instances] == [False, False, True]


def test_no_flapping_under_a_load_faster_than_the_cooldowns() -> None:
    """10 minutes of a load that swings between 25 % and 97 % of 4 agents every minute: the naive rule follows
    every swing; the scaler (window mean, band, cooldowns) does not move the group at all."""
    load = square_wave(1.0, 3.9, period=60)
    scaler = simulate(POLICY, load, start=4)
    naive = simulate(POLICY, load, start=4, naive=True)
    print(f"\nscaler decisions: {scaler.decisions}, naive threshold rule: {naive.decisions} "
          f"(10 min, 15 s interval, load 1.0/3.9 agents, period 60 s)")
    assert scaler.decisions <= 1 and naive.decisions >= 10
    assert len(set(scaler.desired)) <= 2 < len(set(naive.desired))


def test_a_sustained_step_still_scales_out_and_back_in() -> None:
    """Not inert: a step to 7 agents' worth of load grows the group; its end returns it to min over time."""
    def load(t: float) -> float:
        return 7.0 if 60 <= t < 900 else 0.5

    run = simulate(POLICY, load, start=2, seconds=3600)
    assert max(run.desired) >= 7 and run.desired[-1] == POLICY.min
    assert run.reasons.get("scale_out", 0) >= 2 and run.reasons.get("cooldown_out", 0) > 0


def test_a_group_below_min_is_raised_to_min_whatever_the_load() -> None:
    policy = AutoscalingSettings(**{**POLICY.__dict__, "min": 3})
    decision = decide(policy, samples(0.1), group(1), History(last_set=1), NOW)
    assert (decision.action, decision.reason, decision.desired, decision.add) == ("out", "below_min", 3, 2)
