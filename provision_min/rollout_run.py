"""``up`` on a changed cluster file, on OTC: carry out ``rollout``'s plan after the calls that create what is
missing (which already made the new AS configuration and switched the group to it).

Agents, a batch at a time: REMOVE the batch (each drains through the lifecycle hook and calls back itself,
``scale.wait_gone``), put the desired count back (OTC lowers it with every REMOVE), and wait until the group's
agents are ready again — their successors come from the new configuration — before the next batch. With a
``surge`` the group first grows by one and at the end shrinks back through ``scale`` (least loaded out).

Masters, one at a time, each only while every master is ready (so the others keep ZooKeeper's, the Mesos
log's and the Alluxio journal's quorum): the server is deleted (its public address kept: ``delete_publicip``
false) and ``up``'s own steps create it again with the same name and address and bind the address again;
then every master must be ready before the next. While the first master (the public address) is replaced,
the status document is unreachable: the wait rides that out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bootstrap_agent import logs
from bootstrap_agent.autoscaling import AutoScaling, AutoScalingError, Group
from provision_min.config import ClusterConfig
from provision_min.discover import discover
from provision_min.errors import ProvisionError
from provision_min.lifecycle import hook_name
from provision_min.otc import OtcClient
from provision_min.plan import Call, at, plan_up
from provision_min.rollout import AgentRollout, MasterRollout, plan_rollout
from provision_min.runner import Runner
from provision_min.scale import Departure, Members, run_scale, wait_gone
from provision_min.topology import topology
from provision_min.victims import LEAVING, Victim
from provision_min.wait import Poller, Progress

READY_TIMEOUT = 1200.0  # a new node boots, renders and starts its services in a few minutes on OTC


@dataclass
class RolloutResult:
    agents_replaced: int = 0
    masters_replaced: int = 0
    warnings: tuple[str, ...] = ()


def run_rollout(config: ClusterConfig, client: OtcClient, asc: AutoScaling, documents: Mapping[str, dict[str, Any]],
                members: Members, poller: Poller, out: TextIO) -> RolloutResult:
    """Replace what the cluster file changed; ``members`` reads every member (masters and agents)."""
    topo = topology(config)
    seen = discover(client, topo, with_instances=True)
    try:
        known = list(members())
    except ProvisionError:
        known = []
    plan = plan_rollout(config, seen, documents, [m for m in known if m.get("role") == "agent"])
    result = RolloutResult()  # what is blocked, run_up has warned about already
    try:
        if plan.agents is not None and not plan.agents.blocked and plan.agents.replace:
            result.agents_replaced = roll_agents(config, asc, plan.agents, members, poller, out)
        if plan.masters is not None and not plan.masters.blocked and plan.masters.order:
            result.masters_replaced = roll_masters(config, client, plan.masters, documents, members, poller, out)
    except AutoScalingError as exc:  # the next up carries on: what is left is found again
        raise ProvisionError(f"the rollout stopped: {exc}") from None
    if result.agents_replaced:
        _delete_unused_configurations(client, topo)
    return result


def _delete_unused_configurations(client: OtcClient, topo: Any) -> None:
    """The configurations of ours that neither the group nor any instance uses any more."""
    seen = discover(client, topo, with_instances=True)
    used = {i.get("scaling_configuration_id") for i in seen.instances}
    if seen.as_group is not None:
        used.add(seen.as_group.get("scaling_configuration_id"))
    for config in seen.as_configs:
        if config.get("scaling_configuration_id") not in used:
            client.delete("as", f"/scaling_configuration/{config.get('scaling_configuration_id')}")
            logs.get("provision-min").info("as_configuration_deleted",
                                           name=config.get("scaling_configuration_name"))


def _agents_only(members: Members) -> Members:
    def read() -> Sequence[Mapping[str, Any]]:
        return [m for m in members() if m.get("role") == "agent"]

    return read


def roll_agents(config: ClusterConfig, asc: AutoScaling, plan: AgentRollout, members: Members, poller: Poller,
                out: TextIO) -> int:
    log = logs.get("provision-min")
    group = asc.find_group(f"{config.cluster}-agents")
    if group is None:
        raise ProvisionError(f"AS group {config.cluster}-agents does not exist: run up first")
    target = group.desired + plan.surge
    if plan.surge:
        print(f"agents: the group grows to {target} during the rollout (agents.min {config.agents.min})", file=out)
        asc.set_desired(group.id, target)
        wait_agents_ready(asc, group, target, members, poller)
    replaced = 0
    for number, batch in enumerate(plan.batches(), 1):
        listed = {i.id: i for i in asc.instances(group.id)}
        ids = [i for i in batch if i in listed and listed[i].state == "INSERVICE"]
        if not ids:
            continue
        print(f"agents: batch {number} of {len(plan.batches())}: replacing "
              + ", ".join(listed[i].name for i in ids), file=out)
        asc.remove(group.id, ids)
        if plan.undrainable:  # they never poll the hook: holding them would only wait out its timeout
            for iid in ids:
                with contextlib.suppress(AutoScalingError):
                    asc.callback_instance(group.id, iid, hook_name(config.cluster), "CONTINUE")
        departures = [Departure(Victim(i, listed[i].name, "", None, True)) for i in ids]
        wait_gone(asc, group, departures, _agents_only(members), poller, out, config.drain.hook_timeout,
                  undrained=plan.undrainable)
        if asc.group(group.id).desired != target:
            asc.set_desired(group.id, target)  # the REMOVE lowered it: the group launches the successors
        wait_agents_ready(asc, group, target, members, poller)
        replaced += len(ids)
        log.info("agents_replaced", batch=number, instances=ids)
    if plan.surge:
        run_scale(config, asc, target - plan.surge, _agents_only(members), poller, out)
    return replaced


def wait_agents_ready(asc: AutoScaling, group: Group, count: int, members: Members, poller: Poller) -> None:
    """Until ``count`` of the group's instances are in service and their members say ``ready`` (the capacity
    is back: a batch's successors, made from the group's current configuration, have joined)."""

    def probe() -> Progress[None]:
        instances = [i for i in asc.instances(group.id) if i.state not in LEAVING]
        try:
            ready = {str(m.get("uuid")) for m in members() if m.get("state") == "ready"}
        except ProvisionError as exc:
            return Progress(False, str(exc))
        good = [i for i in instances if i.state == "INSERVICE" and i.id in ready]
        return Progress(len(good) >= count, f"{len(good)} of {count} agent(s) ready")

    poller.until(f"{count} agent(s) of AS group {group.name} to be ready", probe, READY_TIMEOUT)


def roll_masters(config: ClusterConfig, client: OtcClient, plan: MasterRollout,
                 documents: Mapping[str, dict[str, Any]], members: Members, poller: Poller, out: TextIO) -> int:
    topo = topology(config)
    ips = dict(zip(topo.master_names, topo.master_ips, strict=True))
    for name, why in plan.order:
        wait_masters_ready(config, members, poller, f"every master ready before {name} is replaced")
        seen = discover(client, topo)
        server = seen.servers.get(name)
        if server is None:
            continue
        print(f"masters: replacing {name} ({ips[name]}: {'; '.join(why)}); the others keep the quorum", file=out)
        runner = Runner(client, poller, seen.ids())
        runner.run([Call(
            "master_deleted_for_replacement", f"master {name}", "POST", "ecs", ("/cloudservers/delete",),
            body={"servers": [{"id": server["id"]}], "delete_publicip": False, "delete_volume": True},
            produces=((f"deljob:{name}", at("job_id")),), wait="ecs_job", wait_ref=f"deljob:{name}",
        )])
        _wait_server_gone(client, poller, str(server["id"]), name)
        again = discover(client, topo)
        Runner(client, poller, again.ids()).run(plan_up(config, topo, again, documents))  # same name and address
        wait_masters_ready(config, members, poller, f"{name} ({ips[name]}) to be ready again")
        logs.get("provision-min").info("master_replaced", name=name, ip=ips[name])
    return len(plan.order)


def _wait_server_gone(client: OtcClient, poller: Poller, server_id: str, name: str) -> None:
    def probe() -> Progress[None]:
        answer = client.get_or_none("ecs", f"/cloudservers/{server_id}")
        status = ((answer or {}).get("server") or {}).get("status") if isinstance(answer, dict) else None
        return Progress(answer is None or status == "DELETED", f"status {status}")

    poller.until(f"master {name} to be deleted", probe, 600)


def wait_masters_ready(config: ClusterConfig, members: Members, poller: Poller, what: str) -> None:
    """Every master of the cluster file registered and ready (the status document may not answer meanwhile)."""
    wanted = set(config.master_ips)

    def probe() -> Progress[None]:
        try:
            ready = {str(m.get("ip")) for m in members() if m.get("role") == "master" and m.get("state") == "ready"}
        except ProvisionError as exc:
            return Progress(False, str(exc))
        return Progress(wanted <= ready, f"{len(wanted & ready)} of {len(wanted)} master(s) ready")

    poller.until(what, probe, READY_TIMEOUT)


def all_members(config: ClusterConfig, client: OtcClient, state_path: Path, env: Mapping[str, str]) -> Members:
    """Every member (masters and agents) from the first master's status document."""
    from provision_min.otc_readiness import status_access
    from provision_min.otc_scale import public_address
    from provision_min.status_client import fetch

    def read() -> Sequence[Mapping[str, Any]]:
        address = public_address(config, client)
        if address is None:
            raise ProvisionError("the first master has no public address")
        document = fetch(status_access(config, state_path, address, env)).document
        return [m for m in document["members"] if isinstance(m, dict)]

    return read
