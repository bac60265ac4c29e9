"""``scale N``: the agents' count, within the cluster file's min and max.

Raising it sets the AS group's desired count (the group launches the rest). Lowering it never lets the group
pick: the provisioner chooses the victims itself, least loaded first (``victims``: fewest running tasks, then
least unpersisted cache, from each agent's member ``load``), and removes exactly those instances (the group's
instance ``REMOVE`` action with ``instance_delete``). Each then waits in ``REMOVING_WAIT`` on the group's
``INSTANCE_TERMINATING`` hook while its node drains and calls back ``CONTINUE`` itself; ``scale`` waits (with
progress and a bound: the hook's timeout plus a margin) until every victim is gone and says how each left:
``clean drain``, ``grace expired`` (the node's drain ran out of time and it left anyway) or ``hook timeout``
(the node never called back: dead or stuck; the group went on by itself).

A group without the hook is refused before anything is removed: its instances would be deleted undrained.
An N outside min..max is refused before any API call. Both clouds run this module through the same AS client
(OTC: a token; the local cloud's AS service: the operator's AK/SK); only how members are read differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from bootstrap_agent import logs
from bootstrap_agent.autoscaling import AutoScaling, AutoScalingError, Group, Hook, Instance
from provision_min.config import HOOK_TIMEOUT as DEFAULT_HOOK_TIMEOUT
from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ProvisionError, ResourceFailed
from provision_min.lifecycle import hook_name
from provision_min.local.progress import Progress as ProgressView
from provision_min.local.progress import Row
from provision_min.victims import LEAVING, Victim, candidates, choose
from provision_min.wait import Poller, Progress

WAIT_MARGIN = 600.0  # beyond the hook's timeout: the group's own deletion of the instance after the callback
#: How each victim left: the last drain its member reported (``outcome``), or whether the hook ran out.
CLEAN, GRACE_EXPIRED, TIMED_OUT = "clean drain", "grace expired", "hook timeout"
UNDRAINED = "let go undrained (made before the lifecycle hook)"

Members = Callable[[], Sequence[Mapping[str, Any]]]  # the agents' members now; raises ProvisionError when unread


@dataclass
class Departure:
    """One victim: why it was chosen, what its drain last said, and how it left."""

    victim: Victim
    outcome: str = ""
    seconds: float = 0.0
    drain: dict[str, Any] = field(default_factory=dict)  # the last ``drain`` its member reported
    state: str = "REMOVING_WAIT"

    def as_json(self) -> dict[str, Any]:
        return {"instance_id": self.victim.instance_id, "name": self.victim.name, "ip": self.victim.ip,
                "chosen_because": self.victim.describe(), "outcome": self.outcome or None,
                "seconds": round(self.seconds, 1)}


@dataclass
class ScaleResult:
    group: str
    before: int | None
    after: int
    current: int | None
    minimum: int
    maximum: int
    departures: list[Departure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waited: bool = False


def check_count(config: ClusterConfig, count: int) -> None:
    if not config.agents.min <= count <= config.agents.max:
        raise InputError(
            f"scale {count}: outside agents.min..agents.max ({config.agents.min}..{config.agents.max}) of "
            f"{config.path}; change them there (and in the group) to go beyond"
        )


def _group(asc: AutoScaling, name: str) -> Group:
    try:
        group = asc.find_group(name)
    except AutoScalingError as exc:
        raise ProvisionError(f"cannot read AS group {name}: {exc}") from None
    if group is None:
        raise ResourceFailed(f"AS group {name} does not exist: run up first")
    return group


def _instances(asc: AutoScaling, group: Group) -> list[Instance]:
    try:
        return asc.instances(group.id)
    except AutoScalingError as exc:
        raise ProvisionError(f"the instance list of AS group {group.name} is unreadable: {exc}") from None


def run_scale(config: ClusterConfig, asc: AutoScaling, count: int, members: Members | None, poller: Poller,
              out: TextIO, *, wait: bool = True) -> ScaleResult:
    """Raise the desired count, or remove the least loaded agents and (``wait``) until they are gone."""
    check_count(config, count)
    log = logs.get("provision-min")
    name = f"{config.cluster}-agents"
    group = _group(asc, name)
    if not group.min <= count <= group.max:
        raise InputError(f"scale {count}: outside the AS group's own min..max ({group.min}..{group.max})")
    instances = _instances(asc, group)
    staying = [i for i in instances if i.state not in LEAVING]
    result = ScaleResult(name, group.desired, count, group.current, group.min, group.max)
    if count >= len(staying):
        if count != group.desired:
            try:
                asc.set_desired(group.id, count)
            except AutoScalingError as exc:
                raise ProvisionError(f"AS group {name} refused the desired count {count}: {exc}") from None
        log.info("as_group_scaled", group=name, before=group.desired, after=count)
        return result
    hook = _require_hook(asc, group, hook_name(config.cluster))
    seen_members = _read_members(members, result.warnings)
    raw = [{"instance_id": i.id, "instance_name": i.name, "life_cycle_state": i.state, "create_time": i.created}
           for i in instances]
    victims = choose(candidates(raw, seen_members or []), count)
    if len(staying) - len(victims) > count:
        starting = ", ".join(i.name for i in staying if i.state != "INSERVICE")
        raise ResourceFailed(f"scale {count}: instance(s) {starting} are still starting and cannot be removed yet; "
                             "try again when they are in service")
    for victim in victims:
        print(f"removing {victim.name} ({victim.ip or 'no member'}): {victim.describe()}", file=out)
    try:
        asc.remove(group.id, [v.instance_id for v in victims])
    except AutoScalingError as exc:
        raise ProvisionError(f"AS group {name} refused to remove {', '.join(v.name for v in victims)}: {exc}") from None
    log.info("as_instances_removed", group=name, instances=[v.instance_id for v in victims], count=count)
    result.departures = [Departure(v) for v in victims]
    if wait:
        wait_gone(asc, group, result.departures, members, poller, out, hook.default_timeout or DEFAULT_HOOK_TIMEOUT)
        result.waited = True
    return result


def _require_hook(asc: AutoScaling, group: Group, name: str) -> Hook:
    """The group's INSTANCE_TERMINATING hook (its timeout bounds the wait); without one a removed instance
    would be deleted undrained: refused."""
    try:
        hooks = asc.hooks(group.id)
    except AutoScalingError as exc:
        raise ProvisionError(f"cannot read the lifecycle hooks of AS group {group.name}: {exc}") from None
    terminating = [h for h in hooks if h.type == "INSTANCE_TERMINATING"]
    if terminating:
        return next((h for h in terminating if h.name == name), terminating[0])
    raise ResourceFailed(f"AS group {group.name} has no INSTANCE_TERMINATING lifecycle hook ({name}): run up "
                         "first, so that removed agents drain before they go")


def _read_members(members: Members | None, warnings: list[str]) -> list[Mapping[str, Any]] | None:
    """The agents' members; unreadable: a warning (the victims are then chosen without their load)."""
    if members is None:
        return None
    try:
        return list(members())
    except ProvisionError as exc:
        warnings.append(f"the agents' load is unknown ({exc}); choosing the newest instances")
        return None


def wait_gone(asc: AutoScaling, group: Group, departures: list[Departure], members: Members | None,
              poller: Poller, out: TextIO, hook_timeout: int, undrained: bool = False) -> None:
    """Until every victim has left the group; each poll shows where its drain is. ``undrained``: they were let
    go without a drain (agents made before the hook), and are reported so."""
    view = ProgressView(out, title=f"AS group {group.name}: {len(departures)} agent(s) leaving")
    pending = {d.victim.instance_id: d for d in departures}
    started = poller.clock()

    def probe() -> Progress[None]:
        listed = {i.id: i for i in _instances(asc, group)}
        drains = _drains(members)
        now = poller.clock() - started
        for iid, departure in list(pending.items()):
            member = drains.get(iid)
            if member is not None:
                departure.drain = dict(member.get("drain") or departure.drain)
            instance = listed.get(iid)
            if instance is None:
                departure.seconds = now
                departure.outcome = UNDRAINED if undrained else outcome(departure.drain, now, hook_timeout)
                logs.get("provision-min").info("agent_left", instance=iid, name=departure.victim.name,
                                               outcome=departure.outcome, seconds=round(now, 1))
                del pending[iid]
            else:
                departure.state = instance.state
        view.update([_row(d) for d in departures])
        return Progress(not pending, ", ".join(f"{d.victim.name} {d.state}" for d in pending.values()))

    poller.until(f"{len(departures)} agent(s) to drain and leave AS group {group.name}", probe,
                 hook_timeout + WAIT_MARGIN)


def _drains(members: Members | None) -> dict[str, Mapping[str, Any]]:
    """The members by uuid (= instance id); nothing when they cannot be read right now (the wait goes on)."""
    if members is None:
        return {}
    try:
        return {str(m.get("uuid")): m for m in members()}
    except ProvisionError:
        return {}


def outcome(drain: Mapping[str, Any], seconds: float, hook_timeout: int, now: float | None = None) -> str:
    """How an instance left: its drain's own outcome when it was seen; else the hook's timeout if that passed;
    else the node called back itself (nothing else lets a waiting instance go before the timeout), between two
    polls: past the deadline its drain last reported, the grace expired, otherwise it drained cleanly."""
    reported = drain.get("outcome")
    if reported == "clean":
        return CLEAN
    if reported == "grace_expired":
        return GRACE_EXPIRED
    if seconds >= hook_timeout:
        return TIMED_OUT
    deadline = drain.get("deadline")
    if isinstance(deadline, int | float) and not isinstance(deadline, bool):
        return GRACE_EXPIRED if (time.time() if now is None else now) > deadline else CLEAN
    return CLEAN


def _row(departure: Departure) -> Row:
    drain = departure.drain
    if departure.outcome:
        state, detail = "gone", f"{departure.outcome} after {departure.seconds:.0f} s"
    else:
        state = departure.state
        detail = " ".join(str(x) for x in (drain.get("phase"), drain.get("waiting_for")) if x)
    return Row(departure.victim.name, "agent", departure.victim.ip, state, detail)


def render(result: ScaleResult) -> list[str]:
    """The lines for a person after ``scale``."""
    lines = [f"AS group {result.group}: desired {result.before} -> {result.after} (min {result.minimum}, "
             f"max {result.maximum})"]
    for departure in result.departures:
        v = departure.victim
        if departure.outcome:
            lines.append(f"  {v.name} ({v.ip or v.instance_id}): {departure.outcome} after {departure.seconds:.0f} s")
        else:
            lines.append(f"  {v.name} ({v.ip or v.instance_id}): removal requested ({v.describe()}); not awaited")
    return lines
