"""Events of the v1 scheduler API as the stand-in master streams them (apache/mesos 1.11.0
``include/mesos/v1/scheduler/scheduler.proto``, ``docs/scheduler-http-api.md``).

Each event is one RecordIO record: the length of the JSON in bytes, a newline, the JSON
(``docs/recordio.md``). The shapes are the proto3 JSON of the v1 messages, only the fields frameworks read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from standins import mesos_model as model
from standins.mesos_http import Stream

if TYPE_CHECKING:
    from standins.mesos_entities import Agent, Task

HEARTBEAT_SECONDS = 15.0  # DEFAULT_HEARTBEAT_INTERVAL, src/master/constants.hpp


def recordio(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":")).encode()
    return str(len(data)).encode() + b"\n" + data


class FrameworkStream:
    """A subscribed framework's open connection."""

    def __init__(self, stream: Stream, stream_id: str) -> None:
        self.stream = stream
        self.stream_id = stream_id  # the ``Mesos-Stream-Id`` every call of this connection must carry
        self.framework_id = ""

    @property
    def closed(self) -> bool:
        return self.stream.closed

    def send_event(self, event: dict[str, Any]) -> bool:
        return self.stream.send(recordio(event))

    def close(self) -> None:
        self.stream.close()


def subscribed_event(framework_id: str, master_info: dict[str, Any]) -> dict[str, Any]:
    return {"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": framework_id},
                                                 "heartbeat_interval_seconds": HEARTBEAT_SECONDS,
                                                 "master_info": master_info}}


def offer_event(offer_id: str, framework_id: str, agent: Agent, resources: model.Resources,
                unavailability: dict[str, Any] | None = None) -> dict[str, Any]:
    """One v1 ``Offer``; ``unavailability`` (``{"start": {"nanoseconds"}, "duration"?: {...}}``) while the
    agent's machine is in the maintenance schedule, as ``Master::offer`` sets ``Offer.unavailability``."""
    offer: dict[str, Any] = {
        "id": {"value": offer_id}, "framework_id": {"value": framework_id}, "agent_id": {"value": agent.id},
        "hostname": agent.hostname,
        "url": {"scheme": "http", "address": {"hostname": agent.hostname, "ip": agent.ip, "port": agent.port},
                "path": "/slave(1)"},
        "resources": model.to_v1(resources), "attributes": model.attributes_v1(agent.attributes)}
    if unavailability is not None:
        offer["unavailability"] = unavailability
    return {"type": "OFFERS", "offers": {"offers": [offer]}}


def update_event(task: Task, state: str, message: str, source: str, timestamp: float,
                 status_uuid: str) -> dict[str, Any]:
    status: dict[str, Any] = {"task_id": {"value": task.id}, "state": state, "source": source,
                              "agent_id": {"value": task.agent_id}, "timestamp": timestamp}
    if message:
        status["message"] = message
    if source == "SOURCE_EXECUTOR":
        status["executor_id"] = {"value": task.id}
        status["uuid"] = status_uuid  # only updates that need an acknowledgement carry one
    return {"type": "UPDATE", "update": {"status": status}}
