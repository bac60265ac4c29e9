"""``down``: remove everything ``up`` creates, in reverse order, tolerating what is already gone.

The AS group goes first with ``force_delete`` (it takes its instances along) and is awaited until the group
and each of its instances are gone — the configuration, the security groups and the subnet cannot be removed
while anything still uses them. Then the AS configuration, the EIP, the masters (one ECS delete job), the
security groups, the subnet (awaited: a VPC with a subnet cannot be removed) and the VPC. Anything a partial
``up`` left is found by name and removed the same way. The state file (the cluster secret) is removed last,
only when nothing of the cluster is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrap_agent import logs
from provision_min import state
from provision_min.config import ClusterConfig
from provision_min.discover import discover
from provision_min.otc import OtcClient
from provision_min.plan import Call, plan_down
from provision_min.runner import Runner
from provision_min.topology import topology
from provision_min.wait import Poller


@dataclass
class DownResult:
    deleted: int
    state_removed: bool


def run_down(config: ClusterConfig, client: OtcClient, poller: Poller, state_path: Path) -> DownResult:
    topo = topology(config)
    seen = discover(client, topo, with_instances=True)
    steps = plan_down(topo, seen)
    Runner(client, poller, seen.ids()).run(steps)
    removed = state.remove(state_path)
    if removed:
        logs.get("provision-min").info("state_removed", state_file=str(state_path))
    logs.get("provision-min").info("down_complete", cluster=config.cluster, api_calls=len(client.calls))
    return DownResult(deleted=sum(1 for s in steps if isinstance(s, Call)), state_removed=removed)
