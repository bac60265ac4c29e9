"""The stand-in master's operator side: state, ``/master/slaves``, ``/metrics/snapshot``, maintenance, ``/api/v1``.

Shapes and messages from apache/mesos 1.11.0 (rules MB4-MB10 in STARTUP-RULES.md, "Mesos behaviour"):
``src/master/http.cpp`` (``maintenanceSchedule``, ``maintenanceStatus``, ``machineDown``, ``machineUp``, ``api``,
``drainAgent``), ``src/master/readonly_handler.cpp`` (``/state``, ``/slaves``: the agent model of
``src/common/http.cpp``), ``src/master/metrics.cpp`` (metric names) and ``include/mesos/v1/master/master.proto``
(v1 responses). Only the fields users and this project read are given, with the real names.
``DRAIN_AGENT``, ``DEACTIVATE_AGENT`` and ``REACTIVATE_AGENT`` exist from 1.9 (``Master::Http::drainAgent``,
``deactivateAgent``, ``reactivateAgent``); on ``--mesos-version 1.4`` the JSON → protobuf conversion fails as it
would on 1.4.3, whose ``master.proto`` has no such enum values.
"""

from __future__ import annotations

import json
import time
from typing import Any

from standins import mesos_model as model
from standins.common import Response
from standins.mesos_cluster import Agent, Cluster, Framework
from standins.mesos_http import Request, json_text
from standins.mesos_maintenance import MaintenanceError, parse_machines, parse_schedule
from standins.mesos_scheduler_api import APPLICATION_JSON, APPLICATION_PROTOBUF, accepts, parse_call

_OPERATOR_CALLS_1_4 = {"GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_STATE", "GET_AGENTS",
                       "GET_FRAMEWORKS", "GET_TASKS", "GET_MAINTENANCE_STATUS", "GET_MAINTENANCE_SCHEDULE",
                       "UPDATE_MAINTENANCE_SCHEDULE", "START_MAINTENANCE", "STOP_MAINTENANCE", "GET_MASTER",
                       "SUBSCRIBE", "GET_ROLES", "GET_WEIGHTS", "GET_QUOTA"}
_OPERATOR_CALLS_1_11 = _OPERATOR_CALLS_1_4 | {"DRAIN_AGENT", "DEACTIVATE_AGENT", "REACTIVATE_AGENT",
                                               "MARK_AGENT_GONE", "GET_OPERATIONS"}
_NEEDS = {"UPDATE_MAINTENANCE_SCHEDULE": "update_maintenance_schedule", "START_MAINTENANCE": "start_maintenance",
          "STOP_MAINTENANCE": "stop_maintenance", "DRAIN_AGENT": "drain_agent",
          "DEACTIVATE_AGENT": "deactivate_agent", "REACTIVATE_AGENT": "reactivate_agent"}


def _compact(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode())


def agent_json(cluster: Cluster, agent: Agent) -> dict[str, Any]:
    """One entry of ``slaves[]`` (``src/common/http.cpp`` / ``readonly_handler.cpp`` ``SlaveWriter``)."""
    entry = {"id": agent.id, "hostname": agent.hostname, "port": agent.port, "pid": agent.pid,
             "active": agent.active, "deactivated": agent.id in cluster.deactivated, "version": agent.version,
             "registered_time": agent.registered_time, "resources": model.state_resources(agent.resources),
             "used_resources": model.state_resources(cluster.used(agent.id)),
             "offered_resources": model.state_resources(cluster.offered(agent.id)),
             "unreserved_resources": model.state_resources(agent.resources), "attributes": dict(agent.attributes)}
    if agent.id in cluster.drains:
        entry["drain_info"] = cluster.drains[agent.id]
    return entry


def framework_json(framework: Framework, active: bool) -> dict[str, Any]:
    used: model.Resources = {}
    for task in framework.tasks.values():
        used = model.add(used, task.resources)
    offered: model.Resources = {}
    for _, resources in framework.offers.values():
        offered = model.add(offered, resources)
    return {"id": framework.id, "name": framework.name, "active": active, "connected": active,
            "used_resources": model.state_resources(used), "offered_resources": model.state_resources(offered),
            "resources": model.state_resources(model.add(used, offered)),
            "user": framework.info.get("user", ""), "roles": framework.info.get("roles", ["*"]),
            "capabilities": framework.info.get("capabilities", []),
            "tasks": [t.to_json() for t in framework.tasks.values()],
            "completed_tasks": [t.to_json() for t in framework.completed],
            "offers": [{"id": oid, "slave_id": agent_id, "framework_id": framework.id,
                        "resources": model.state_resources(res)}
                       for oid, (agent_id, res) in framework.offers.items()]}


def state_json(cluster: Cluster) -> dict[str, Any]:
    with cluster.lock:
        return {"slaves": [agent_json(cluster, a) for a in cluster.agents.values()],
                "frameworks": [framework_json(f, f.active) for f in cluster.frameworks.values()],
                "completed_frameworks": [framework_json(f, False) for f in cluster.completed_frameworks],
                "activated_slaves": sum(1 for a in cluster.agents.values() if a.active),
                "deactivated_slaves": sum(1 for a in cluster.agents.values() if a.id in cluster.deactivated),
                "unreachable_slaves": cluster.counts.get("slaves_unreachable", 0)}


def metrics_json(cluster: Cluster, elected: bool) -> dict[str, float]:
    """``/metrics/snapshot`` with the names of ``src/master/metrics.cpp`` (``master/<resource>_total`` and
    ``_used`` are registered in ``Metrics::Metrics`` for cpus, gpus, mem and disk)."""
    if not elected:
        return {"master/elected": 0.0}
    with cluster.lock:
        total: model.Resources = {}
        used: model.Resources = {}
        for agent in cluster.agents.values():
            total = model.add(total, model.scalars(agent.resources))
            used = model.add(used, cluster.used(agent.id))
        tasks = [t for f in cluster.frameworks.values() for t in f.tasks.values()]
        metrics = {"master/elected": 1.0, "master/uptime_secs": time.time() - cluster.started,
                   "master/slaves_active": float(sum(1 for a in cluster.agents.values() if a.active)),
                   "master/slaves_inactive": float(sum(1 for a in cluster.agents.values() if not a.active)),
                   "master/slaves_connected": float(len(cluster.agents)),
                   "master/slaves_disconnected": 0.0,
                   "master/slaves_unreachable": float(cluster.counts.get("slaves_unreachable", 0)),
                   "master/slave_removals": float(cluster.counts.get("slave_removals", 0)),
                   "master/frameworks_active": float(sum(1 for f in cluster.frameworks.values() if f.active)),
                   "master/frameworks_inactive": float(sum(1 for f in cluster.frameworks.values() if not f.active)),
                   "master/frameworks_connected": float(sum(1 for f in cluster.frameworks.values() if f.active)),
                   "master/outstanding_offers": float(sum(len(f.offers) for f in cluster.frameworks.values())),
                   "master/tasks_running": float(sum(1 for t in tasks if t.state == "TASK_RUNNING")),
                   "master/tasks_staging": float(sum(1 for t in tasks if t.state == "TASK_STAGING")),
                   "master/tasks_starting": float(sum(1 for t in tasks if t.state == "TASK_STARTING")),
                   "master/tasks_killing": float(sum(1 for t in tasks if t.state == "TASK_KILLING"))}
        for state in ("finished", "failed", "killed", "lost", "error", "dropped", "unreachable", "gone",
                      "gone_by_operator"):
            metrics[f"master/tasks_{state}"] = float(cluster.counts.get(state, 0))
        for ack in ("valid_status_update_acknowledgements", "invalid_status_update_acknowledgements"):
            metrics[f"master/{ack}"] = float(cluster.counts.get(ack, 0))  # ``Master::acknowledge`` counts them
        for resource in ("cpus", "gpus", "mem", "disk"):
            metrics[f"master/{resource}_total"] = total.get(resource, 0.0)
            metrics[f"master/{resource}_used"] = used.get(resource, 0.0)
            share = used.get(resource, 0.0) / total[resource] if total.get(resource) else 0.0
            metrics[f"master/{resource}_percent"] = share
        return metrics


class OperatorApi:
    def __init__(self, cluster: Cluster, version: str) -> None:
        self.cluster, self.version = cluster, version

    # The /master/... endpoints ----------------------------------------------------------------------------

    def schedule(self, request: Request) -> Response:
        if request.method == "GET":
            with self.cluster.lock:
                return _compact(self.cluster.maintenance.schedule_json())
        if request.method != "POST":
            return Response(405, b"", "text/plain", (("Allow", "GET, POST"),))
        try:
            body = request.json()
        except ValueError as exc:
            return json_text(400, str(exc))
        return self._update_schedule(body)

    def _update_schedule(self, body: Any) -> Response:
        try:
            windows = parse_schedule(body)
            with self.cluster.lock:
                self.cluster.maintenance.update(windows)
                self.cluster.saved()
                self.cluster.rescind_all()
        except MaintenanceError as exc:
            return json_text(400, str(exc))
        return Response(200, b"", "text/plain")

    def status(self, request: Request) -> Response:
        if request.method != "GET":
            return Response(405, b"", "text/plain", (("Allow", "GET"),))
        with self.cluster.lock:
            return _compact(self.cluster.maintenance.status_json())

    def machines(self, request: Request, down: bool) -> Response:
        if request.method != "POST":
            return Response(405, b"", "text/plain", (("Allow", "POST"),))
        try:
            body = request.json()
        except ValueError as exc:
            return json_text(400, str(exc))
        if not isinstance(body, list):
            return json_text(400, "Expecting a JSON array")
        return self._machines(body, down)

    def _machines(self, ids: Any, down: bool) -> Response:
        try:
            machines = parse_machines(ids)
            with self.cluster.lock:
                if down:
                    self.cluster.machine_down(machines)
                else:
                    self.cluster.maintenance.up(machines)
                self.cluster.saved()
        except MaintenanceError as exc:
            return json_text(400, str(exc))
        return Response(200, b"", "text/plain")

    def frameworks(self) -> Response:
        """``/master/frameworks`` (``readonly_handler.cpp`` ``frameworks``): the same entries as the state's."""
        with self.cluster.lock:
            state = state_json(self.cluster)
        return _compact({"frameworks": state["frameworks"], "completed_frameworks": state["completed_frameworks"],
                         "unregistered_frameworks": []})

    def slaves(self) -> Response:
        with self.cluster.lock:
            return _compact({"slaves": [agent_json(self.cluster, a) for a in self.cluster.agents.values()],
                             "recovered_slaves": []})

    # POST /api/v1 ---------------------------------------------------------------------------------------------

    def api(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, b"", "text/plain", (("Allow", "POST"),))
        call = parse_call(request)
        if isinstance(call, Response):
            return call
        kind = call.get("type")
        known = _OPERATOR_CALLS_1_11 if self.version == "1.11" else _OPERATOR_CALLS_1_4
        if kind is not None and kind not in known:
            return json_text(400, f"Failed to convert JSON into Call protobuf: Failed to find enum for '{kind}'")
        if kind is None:
            return json_text(400, "Failed to validate master::Call: Expecting 'type' to be present")
        needed = _NEEDS.get(str(kind))
        if needed and not isinstance(call.get(needed), dict):
            return json_text(400, f"Failed to validate master::Call: Expecting '{needed}' to be present")
        if not accepts(request, APPLICATION_JSON):
            return json_text(406, f"Expecting 'Accept' to allow '{APPLICATION_PROTOBUF}' or '{APPLICATION_JSON}'")
        return self._call(str(kind), call)

    def _call(self, kind: str, call: dict[str, Any]) -> Response:
        cluster = self.cluster
        if kind == "GET_AGENTS":
            with cluster.lock:
                agents = [self._v1_agent(a) for a in cluster.agents.values()]
            return _compact({"type": kind, "get_agents": {"agents": agents, "recovered_agents": []}})
        if kind == "GET_MAINTENANCE_STATUS":
            with cluster.lock:
                status = cluster.maintenance.status_json()
            return _compact({"type": kind, "get_maintenance_status": {"status": status}})
        if kind == "GET_MAINTENANCE_SCHEDULE":
            with cluster.lock:
                schedule = cluster.maintenance.schedule_json()
            return _compact({"type": kind, "get_maintenance_schedule": {"schedule": schedule}})
        if kind == "UPDATE_MAINTENANCE_SCHEDULE":
            return self._update_schedule(call["update_maintenance_schedule"].get("schedule", {}))
        if kind in ("START_MAINTENANCE", "STOP_MAINTENANCE"):
            body = call[kind.lower()].get("machines", [])
            return self._machines(body, kind == "START_MAINTENANCE")
        if kind == "DRAIN_AGENT":
            return self._drain(call["drain_agent"])
        if kind in ("DEACTIVATE_AGENT", "REACTIVATE_AGENT"):
            return self._activation(kind, call[kind.lower()])
        return Response(501, b"", "text/plain")  # the stand-in answers only the calls above

    def _drain(self, drain: dict[str, Any]) -> Response:
        agent_id = str((drain.get("agent_id") or {}).get("value", ""))
        grace = drain.get("max_grace_period")
        grace_ns = int(grace["nanoseconds"]) if isinstance(grace, dict) and "nanoseconds" in grace else None
        with self.cluster.lock:
            agent = self.cluster.agents.get(agent_id)
            if agent is None:
                return json_text(400, "Unknown agent")
            window = self.cluster.maintenance.window_of(agent.machine)
            if window is not None:
                return json_text(400, f"Agent {agent_id} is part of a maintenance schedule under Machine "
                                      f"{model.machine_text(*agent.machine)}")
            self.cluster.drain_agent(agent, grace_ns, bool(drain.get("mark_gone", False)))
        return Response(200, b"", "text/plain")

    def _activation(self, kind: str, body: dict[str, Any]) -> Response:
        """``_deactivateAgent`` (a registered, recovered or unreachable agent, else "Unknown agent") and
        ``_reactivateAgent`` (only a deactivated agent that is not still DRAINING)."""
        agent_id = body.get("agent_id")
        if not isinstance(agent_id, dict) or not isinstance(agent_id.get("value"), str):
            field = "agent_id" if not isinstance(agent_id, dict) else "agent_id.value"
            return json_text(400, "Failed to convert JSON into Call protobuf: Missing required fields: "
                                  f"{kind.lower()}.{field}")  # stout ``protobuf::parse``, a required field
        with self.cluster.lock:
            known = agent_id["value"] in self.cluster.agents
            if kind == "DEACTIVATE_AGENT":
                if not known:  # the stand-in does not keep unreachable agents
                    return json_text(400, "Unknown agent")
                self.cluster.deactivate_agent(agent_id["value"])
                return Response(200, b"", "text/plain")
            error = self.cluster.reactivate_agent(agent_id["value"])
        if error is not None:
            return json_text(400, error)
        if not known:
            return json_text(409, "Agent removed while processing the call")
        return Response(200, b"", "text/plain")

    def _v1_agent(self, agent: Agent) -> dict[str, Any]:
        info = {"id": {"value": agent.id}, "hostname": agent.hostname, "port": agent.port,
                "resources": model.to_v1(agent.resources), "attributes": model.attributes_v1(agent.attributes)}
        entry: dict[str, Any] = {
            "agent_info": info, "active": agent.active, "deactivated": agent.id in self.cluster.deactivated,
            "pid": agent.pid,
            "version": agent.version, "registered_time": {"nanoseconds": int(agent.registered_time * 1e9)},
            "total_resources": model.to_v1(agent.resources),
            "allocated_resources": model.to_v1(self.cluster.used(agent.id)),
            "offered_resources": model.to_v1(self.cluster.offered(agent.id))}
        if agent.id in self.cluster.drains:
            entry["drain_info"] = self.cluster.drains[agent.id]
        return entry
