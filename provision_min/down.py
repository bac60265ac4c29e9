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
from provision_min.discover import Observed, discover
from provision_min.otc import OtcClient
from provision_min.plan import Call, Step, plan_down
from provision_min.runner import Runner
from provision_min.topology import topology
from provision_min.wait import Poller


@dataclass
class DownResult:
    deleted: int
    state_removed: bool


@dataclass
class DownPlan:
    """What exists of the cluster and the steps that remove it: looked up once, shown, then carried out."""

    seen: Observed
    steps: list[Step]

    def listing(self, state_path: Path) -> list[str]:
        """What will be removed, one line a resource, for the question ``down`` asks."""
        items = []
        for step in self.steps:
            if isinstance(step, Call):
                items.append(step.resource)
                if step.event == "as_group_deleted" and self.seen.instances:
                    items[-1] += f" with its {len(self.seen.instances)} instance(s)"
        if state_path.exists():
            items.append(f"state file {state_path} (the cluster secret)")
        return items


def prepare_down(config: ClusterConfig, client: OtcClient) -> DownPlan:
    seen = discover(client, topology(config), with_instances=True)
    return DownPlan(seen, plan_down(topology(config), seen))


def run_down(config: ClusterConfig, client: OtcClient, poller: Poller, state_path: Path,
             prepared: DownPlan | None = None) -> DownResult:
    found = prepared if prepared is not None else prepare_down(config, client)
    steps = found.steps
    Runner(client, poller, found.seen.ids()).run(steps)
    removed = state.remove(state_path)
    if removed:
        logs.get("provision-min").info("state_removed", state_file=str(state_path))
    logs.get("provision-min").info("down_complete", cluster=config.cluster, api_calls=len(client.calls))
    return DownResult(deleted=sum(1 for s in steps if isinstance(s, Call)), state_removed=removed)
