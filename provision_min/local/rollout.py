"""``up`` on a changed cluster file, on the local cloud: the agents' part of ``provision_min.rollout``.

The local AS service holds the agents' configuration as OTC does (``instance_config`` with the base64 user-data
and the image): when what the cluster file makes differs, ``up`` creates a new configuration, switches the
group to it and replaces the agents a batch at a time through their drain, exactly as on OTC
(``rollout_run.roll_agents`` on the same AS client). The masters follow, one at a time
(``master_rollout``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import TextIO

from bootstrap_agent.autoscaling import AutoScaling, AutoScalingError, Group, Instance
from provision_min.config import ClusterConfig
from provision_min.errors import ProvisionError
from provision_min.local.layout import CloudState
from provision_min.local.metadata_host import user_data
from provision_min.local.scale_members import local_members
from provision_min.rollout import AgentRollout, Spec, candidate, changes, configuration_spec, plan_agents
from provision_min.rollout_run import roll_agents
from provision_min.scale import Members
from provision_min.wait import Poller


def wanted_agents(config: ClusterConfig, state: CloudState) -> Spec:
    """What the cluster file makes of the agents: the image, the flavor and the user-data."""
    return Spec(state.image, config.agent_flavor, user_data(config, state, "agent"))


def plan_local_agents(config: ClusterConfig, have: Spec, want: Spec, current: str, group: Group,
                      instances: Sequence[Instance], members: Members) -> AgentRollout:
    """The agents to replace (least loaded first, by their members' load) and how many at a time."""
    agents = [m for m in members() if m.get("role") == "agent"] if instances else []
    by_uuid = {str(m.get("uuid")): m for m in agents}
    raw = [{"instance_id": i.id, "instance_name": i.name, "life_cycle_state": i.state,
            "scaling_configuration_id": i.configuration_id, "create_time": i.created} for i in instances]
    return plan_agents(have, want, current, [candidate(r, by_uuid.get(r["instance_id"])) for r in raw],
                       group.desired, config.agents.min, config.agents.max)


def roll_local_agents(config: ClusterConfig, state: CloudState, asc: AutoScaling, out: TextIO,
                      poller: Poller | None = None) -> int:
    """Switch the group to a configuration made from the cluster file when it differs, then replace every agent
    made from an older one; how many were replaced."""
    name = f"{config.cluster}-agents"
    try:
        group = asc.find_group(name)
        if group is None:
            return 0
        want = wanted_agents(config, state)
        document = want.document or {}
        have = configuration_spec(asc.configuration(group.configuration_id))
        found = changes(have, want)
        current = group.configuration_id
        if found:
            encoded = json.dumps(document, sort_keys=True).encode()
            cid = asc.create_configuration(f"{name}-{hashlib.sha256(encoded + state.image.encode()).hexdigest()[:8]}", {
                "flavorRef": config.agent_flavor, "imageRef": state.image, "key_name": config.key_name,
                "user_data": base64.b64encode(encoded).decode(), "metadata": {},
                "disk": [{"size": 40, "volume_type": "SSD", "disk_type": "SYS"}]})
            asc.update_group(group.id, scaling_configuration_id=cid)
            print(f"agents: new AS configuration ({'; '.join(found)}); the group uses it from now on", file=out)
            current = cid
        instances = asc.instances(group.id)
    except AutoScalingError as exc:
        raise ProvisionError(f"the local AS service: {exc}") from None
    with local_members(state, role=None) as members:
        plan = plan_local_agents(config, have, want, current, group, instances, members)
        if plan.blocked:
            print(f"provision-min: warning: agents not replaced: {plan.blocked}", file=out)
            return 0
        if not plan.replace:
            return 0
        try:
            return roll_agents(config, asc, plan, members, poller or Poller(interval=1.0, max_interval=3.0), out)
        except AutoScalingError as exc:
            raise ProvisionError(f"the local AS service: {exc}") from None
