"""The flavors of the cluster file, checked against the cloud before anything is created (``plan`` with
credentials).

A flavor name with a typo, or one the availability zone does not offer, is only refused by the ECS creation
job, after the VPC, subnet and security group exist. And a RAM disk that does not fit the agent flavor's
memory is only refused by the agent on the node, after the AS group has booted it. Both are known before:
the ECS API lists the zone's flavors with their memory (``GET /v1/{project_id}/cloudservers/flavors?
availability_zone=...``: ``flavors[].name``, ``ram`` in MB), and the agent's own fit check
(``bootstrap_agent.plan.memory``) runs here with the flavor's RAM as the node's memory.
"""

from __future__ import annotations

from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.plan.memory import agent_memory
from bootstrap_agent.schema import validate
from bootstrap_agent.sizes import MiB, format_size
from provision_min.config import ClusterConfig
from provision_min.errors import InputError
from provision_min.otc import OtcClient
from provision_min.userdata import PLACEHOLDER_SECRET


def check_flavors(config: ClusterConfig, client: OtcClient) -> None:
    """``InputError`` naming the cluster file and the field when a flavor does not exist in the zone or the
    agents' RAM disks do not fit the agent flavor's memory."""
    try:
        _check(config, client)
    except InputError as exc:
        raise InputError(f"{config.path}: {exc}") from None


def _check(config: ClusterConfig, client: OtcClient) -> None:
    zone = config.availability_zone
    listed = client.get("ecs", "/cloudservers/flavors", params={"availability_zone": zone})
    flavors = {str(f.get("name")): f for f in _flavor_list(listed)}
    for key, name in (("master_flavor", config.master_flavor), ("agent_flavor", config.agent_flavor)):
        if name not in flavors:
            similar = sorted(n for n in flavors if n.split(".")[0] == name.split(".")[0])[:6]
            hint = f" (of that type: {', '.join(similar)})" if similar else ""
            raise InputError(f"{key}: flavor {name!r} is not offered in {zone}{hint}")
    agent = flavors[config.agent_flavor]
    check_agent_fits(config, _ram_bytes(agent, "agent_flavor"), _vcpus(agent))


def check_agent_fits(config: ClusterConfig, memory: int, cpus: int) -> None:
    """The agent's own check that its RAM disks leave Mesos tasks enough memory, on a node of ``memory`` bytes."""
    settings = validate(config.user_data("agent", PLACEHOLDER_SECRET))
    facts = Facts(ip=config.master_ips[0], hostname="agent", cpus=cpus, memory=memory, instance_uuid="plan")
    try:
        agent_memory(settings, facts)
    except InvalidInput as exc:
        field = "agent_flavor" if exc.path.startswith("facts") else exc.path  # too small for any agent at all
        raise InputError(
            f"{field}: {exc.message} (agent_flavor {config.agent_flavor}: {format_size(memory)} of memory)"
        ) from None


def _flavor_list(listed: Any) -> list[dict[str, Any]]:
    flavors = listed.get("flavors") if isinstance(listed, dict) else None
    if not isinstance(flavors, list):
        raise InputError("agent_flavor: the flavor list of the ECS API has no 'flavors'")
    return [f for f in flavors if isinstance(f, dict)]


def _ram_bytes(flavor: dict[str, Any], key: str) -> int:
    ram = flavor.get("ram")
    if type(ram) is not int or ram <= 0:
        raise InputError(f"{key}: the ECS API gives flavor {flavor.get('name')!r} no memory size ('ram')")
    return ram * MiB


def _vcpus(flavor: dict[str, Any]) -> int:
    text = str(flavor.get("vcpus", "1"))  # a string in the documented payload
    return int(text) if text.isdigit() and int(text) > 0 else 1
