"""Find what already exists, by name: the read-only first half of ``up``, ``plan``, ``status`` and ``down``.

Names, not remembered ids, identify the cluster's resources: a run that died half-way left no record, yet
the next ``up`` must find what it made and ``down`` must remove it. Two resources with one of our names are
an error (which one would we use?), reported with both ids.

The list calls are not in the API reference's table; they follow the services' documented list APIs:
``GET /vpcs``, ``GET /subnets?vpc_id=``, ``GET /security-groups?vpc_id=`` (each group with its
``security_group_rules``), ``GET /cloudservers/detail?name=`` (a fuzzy match, so names are compared exactly
here), ``GET /publicips`` (an EIP is found by the name of its bandwidth), ``GET AS/scaling_configuration?
scaling_configuration_name=``, ``GET AS/scaling_group?scaling_group_name=`` and the group's instance list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ResourceFailed
from provision_min.otc import OtcClient
from provision_min.topology import Topology

PAGE = 100


@dataclass
class Observed:
    """What exists now; None / empty for what does not."""

    vpc: dict[str, Any] | None = None
    subnet: dict[str, Any] | None = None
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    eip: dict[str, Any] | None = None
    as_config: dict[str, Any] | None = None
    as_group: dict[str, Any] | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)
    smn_topic: dict[str, Any] | None = None  # the lifecycle hook's SMN topic (``provision_min.lifecycle``)
    hook: dict[str, Any] | None = None  # the group's INSTANCE_TERMINATING hook
    as_configs: list[dict[str, Any]] = field(default_factory=list)  # every one of ours (a rollout leaves old ones)

    def ids(self) -> dict[str, Any]:
        """Refs for the ids that exist (the runner adds the ones it creates)."""
        ids: dict[str, Any] = {}
        if self.vpc:
            ids["vpc"] = self.vpc.get("id")
        if self.subnet:
            ids["subnet"] = self.subnet.get("id")
        for name, group in self.groups.items():
            ids[f"sg:{name}"] = group.get("id")
        for name, server in self.servers.items():
            ids[f"server:{name}"] = server.get("id")
        if self.eip:
            ids["eip"] = self.eip.get("id")
            ids["eip_address"] = self.eip.get("public_ip_address")
        if self.as_config:
            ids["as_config"] = self.as_config.get("scaling_configuration_id")
        if self.as_group:
            ids["as_group"] = self.as_group.get("scaling_group_id")
            ids["as_group_status"] = self.as_group.get("scaling_group_status")
        ids["instances"] = [i.get("instance_id") for i in self.instances if i.get("instance_id")]
        if self.smn_topic:
            ids["smn_topic"] = self.smn_topic.get("topic_urn")
        return ids

    def holds_user_data(self) -> bool:
        """True when nodes were already given user-data (and so the cluster secret)."""
        return bool(self.servers) or self.as_config is not None

    def count(self) -> int:
        """How many of the cluster's resources exist (``plan``'s summary: N existing)."""
        return (sum(1 for one in (self.vpc, self.subnet, self.eip, self.as_config, self.as_group, self.smn_topic,
                                  self.hook) if one)
                + len(self.groups) + len(self.servers))

    def empty(self) -> bool:
        return not (self.vpc or self.subnet or self.groups or self.servers or self.eip or self.as_config
                    or self.as_group or self.smn_topic)


def _one(items: list[dict[str, Any]], what: str, name: str, id_key: str = "id") -> dict[str, Any] | None:
    if len(items) > 1:
        ids = ", ".join(str(item.get(id_key)) for item in items)
        raise ResourceFailed(f"{len(items)} {what}s named {name} exist ({ids}): remove the extra ones first")
    return items[0] if items else None


def _list(answer: Any, key: str) -> list[dict[str, Any]]:
    items = answer.get(key) if isinstance(answer, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def discover(client: OtcClient, topo: Topology, *, with_instances: bool = False) -> Observed:
    """Look everything up (GET calls only)."""
    seen = Observed()
    vpcs = [v for v in _list(client.get("vpc", "/vpcs"), "vpcs") if v.get("name") == topo.vpc_name]
    seen.vpc = _one(vpcs, "VPC", topo.vpc_name)
    if seen.vpc is not None:
        vpc_id = str(seen.vpc["id"])
        subnets = _list(client.get("vpc", "/subnets", {"vpc_id": vpc_id}), "subnets")
        seen.subnet = _one([s for s in subnets if s.get("name") == topo.subnet_name], "subnet", topo.subnet_name)
        groups = _list(client.get("vpc", "/security-groups", {"vpc_id": vpc_id}), "security_groups")
        for spec in topo.groups:
            found = _one([g for g in groups if g.get("name") == spec.name], "security group", spec.name)
            if found is not None:
                seen.groups[spec.name] = found
    seen.servers = _masters(client, topo)
    publicips = _list(client.get("vpc", "/publicips"), "publicips")
    seen.eip = _one([p for p in publicips if p.get("bandwidth_name") == topo.eip_bandwidth_name],
                    "EIP (bandwidth)", topo.eip_bandwidth_name)
    configs = _list(client.get("as", "/scaling_configuration", {"scaling_configuration_name": topo.as_config_name}),
                    "scaling_configurations")
    ours = re.compile(re.escape(topo.as_config_name) + r"(-[0-9a-f]{8})?")  # a rollout's are <name>-<digest8>
    seen.as_configs = [c for c in configs if ours.fullmatch(str(c.get("scaling_configuration_name", "")))]
    groups_as = _list(client.get("as", "/scaling_group", {"scaling_group_name": topo.as_group_name}), "scaling_groups")
    seen.as_group = _one([g for g in groups_as if g.get("scaling_group_name") == topo.as_group_name],
                         "AS group", topo.as_group_name, "scaling_group_id")
    in_use = seen.as_group.get("scaling_configuration_id") if seen.as_group else None
    used = [c for c in seen.as_configs if c.get("scaling_configuration_id") == in_use]
    seen.as_config = used[0] if used else _one(seen.as_configs, "AS configuration", topo.as_config_name,
                                               "scaling_configuration_id")
    if with_instances and seen.as_group is not None:
        seen.instances = group_instances(client, str(seen.as_group["scaling_group_id"]))
    from provision_min.lifecycle import discover_lifecycle

    discover_lifecycle(client, topo, seen)
    return seen


def _masters(client: OtcClient, topo: Topology) -> dict[str, dict[str, Any]]:
    pattern = re.compile(re.escape(topo.master_name_prefix) + r"\d+$")
    answer = client.get("ecs", "/cloudservers/detail", {"name": topo.master_name_prefix})
    found: dict[str, list[dict[str, Any]]] = {}
    for item in _list(answer, "servers"):
        name = str(item.get("name", ""))
        if pattern.match(name) and item.get("status") != "DELETED":
            found.setdefault(name, []).append(item)
    masters: dict[str, dict[str, Any]] = {}
    for name, items in found.items():
        server = _one(items, "server", name)
        if server is not None:
            masters[name] = server
    return masters


def group_instances(client: OtcClient, group_id: str) -> list[dict[str, Any]]:
    """Every instance of the AS group (paged by ``total_number``)."""
    instances: list[dict[str, Any]] = []
    start = 0
    while True:
        answer = client.get("as", f"/scaling_group_instance/{group_id}/list", {"start_number": start, "limit": PAGE})
        page = _list(answer, "scaling_group_instances")
        instances.extend(page)
        total = answer.get("total_number") if isinstance(answer, dict) else None
        start += len(page)
        if not page or not isinstance(total, int) or start >= total:
            return instances


def server_ips(server: dict[str, Any]) -> set[str]:
    addresses = server.get("addresses")
    ips: set[str] = set()
    if isinstance(addresses, dict):
        for entries in addresses.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and entry.get("addr"):
                    ips.add(str(entry["addr"]))
    return ips


def check_conflicts(config: ClusterConfig, topo: Topology, seen: Observed) -> None:
    """Resources found by name that do not match the cluster file: ``up`` refuses rather than guess."""
    problems = []
    if seen.vpc is not None and seen.vpc.get("cidr") not in (None, str(config.vpc_cidr)):
        problems.append(f"vpc {topo.vpc_name} exists with cidr {seen.vpc.get('cidr')}, the cluster file says vpc_cidr "
                        f"{config.vpc_cidr}")
    if seen.subnet is not None and seen.subnet.get("cidr") not in (None, str(config.subnet_cidr)):
        problems.append(f"subnet {topo.subnet_name} exists with cidr {seen.subnet.get('cidr')}, the cluster file says "
                        f"subnet_cidr {config.subnet_cidr}")
    for name, ip in zip(topo.master_names, topo.master_ips, strict=True):
        found = seen.servers.get(name)
        ips = server_ips(found) if found else set()
        if found is not None and ips and ip not in ips:
            problems.append(f"master {name} exists with address {', '.join(sorted(ips))}, expected {ip}")
    extra = sorted(set(seen.servers) - set(topo.master_names))
    if extra:
        problems.append(f"more masters exist than the cluster file's masters={config.masters}: {', '.join(extra)}")
    if problems:
        raise InputError("; ".join(problems))
