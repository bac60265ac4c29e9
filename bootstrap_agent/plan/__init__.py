"""``plan()``: settings + facts + peers → the files and services a node should have. Pure.

Everything the configuration logic needs arrives as values, and the result is a value: no network, no
filesystem, no clock. That keeps the whole of "what should this node look like" testable in microseconds and
makes ``render`` and ``once`` agree by construction (both call this function).

Each builder returns the ``Part`` it builds (``master``, ``agent``, and the pieces they compose: ``alluxio``,
``dashboard``, ``tools``, ``mounts``, ``common``); ``memory`` sizes an agent's RAM disks. What a plan is made of
lives in ``bootstrap_agent.desired``, where files go in ``bootstrap_agent.node_paths``.
"""

from __future__ import annotations

from bootstrap_agent.desired import Peers, Plan
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.plan.agent import agent
from bootstrap_agent.plan.common import hosts
from bootstrap_agent.plan.master import master
from bootstrap_agent.plan.part import Part
from bootstrap_agent.schema import Settings

__all__ = ["plan"]


def plan(settings: Settings, facts: Facts, peers: Peers | None = None, layout: Layout | None = None) -> Plan:
    """The complete desired state of this node; raises ``InvalidInput`` when it cannot work here."""
    layout = layout or Layout()
    peers = peers or Peers()
    if settings.role == "master" and facts.ip not in settings.masters:
        raise InvalidInput(
            "masters", f"this node is a master but its address {facts.ip} is not in masters {list(settings.masters)}"
        )
    part = Part(files=(hosts(facts),))
    part += master(settings, facts, peers, layout) if settings.role == "master" else agent(settings, facts, layout)
    return Plan(part.files, part.services)
