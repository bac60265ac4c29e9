"""A small real v1 scheduler client for tests: what a framework (Spark, Marathon) does through the master.

It speaks the v1 scheduler HTTP API (apache/mesos 1.11.0 ``docs/scheduler-http-api.md``) in JSON: ``SUBSCRIBE``
kept open as a RecordIO stream read by a background thread (``SUBSCRIBED``, ``OFFERS``, ``RESCIND``, ``UPDATE``,
``HEARTBEAT``, ``ERROR``), then ``ACCEPT`` with ``LAUNCH``, ``DECLINE``, ``KILL``, ``ACKNOWLEDGE`` and
``TEARDOWN`` as separate POSTs carrying ``Mesos-Stream-Id``. Every update with a ``uuid`` is acknowledged, as real
schedulers do (the agent re-sends it until then, STARTUP-RULES.md MB11); ``acknowledge=False`` makes a framework
that never acknowledges. It follows a non-leader's 307 to the leader, and counts a stream that carried nothing
for two heartbeat intervals as lost (``connected`` clears; ``follow_leader`` subscribes again). Used by
the Mesos stand-in's own tests and by the drain and autoscaler tests (issues 15, 16); the API is in
``docs/testing.md`` ("Mesos stand-in cluster").
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from .waiting import NotReached, wait_for

# A stream that carried nothing, not even a HEARTBEAT, for this many intervals is dead: a master that vanished
# (powered off with its network) sends no FIN, and a new master at the same address never heard of the connection.
# ``docs/scheduler-http-api.md`` ("HEARTBEAT"): the scheduler should then re-subscribe. 15 s is the master's
# ``DEFAULT_HEARTBEAT_INTERVAL`` (``src/master/constants.hpp``), used until SUBSCRIBED says otherwise.
MISSED_HEARTBEATS = 2
DEFAULT_HEARTBEAT_SECONDS = 15.0


class SchedulerError(RuntimeError):
    """The master refused a call; the message is its status and body."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class MesosFramework:
    """One framework. ``masters``: ``"ip:port"`` of any master, or several separated by commas."""

    def __init__(self, masters: str, name: str = "test-framework", *, user: str = "root",
                 partition_aware: bool = False, timeout: float = 10.0, acknowledge: bool = True) -> None:
        self.masters = [m.strip() for m in masters.split(",") if m.strip()]
        self.name, self.user, self.partition_aware, self.timeout = name, user, partition_aware, timeout
        self.acknowledge = acknowledge
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.leader: str | None = None
        self.updates: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._offers: dict[str, dict[str, Any]] = {}
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()
        self._response: http.client.HTTPResponse | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._ids = itertools.count()
        self.connected = threading.Event()

    def __enter__(self) -> Self:
        self.subscribe()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # Connection -------------------------------------------------------------------------------------------

    def subscribe(self, timeout: float | None = None) -> str:
        """SUBSCRIBE (again, with the same framework id, after a failover); returns the framework id."""
        self._drop_connection()
        info: dict[str, Any] = {"user": self.user, "name": self.name, "failover_timeout": 3600.0}
        if self.partition_aware:
            info["capabilities"] = [{"type": "PARTITION_AWARE"}]
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if self.framework_id is not None:
            info["id"] = {"value": self.framework_id}
            call["framework_id"] = {"value": self.framework_id}
        wait_for("a master that takes SUBSCRIBE", lambda: self._try_subscribe(call), timeout or self.timeout, 0.2)
        wait_for("SUBSCRIBED", self.connected.is_set, timeout or self.timeout)
        assert self.framework_id is not None
        return self.framework_id

    def follow_leader(self, timeout: float | None = None) -> bool:
        """SUBSCRIBE again (same framework id) when the stream ended because the leading master went away: the
        leader is looked for afresh among ``masters`` (a non-leader redirects). True when it subscribed again."""
        if self.connected.is_set():
            return False
        self.leader = None
        self.subscribe(timeout)
        return True

    def _try_subscribe(self, call: dict[str, Any]) -> bool:
        for address in [*([self.leader] if self.leader else []), *self.masters]:
            for _ in range(3):  # follow at most two redirects
                host, port = _split(address)
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
                try:
                    connection.request("POST", "/api/v1/scheduler", json.dumps(call),
                                       {"Content-Type": "application/json", "Accept": "application/json"})
                    response = connection.getresponse()
                except OSError:
                    connection.close()
                    break
                if response.status == 307:
                    address = response.getheader("Location", "").lstrip("/").split("/", 1)[0]
                    connection.close()
                    continue
                if response.status != 200:
                    connection.close()
                    break
                if connection.sock is not None:  # quiet for two heartbeats: lost (``MISSED_HEARTBEATS``)
                    connection.sock.settimeout(MISSED_HEARTBEATS * DEFAULT_HEARTBEAT_SECONDS)
                self.leader, self.stream_id = address, response.getheader("Mesos-Stream-Id")
                self._connection, self._response = connection, response
                self.connected.clear()
                threading.Thread(target=self._read, args=(response,), daemon=True, name="mesos-framework").start()
                return True
        return False

    def _read(self, response: http.client.HTTPResponse) -> None:
        try:
            while True:
                line = response.readline()
                if not line:
                    break
                event = json.loads(response.read(int(line.strip())))
                self._handle(event)
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # closed under us
            pass
        finally:
            if response is self._response:
                self.connected.clear()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        with self._lock:
            self.events.append(event)
            if kind == "SUBSCRIBED":
                self.framework_id = event["subscribed"]["framework_id"]["value"]
                interval = event["subscribed"].get("heartbeat_interval_seconds")
                if isinstance(interval, int | float) and self._connection is not None and self._connection.sock:
                    self._connection.sock.settimeout(MISSED_HEARTBEATS * max(float(interval), 1.0))
                self._offers.clear()
                self.connected.set()
            elif kind == "OFFERS":
                for offer in event["offers"].get("offers", []):
                    self._offers[offer["id"]["value"]] = offer
            elif kind == "RESCIND":
                self._offers.pop(event["rescind"]["offer_id"]["value"], None)
            elif kind == "UPDATE":
                status = event["update"]["status"]
                self.updates.append(status)
                self._states[status["task_id"]["value"]] = status["state"]
        if kind == "UPDATE" and self.acknowledge and "uuid" in event["update"]["status"]:
            status = event["update"]["status"]
            self._call({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"],
                                                              "task_id": status["task_id"], "uuid": status["uuid"]}},
                       check=False)

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._response = None
            # A master that vanished (powered off) sent no FIN: the reader thread blocks in readline holding the
            # response's buffer lock, so close() alone would wait for ever. shutdown() wakes it with EOF first.
            if self._connection.sock is not None:
                with contextlib.suppress(OSError):
                    self._connection.sock.shutdown(socket.SHUT_RDWR)
            self._connection.close()
            self._connection = None
        self.connected.clear()

    def _call(self, call: dict[str, Any], check: bool = True) -> None:
        if self.leader is None or self.framework_id is None or self.stream_id is None:
            raise SchedulerError("not subscribed")
        call["framework_id"] = {"value": self.framework_id}
        host, port = _split(self.leader)
        connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            connection.request("POST", "/api/v1/scheduler", json.dumps(call),
                               {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id})
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
        except OSError as exc:
            if check:
                raise SchedulerError(f"{call['type']}: {exc}") from None
            return
        finally:
            connection.close()
        if check and response.status != 202:
            raise SchedulerError(f"{call['type']}: {response.status} {body}")

    def close(self, teardown: bool = True) -> None:
        """TEARDOWN (the master kills the framework's tasks) unless ``teardown`` is false; then disconnect."""
        if teardown and self.connected.is_set():
            self._call({"type": "TEARDOWN"}, check=False)
        self._drop_connection()

    # Offers and tasks -------------------------------------------------------------------------------------

    @staticmethod
    def _matches(offer: dict[str, Any], hostname: str | None, ip: str | None) -> bool:
        return (hostname is None or offer["hostname"] == hostname) and (
            ip is None or offer["url"]["address"].get("ip") == ip)

    def offers(self, hostname: str | None = None, ip: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [o for o in self._offers.values() if self._matches(o, hostname, ip)]

    def wait_offer(self, hostname: str | None = None, ip: str | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        try:
            found: dict[str, Any] = wait_for(f"an offer for {hostname or ip or 'any agent'}",
                                             lambda: next(iter(self.offers(hostname, ip)), None),
                                             timeout or self.timeout)
        except NotReached as exc:
            raise NotReached(f"{exc}; {self._offer_picture()}") from None
        return found

    def _offer_picture(self) -> str:
        """Why no offer came, as the leading master sees it: each agent (active? what is used, what is offered and
        to whom) and each framework's outstanding offers."""
        if self.leader is None:
            return "no leading master known"
        try:
            with urllib.request.urlopen(f"http://{self.leader}/master/state", timeout=5) as answer:
                state = json.load(answer)
        except (OSError, ValueError) as exc:
            return f"the master's state unreadable: {exc}"
        holders: dict[str, list[str]] = {}
        for framework in state.get("frameworks", []):
            for offer in framework.get("offers", []):
                holders.setdefault(offer["slave_id"], []).append(
                    f"{framework['name']}{'' if framework.get('active') else ' (inactive)'}")
        agents = [f"{a['hostname']} active={a['active']} used={a['used_resources']} "
                  f"offered to {holders.get(a['id'], [])}" for a in state.get("slaves", [])]
        mine = [o["id"] for f in state.get("frameworks", []) if f["id"] == self.framework_id for o in f["offers"]]
        return (f"master {self.leader}: agents {agents}; offers the master counts as this framework's {mine}, "
                f"held here {sorted(self._offers)}")

    def decline(self, offer_ids: Iterable[str], refuse_seconds: float = 1.0) -> None:
        ids = list(offer_ids)
        with self._lock:
            for offer_id in ids:
                self._offers.pop(offer_id, None)
        self._call({"type": "DECLINE", "decline": {"offer_ids": [{"value": i} for i in ids],
                                                   "filters": {"refuse_seconds": refuse_seconds}}})

    def launch(self, command: str, hostname: str | None = None, ip: str | None = None, *, cpus: float = 0.1,
               mem: float = 32.0, task_id: str | None = None, timeout: float | None = None) -> str:
        """Launch ``sh -c command`` from an offer of the chosen agent; returns the task id."""
        offer = self.wait_offer(hostname, ip, timeout)
        task_id = task_id or f"{self.name}-{next(self._ids)}-{int(time.time() * 1000) % 100000}"
        task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                "command": {"value": command, "shell": True},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]}
        with self._lock:
            self._offers.pop(offer["id"]["value"], None)
        self._call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            "filters": {"refuse_seconds": 0.2}}})
        return task_id

    def launch_sleep(self, seconds: float, hostname: str | None = None, ip: str | None = None,
                     **kwargs: Any) -> str:
        return self.launch(f"sleep {seconds}", hostname, ip, **kwargs)

    def kill(self, task_id: str, agent_id: str | None = None) -> None:
        call: dict[str, Any] = {"type": "KILL", "kill": {"task_id": {"value": task_id}}}
        if agent_id is not None:
            call["kill"]["agent_id"] = {"value": agent_id}
        self._call(call)

    def state(self, task_id: str) -> str | None:
        with self._lock:
            return self._states.get(task_id)

    def states(self, task_id: str) -> list[str]:
        """Every state reported for the task, in order."""
        with self._lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    def wait_state(self, task_id: str, *states: str, timeout: float = 30.0) -> str:
        """Wait until the task's last reported state is one of ``states``; the failure names every state seen."""
        wanted = set(states)
        try:
            found: str = wait_for(f"task {task_id} in {sorted(wanted)}",
                                  lambda: self.state(task_id) if self.state(task_id) in wanted else None, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; states seen: {self.states(task_id)}") from None
        return found
