"""``up``'s steps for the agents' AS side (``plan.plan_up`` calls ``autoscaling_steps``): the AS configuration
every agent is made from, the group, its lifecycle hook's place in the order and the group's resume, and on a
changed cluster file the new configuration the group switches to. Pure, as ``plan.py``: steps, no I/O.
"""

from __future__ import annotations

from typing import Any

from provision_min.config import ClusterConfig
from provision_min.discover import Observed
from provision_min.errors import ResourceFailed
from provision_min.plan import Call, Ref, Step, UserData, at
from provision_min.rollout import changes
from provision_min.topology import Topology


def configuration_body(config: ClusterConfig, topo: Topology, name: str, document: dict[str, Any]) -> dict[str, Any]:
    """An AS configuration's body: what every agent is made from."""
    return {
        "scaling_configuration_name": name,
        "instance_config": {
            "flavorRef": config.agent_flavor,
            "imageRef": config.image_id,
            "disk": [{"size": config.root_volume_gb, "volume_type": config.volume_type, "disk_type": "SYS"}],
            "key_name": config.key_name,
            "user_data": UserData("agent", document),
            "metadata": config.server_metadata,
            "security_groups": [{"id": Ref(f"sg:{topo.agent_group.name}")}],
        },
    }


def autoscaling_steps(config: ClusterConfig, topo: Topology, seen: Observed, document: dict[str, Any],
                      steps: list[Step], hook: list[Step]) -> None:
    """The AS configuration, the group, its lifecycle hook (``hook``: before the group is enabled, so no
    instance ever leaves without it) and the group's resume; on a changed cluster file a new configuration
    the group switches to (``_new_configuration_steps``)."""
    if seen.as_config is None:
        steps.append(Call(
            "as_configuration_created", f"AS configuration {topo.as_config_name}", "POST", "as",
            ("/scaling_configuration",), body=configuration_body(config, topo, topo.as_config_name, document),
            produces=(("as_config", at("scaling_configuration_id")),),
        ))
    elif seen.as_group is not None:
        steps.extend(_new_configuration_steps(config, topo, seen, document))
    resume = Call(
        "as_group_enabled", f"AS group {topo.as_group_name}", "POST", "as",
        ("/scaling_group/", Ref("as_group"), "/action"), body={"action": "resume"},
        wait="group_inservice", wait_ref="as_group", only_if=("as_group_status", "PAUSED"),
    )
    group = seen.as_group
    if group is None:
        steps.append(Call(
            "as_group_created", f"AS group {topo.as_group_name}", "POST", "as", ("/scaling_group",),
            body={
                "scaling_group_name": topo.as_group_name,
                "scaling_configuration_id": Ref("as_config"),
                "desire_instance_number": config.agents.desired,
                "min_instance_number": config.agents.min,
                "max_instance_number": config.agents.max,
                "cool_down_time": 300,
                "available_zones": [config.availability_zone],
                "networks": [{"id": Ref("subnet")}],
                "security_groups": [{"id": Ref(f"sg:{topo.agent_group.name}")}],
                "vpc_id": Ref("vpc"),
                "health_periodic_audit_method": "NOVA_AUDIT",
                "health_periodic_audit_time": 5,
                "instance_terminate_policy": "OLD_CONFIG_OLD_INSTANCE",
                "delete_publicip": True,
            },
            produces=(("as_group", at("scaling_group_id")),), wait="group_settled", wait_ref="as_group",
        ))
        steps.extend(hook)
        steps.append(resume)
        return
    status = group.get("scaling_group_status")
    if status not in ("ERROR", "DELETING"):
        steps.extend(hook)
    if status == "PAUSED":
        steps.append(resume)
    elif status == "ERROR":
        raise ResourceFailed(f"AS group {topo.as_group_name} is in ERROR: check it in the console, or run down and up")
    elif status == "DELETING":
        raise ResourceFailed(
            f"AS group {topo.as_group_name} is being deleted: wait until it is gone, then run up again"
        )


def _new_configuration_steps(config: ClusterConfig, topo: Topology, seen: Observed,
                             document: dict[str, Any]) -> list[Step]:
    """When the group's configuration is not what the cluster file makes: a new one (OTC cannot change one),
    the group switched to it, the old one deleted (its instances are replaced afterwards, ``rollout``); and
    configurations of ours nobody uses any more (an interrupted rollout's) deleted."""
    from provision_min.rollout import configuration_name, configuration_spec, wanted_agent_spec

    assert seen.as_config is not None
    steps: list[Step] = []
    current = seen.as_config
    found = changes(configuration_spec(current), wanted_agent_spec(config, document))
    if found:
        name = configuration_name(config.cluster, document, config.image_id, config.agent_flavor)
        steps.append(Call(
            "as_configuration_created", f"AS configuration {name} ({'; '.join(found)})", "POST", "as",
            ("/scaling_configuration",), body=configuration_body(config, topo, name, document),
            produces=(("as_config_new", at("scaling_configuration_id")),),
        ))
        steps.append(Call(
            "as_group_switched", f"AS group {topo.as_group_name} to configuration {name}", "PUT", "as",
            ("/scaling_group/", Ref("as_group")), body={"scaling_configuration_id": Ref("as_config_new")},
        ))
    # the old one stays while instances made from it run (the rollout reads what they were made from, and deletes
    # it when they are gone); one nobody uses any more (an interrupted rollout's) goes now
    in_use = {i.get("scaling_configuration_id") for i in seen.instances}
    unused = [c for c in seen.as_configs if c is not current and c.get("scaling_configuration_id") not in in_use]
    for old in unused:
        steps.append(Call(
            "as_configuration_deleted", f"AS configuration {old.get('scaling_configuration_name')} (no longer used)",
            "DELETE", "as", ("/scaling_configuration/", str(old.get("scaling_configuration_id"))),
        ))
    return steps
