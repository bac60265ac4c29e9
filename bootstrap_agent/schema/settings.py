"""The validated user-data as immutable values: what every other module reads instead of the JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bootstrap_agent.schema.autoscaling import AutoscalingSettings
from bootstrap_agent.schema.lifecycle import DrainSettings, LifecycleSettings
from bootstrap_agent.schema.ramdisk import AUTO, OFF, RamDisk

Role = Literal["master", "agent"]
CredentialSource = Literal["keys", "agency"]


@dataclass(frozen=True)
class MesosSettings:
    version: str = "1.11"
    containerizers: tuple[str, ...] = ("mesos",)
    attributes: tuple[tuple[str, str], ...] = ()
    agent_flags: tuple[tuple[str, str], ...] = ()
    master_flags: tuple[tuple[str, str], ...] = ()
    work_dir_ramdisk: RamDisk = OFF  # the agent's work_dir (sandboxes, checkpoints) in RAM
    docker_ramdisk: RamDisk = OFF  # Docker's data-root in RAM; only with the docker containerizer

    @property
    def docker(self) -> bool:
        """Docker runs on agents exactly when Mesos is told to use it."""
        return "docker" in self.containerizers


@dataclass(frozen=True)
class SparkSettings:
    """Spark's external shuffle service on every agent (executors on Mesos need it for dynamic allocation:
    their shuffle files outlive them)."""

    shuffle_service: bool = True
    shuffle_port: int = 7337


@dataclass(frozen=True)
class ToolSettings:
    """An optional tool on the masters (Zeppelin, Jenkins): off unless the user-data turns it on."""

    enabled: bool = False


@dataclass(frozen=True)
class AlluxioSettings:
    root_ufs: str
    version: str = "2.9"
    s3_endpoint: str | None = None
    block_size: int | None = None
    worker_ramdisk: RamDisk = AUTO  # tier 0: never off
    s3_region: str | None = None  # signing region; None = from the endpoint (obs.<region>.otc.t-systems.com)


@dataclass(frozen=True)
class Credentials:
    source: CredentialSource
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DashboardSettings:
    """The master's HTTPS dashboards. Auth is on unless the user-data turns it off explicitly; without a
    password hash the dashboards stay locked rather than open."""

    auth: bool = True
    user: str = "admin"
    password_hash: str | None = field(default=None, repr=False)
    tls_certificate: str | None = None
    tls_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    cluster: str
    role: Role
    masters: tuple[str, ...]
    secret: str = field(repr=False)
    mesos: MesosSettings = MesosSettings()
    alluxio: AlluxioSettings | None = None
    credentials: Credentials | None = None
    dashboard: DashboardSettings = DashboardSettings()
    spark: SparkSettings = SparkSettings()
    zeppelin: ToolSettings = ToolSettings()
    jenkins: ToolSettings = ToolSettings()
    # the operator credential's ZooKeeper digest id (masters only): a new cluster's tree is created split
    operator_acl_id: str | None = field(default=None, repr=False)
    autoscaling: AutoscalingSettings = field(default_factory=AutoscalingSettings)  # the scaler's policy (masters; off)
    lifecycle: LifecycleSettings | None = None  # agents: poll the AS group's INSTANCE_TERMINATING hook
    drain: DrainSettings = field(default_factory=DrainSettings)  # agents: how long a drain may take

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never reach a log line or a world-readable file."""
        values = [self.secret]
        if self.credentials and self.credentials.secret_access_key:
            values.append(self.credentials.secret_access_key)
        values.extend(v for v in (self.dashboard.password_hash, self.dashboard.tls_key, self.operator_acl_id) if v)
        return tuple(values)
