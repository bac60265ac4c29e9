"""The autoscaling group as the scaler needs it: the AS client's calls it uses, and their answers joined with
the agents' member znodes into a ``GroupView`` (pure).

``GroupApi`` is the part of ``bootstrap_agent.autoscaling.AutoScaling`` the scaler calls (a Protocol, so a test
or another cloud may stand in); the answers are that client's ``Group`` (``desired``, ``min``, ``max``) and
``Instance`` (``id``, ``state`` = OTC's ``life_cycle_state``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from bootstrap_agent.autoscaling import Group, Instance
from bootstrap_agent.scaler.decide import GroupView, InstanceView

IN_SERVICE = "INSERVICE"
LEAVING = frozenset({"REMOVING_WAIT", "REMOVING", "REMOVING_PENDING", "DELETING"})


class GroupApi(Protocol):
    def group(self, gid: str) -> Group: ...
    def set_desired(self, gid: str, count: int) -> None: ...
    def instances(self, gid: str) -> list[Instance]: ...
    def remove(self, gid: str, instance_ids: Iterable[str], delete: bool = True) -> None: ...


def group_view(group: Group, instances: Sequence[Instance], agents: Mapping[str, InstanceView]) -> GroupView:
    """The group's instances with what their member znodes say (ready, tasks, cache); an instance without a
    member znode is joining (or leaving, by its ``life_cycle_state``)."""
    views = []
    for item in instances:
        if not item.id:
            continue
        member = agents.get(item.id, InstanceView(item.id, ready=False))
        leaving = item.state in LEAVING or member.removing
        views.append(replace(member, id=item.id, ready=member.ready and item.state == IN_SERVICE, removing=leaving))
    return GroupView(desired=group.desired, instances=tuple(sorted(views, key=lambda v: v.id)),
                     group_min=group.min, group_max=group.max)
