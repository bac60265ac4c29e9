"""``plan --cloud local``: what ``up`` would do to the cluster on this machine, changing nothing.

The local cloud has no API calls to list, but ``up`` on a changed cluster file replaces nodes, and a user wants
to see that first, as on OTC: the agents that would be replaced (with the new AS configuration's changes and the
batches, least loaded first, from the local AS service and the members in ZooKeeper) and the masters, one at a
time, in the order ``up`` takes them (``provision_min.rollout``, the same plan as on OTC). What would be started
(a cluster that does not run, a missing master, agents below the group's size) comes first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent.autoscaling import AutoScalingError
from provision_min.config import ClusterConfig
from provision_min.errors import ProvisionError
from provision_min.local import as_host
from provision_min.local.layout import CloudState
from provision_min.local.master_rollout import plan_local_masters
from provision_min.local.rollout import plan_local_agents, wanted_agents
from provision_min.local.scale_members import local_members
from provision_min.rollout import AgentRollout, Rollout, configuration_spec


@dataclass
class LocalPlan:
    cluster: str
    running: bool
    start: list[str] = field(default_factory=list)  # what up would start
    # what up would replace, in order, and what differs but would not be (``Rollout.lines``: "NOT replaced")
    replace: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # those "NOT replaced" reasons alone (``Rollout.blocked``)
    replacing: bool = False  # up would replace something (``not Rollout.empty``)

    @property
    def changes(self) -> bool:
        return bool(self.start) or self.replacing

    def lines(self) -> list[str]:
        out = [f"cluster {self.cluster} (local): " + ("runs" if self.running else "does not run")]
        out += [f"  start: {line}" for line in self.start]
        out += [f"  {line}" for line in self.replace]
        if not self.changes and not self.blocked:
            out.append("  nothing to change: up would start and replace nothing")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "cloud": "local", "running": self.running, "start": self.start,
                "replace": self.replace, "blocked": self.blocked, "changes": self.changes}


def plan(config: ClusterConfig, state: CloudState | None) -> LocalPlan:
    """What up would start and replace; reads the AS service and ZooKeeper of a running cluster."""
    if state is None:
        return LocalPlan(config.cluster, False, [
            f"the cluster's network, metadata service and AS service, {config.masters} master(s) and the AS group "
            f"{as_host.group_name(config.cluster)} with {config.agents.desired} agent(s)"])
    result = LocalPlan(config.cluster, True)
    missing = [i for i in range(1, config.masters + 1) if not any(n.index == i for n in state.masters())]
    if missing:
        result.start.append(f"{len(missing)} missing master(s): " + ", ".join(f"{config.cluster}-master-{i}"
                                                                             for i in missing))
    agents, names = _agents(config, state, result)
    rollout = Rollout(agents, plan_local_masters(config, state))
    result.replace, result.blocked, result.replacing = rollout.lines(names), rollout.blocked(), not rollout.empty
    return result


def _agents(config: ClusterConfig, state: CloudState, result: LocalPlan) -> tuple[AgentRollout | None,
                                                                                   dict[str, str]]:
    """The agents' part, read from the local AS service and ZooKeeper; ``result.start`` gets a missing group or
    the agents it would start."""
    asc = as_host.client(state)
    try:
        group = asc.find_group(as_host.group_name(config.cluster))
        if group is None:
            result.start.append(f"the AS group {as_host.group_name(config.cluster)} with {config.agents.desired} "
                                "agent(s)")
            return None, {}
        have = configuration_spec(asc.configuration(group.configuration_id))
        instances = asc.instances(group.id)
    except (AutoScalingError, OSError) as exc:
        raise ProvisionError(f"plan: the local AS service of cluster {config.cluster} does not answer ({exc}): "
                             "up starts it again") from None
    if len(instances) < group.desired:
        result.start.append(f"{group.desired - len(instances)} agent(s), up to the group's {group.desired}")
    names = {i.id: i.name for i in instances}
    with local_members(state, role=None) as members:
        return plan_local_agents(config, have, wanted_agents(config, state), group.configuration_id, group,
                                 instances, members), names
