"""The entities of the stand-in master's cluster view: tasks, agents, frameworks (``mesos_cluster.py``).

Field names follow the master's ``/state`` JSON (apache/mesos 1.11.0 ``src/common/http.cpp``, ``src/master/
readonly_handler.cpp``): a task's ``slave_id``, an agent's ``pid`` ``slave(1)@ip:port``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from standins import mesos_model as model
from standins.mesos_maintenance import Machine
from standins.mesos_scheduler_events import FrameworkStream


@dataclass
class Task:
    id: str
    name: str
    framework_id: str
    agent_id: str
    resources: model.Resources
    command: dict[str, Any]
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "framework_id": self.framework_id, "slave_id": self.agent_id,
                "executor_id": "", "state": self.state, "resources": model.state_resources(self.resources),
                "statuses": self.statuses}


@dataclass
class Agent:
    id: str
    hostname: str
    ip: str
    port: int
    resources: dict[str, Any]
    attributes: dict[str, Any]
    version: str
    registered_time: float
    last_ping: float
    active: bool = True

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.ip}:{self.port}"

    @property
    def machine(self) -> Machine:
        return (self.hostname, self.ip)


@dataclass
class Framework:
    id: str
    name: str
    info: dict[str, Any]
    stream: FrameworkStream | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    completed: list[Task] = field(default_factory=list)
    offers: dict[str, tuple[str, model.Resources]] = field(default_factory=dict)  # offer id → (agent, resources)
    filters: dict[str, float] = field(default_factory=dict)  # agent id → no offers before this time

    @property
    def active(self) -> bool:
        return self.stream is not None and not self.stream.closed

    @property
    def partition_aware(self) -> bool:
        return any(c.get("type") == "PARTITION_AWARE" for c in self.info.get("capabilities", []) or [])


class Refused(Exception):
    """The master refuses an agent (the message is the ShutdownMessage's)."""
