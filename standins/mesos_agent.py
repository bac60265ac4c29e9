"""The stand-in agent at run time: finding the leading master, registering, pinging, running tasks.

The agent finds the leader as the real one does with ``--master=zk://...``: the member of the ZooKeeper group
with the lowest ``json.info_`` sequence number, its MasterInfo as JSON (apache/mesos 1.11.0
``src/master/detector/zookeeper.cpp``, ``src/master/constants.hpp``); with ``--master=host:port`` that master.
It registers with its hostname, ip, port, resources (``--resources`` on top of the machine's cpus and memory,
``Containerizer::resources``) and attributes, re-registers with its live tasks whenever the leader changes or
forgets it (``Slave::detected``, ``Slave::doReliableRegistration``), and pings the leader every 0.5 s (the
stand-in's interval; the real master pings agents every ``--agent_ping_timeout``). A shutdown from the master
("Machine is `DOWN`", "Operator initiated 'Machine DOWN'") kills its tasks and ends the process with 0, as
``Slave::shutdown`` does, and the next start is a new agent. SIGTERM leaves the tasks running: a restarted agent
recovers them and re-registers with its old id (``--recover=reconnect``; ``mesos_agent_tasks.py``).

Status updates are reliable (MB11): the agent sends each task's oldest unacknowledged update to the leader and
re-sends it every ``STATUS_UPDATE_RETRY`` seconds until the framework's ACKNOWLEDGE comes back
(``POST /standin/acknowledge`` from the master), and re-registers with its terminated-but-unacknowledged tasks.

The agent ↔ master calls are the stand-in protocol of ``mesos_master.py``.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from standins.common import Response, Route, json_response, log_event
from standins.mesos_agent_tasks import TaskRunner
from standins.mesos_http import ApiHTTPServer, Request, Stream, json_text
from standins.mesos_master import ZK_DEADLINE, post_json
from standins.mesos_model import machine_resources
from standins.mesos_webui import MASTER_INFO_LABEL, parse_zk

PING_INTERVAL = 0.5
# The real agent retries an unacknowledged update after 10 s, doubling up to 10 min
# (``STATUS_UPDATE_RETRY_INTERVAL_MIN``/``_MAX``, src/slave/constants.hpp). The stand-in, whose times are all short
# so tests run fast (``PING_INTERVAL``), retries every 2 s without backoff.
STATUS_UPDATE_RETRY = 2.0


def _own_ip(hostname: str) -> str:
    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return "127.0.0.1"


class LeaderDetector:
    """The leading master's ``(id, "ip:port")`` from ZooKeeper, or the fixed ``--master=host:port``."""

    def __init__(self, master: str) -> None:
        self.fixed: str | None = None
        self.client: Any = None
        if not master.startswith("zk://"):
            self.fixed = master
            return
        from kazoo.client import KazooClient

        logging.getLogger("kazoo").addHandler(logging.NullHandler())
        logging.getLogger("kazoo").propagate = False
        hosts, auth, self.path = parse_zk(master)
        self.client = KazooClient(hosts=hosts, timeout=10.0, auth_data=[("digest", auth)] if auth else None,
                                  connection_retry={"max_tries": -1, "max_delay": 2.0})
        self.client.start_async()

    def leader(self) -> tuple[str, str] | None:
        if self.fixed is not None:
            return (self.fixed, self.fixed)
        try:
            if not self.client.connected:  # every call below has a deadline: kazoo queues them while suspended
                return None
            children = self.client.get_children_async(self.path).get(timeout=ZK_DEADLINE)
            members = sorted((c for c in children if c.startswith(MASTER_INFO_LABEL)),
                             key=lambda c: int(c.rsplit("_", 1)[1]))
            if not members:
                return None
            info = json.loads(self.client.get_async(f"{self.path}/{members[0]}").get(timeout=ZK_DEADLINE)[0])
        except Exception:  # lost session, a member gone between the two reads: look again next round
            return None
        address = info.get("address") or {}
        return (str(info["id"]), f"{address.get('ip') or info['hostname']}:{info['port']}")

    def close(self) -> None:
        if self.client is not None:
            closer = threading.Thread(target=lambda: (self.client.stop(), self.client.close()), daemon=True)
            closer.start()
            closer.join(0.5)


class AgentRuntime:
    def __init__(self, version: str, flags: Mapping[str, str], hostname: str, listen: str,
                 routes: dict[str, Route], stop: threading.Event) -> None:
        self.version, self.hostname, self.stop_event = f"{version}.0", hostname, stop
        ip, _, port = listen.rpartition(":")
        self.ip = flags.get("advertise_ip") or (ip if ip not in ("0.0.0.0", "[::]") else _own_ip(hostname))
        self.port = int(port)
        self.base_state = routes["/state"]  # flags, version and the parsed --resources/--attributes
        base = json.loads(self.base_state().body)
        self.resources = machine_resources(base["resources"])
        self.attributes = dict(base["attributes"])
        routes["/state"] = routes["/slave(1)/state"] = self._state
        self.master: tuple[str, str] | None = None  # (master id, ip:port) registered with
        self.detector = LeaderDetector(flags["master"])
        self.tasks = TaskRunner(flags["work_dir"], self._queue_status)
        self.agent_id = self.tasks.recover()
        if self.agent_id:
            log_event("agent_recovered", agent_id=self.agent_id, tasks=len(self.tasks.live()))
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._unreachable = False
        threading.Thread(target=self._loop, daemon=True, name="agent-master").start()

    def attach(self, server: ApiHTTPServer) -> None:
        server.api_route = self.api_route

    def _state(self) -> Response:
        state = {**json.loads(self.base_state().body), "id": self.agent_id, "hostname": self.hostname,
                 "pid": f"slave(1)@{self.ip}:{self.port}",
                 "version": self.version, "resources": self.resources, "attributes": self.attributes,
                 "master_hostname": self.master[1].rsplit(":", 1)[0] if self.master else None, "standin": True,
                 **self.tasks.state_json()}
        return json_response(state)

    def close(self) -> None:
        """SIGTERM: leave the tasks running (a restarted agent recovers them), leave ZooKeeper."""
        self._stopped.set()
        self._wake.set()
        self.tasks.save()
        self.detector.close()

    # Master → agent -------------------------------------------------------------------------------------------

    def api_route(self, request: Request) -> Response | Stream | None:
        if not request.path.startswith("/standin/") or request.method != "POST":
            return None
        try:
            body = request.json()
        except ValueError as exc:
            return json_text(400, str(exc))
        if request.path == "/standin/launch":
            self.tasks.launch(self.agent_id, str(body["framework_id"]), str(body.get("framework_name", "")),
                              body["task"])
        elif request.path == "/standin/kill":
            grace = body.get("grace_seconds")
            self.tasks.kill(str(body["framework_id"]), str(body["task_id"]),
                            float(grace) if isinstance(grace, int | float) else None)
        elif request.path == "/standin/acknowledge":
            if self.tasks.acknowledge(str(body["framework_id"]), str(body["task_id"]), str(body["uuid"])):
                self._wake.set()  # the task's next update, if any, is due
            else:
                log_event("agent_unexpected_acknowledgement", framework_id=body["framework_id"],
                          task_id=body["task_id"], uuid=body["uuid"])
        elif request.path == "/standin/shutdown_framework":
            self.tasks.shutdown_framework(str(body["framework_id"]))
        elif request.path == "/standin/shutdown":
            threading.Thread(target=self._shutdown, args=(str(body.get("message", "")),), daemon=True).start()
        else:
            return Response(404, b"", "text/plain")
        return json_response({"ok": True}, 202)

    def _shutdown(self, message: str) -> None:
        log_event("agent_shutdown", agent_id=self.agent_id, message=message)
        self._stopped.set()
        self.tasks.kill_all()
        self.tasks.forget()
        self.stop_event.set()  # the process ends with 0, as the real agent after a ShutdownMessage

    # Agent → master -------------------------------------------------------------------------------------------

    def _queue_status(self, update: dict[str, Any]) -> None:
        self._wake.set()  # the task runner queued it: send it now

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(PING_INTERVAL)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self._round()
                self._unreachable = False
            except (OSError, http.client.HTTPException, ValueError) as exc:  # the leader went away mid-call (or
                # answered half): find it again next round; the loop never ends on one bad round
                if not self._unreachable:  # once per outage, not every round
                    log_event("agent_master_unreachable", error=f"{type(exc).__name__}: {exc}")
                self._unreachable, self.master = True, None

    def _round(self) -> None:
        leader = self.detector.leader()
        if leader is None:
            return
        if leader != self.master:
            self._register(leader)
            return
        status, _ = post_json(f"http://{leader[1]}/standin/agent/ping", {"agent_id": self.agent_id})
        if status != 200:
            self._register(leader)
            return
        self._flush(leader)

    def _register(self, leader: tuple[str, str]) -> None:
        info = {"id": self.agent_id, "hostname": self.hostname, "ip": self.ip, "port": self.port,
                "resources": self.resources, "attributes": self.attributes, "version": self.version}
        status, body = post_json(f"http://{leader[1]}/standin/agent/register",
                                 {"agent": info, "tasks": self.tasks.for_reregistration()})
        if status == 403 and isinstance(body, dict):
            self._shutdown(str(body.get("shutdown", "")))
            return
        if status != 200 or not isinstance(body, dict):
            return
        if self.agent_id and self.agent_id != body["agent_id"]:
            log_event("agent_id_changed", old=self.agent_id, new=body["agent_id"])
        if body["agent_id"] != self.tasks.agent_id:
            self.tasks.set_agent_id(str(body["agent_id"]))
        self.agent_id, self.master = str(body["agent_id"]), leader
        log_event("agent_registered", agent_id=self.agent_id, master=leader[1])
        self.tasks.resend_all()
        self._flush(leader)

    def _flush(self, leader: tuple[str, str]) -> None:
        """Send every update that is due; each stays queued until the framework acknowledges it."""
        for update in self.tasks.due(time.monotonic(), STATUS_UPDATE_RETRY):
            status, _ = post_json(f"http://{leader[1]}/standin/agent/status",
                                  {"agent_id": self.agent_id, "task": update})
            if status != 200:
                self.master = None  # forgotten: re-register first, then resend
                self.tasks.resend_all()
                return
