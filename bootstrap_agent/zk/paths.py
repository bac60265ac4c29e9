"""The znode paths of one cluster: the contract other tools and tests use, never string literals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ROOT = "/bootstrap-agent"
AUTH_USER = "bootstrap-agent"  # the node credential (user-data's secret)
OPERATOR_USER = "bootstrap-operator"  # the operator credential (provision-min's state file only)
CLIENT_PORT = 2181  # every master's ZooKeeper, for the nodes and the operators' tools alike


def ensemble(masters: Sequence[str]) -> str:
    """The connect string of the masters' ZooKeeper ensemble (``10.0.0.10:2181,10.0.0.11:2181``)."""
    return ",".join(f"{ip}:{CLIENT_PORT}" for ip in masters)


@dataclass(frozen=True)
class ClusterPaths:
    """``/bootstrap-agent/<cluster>/{nodes,masters,config,locks/restart}``."""

    cluster: str

    def __post_init__(self) -> None:
        if not self.cluster or "/" in self.cluster or self.cluster in (".", "..") or not self.cluster.isprintable():
            raise ValueError(f"cluster name {self.cluster!r} cannot be a znode name")

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.cluster}"

    @property
    def nodes(self) -> str:
        return f"{self.base}/nodes"

    @property
    def masters(self) -> str:
        return f"{self.base}/masters"

    @property
    def config(self) -> str:
        return f"{self.base}/config"

    @property
    def locks(self) -> str:
        return f"{self.base}/locks"

    @property
    def restart_lock(self) -> str:
        return f"{self.locks}/restart"

    @property
    def scaler(self) -> str:
        """The cluster scaler's znodes (``bootstrap_agent.scaler``): only masters write below it."""
        return f"{self.base}/scaler"

    @property
    def scaler_leader(self) -> str:
        return f"{self.scaler}/leader"

    @property
    def scaler_state(self) -> str:
        return f"{self.scaler}/state"

    def node(self, uuid: str) -> str:
        return f"{self.nodes}/{uuid}"

    def master(self, ip: str) -> str:
        return f"{self.masters}/{ip}"

    def tree(self) -> tuple[str, ...]:
        """The persistent znodes below ROOT, parents first (``config`` is created on the first ``set``)."""
        return (self.base, self.nodes, self.masters, self.locks, self.restart_lock, self.scaler, self.scaler_leader)
