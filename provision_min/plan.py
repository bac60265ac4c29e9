"""The ordered calls that turn what exists into what should exist (``up``), or into nothing (``down``).

Pure: it takes the cluster file, the topology and what discovery found, and returns steps; no I/O. Ids of
resources that do not exist yet are ``Ref``s, filled in by the runner as the calls answer — and printed as
``{vpc}``, ``{sg:analytics11-master}``... by ``plan``. User-data travels as ``UserData`` so the runner can send
it base64-encoded while ``plan`` prints it as a decoded object with every secret masked.

Every request body follows the minimal bodies of the OTC API reference (``shared/reference/otc-api.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provision_min import userdata
from provision_min.config import ClusterConfig
from provision_min.discover import Observed
from provision_min.errors import ResourceFailed
from provision_min.rollout import DIGEST_KEY, digest
from provision_min.topology import GroupSpec, Rule, Topology


@dataclass(frozen=True)
class Ref:
    """The id of a resource that may not exist yet: ``vpc``, ``subnet``, ``sg:<name>``, ``server:<name>``..."""

    key: str


@dataclass(frozen=True)
class UserData:
    role: str
    document: dict[str, Any] = field(compare=False, repr=False)


Extractor = Callable[[Any], Any]


def at(*path: str | int) -> Extractor:
    """Read ``path`` from a JSON answer (None when any part is missing)."""

    def read(answer: Any) -> Any:
        node = answer
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    return read


@dataclass(frozen=True)
class Call:
    """One API call. ``path`` segments may be ``Ref``s; ``produces`` stores parts of the answer as refs."""

    event: str  # stable log event name, e.g. vpc_created
    resource: str  # for messages: "vpc analytics11-vpc"
    method: str
    service: str  # vpc | ecs | as
    path: tuple[str | Ref, ...]
    body: Any = None
    params: Mapping[str, str] | None = None
    produces: tuple[tuple[str, Extractor], ...] = ()
    wait: str | None = None  # waiter run right after the call (see runner.WAITERS)
    wait_ref: str | None = None
    only_if: tuple[str, str] | None = None  # (context key, value): skip the call unless it matches


@dataclass(frozen=True)
class Wait:
    """Poll a resource until it reaches its state (no call of its own is printed by ``plan``)."""

    waiter: str
    ref: str
    resource: str


Step = Call | Wait


# --- up --------------------------------------------------------------------------------------------------------


def plan_up(
    config: ClusterConfig, topo: Topology, seen: Observed, documents: Mapping[str, dict[str, Any]]
) -> list[Step]:
    """Every step ``up`` takes, in order, creating only what ``seen`` lacks."""
    steps: list[Step] = []
    _network_steps(config, topo, seen, steps)
    for group in topo.groups:
        _group_steps(group, seen, steps)
    _master_steps(config, topo, seen, documents["master"], steps)
    _eip_steps(config, topo, seen, steps)
    from provision_min.lifecycle import hook_steps, topic_steps
    from provision_min.plan_group import autoscaling_steps

    steps.extend(topic_steps(config, seen))
    autoscaling_steps(config, topo, seen, documents["agent"], steps, hook_steps(config, seen))
    return steps


def _network_steps(config: ClusterConfig, topo: Topology, seen: Observed, steps: list[Step]) -> None:
    if seen.vpc is None:
        steps.append(Call(
            "vpc_created", f"vpc {topo.vpc_name}", "POST", "vpc", ("/vpcs",),
            body={"vpc": {"name": topo.vpc_name, "cidr": str(config.vpc_cidr)}},
            produces=(("vpc", at("vpc", "id")),), wait="vpc_ok", wait_ref="vpc",
        ))
    elif seen.vpc.get("status") != "OK":
        steps.append(Wait("vpc_ok", "vpc", f"vpc {topo.vpc_name}"))
    if seen.subnet is None:
        subnet: dict[str, Any] = {
            "name": topo.subnet_name,
            "cidr": str(config.subnet_cidr),
            "gateway_ip": config.gateway_ip,
            "vpc_id": Ref("vpc"),
            "primary_dns": config.dns_servers[0],
            "secondary_dns": config.dns_servers[1],
        }
        steps.append(Call(
            "subnet_created", f"subnet {topo.subnet_name}", "POST", "vpc", ("/subnets",), body={"subnet": subnet},
            produces=(("subnet", at("subnet", "id")),), wait="subnet_active", wait_ref="subnet",
        ))
    elif seen.subnet.get("status") == "ERROR":
        raise ResourceFailed(f"subnet {topo.subnet_name} is in ERROR: remove it (provision-min down) and run up again")
    elif seen.subnet.get("status") != "ACTIVE":
        steps.append(Wait("subnet_active", "subnet", f"subnet {topo.subnet_name}"))


def _group_steps(group: GroupSpec, seen: Observed, steps: list[Step]) -> None:
    existing = seen.groups.get(group.name)
    ref = f"sg:{group.name}"
    if existing is None:
        steps.append(Call(
            "security_group_created", f"security group {group.name}", "POST", "vpc", ("/security-groups",),
            body={"security_group": {"name": group.name, "vpc_id": Ref("vpc")}},
            produces=((ref, at("security_group", "id")),),
        ))
        missing: tuple[Rule, ...] = group.rules
    else:
        missing = group.missing_rules(existing.get("security_group_rules"))
    for rule in missing:
        steps.append(Call(
            "security_group_rule_created", f"rule {rule.describe()} in {group.name}", "POST", "vpc",
            ("/security-group-rules",),
            body={"security_group_rule": {
                "security_group_id": Ref(ref),
                "direction": rule.direction,
                "ethertype": rule.ethertype,
                "protocol": rule.protocol,
                "port_range_min": rule.port_min,
                "port_range_max": rule.port_max,
                "remote_ip_prefix": rule.remote_ip_prefix,
            }},
        ))


def _master_steps(config: ClusterConfig, topo: Topology, seen: Observed, document: dict[str, Any],
                  steps: list[Step]) -> None:
    waits: list[Step] = []
    for name, ip in zip(topo.master_names, topo.master_ips, strict=True):
        server = seen.servers.get(name)
        status = server.get("status") if server else None
        if server is not None and status == "ERROR":
            # A master the cloud could not build is replaced: deleted (job polled), then created anew.
            steps.append(Call(
                "master_replaced", f"master {name} (in ERROR)", "POST", "ecs", ("/cloudservers/delete",),
                body={"servers": [{"id": server["id"]}], "delete_publicip": True, "delete_volume": True},
                produces=((f"deljob:{name}", at("job_id")),), wait="ecs_job", wait_ref=f"deljob:{name}",
            ))
            server = None
        if server is None:
            steps.append(Call(
                "master_requested", f"master {name}", "POST", "ecs", ("/cloudservers",),
                body={"server": {
                    "availability_zone": config.availability_zone,
                    "name": name,
                    "imageRef": config.image_id,
                    "flavorRef": config.master_flavor,
                    "root_volume": {"volumetype": config.volume_type, "size": config.root_volume_gb},
                    "vpcid": Ref("vpc"),
                    "nics": [{"subnet_id": Ref("subnet"), "ip_address": ip}],
                    "security_groups": [{"id": Ref(f"sg:{g.name}")} for g in topo.master_groups],
                    "key_name": config.key_name,
                    "user_data": UserData("master", document),
                    "metadata": {**config.server_metadata, DIGEST_KEY: digest(document)},  # digest: compared by up
                    "count": 1,
                }},
                produces=((f"job:{name}", at("job_id")), (f"server:{name}", at("serverIds", 0))),
            ))
            waits.append(Wait("ecs_job", f"job:{name}", f"master {name}"))
            waits.append(Wait("server_active", f"server:{name}", f"master {name}"))
        elif status != "ACTIVE":
            waits.append(Wait("server_active", f"server:{name}", f"master {name}"))
    # All masters are requested first and then awaited: they boot in parallel, not one after the other.
    steps.extend(waits)


def _eip_steps(config: ClusterConfig, topo: Topology, seen: Observed, steps: list[Step]) -> None:
    first = topo.master_names[0]
    eip = seen.eip
    server = seen.servers.get(first)
    if server is not None and server.get("status") == "ERROR" and eip is not None and eip.get("status") == "ACTIVE":
        eip = None  # bound to the master being replaced, whose delete (delete_publicip) releases it: a new one
    if eip is None:
        steps.append(Call(
            "eip_created", f"EIP {topo.eip_bandwidth_name}", "POST", "vpc", ("/publicips",),
            body={
                "publicip": {"type": "5_bgp"},
                "bandwidth": {"name": topo.eip_bandwidth_name, "size": config.eip_bandwidth_mbit,
                              "share_type": "PER", "charge_mode": "traffic"},
            },
            produces=(("eip", at("publicip", "id")), ("eip_address", at("publicip", "public_ip_address"))),
            wait="eip_ready", wait_ref="eip",
        ))
    elif eip.get("status") == "PENDING_CREATE":
        steps.append(Wait("eip_ready", "eip", f"EIP {topo.eip_bandwidth_name}"))
    if eip is None or eip.get("status") != "ACTIVE":
        ip = topo.master_ips[0]
        steps.append(Call(
            "master_port_found", f"port of master {first}", "GET", "ecs",
            ("/cloudservers/", Ref(f"server:{first}"), "/os-interface"),
            produces=((f"port:{first}", _port_with_ip(ip)),),
        ))
        steps.append(Call(
            "eip_bound", f"EIP {topo.eip_bandwidth_name} to {first}", "PUT", "vpc", ("/publicips/", Ref("eip")),
            body={"publicip": {"port_id": Ref(f"port:{first}")}},
            wait="eip_bound", wait_ref="eip",
        ))


def _port_with_ip(ip: str) -> Extractor:
    """The port of the interface holding ``ip`` (else the first one) from ``os-interface``."""

    def read(answer: Any) -> Any:
        items = answer.get("interfaceAttachments") if isinstance(answer, dict) else None
        if not isinstance(items, list) or not items:
            return None
        for item in items:
            fixed = item.get("fixed_ips") if isinstance(item, dict) else None
            if isinstance(fixed, list) and any(isinstance(f, dict) and f.get("ip_address") == ip for f in fixed):
                return item.get("port_id")
        first = items[0]
        return first.get("port_id") if isinstance(first, dict) else None

    return read


# --- down ------------------------------------------------------------------------------------------------------


def plan_down(topo: Topology, seen: Observed) -> list[Step]:
    """Everything ``up`` creates, removed in reverse order; what is already gone is skipped."""
    steps: list[Step] = []
    if seen.as_group is not None:
        steps.append(Call(
            "as_group_deleted", f"AS group {topo.as_group_name}", "DELETE", "as",
            ("/scaling_group/", Ref("as_group")), params={"force_delete": "yes"},
            wait="group_gone", wait_ref="as_group",
        ))
        steps.append(Wait("instances_gone", "instances", f"instances of AS group {topo.as_group_name}"))
    for config in seen.as_configs or ([seen.as_config] if seen.as_config else []):
        steps.append(Call(  # every one of ours: a rollout interrupted before it deleted the old one leaves two
            "as_configuration_deleted", f"AS configuration {config.get('scaling_configuration_name')}", "DELETE",
            "as", ("/scaling_configuration/", str(config.get("scaling_configuration_id"))),
        ))
    from provision_min.lifecycle import down_steps

    steps.extend(down_steps(seen, topo.cluster))
    if seen.eip is not None:
        steps.append(Call(
            "eip_deleted", f"EIP {topo.eip_bandwidth_name}", "DELETE", "vpc", ("/publicips/", Ref("eip"))
        ))
    if seen.servers:
        names = sorted(seen.servers)
        steps.append(Call(
            "masters_deleted", f"masters {', '.join(names)}", "POST", "ecs", ("/cloudservers/delete",),
            body={"servers": [{"id": seen.servers[n]["id"]} for n in names], "delete_publicip": True,
                  "delete_volume": True},
            produces=(("deljob:masters", at("job_id")),), wait="ecs_job", wait_ref="deljob:masters",
        ))
    for group in reversed(topo.groups):
        if group.name in seen.groups:
            steps.append(Call(
                "security_group_deleted", f"security group {group.name}", "DELETE", "vpc",
                ("/security-groups/", Ref(f"sg:{group.name}")), wait=None,
            ))
    if seen.subnet is not None:
        steps.append(Call(
            "subnet_deleted", f"subnet {topo.subnet_name}", "DELETE", "vpc",
            ("/vpcs/", Ref("vpc"), "/subnets/", Ref("subnet")), wait="subnet_gone", wait_ref="subnet",
        ))
    if seen.vpc is not None:
        steps.append(Call("vpc_deleted", f"vpc {topo.vpc_name}", "DELETE", "vpc", ("/vpcs/", Ref("vpc"))))
    return steps


# --- printing --------------------------------------------------------------------------------------------------


def render_path(call: Call, ids: Mapping[str, Any]) -> str:
    return "".join(
        part if isinstance(part, str) else str(ids.get(part.key) or "{" + part.key + "}") for part in call.path
    )


def printable(value: Any, ids: Mapping[str, Any]) -> Any:
    """A body for people: known ids filled in, unknown ones as ``{key}``, user-data decoded and masked."""
    if isinstance(value, Ref):
        return ids.get(value.key) or "{" + value.key + "}"
    if isinstance(value, UserData):
        return userdata.masked(value.document)
    if isinstance(value, dict):
        return {k: printable(v, ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v, ids) for v in value]
    return value


def plan_lines(steps: list[Step], ids: Mapping[str, Any], base_url: Callable[[str], str],
               secrets: list[str]) -> list[str]:
    """One JSON line ``{"method", "url", "body"}`` per call; every known secret value masked once more."""
    from urllib.parse import urlencode

    lines = []
    for step in steps:
        if not isinstance(step, Call):
            continue
        url = base_url(step.service) + render_path(step, ids)
        if step.params:
            url += "?" + urlencode(step.params)
        line = json.dumps({"method": step.method, "url": url, "body": printable(step.body, ids)})
        for secret in secrets:
            if secret:
                line = line.replace(secret, userdata.MASK).replace(json.dumps(secret)[1:-1], userdata.MASK)
        lines.append(line)
    return lines
