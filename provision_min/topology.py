"""What should exist for a cluster: names and security-group rules, derived from the cluster file alone.

Pure: no I/O, so the same answer serves ``plan --offline``, ``up``, ``status`` and ``down``. Everything is
found by these names, which is what makes a second ``up`` safe and lets ``down`` clean up after a partial one.

The rules are the original topology's, adapted to the ports bootstrap-agent renders:

* ``<cluster>-public`` (masters): ssh 22 and the HTTPS dashboards 443 (landing page), 5443-5444 (the Mesos and
  Alluxio web UIs, each at the root of its own server) from ``public_cidr`` (default the world). Only the
  masters get this group, and only the first master gets a public address.
* ``<cluster>-master`` (masters): Mesos master 5050, Alluxio master 19998/19999, Alluxio embedded journal
  19200, Alluxio proxy 39999, Alluxio job master 20001-20003 from the subnet; bootstrap-agent's metrics 9110
  from the subnet (the agents' 1024-60000 covers theirs): never from ``public_cidr``.
* ``<cluster>-zookeeper`` (masters): ZooKeeper 2181, 2888, 3888 from the subnet.
* ``<cluster>-agent`` (the autoscaling group, which takes exactly one group): ssh 22 and 1024-60000 from
  the subnet (Mesos agent 5051, Alluxio worker 29999/30000, executors' ports).

Each new group keeps OTC's default egress rules (everything out), which also lets nodes reach the metadata
service at 169.254.169.254:80.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bootstrap_agent.ports import ALLUXIO_UI_PORT, MESOS_UI_PORT, METRICS_PORT
from provision_min.config import ClusterConfig

# bootstrap-agent's dashboards on the master: HTTPS with basic auth (port 80 stays the loopback metadata cache)
DASHBOARD_PORT = 443
UI_PORTS = (MESOS_UI_PORT, ALLUXIO_UI_PORT)  # one rule: the two are neighbours


@dataclass(frozen=True)
class Rule:
    """One ingress TCP rule; matched against existing rules by all of its fields, never by id."""

    port_min: int
    port_max: int
    remote_ip_prefix: str
    protocol: str = "tcp"
    direction: str = "ingress"
    ethertype: str = "IPv4"

    def matches(self, existing: Any) -> bool:
        if not isinstance(existing, dict):
            return False
        return (
            existing.get("direction") == self.direction
            and (existing.get("ethertype") or "IPv4") == self.ethertype
            and existing.get("protocol") == self.protocol
            and existing.get("port_range_min") == self.port_min
            and existing.get("port_range_max") == self.port_max
            and existing.get("remote_ip_prefix") == self.remote_ip_prefix
        )

    def describe(self) -> str:
        ports = str(self.port_min) if self.port_min == self.port_max else f"{self.port_min}-{self.port_max}"
        return f"{self.protocol}/{ports} from {self.remote_ip_prefix}"


@dataclass(frozen=True)
class GroupSpec:
    name: str
    purpose: str
    rules: tuple[Rule, ...]

    def missing_rules(self, existing_rules: Any) -> tuple[Rule, ...]:
        present = existing_rules if isinstance(existing_rules, list) else []
        return tuple(rule for rule in self.rules if not any(rule.matches(item) for item in present))


@dataclass(frozen=True)
class Topology:
    cluster: str
    vpc_name: str
    subnet_name: str
    public_group: GroupSpec
    master_group: GroupSpec
    zookeeper_group: GroupSpec
    agent_group: GroupSpec
    master_names: tuple[str, ...]
    master_ips: tuple[str, ...]
    master_name_prefix: str
    eip_bandwidth_name: str
    as_config_name: str
    as_group_name: str

    @property
    def groups(self) -> tuple[GroupSpec, ...]:
        """In creation order (``down`` removes them in reverse)."""
        return (self.public_group, self.master_group, self.zookeeper_group, self.agent_group)

    @property
    def master_groups(self) -> tuple[GroupSpec, ...]:
        return (self.public_group, self.master_group, self.zookeeper_group)


def _tcp(ports: tuple[int | tuple[int, int], ...], remote: str) -> tuple[Rule, ...]:
    rules = []
    for port in ports:
        low, high = port if isinstance(port, tuple) else (port, port)
        rules.append(Rule(low, high, remote))
    return tuple(rules)


def topology(config: ClusterConfig) -> Topology:
    name = config.cluster
    subnet = str(config.subnet_cidr)
    world = str(config.public_cidr)
    return Topology(
        cluster=name,
        vpc_name=f"{name}-vpc",
        subnet_name=f"{name}-subnet",
        public_group=GroupSpec(f"{name}-public", "ssh and the https dashboards to the masters",
                               _tcp((22, DASHBOARD_PORT, UI_PORTS), world)),
        master_group=GroupSpec(f"{name}-master", "Mesos and Alluxio masters",
                               _tcp((5050, 19998, 19999, 19200, 39999, (20001, 20003), METRICS_PORT), subnet)),
        zookeeper_group=GroupSpec(f"{name}-zookeeper", "ZooKeeper ensemble", _tcp((2181, 2888, 3888), subnet)),
        agent_group=GroupSpec(f"{name}-agent", "agents, open to the subnet", _tcp((22, (1024, 60000)), subnet)),
        master_names=tuple(f"{name}-master-{i + 1}" for i in range(config.masters)),
        master_ips=config.master_ips,
        master_name_prefix=f"{name}-master-",
        eip_bandwidth_name=f"{name}-master-eip",
        as_config_name=f"{name}-agents",
        as_group_name=f"{name}-agents",
    )


def dashboard_url(public_ip: str) -> str:
    return f"https://{public_ip}/"
