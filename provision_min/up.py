"""``up``: create what is missing, in order, and wait until it works.

Order: OBS bucket check (no OTC call yet) → find everything by name → refuse conflicts → the secret (from the
state file, generated on the first ``up``) → VPC, subnet, security groups and their rules, the masters with
fixed IPs and master user-data, the EIP on the first master, the AS configuration with agent user-data, the
AS group, enabled. A run on a complete cluster therefore makes only GET calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.zk import acls
from provision_min import dashboard, obs, state
from provision_min.config import ClusterConfig
from provision_min.discover import Observed, check_conflicts, discover
from provision_min.errors import InputError
from provision_min.otc import OtcClient
from provision_min.plan import Call, Step, plan_up
from provision_min.rollout import plan_rollout
from provision_min.runner import Runner
from provision_min.topology import Topology, topology
from provision_min.userdata import PLACEHOLDER_OPERATOR_ACL_ID, PLACEHOLDER_SECRET
from provision_min.wait import Poller

OFFLINE_PROJECT = "project-id"  # plan --offline: the agents' lifecycle endpoint before a token names the project


@dataclass
class UpResult:
    created: int
    ids: dict[str, Any]
    bucket: str
    warnings: list[str] = field(default_factory=list)
    agents_desired: int = 0  # the AS group's desired count (the cluster file's for a new group): up waits for them
    documents: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # both roles' user-data (secrets)
    rollout: bool = False  # the cluster file changed what running nodes are made from: otc_cloud replaces them


def documents(config: ClusterConfig, secret: str, current: state.ClusterState | None = None,
              as_endpoint: str | None = None) -> dict[str, dict[str, Any]]:
    """Both roles' user-data; the masters' carries the dashboard section made from the state file and the
    operator credential's digest id (a new cluster's tree starts split; none for a state file without one);
    the agents' the ``lifecycle`` hook at ``as_endpoint`` (the catalog's AS API) and ``drain``; with autoscaling
    enabled, the masters' ``autoscaling`` names the same endpoint and the agents' group."""
    return {"master": config.user_data("master", secret, master_dashboard(config, current),
                                       operator_acl_id(current), as_endpoint=as_endpoint),
            "agent": config.user_data("agent", secret, as_endpoint=as_endpoint)}


def operator_acl_id(current: state.ClusterState | None) -> str | None:
    """What the masters' user-data names of the operator credential: its digest id, never the password (a
    placeholder of the real size before ``up`` has made it)."""
    if current is None:
        return PLACEHOLDER_OPERATOR_ACL_ID
    return acls.operator_id(current.operator_secret) if current.operator_secret else None


def master_dashboard(config: ClusterConfig, current: state.ClusterState | None) -> dict[str, Any] | None:
    """The masters' ``dashboard`` section: the login (the cluster file's, else the generated password's hash)
    and the cluster's TLS pair (which ``status`` pins)."""
    section = dashboard.master_section(config.dashboard, current.dashboard_password_hash if current else None)
    if current is None or current.dashboard_tls is None:
        return section
    certificate, key = current.dashboard_tls
    return {**(section or {}), "tls_certificate": certificate, "tls_key": key}


def check_state_for(current: state.ClusterState | None, state_path: Path, seen: Observed) -> None:
    """Refuse when nodes exist but their secret is not where it should be (a new one would split the cluster)."""
    if current is None and seen.holds_user_data():
        raise InputError(
            f"the cluster's nodes exist but its state file {state_path} (with the cluster secret) is missing: restore "
            "it (or pass --state), or remove the cluster with down"
        )


def agency_warnings(config: ClusterConfig) -> list[str]:
    """Without an agency the nodes get no temporary keys: the cluster runs, but nothing a node signs works."""
    if config.agency:
        return []
    lost = "agents cannot call back their lifecycle hook (each removal waits out the hook's timeout, undrained)"
    if config.autoscaling and config.autoscaling.get("enabled") is True:
        lost += " and the masters' scaler cannot act"
    return [f"agency: not set: {lost}; name an IAM agency delegated to ECS with the AS permissions (docs/otc.md)"]


def drift_warnings(config: ClusterConfig, topo: Topology, seen: Observed) -> list[str]:
    group = seen.as_group
    if group is None:
        return []
    have = (group.get("min_instance_number"), group.get("max_instance_number"))
    if have != (config.agents.min, config.agents.max) and None not in have:
        return [f"AS group {topo.as_group_name} has min {have[0]}, max {have[1]}; the cluster file says "
                f"{config.agents.min}, {config.agents.max} (up does not change an existing group)"]
    return []


def run_up(config: ClusterConfig, client: OtcClient, poller: Poller, state_path: Path, *,
           create_bucket: bool = False) -> UpResult:
    log = logs.get("provision-min")
    current = state.load(state_path, config)  # a broken or readable-by-others state file stops us first
    bucket = obs.check_bucket(config, create=create_bucket)
    topo = topology(config)
    seen = discover(client, topo, with_instances=True)  # instances: an older configuration's are replaced
    check_conflicts(config, topo, seen)
    check_state_for(current, state_path, seen)
    secret = current.secret if current else PLACEHOLDER_SECRET
    as_endpoint = client.endpoints.as_
    docs = documents(config, secret, current, as_endpoint)
    steps: list[Step] = plan_up(config, topo, seen, docs)
    if steps and current is None:
        current = state.create(state_path, config)
        log.info("secret_generated", state_file=str(state_path))
        docs = documents(config, current.secret, current, as_endpoint)
        steps = plan_up(config, topo, seen, docs)
    if current is not None:
        logs.register_secrets(current.secret, source="cluster-secret")
        if current.dashboard_tls:
            logs.register_secrets(current.dashboard_tls[1], current.dashboard_password, source="dashboard")
    ids = seen.ids()
    calls = sum(1 for step in steps if isinstance(step, Call))
    log.info("up_planned", cluster=config.cluster, calls=calls, steps=len(steps))
    Runner(client, poller, ids).run(steps)
    log.info("up_complete", cluster=config.cluster, api_calls=len(client.calls))
    desired = seen.as_group.get("desire_instance_number") if seen.as_group else None
    rollout = plan_rollout(config, seen, docs)
    warnings = agency_warnings(config) + drift_warnings(config, topo, seen) + rollout.blocked()
    return UpResult(created=calls, ids=ids, bucket=bucket, warnings=warnings,
                    agents_desired=desired if isinstance(desired, int) else config.agents.desired,
                    documents=docs, rollout=not rollout.empty)


@dataclass
class PlannedCalls:
    """What ``plan`` shows: each call as a JSON line and as a line for a person, and what exists already."""

    lines: list[str]
    readable: list[str]
    existing: int
    replacing: list[str] = field(default_factory=list)  # what a changed cluster file replaces (``rollout``)
    pending: bool = False  # up would replace nodes (``replacing`` may also say what it will not replace)

    def summary(self) -> str:
        return f"plan: {len(self.lines)} to create, {self.existing} existing" + (
            "; nodes to replace (see above)" if self.pending else "")


def run_plan(config: ClusterConfig, client: OtcClient | None, state_path: Path) -> PlannedCalls:
    """Every call ``up`` would make after its lookups, and how much exists; changes nothing.

    With ``client=None`` (``--offline``) nothing is looked up: it assumes an empty project, needs no
    credentials, and prints ``{project_id}`` and ``{vpc}``-style placeholders for ids nobody knows yet.
    """
    from provision_min.catalog import fallback_endpoints
    from provision_min.flavors import check_flavors
    from provision_min.plan import plan_lines
    from provision_min.userdata import secrets_of

    topo = topology(config)
    current = state.load(state_path, config)
    if client is None:
        seen = Observed()
        base = fallback_endpoints(config.region, "{project_id}").base
        as_endpoint = fallback_endpoints(config.region, OFFLINE_PROJECT).as_  # the schema wants a real path
    else:
        check_flavors(config, client)  # a flavor the zone lacks, RAM disks the agent flavor cannot hold
        seen = discover(client, topo, with_instances=True)
        check_conflicts(config, topo, seen)
        check_state_for(current, state_path, seen)
        base = client.endpoints.base
        as_endpoint = client.endpoints.as_
    secret = current.secret if current else PLACEHOLDER_SECRET
    docs = documents(config, secret, current, as_endpoint)
    steps = plan_up(config, topo, seen, docs)
    hidden = [secret, *secrets_of(docs["master"]), *secrets_of(docs["agent"])]
    lines = plan_lines(steps, seen.ids(), base, hidden)
    readable = [f"{step.method:<6} {step.resource} ({step.event})" for step in steps if isinstance(step, Call)]
    from provision_min.rollout import plan_rollout

    names = {str(i.get("instance_id")): str(i.get("instance_name")) for i in seen.instances}
    rollout = plan_rollout(config, seen, docs)
    return PlannedCalls(lines, readable, seen.count(), rollout.lines(names), not rollout.empty)
