"""A cluster in a loop with a fast clock, for the scaler's flapping figures: a load trace in agents' worth of
cpus, a group whose added agents become ready after ``join_delay`` seconds and whose removed agents go at once,
and either the scaler's ``decide`` or a naive threshold rule choosing every ``interval`` seconds."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bootstrap_agent.scaler.decide import GroupView, History, InstanceView, decide, track_idle
from bootstrap_agent.scaler.signals import Sample, window
from bootstrap_agent.schema.autoscaling import AutoscalingSettings


@dataclass
class Run:
    decisions: int = 0
    desired: list[int] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def square_wave(low: float, high: float, period: float) -> Callable[[float], float]:
    return lambda t: high if (t % period) < period / 2 else low


def simulate(policy: AutoscalingSettings, load: Callable[[float], float], *, start: int, seconds: int = 600,
             join_delay: float = 45.0, naive: bool = False) -> Run:
    """Desired starts at ``start`` (all ready); ``load(t)`` is the demand in agents' worth of cpus at t."""
    agents: dict[str, float] = {f"i-{n}": -1e9 for n in range(start)}  # id -> ready from (time)
    serial, desired, history, run = start, start, History(last_set=start), Run()
    samples: list[Sample] = []
    now = 0.0
    while now < seconds:
        ready = sorted(i for i, since in agents.items() if since <= now)
        demand = load(now)
        busy = min(len(ready), math.ceil(demand - 1e-9))
        used = min(demand, len(ready))
        samples = [*window(samples, now, policy.window),
                   Sample(now, cpus_total=len(ready), cpus_used=used, mem_total=len(ready), mem_used=used,
                          frameworks_active=1)]
        instances = tuple(InstanceView(i, ready=i in ready, tasks=(1 if n < busy else 0) if i in ready else None)
                          for n, i in enumerate(sorted(agents, key=lambda k: (agents[k], k))))
        view = GroupView(desired=desired, instances=instances, group_min=policy.min, group_max=policy.max)
        if naive:
            allocation = samples[-1].allocation
            action = "out" if allocation > policy.scale_out_above and desired < policy.max else \
                "in" if allocation < policy.scale_in_below and desired > policy.min else "none"
            if action == "out":
                desired += 1
                agents[f"i-{serial}"] = now + join_delay
                serial += 1
            elif action == "in":
                victim = next((i.id for i in reversed(instances) if i.tasks == 0), instances[-1].id)
                del agents[victim]
                desired -= 1
        else:
            history = replace(history, idle_since=track_idle(history.idle_since, instances, now))
            decision = decide(policy, samples, view, history, now)
            run.reasons[decision.reason] = run.reasons.get(decision.reason, 0) + 1
            action = decision.action
            if action == "out":
                for _ in range(decision.add):
                    agents[f"i-{serial}"] = now + join_delay
                    serial += 1
                history = replace(history, last_set=decision.desired, last_out=now)
            elif action == "in":
                for victim in decision.remove:
                    del agents[victim]
                history = replace(history, last_set=decision.desired, last_in=now)
            desired = decision.desired
        if action != "none":
            run.decisions += 1
        run.desired.append(desired)
        now += policy.interval
    return run
