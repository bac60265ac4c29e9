"""The scaler's one decision: signals + the group as it is + what the scaler did before → out N, in [ids], none.

Pure: no clock, no I/O; ``now`` and every input are arguments, so a test (or the flapping simulation in
``simulate``) replays hours in milliseconds. Every outcome carries a reason code and the signal values, so
a decision *not* taken explains itself as well as one taken.

What it takes from the references:

* clusterman (``autoscaler.py`` ``_compute_target_capacity``): aim at a setpoint (here the middle of the
  band), sized by the most constrained resource: ``needed = ceil(ready × allocation / setpoint)``; never
  change while added capacity has not joined yet ("let the new instances join") — here ``waiting_for_joins``,
  bounded by ``join_timeout`` so a group that cannot start instances does not freeze the scaler forever.
* clusterman (``pool_manager.py`` ``_constrain_target_capacity``): first clamp to min/max, then to the largest
  step (``max_weight_to_add``/``_remove`` → ``max_step``); and prune idle agents first
  (``_prioritize_killable_nodes``: idle before busy, fewer tasks first).
* cluster-autoscaler (``scale-down-unneeded-time``, ``scale-down-delay-after-add``): an agent is removable
  only after it has been idle ``idle_before_removal`` seconds without a break, and no scale-in happens within
  ``cooldown_in`` of *any* change, a scale-out included: capacity just added is not given back before it had
  a chance to take the load it was added for. Scale-outs have their own, shorter ``cooldown_out``.
* A band instead of a single threshold (hysteresis): in below ``scale_in_below``, out above
  ``scale_out_above``, and a scale-in removes only as many agents as keep the allocation at or below the
  setpoint, so a scale-in can never by itself push the cluster over the scale-out threshold.
* Intent is absolute (``desired = N``, "remove exactly these ids"), never relative ("add 2"): a new leader
  repeating an interrupted decision cannot count it twice (``state``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bootstrap_agent.scaler.signals import Sample, smooth
from bootstrap_agent.schema.autoscaling import AutoscalingSettings

Action = Literal["out", "in", "none"]


@dataclass(frozen=True)
class InstanceView:
    """One instance of the group as the scaler sees it: the group's answer joined with its member znode."""

    id: str
    ready: bool  # its member znode says ready
    removing: bool = False  # the group is removing it (REMOVING_WAIT, REMOVING) or it drains
    tasks: int | None = None  # Mesos tasks running there (member ``load``); None: unknown, never removed
    cache_bytes: int = 0
    unpersisted_bytes: int | None = None


@dataclass(frozen=True)
class GroupView:
    desired: int
    instances: tuple[InstanceView, ...] = ()
    group_min: int = 0
    group_max: int = 1_000_000

    @property
    def ready(self) -> int:
        return sum(1 for i in self.instances if i.ready and not i.removing)

    @property
    def joining(self) -> int:
        return sum(1 for i in self.instances if not i.ready and not i.removing)


@dataclass(frozen=True)
class History:
    """What the scaler did before (kept in ZooKeeper by ``state``)."""

    last_set: int | None = None  # the desired count the scaler last caused
    last_out: float | None = None
    last_in: float | None = None
    manual_at: float | None = None  # when a change by someone else was seen
    pending: tuple[str, ...] = ()  # instances the scaler removes and that are not gone yet
    idle_since: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str  # a stable code: scale_out, scale_in, cooldown_out, at_max, waiting_for_joins, manual_scale, ...
    detail: str  # one line for people
    signals: Mapping[str, Any]
    desired: int  # the desired count after this decision
    add: int = 0
    remove: tuple[str, ...] = ()
    manual: bool = False  # a manual change was seen now: the caller records it (History.manual_at)

    def event(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "detail": self.detail, "desired": self.desired,
                "add": self.add, "remove": list(self.remove), "signals": dict(self.signals)}


def track_idle(previous: Mapping[str, float], instances: Sequence[InstanceView], now: float) -> dict[str, float]:
    """Since when each ready agent runs no task; one task (or not knowing) starts its clock anew."""
    return {i.id: previous.get(i.id, now) for i in instances if i.ready and not i.removing and i.tasks == 0}


def hold_after_manual(policy: AutoscalingSettings) -> int:
    return max(policy.cooldown_out, policy.cooldown_in)


def decide(policy: AutoscalingSettings, samples: Sequence[Sample], group: GroupView, history: History,
           now: float) -> Decision:
    smoothed = smooth(samples, now, policy.window)
    signals: dict[str, Any] = {"desired": group.desired, "ready": group.ready, "joining": group.joining,
                               "band": [policy.scale_in_below, policy.scale_out_above]}
    if smoothed is not None:
        signals.update(smoothed.values())

    def none(reason: str, detail: str, *, manual: bool = False) -> Decision:
        return Decision("none", reason, detail, signals, group.desired, manual=manual)

    if not policy.enabled:
        return none("disabled", "autoscaling.enabled is false")
    ours = {history.last_set, None if history.last_set is None else history.last_set + len(history.pending)}
    if history.last_set is not None and group.desired not in ours:
        return none("manual_scale", f"desired is {group.desired}, the scaler set {history.last_set}: someone else "
                    f"scaled; holding off for {hold_after_manual(policy)} s", manual=True)
    if history.manual_at is not None and now < history.manual_at + hold_after_manual(policy):
        left = history.manual_at + hold_after_manual(policy) - now
        return none("manual_hold", f"a manual scale was seen; holding off for {left:.0f} s more")
    if smoothed is None:
        return none("no_signal", f"no sample of the Mesos master within the last {policy.window} s")
    if now - min(s.at for s in samples) < policy.window / 2:  # a new leader: half a window before acting
        return none("warming_up", f"{smoothed.samples} sample(s); deciding once half the window is seen")
    low, high = max(policy.min, group.group_min), min(policy.max, group.group_max)
    alluxio_full = (policy.alluxio_above is not None and smoothed.alluxio_use is not None
                    and smoothed.alluxio_use > policy.alluxio_above)
    # Starving counts only where the cluster is not mostly free: with free resources and no offer out, Mesos
    # has offered them and the framework declined or suppressed (it wants nothing, or nothing this size).
    starved = smoothed.starved and smoothed.allocation >= policy.scale_in_below
    out = smoothed.allocation > policy.scale_out_above or starved or alluxio_full
    shrink = smoothed.allocation < policy.scale_in_below and not alluxio_full
    if group.desired < low:  # the policy's min (or the group's) is never crossed, whatever the load
        return Decision("out", "below_min", f"desired {group.desired} is below min {low}: desired → {low}", signals,
                        low, add=low - group.desired)
    recently_added = history.last_out is not None and now - history.last_out < policy.join_timeout
    if (out or shrink) and group.joining and recently_added:
        return none("waiting_for_joins", f"{group.joining} added agent(s) not ready yet")
    if out:
        return _out(policy, group, history, now, smoothed.allocation, starved, high, signals)
    if shrink:
        return _in(policy, group, history, now, smoothed.allocation, low, signals)
    return none("within_band", f"allocation {smoothed.allocation:.0%} is within "
                f"{policy.scale_in_below:.0%}..{policy.scale_out_above:.0%}")


def _out(policy: AutoscalingSettings, group: GroupView, history: History, now: float, allocation: float,
         starved: bool, high: int, signals: dict[str, Any]) -> Decision:
    why = "a framework waits with nothing allocated and no offer out" if starved else \
        f"allocation {allocation:.0%} is above {policy.scale_out_above:.0%}"
    if group.desired >= high:
        return Decision("none", "at_max", f"{why}, but desired {group.desired} is at max {high}", signals,
                        group.desired)
    if history.last_out is not None and now < history.last_out + policy.cooldown_out:
        left = history.last_out + policy.cooldown_out - now
        return Decision("none", "cooldown_out", f"{why}; cooldown for {left:.0f} s more", signals, group.desired)
    needed = math.ceil(max(group.ready, 1) * allocation / policy.setpoint - 1e-9)
    step = max(needed - group.desired, 1)
    add = min(step, policy.max_step, high - group.desired)
    return Decision("out", "scale_out", f"{why}: desired {group.desired} → {group.desired + add}", signals,
                    group.desired + add, add=add)


def _in(policy: AutoscalingSettings, group: GroupView, history: History, now: float, allocation: float,
        low: int, signals: dict[str, Any]) -> Decision:
    why = f"allocation {allocation:.0%} is below {policy.scale_in_below:.0%}"

    def none(reason: str, detail: str) -> Decision:
        return Decision("none", reason, f"{why}; {detail}", signals, group.desired)

    if group.desired <= low:
        return none("at_min", f"desired {group.desired} is at min {low}")
    changed = max((t for t in (history.last_in, history.last_out) if t is not None), default=None)
    if changed is not None and now < changed + policy.cooldown_in:
        return none("cooldown_in", f"cooldown for {changed + policy.cooldown_in - now:.0f} s more")
    if history.pending:
        return none("waiting_for_removals", f"{len(history.pending)} agent(s) still draining")
    # keep enough agents that the same allocation stays at or below the setpoint after the removal
    keep = max(low, math.ceil(group.ready * allocation / policy.setpoint - 1e-9))
    count = min(group.desired - keep, policy.max_step, group.desired - low)
    if count <= 0:
        return none("within_band", f"removing an agent would push the allocation above {policy.setpoint:.0%}")
    idle = [i for i in group.instances if i.ready and not i.removing and i.tasks == 0
            and now - history.idle_since.get(i.id, now) >= policy.idle_before_removal]
    if not idle:
        return none("no_idle_agents", f"no agent has been idle for {policy.idle_before_removal} s")
    idle.sort(key=lambda i: (i.unpersisted_bytes if i.unpersisted_bytes is not None else i.cache_bytes,
                             history.idle_since.get(i.id, now), i.id))
    victims = tuple(i.id for i in idle[:count])
    return Decision("in", "scale_in", f"{why}: removing {', '.join(victims)} (idle, drained first)", signals,
                    group.desired - len(victims), remove=victims)
