"""The OTC commands' view of node readiness: the status document's address (the EIP), login and pin, from the
state file; ``up`` waits with it, ``status`` adds it to its report.

Kept apart from ``node_readiness`` (which knows nothing of OTC or of state files) so the local cloud could read
the same document one day, and apart from ``otc_cloud`` so that module stays a thin list of commands.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bootstrap_agent import logs
from provision_min import state
from provision_min.capacity_view import figures_text, totals_text
from provision_min.config import ClusterConfig
from provision_min.errors import ProvisionError
from provision_min.local.progress import Progress as ProgressView
from provision_min.node_readiness import DEFAULT_READY_TIMEOUT, Readiness, check, wait_ready
from provision_min.status_client import CertificateRefused, StatusAccess, StatusRefused
from provision_min.wait import Poller

PASSWORD_VARIABLE = "PROVISION_MIN_DASHBOARD_PASSWORD"  # for a cluster file that sets its own password hash


class NoAccess(ProvisionError):
    """The state file lacks what reading the status needs (a cluster made before provision-min kept it)."""


def status_access(config: ClusterConfig, state_path: Path, address: str, env: Mapping[str, str]) -> StatusAccess:
    """The pinned certificate and the dashboard login of this cluster, for its master at ``address``.

    The password is the generated one in the state file, else (a cluster file with its own password hash)
    ``$PROVISION_MIN_DASHBOARD_PASSWORD``; ``NoAccess`` names what is missing."""
    current = state.load(state_path, config)
    if current is None:
        raise NoAccess(f"no state file {state_path}: its dashboard certificate is needed")
    if (config.dashboard or {}).get("auth", True) is False:
        raise NoAccess("dashboard.auth is false: the masters serve their status only behind the password")
    if current.dashboard_tls is None:
        raise NoAccess(f"{state_path} has no dashboard certificate (the cluster was made by an older "
                       "provision-min)")
    password = current.dashboard_password or env.get(PASSWORD_VARIABLE, "")
    if not password:
        raise NoAccess(f"the dashboard password is the cluster file's own: set {PASSWORD_VARIABLE} to read "
                       "the nodes' readiness")
    logs.register_secrets(password, current.dashboard_tls[1], source="dashboard-status")
    return StatusAccess(address, current.dashboard_user, password, current.dashboard_tls[0])


def wait_after_up(config: ClusterConfig, state_path: Path, env: Mapping[str, str], address: str, agents: int,
                  poller: Poller, out: TextIO) -> Readiness | None:
    """Until every master and the AS group's ``agents`` are ready, then one line saying so; ``WaitTimeout``
    (exit 1) names the rest. Without a way to read the status (``NoAccess``) a warning says why, and None."""
    try:
        access = status_access(config, state_path, address, env)
    except NoAccess as exc:
        print(f"provision-min: warning: the nodes' readiness is not checked: {exc}", file=sys.stderr)
        return None
    view = ProgressView(out, title=f"cluster {config.cluster} (OTC, {access.url})")
    ready = wait_ready(access, config.masters, agents, poller, view, DEFAULT_READY_TIMEOUT)
    print(f"cluster {config.cluster}: ready ({ready.counts['masters_ready']} master(s), "
          f"{ready.counts['agents_ready']} agent(s))", file=out)
    return ready


def nodes_report(config: ClusterConfig, state_path: Path, env: Mapping[str, str],
                 report: dict[str, Any]) -> dict[str, Any]:
    """``status``'s ``nodes``: complete, counts, every member and every problem (never raises for a node)."""
    address = report.get("public_ip")
    group = report.get("as_group") or {}
    desired = group.get("desired")
    agents = desired if isinstance(desired, int) else config.agents.desired
    if not address:
        return {"complete": False, "problems": ["the master has no public address yet"]}
    try:
        readiness = check(status_access(config, state_path, str(address), env), config.masters, agents)
    except (NoAccess, CertificateRefused, StatusRefused) as exc:
        return {"complete": False, "problems": [str(exc)]}
    return {
        "complete": readiness.complete,
        "counts": readiness.counts,
        "rendered_at": readiness.rendered_at,
        "members": [{"hostname": r.name, "role": r.role, "ip": r.ip, "state": r.state, "reason": r.detail,
                     **(readiness.figures[at] if at < len(readiness.figures) else {})}  # capacity, time in state
                    for at, r in enumerate(readiness.rows)],
        "totals": readiness.totals,  # the agents' CPUs, memory and Alluxio RAM, in all and by state
        "problems": list(readiness.problems),
        "scaler": readiness.scaler,  # the masters' scaler: leader, hold, last decisions (provision_min.scaler_status)
    }


def render_nodes(nodes: dict[str, Any]) -> list[str]:
    """``status``'s text lines for the nodes: one per member, then each problem not already on a member's line."""
    members = nodes.get("members") or []
    lines = [f"  node      {m['hostname']:28} {m['role']:6} {m['ip']:15} {figures_text(m)}  {m['state']}"
             + (f" ({m['reason']})" if m["reason"] else "") for m in members]
    lines += totals_text(nodes.get("totals"))
    lines += [f"  not ready: {problem}" for problem in nodes.get("problems") or []
              if not any(problem.startswith(f"{m['role']} {m['ip']} ") for m in members)]
    return lines
