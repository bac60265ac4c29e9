"""``ssh``/``logs`` on OTC: the nodes as ``status`` names them (the masters' ECS names, the group's instance
names), their private addresses, and the route through the master that holds the public address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provision_min.config import ClusterConfig
from provision_min.discover import discover, server_ips
from provision_min.errors import InputError
from provision_min.node_access import NodeRef, SshRoute, find_node
from provision_min.otc import OtcClient
from provision_min.topology import topology

RUNNING_INSTANCE = ("INSERVICE", "REMOVING_WAIT", "PENDING_WAIT", "STANDBY", "ENTERING_STANDBY")


def known_hosts_path(state_path: Path) -> Path:
    """The cluster's own known-hosts file beside its state file: instances come and go with new host keys, and
    pinning them in the user's ``~/.ssh/known_hosts`` would mix clusters and outlive them."""
    return state_path.with_name(state_path.name.removesuffix(".state.json") + ".known_hosts")


def locate(config: ClusterConfig, client: OtcClient, wanted: str, state_path: Path, user: str,
           identity: Path | None) -> tuple[NodeRef, SshRoute]:
    """The node named ``wanted`` and how to reach it; a one-line error when it is unknown, off or unreachable."""
    topo = topology(config)
    seen = discover(client, topo, with_instances=True)
    nodes = [NodeRef(name, "master", ip, running=(seen.servers.get(name) or {}).get("status") == "ACTIVE")
             for name, ip in zip(topo.master_names, topo.master_ips, strict=True)]
    instances: dict[str, dict[str, Any]] = {}
    for instance in seen.instances:
        name = str(instance.get("instance_name") or instance.get("instance_id") or "")
        if name:
            instances[name] = instance
            nodes.append(NodeRef(name, "agent", "", running=instance.get("life_cycle_state") in RUNNING_INSTANCE))
    node = find_node(nodes, wanted, config.cluster)
    if node.role == "agent":
        node = NodeRef(node.name, "agent", _instance_ip(client, instances[node.name]), True)
    eip = seen.eip or {}
    public_ip = eip.get("public_ip_address")
    if not public_ip or eip.get("status") != "ACTIVE":
        raise InputError(f"cluster {config.cluster}: the master has no public address yet (run provision-min up)")
    front = str(eip.get("private_ip_address") or topo.master_ips[0])
    return node, SshRoute(str(public_ip), front, user, known_hosts_path(state_path), identity)


def _instance_ip(client: OtcClient, instance: dict[str, Any]) -> str:
    server_id = instance.get("instance_id")
    answer = client.get("ecs", f"/cloudservers/{server_id}") if server_id else None
    server = answer.get("server") if isinstance(answer, dict) else None
    ips = sorted(server_ips(server)) if isinstance(server, dict) else []
    if not ips:
        raise InputError(f"{instance.get('instance_name') or server_id}: has no private address yet")
    return ips[0]
