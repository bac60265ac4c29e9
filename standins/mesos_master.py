"""The stand-in master at run time: leadership, the allocation/timeout loop, the routes, talking to agents.

Only the leading master holds a cluster view; a master that becomes leader starts empty and learns its agents
(and through their tasks, the frameworks) when they re-register, as a real master after failover
(apache/mesos 1.11.0 ``src/master/master.cpp`` ``Master::_recover``, ``reregisterSlave``). The maintenance
schedule and machine modes, the deactivated agents and the drains outlive a failover because the real master keeps
them in its registry (the replicated log, ``src/master/registrar.cpp``); the stand-in keeps them in ZooKeeper at
``<zk path>/standin_registry`` (without ``--zk``: ``<work_dir>/standin-registry.json``). A master that loses
leadership drops its view (a real one aborts and is restarted by its supervisor).

Agents and master talk through a stand-in protocol (not libprocess messages), JSON over HTTP:
agent → leader ``POST /standin/agent/register|ping|status``; leader → agent
``POST /standin/launch|kill|acknowledge|shutdown_framework|shutdown``.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from standins.common import Response, Route, json_response, log_event
from standins.mesos_cluster import Agent, Cluster, Refused
from standins.mesos_http import ApiHTTPServer, Request, Stream, json_text
from standins.mesos_maintenance import Maintenance
from standins.mesos_model import parse_duration
from standins.mesos_operator_api import OperatorApi, metrics_json, state_json
from standins.mesos_scheduler_api import SchedulerApi
from standins.mesos_webui import Election, MasterWebUI, master_info

REGISTRY_NODE = "standin_registry"
ZK_DEADLINE = 5.0
_SCHEDULER_PATHS = frozenset({"/api/v1/scheduler", "/master/api/v1/scheduler"})
_OPERATOR_PATHS = frozenset({"/api/v1", "/master/api/v1"})
_LEADER_PATHS = frozenset({"/master/maintenance/schedule", "/maintenance/schedule", "/master/maintenance/status",
                           "/maintenance/status", "/master/machine/down", "/machine/down", "/master/machine/up",
                           "/machine/up", "/master/slaves", "/slaves", "/master/frameworks", "/frameworks"})
_LEADER_PATHS |= _SCHEDULER_PATHS | _OPERATOR_PATHS


def post_json(url: str, payload: Any, timeout: float = 2.0) -> tuple[int, Any]:
    """One JSON POST; (status, parsed body or None). Connection failures raise ``OSError``."""
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body) if body else None
        except ValueError:
            return exc.code, body.decode(errors="replace")


class MasterRuntime:
    def __init__(self, version: str, flags: Mapping[str, str], hostname: str, listen: str,
                 routes: dict[str, Route]) -> None:
        self.version, self.flags = version, flags
        self.info = master_info(f"{version}.0", hostname, listen, f"master@{listen}")
        self.election = Election(flags["zk"], self.info).start() if "zk" in flags else None
        self.ping_timeout = parse_duration("agent_ping_timeout", flags.get("agent_ping_timeout", "15secs"))
        self.max_pings = int(flags.get("max_agent_ping_timeouts", "5"))
        # One ordered outbox per agent address, each with its own sender: a gone agent's sends wait out their
        # timeout without holding up another agent's (libprocess sends to each peer on its own link).
        self._outboxes: dict[str, queue.Queue[tuple[str, str, dict[str, Any]] | None]] = {}
        self._outboxes_lock = threading.Lock()
        self.cluster = self._new_cluster()
        self.scheduler = SchedulerApi(self.cluster, lambda: self.info)
        self.operator = OperatorApi(self.cluster, version)
        self.base_state = routes["/state"]
        routes["/state"] = self._state_base
        self.web = MasterWebUI(version, self.info, routes["/state"], self.election)
        routes.update(self.web.routes())
        routes["/metrics/snapshot"] = lambda: Response(
            200, json.dumps(metrics_json(self.cluster, self.web.leads()), separators=(",", ":")).encode())
        self._leading = False
        self._stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def attach(self, server: ApiHTTPServer) -> None:
        server.request_route = self.web.request_route
        server.api_route = self.api_route

    def close(self) -> None:
        self._stop.set()
        with self._outboxes_lock:
            for outbox in self._outboxes.values():
                outbox.put(None)
        if self.election is not None:
            self.election.close()

    def _new_cluster(self) -> Cluster:
        cluster = Cluster(str(self.info["id"]), self._send_agent, self.ping_timeout, self.max_pings)
        cluster.on_saved = lambda: self._save_registry(cluster)
        return cluster

    def _state_base(self) -> Response:
        state: dict[str, Any] = json.loads(self.base_state().body)
        if self.web.leads():
            state.update(state_json(self.cluster))
        return json_response(state)

    # Leadership and the periodic work -------------------------------------------------------------------------

    def _loop(self) -> None:
        last_heartbeat = time.monotonic()
        while not self._stop.wait(0.2):
            leads = self.web.leads()
            if leads != self._leading:
                self._leading = leads
                self._reset(leads)
            if not leads:
                continue
            now = time.time()
            for agent_id in self.cluster.check_agents(now):
                log_event("agent_unreachable", agent_id=agent_id, timeout=self.ping_timeout * self.max_pings)
            self.cluster.allocate(now)
            if time.monotonic() - last_heartbeat >= 15.0:
                last_heartbeat = time.monotonic()
                with self.cluster.lock:
                    for framework in self.cluster.frameworks.values():
                        if framework.stream is not None:
                            framework.stream.send_event({"type": "HEARTBEAT"})

    def _reset(self, leads: bool) -> None:
        old = self.cluster
        with old.lock:
            for framework in old.frameworks.values():
                if framework.stream is not None:
                    framework.stream.close()
        cluster = self._new_cluster()
        if leads:
            self._load_registry(cluster)
        self.cluster = self.scheduler.cluster = self.operator.cluster = cluster
        log_event("master_leading" if leads else "master_not_leading", id=self.info["id"])

    def _registry_file(self) -> Path:
        return Path(self.flags["work_dir"]) / "standin-registry.json"

    def _save_registry(self, cluster: Cluster) -> None:
        """The registry stand-in: the maintenance schedule and modes, the deactivated agents and the drains
        (``Registry`` in ``src/master/registry.proto``: ``machines``, ``slaves[].deactivated``, ``drain_info``)."""
        registry = {**cluster.maintenance.to_json(), "deactivated": sorted(cluster.deactivated),
                    "drains": cluster.drains}
        data = json.dumps(registry).encode()
        if self.election is None:
            path = self._registry_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        client, node = self.election.client, f"{self.election.path}/{REGISTRY_NODE}"
        try:  # every call with a deadline: kazoo queues requests while the session is suspended
            if client.exists_async(node).get(timeout=ZK_DEADLINE):
                client.set_async(node, data).get(timeout=ZK_DEADLINE)
            else:
                client.create_async(node, data, makepath=True).get(timeout=ZK_DEADLINE)
        except Exception as exc:  # the real master aborts when its registrar fails; the stand-in says so and goes on
            log_event("registry_write_failed", error=f"{type(exc).__name__}: {exc}")

    def _load_registry(self, cluster: Cluster) -> None:
        try:
            if self.election is None:
                path = self._registry_file()
                data = path.read_bytes() if path.exists() else b""
            else:
                node, client = f"{self.election.path}/{REGISTRY_NODE}", self.election.client
                exists = client.exists_async(node).get(timeout=ZK_DEADLINE)
                data = client.get_async(node).get(timeout=ZK_DEADLINE)[0] if exists else b""
            registry = json.loads(data) if data else {}
            cluster.maintenance = Maintenance.from_json(registry)
            cluster.deactivated = {str(a) for a in registry.get("deactivated", [])}
            cluster.drains = {str(k): v for k, v in registry.get("drains", {}).items()}
        except Exception as exc:  # an unreadable registry: start without maintenance, say so
            log_event("registry_unreadable", error=str(exc))

    # Talking to agents ----------------------------------------------------------------------------------------

    def _send_agent(self, agent: Agent, path: str, payload: dict[str, Any]) -> None:
        address = f"{agent.ip}:{agent.port}"
        with self._outboxes_lock:
            outbox = self._outboxes.get(address)
            if outbox is None:
                outbox = self._outboxes[address] = queue.Queue()
                threading.Thread(target=self._send_loop, args=(outbox,), daemon=True).start()
        outbox.put((f"http://{address}{path}", agent.id, payload))

    def _send_loop(self, outbox: queue.Queue[tuple[str, str, dict[str, Any]] | None]) -> None:
        while (item := outbox.get()) is not None:
            url, agent_id, payload = item
            try:
                post_json(url, payload)
            except (OSError, http.client.HTTPException, ValueError) as exc:  # the agent is gone (its pings stop
                # and the timeout removes it) or answered half: this sender goes on with the next message
                log_event("agent_unreachable_send", agent_id=agent_id, url=url, error=f"{type(exc).__name__}: {exc}")

    # Routes ---------------------------------------------------------------------------------------------------

    def api_route(self, request: Request) -> Response | Stream | None:
        path = request.path
        if path.startswith("/standin/agent/"):
            return self._agent_call(request)
        if path not in _LEADER_PATHS:
            return None
        if not self.web.leads():
            return self._redirect(request)
        if path in _SCHEDULER_PATHS:
            return self.scheduler.handle(request)
        if path in _OPERATOR_PATHS:
            return self.operator.api(request)
        if path.endswith("/maintenance/schedule"):
            return self.operator.schedule(request)
        if path.endswith("/maintenance/status"):
            return self.operator.status(request)
        if path.endswith("/machine/down") or path.endswith("/machine/up"):
            return self.operator.machines(request, down=path.endswith("/down"))
        if path.endswith("/frameworks"):
            return self.operator.frameworks()
        return self.operator.slaves()

    def _redirect(self, request: Request) -> Response:
        """``Master::Http::redirect``: 307 to the same path on the leader, 503 while none is known."""
        leader = self.web.leader()
        if leader is None:
            return json_text(503, "No leader elected")
        query = "?" + "&".join(f"{k}={v}" for k, v in request.query.items()) if request.query else ""
        location = f"//{leader['hostname']}:{leader['port']}{request.path}{query}"
        return Response(307, b"", "text/plain", (("Location", location),))

    def _agent_call(self, request: Request) -> Response:
        if not self.web.leads():
            return self._redirect(request)
        try:
            body = request.json()
        except ValueError as exc:
            return json_text(400, str(exc))
        kind = request.path.rsplit("/", 1)[1]
        if kind == "register":
            try:
                agent_id = self.cluster.register_agent(body["agent"], body.get("tasks", []))
            except Refused as exc:
                log_event("agent_refused", hostname=body["agent"].get("hostname"), reason=str(exc))
                return Response(403, json.dumps({"shutdown": str(exc)}).encode())
            log_event("agent_registered", agent_id=agent_id, hostname=body["agent"].get("hostname"),
                      reregistered=bool(body["agent"].get("id")))
            return json_response({"agent_id": agent_id, "master_id": self.info["id"]})
        if kind == "ping":
            known = self.cluster.ping(str(body.get("agent_id", "")))
            return json_response({"ok": known}, 200 if known else 404)
        if kind == "status":
            known = self.cluster.status_update(str(body.get("agent_id", "")), body["task"])
            return json_response({"ok": known}, 200 if known else 404)
        return Response(404, b"", "text/plain")
