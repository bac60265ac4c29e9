"""``scale N``: set the AS group's desired number of agents, within the cluster file's min and max.

Only the desired count changes (the group's min/max stay as ``up`` created them), and ``up`` never resets
it on an existing group, so a later ``up`` does not undo a ``scale``. An N outside min..max is refused before
any API call.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap_agent import logs
from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ResourceFailed
from provision_min.otc import OtcClient
from provision_min.topology import topology


@dataclass
class ScaleResult:
    group: str
    before: int | None
    after: int
    current: int | None
    minimum: int
    maximum: int


def check_count(config: ClusterConfig, count: int) -> None:
    if not config.agents.min <= count <= config.agents.max:
        raise InputError(
            f"scale {count}: outside agents.min..agents.max ({config.agents.min}..{config.agents.max}) of "
            f"{config.path}; change them there (and in the group) to go beyond"
        )


def run_scale(config: ClusterConfig, client: OtcClient, count: int) -> ScaleResult:
    check_count(config, count)
    topo = topology(config)
    answer = client.get("as", "/scaling_group", {"scaling_group_name": topo.as_group_name})
    groups = [g for g in (answer or {}).get("scaling_groups") or []
              if isinstance(g, dict) and g.get("scaling_group_name") == topo.as_group_name]
    if not groups:
        raise ResourceFailed(f"AS group {topo.as_group_name} does not exist: run up first")
    if len(groups) > 1:
        raise ResourceFailed(f"{len(groups)} AS groups named {topo.as_group_name} exist: remove the extra ones first")
    group = groups[0]
    low, high = group.get("min_instance_number"), group.get("max_instance_number")
    if isinstance(low, int) and isinstance(high, int) and not low <= count <= high:
        raise InputError(f"scale {count}: outside the AS group's own min..max ({low}..{high})")
    client.put("as", f"/scaling_group/{group['scaling_group_id']}", {"desire_instance_number": count})
    before = group.get("desire_instance_number")
    logs.get("provision-min").info("as_group_scaled", group=topo.as_group_name, before=before, after=count)
    return ScaleResult(
        group=topo.as_group_name,
        before=before if isinstance(before, int) else None,
        after=count,
        current=group.get("current_instance_number") if isinstance(group.get("current_instance_number"), int) else None,
        minimum=low if isinstance(low, int) else config.agents.min,
        maximum=high if isinstance(high, int) else config.agents.max,
    )
