"""``status``: what exists of the cluster — VPC, subnet, security groups, masters, EIP, the AS group and its
instances — found by name with GET calls only, as text or JSON. Exit 0 only when everything ``up`` creates
exists and is ready (the group in service) and every node says ``ready`` in the master's status document
(``otc_readiness``), so scripts can wait on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provision_min.config import ClusterConfig
from provision_min.discover import Observed, discover, server_ips
from provision_min.lifecycle import hook_name, topic_name
from provision_min.otc import OtcClient
from provision_min.topology import Topology, dashboard_url, topology


def report(config: ClusterConfig, seen: Observed, topo: Topology) -> dict[str, Any]:
    vpc = seen.vpc
    subnet = seen.subnet
    masters = []
    for name, ip in zip(topo.master_names, topo.master_ips, strict=True):
        server = seen.servers.get(name)
        masters.append({
            "name": name,
            "ip": ip,
            "id": server.get("id") if server else None,
            "status": server.get("status") if server else "missing",
            "addresses": sorted(server_ips(server)) if server else [],
        })
    groups = []
    for spec in topo.groups:
        found = seen.groups.get(spec.name)
        groups.append({
            "name": spec.name,
            "id": found.get("id") if found else None,
            "status": "present" if found else "missing",
            "rules_missing": len(spec.missing_rules(found.get("security_group_rules"))) if found else len(spec.rules),
        })
    eip = seen.eip
    public_ip = eip.get("public_ip_address") if eip else None
    group = seen.as_group
    result: dict[str, Any] = {
        "cluster": config.cluster,
        "region": config.region,
        "availability_zone": config.availability_zone,
        "vpc": {"name": topo.vpc_name, "id": vpc.get("id"), "status": vpc.get("status"), "cidr": vpc.get("cidr")}
        if vpc else {"name": topo.vpc_name, "status": "missing"},
        "subnet": {"name": topo.subnet_name, "id": subnet.get("id"), "status": subnet.get("status"),
                   "cidr": subnet.get("cidr")} if subnet else {"name": topo.subnet_name, "status": "missing"},
        "security_groups": groups,
        "masters": masters,
        "eip": {"name": topo.eip_bandwidth_name, "id": eip.get("id"), "status": eip.get("status"),
                "address": public_ip} if eip else {"name": topo.eip_bandwidth_name, "status": "missing"},
        "as_configuration": {"name": topo.as_config_name, "id": seen.as_config.get("scaling_configuration_id"),
                             "status": "present"} if seen.as_config else {"name": topo.as_config_name,
                                                                          "status": "missing"},
        "as_group": {
            "name": topo.as_group_name,
            "id": group.get("scaling_group_id"),
            "status": group.get("scaling_group_status"),
            "desired": group.get("desire_instance_number"),
            "min": group.get("min_instance_number"),
            "max": group.get("max_instance_number"),
            "current": group.get("current_instance_number"),
            "scaling": group.get("is_scaling"),
        } if group else {"name": topo.as_group_name, "status": "missing"},
        "instances": [
            {"id": i.get("instance_id"), "name": i.get("instance_name"), "lifecycle": i.get("life_cycle_state"),
             "health": i.get("health_status")} for i in seen.instances
        ],
        "public_ip": public_ip,
        "dashboard": dashboard_url(public_ip) if public_ip and eip and eip.get("status") == "ACTIVE" else None,
        "smn_topic": {"name": topic_name(config.cluster), "status": "present" if seen.smn_topic else "missing",
                      "urn": (seen.smn_topic or {}).get("topic_urn")},
        "lifecycle_hook": {"name": hook_name(config.cluster), "status": "present" if seen.hook else "missing",
                           "default_timeout": (seen.hook or {}).get("default_timeout"),
                           "default_result": (seen.hook or {}).get("default_result")},
    }
    result["complete"] = bool(
        vpc and vpc.get("status") == "OK" and subnet and subnet.get("status") == "ACTIVE"
        and all(g["status"] == "present" and g["rules_missing"] == 0 for g in groups)
        and all(m["status"] == "ACTIVE" for m in masters)
        and eip and eip.get("status") == "ACTIVE" and seen.as_config
        and group and group.get("scaling_group_status") == "INSERVICE"
        and seen.smn_topic and seen.hook  # without the hook a removed agent would not drain
    )
    return result


def with_nodes(result: dict[str, Any], config: ClusterConfig, state_path: Path,
               env: Mapping[str, str]) -> dict[str, Any]:
    """The report with ``nodes`` (every node's readiness from the master's status document); ``complete`` then
    also needs every node ready (``resources_complete`` keeps the cloud resources' own verdict)."""
    from provision_min.otc_readiness import nodes_report

    result["nodes"] = nodes_report(config, state_path, env, result)
    result["resources_complete"] = result["complete"]
    result["complete"] = bool(result["complete"] and result["nodes"]["complete"])
    return result


def run_status(config: ClusterConfig, client: OtcClient) -> dict[str, Any]:
    topo = topology(config)
    return report(config, discover(client, topo, with_instances=True), topo)


def render(result: dict[str, Any]) -> str:
    """The report as aligned text lines, one resource a line."""
    rows: list[tuple[str, str, str, str]] = []

    def add(kind: str, name: Any, status: Any, detail: str = "") -> None:
        rows.append((kind, str(name), str(status or "?"), detail))

    vpc, subnet = result["vpc"], result["subnet"]
    add("vpc", vpc["name"], vpc["status"], " ".join(str(x) for x in (vpc.get("cidr"), vpc.get("id")) if x))
    add("subnet", subnet["name"], subnet["status"],
        " ".join(str(x) for x in (subnet.get("cidr"), subnet.get("id")) if x))
    for group in result["security_groups"]:
        detail = "" if group["status"] == "missing" else (
            "all rules" if not group["rules_missing"] else f"{group['rules_missing']} rule(s) missing")
        add("secgroup", group["name"], group["status"], detail)
    for master in result["masters"]:
        add("master", master["name"], master["status"], f"{master['ip']} {master.get('id') or ''}")
    eip = result["eip"]
    add("eip", eip["name"], eip["status"], eip.get("address") or "")
    conf = result["as_configuration"]
    add("as-config", conf["name"], conf["status"], conf.get("id") or "")
    group = result["as_group"]
    detail = ""
    if group["status"] != "missing":
        detail = (f"desired {group['desired']} (min {group['min']}, max {group['max']}), current {group['current']}"
                  + (", scaling" if group.get("scaling") else ""))
    add("as-group", group["name"], group["status"], detail)
    topic, hook = result.get("smn_topic"), result.get("lifecycle_hook")
    if topic and hook:
        add("smn-topic", topic["name"], topic["status"], topic.get("urn") or "")
        add("hook", hook["name"], hook["status"], "" if hook["status"] == "missing" else
            f"INSTANCE_TERMINATING, {hook.get('default_result')} after {hook.get('default_timeout')} s")
    for instance in result["instances"]:
        leaving = {"REMOVING_WAIT": ": draining, waits for its own callback (lifecycle hook)",
                   "REMOVING": ": being deleted"}.get(str(instance.get("lifecycle")), "")
        add("instance", instance.get("name") or instance.get("id"), instance.get("lifecycle"),
            f"health {instance.get('health')} {instance.get('id')}{leaving}")
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"cluster {result['cluster']} ({result['region']}, {result['availability_zone']}): "
             + ("complete" if result["complete"] else "incomplete")]
    lines += [f"  {k:<{widths[0]}}  {n:<{widths[1]}}  {s:<{widths[2]}}  {d}".rstrip() for k, n, s, d in rows]
    if result.get("nodes") is not None:
        from provision_min.otc_readiness import render_nodes

        lines += render_nodes(result["nodes"])
        from provision_min import scaler_status

        lines += scaler_status.render(result["nodes"].get("scaler"))
    if result.get("dashboard"):
        lines.append(f"  dashboard: {result['dashboard']}")
    return "\n".join(lines)
