"""The drain's Mesos edge: the machine's maintenance through the leading master's HTTP endpoints (Mesos 1.11,
``docs/maintenance.md`` and ``src/master/http.cpp`` of apache/mesos 1.11.0), and this agent's own ``/state``.

A maintenance window alone does not stop offers: Mesos keeps offering a DRAINING machine, each offer marked with
the unavailability (``docs/maintenance.md``: "offers (with unavailability information) are still sent"). So the
agent is also deactivated through the v1 operator API (``DEACTIVATE_AGENT``, 1.9 on: no more offers, outstanding
ones rescinded, running tasks untouched; kept in the registry across a master failover). Mesos 1.4 has no such
call ("Failed to find enum for 'DEACTIVATE_AGENT'"): there the window, honoured by frameworks that read it, is all.

The machine is identified exactly as the agent announced itself (``--hostname`` and ``--ip``, both the node's
address in this project): Mesos matches a MachineID on both fields. The schedule is one document for the whole
cluster, so adding a window is read-modify-write; two agents draining at once can overwrite each other's window,
which is why the drain re-reads the status every step and schedules again when its machine went missing (a
DOWN machine cannot be dropped: the master refuses such a schedule, and the writer retries on a fresh read).

Mesos keeps a DOWN machine in the schedule until ``/machine/up`` (``StopMaintenance`` in
``src/master/maintenance.cpp`` deletes it from the schedule then) and refuses to register an agent on a DOWN
machine (``master.cpp``: "Machine is `DOWN`"). A draining node never brings its machine up (that would make
offers for it again before it is gone); a new agent on a reused address clears its own entry at start
(``clear_stale``): the only node a stale entry can ever hurt is the next one with that address. The same
instance booting again after its shutdown drain (a poweroff, then a start) takes its machine out of maintenance
and makes sure its agent is offered again (``rejoin``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from bootstrap_agent.ports import MESOS_AGENT_PORT, MESOS_MASTER_PORT

WINDOW_SECONDS = 3600  # the unavailability Mesos tells frameworks about: the longest a drain may take
# Non-terminal task states a master lists (mesos.proto TaskState; ``protobuf::isTerminalState`` in
# src/common/protobuf_utils.cpp of 1.11.0 names the terminal ones; UNREACHABLE tasks are listed apart)
LIVE_TASK_STATES = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})


class MesosUnavailable(Exception):
    """A master or the agent did not answer as documented; one line."""


@dataclass(frozen=True)
class AgentState:
    """What the agent's ``/state`` says about the work on it."""

    agent_id: str
    tasks: int  # running, staging or queued tasks of every framework's executors
    frameworks_with_executors: int
    framework_ids: tuple[str, ...]  # every framework that ran executors here (current and completed)


@dataclass(frozen=True)
class Rejoin:
    """Where a node that drained at its last shutdown stands in joining Mesos again."""

    done: bool  # the machine is out of maintenance and the agent registered and offered
    actions: tuple[str, ...]  # done by this call: "machine_up" (or its schedule entry dropped), "agent_reactivated"
    waiting_for: str  # while not done


@dataclass(frozen=True)
class MachineStatus:
    scheduled: bool  # in the schedule (draining or down) and, where Mesos can, the agent deactivated
    down: bool


class MesosOps:
    def __init__(self, masters: Sequence[str], hostname: str, ip: str, *, master_port: int = MESOS_MASTER_PORT,
                 agent_port: int = MESOS_AGENT_PORT, timeout: tuple[float, float] = (2.0, 5.0),
                 session: requests.Session | None = None) -> None:
        self.masters = tuple(masters)
        self.machine = {"hostname": hostname, "ip": ip}
        self.master_port = master_port
        self.agent_url = f"http://{ip}:{agent_port}"
        self.timeout = timeout
        self.http = session or requests.Session()
        self.deactivate_unsupported = False  # Mesos 1.4: the window only

    # --- the leading master -----------------------------------------------------------------------------------
    def leader(self) -> str:
        """``http://host:port`` of the leading master: any master's ``/master/redirect`` answers 307 with
        ``Location: //<leader>:<port>`` (503 while none is elected)."""
        problems = []
        for master in self.masters:
            url = f"http://{master}:{self.master_port}/master/redirect"
            try:
                answer = self.http.get(url, allow_redirects=False, timeout=self.timeout)
            except requests.RequestException as exc:
                problems.append(f"{master}: {type(exc).__name__}")
                continue
            location = answer.headers.get("Location", "")
            if answer.status_code in (301, 302, 307) and location.startswith("//"):
                return "http:" + location.rstrip("/")
            problems.append(f"{master}: HTTP {answer.status_code}")
        raise MesosUnavailable("no leading Mesos master: " + "; ".join(problems or ["no masters"]))

    def _master(self, method: str, path: str, body: Any = None) -> Any:
        url = self.leader() + path
        try:
            headers = {"Content-Type": "application/json", "Accept": "application/json"} if body is not None else {}
            answer = self.http.request(method, url, timeout=self.timeout, allow_redirects=False,
                                       data=None if body is None else json.dumps(body), headers=headers)
        except requests.RequestException as exc:
            raise MesosUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        if answer.status_code != 200:
            text = " ".join(answer.text.split())[:200]
            raise MesosUnavailable(f"{method} {path}: HTTP {answer.status_code} {text}")
        if method == "GET":
            try:
                return answer.json()
            except ValueError:
                raise MesosUnavailable(f"GET {path}: not JSON") from None
        return None

    # --- maintenance ------------------------------------------------------------------------------------------
    def status(self) -> MachineStatus:
        """This machine's mode from ``/master/maintenance/status`` (``ClusterStatus``: ``draining_machines``
        hold ``{"id": MachineID}``, ``down_machines`` are MachineIDs)."""
        in_schedule, is_down = self._mode()
        scheduled = is_down or (in_schedule and (self.deactivate_unsupported or not self._offered()))
        return MachineStatus(scheduled, is_down)

    def _mode(self) -> tuple[bool, bool]:
        """(in the schedule, DOWN) for this machine."""
        data = self._master("GET", "/master/maintenance/status")
        if not isinstance(data, dict):
            raise MesosUnavailable("GET /master/maintenance/status: not an object")
        draining = [_machine_id(entry) for entry in data.get("draining_machines") or []]
        down = [_machine_id(entry) for entry in data.get("down_machines") or []]
        return self.machine in draining or self.machine in down, self.machine in down

    def _offered(self) -> bool:
        """Whether the master still makes offers for this agent (registered and active)."""
        slave = self._registered()
        return slave is not None and bool(slave.get("active", False))

    def schedule_window(self, now: float, duration: float = WINDOW_SECONDS) -> bool:
        """Put the machine into the schedule, keeping every other window, and deactivate the agent (no more
        offers); False when the window already was there."""
        added = self._add_window(now, duration)
        self.deactivate()
        return added

    def deactivate(self) -> None:
        """``DEACTIVATE_AGENT`` for this agent (idempotent); remembered as unsupported on Mesos 1.4."""
        if self.deactivate_unsupported:
            return
        try:
            agent_id = self.agent_state().agent_id
        except MesosUnavailable:
            return  # no agent running: nothing to offer
        call = {"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": agent_id}}}
        try:
            self._master("POST", "/api/v1", call)
        except MesosUnavailable as exc:
            if "Failed to find enum for 'DEACTIVATE_AGENT'" in str(exc):
                self.deactivate_unsupported = True
            elif "Unknown agent" not in str(exc):
                raise

    def _add_window(self, now: float, duration: float) -> bool:
        schedule = self._master("GET", "/master/maintenance/schedule")
        windows = list((schedule or {}).get("windows") or []) if isinstance(schedule, dict) else []
        for window in windows:
            if self.machine in [_machine_id(m) for m in window.get("machine_ids") or []]:
                return False
        windows.append({
            "machine_ids": [dict(self.machine)],
            "unavailability": {"start": {"nanoseconds": int(now * 1e9)},
                               "duration": {"nanoseconds": int(duration * 1e9)}},
        })
        self._master("POST", "/master/maintenance/schedule", {"windows": windows})
        return True

    def down(self, now: float) -> None:
        """``/machine/down``: the master shuts the agent down and makes no offers for it. The machine must be in
        the schedule, so its window is (re)added first when another writer dropped it."""
        self._add_window(now, WINDOW_SECONDS)
        self._master("POST", "/master/machine/down", [dict(self.machine)])

    def clear_stale(self) -> bool:
        """At an agent's start: its address's machine left DOWN or DRAINING by an earlier instance goes up again
        (or the master would refuse this agent). True when there was one."""
        in_schedule, down = self._mode()
        if not in_schedule:
            return False
        self._master("POST", "/master/machine/up" if down else "/master/maintenance/schedule",
                     [dict(self.machine)] if down else self._without_machine())
        return True

    def rejoin(self) -> Rejoin:
        """The instance boots again after its shutdown drain finished: it is the node that left its machine in
        maintenance, so it takes it out again (``/machine/up`` when DOWN, else the schedule without it), then
        waits for its agent to register and, if the master has it deactivated (a drain that never got as far as
        the machine going down, and an agent that kept its id), turns its offers back on with
        ``REACTIVATE_AGENT``. Not done while the agent is not registered: it is refused on a DOWN machine and
        exits (the daemon starts it again)."""
        done: list[str] = []
        if self.clear_stale():
            done.append("machine_up")
        slave = self._registered()
        if slave is None:
            return Rejoin(False, tuple(done), "the Mesos agent to register")
        if slave.get("deactivated") is True and not self.deactivate_unsupported:
            call = {"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": str(slave.get("id"))}}}
            try:
                self._master("POST", "/api/v1", call)
                done.append("agent_reactivated")
            except MesosUnavailable as exc:
                if "Failed to find enum for 'REACTIVATE_AGENT'" in str(exc):
                    self.deactivate_unsupported = True
                elif "Agent is not deactivated" not in str(exc):
                    raise
        return Rejoin(True, tuple(done), "")

    def _registered(self) -> dict[str, Any] | None:
        """This agent's entry in the leading master's ``/master/slaves`` (its pid ends with ``@ip:port``)."""
        data = self._master("GET", "/master/slaves")
        for slave in (data or {}).get("slaves") or []:
            if isinstance(slave, dict) and str(slave.get("pid", "")).endswith(f"@{self.agent_url[7:]}"):
                return slave
        return None

    def _without_machine(self) -> dict[str, Any]:
        schedule = self._master("GET", "/master/maintenance/schedule")
        windows = []
        for window in (schedule or {}).get("windows") or []:
            ids = [m for m in window.get("machine_ids") or [] if _machine_id(m) != self.machine]
            if ids:
                windows.append({**window, "machine_ids": ids})
        return {"windows": windows}

    # --- frameworks and the agent -----------------------------------------------------------------------------
    def master_tasks(self, agent_id: str) -> int:
        """Tasks the leading master holds live for this agent (``/master/state``: every framework's ``tasks``
        with this ``slave_id``). A launch the master accepted is STAGING there before the agent has it: the
        agent's own ``/state`` cannot see it yet, and ``/machine/down`` then would lose it (TASK_LOST,
        "Operator initiated 'Machine DOWN'")."""
        data = self._master("GET", "/master/state")
        if not isinstance(data, dict):
            raise MesosUnavailable("GET /master/state: not an object")
        return sum(1 for framework in data.get("frameworks") or [] if isinstance(framework, dict)
                   for task in framework.get("tasks") or [] if isinstance(task, dict)
                   and task.get("slave_id") == agent_id and task.get("state") in LIVE_TASK_STATES)

    def active_frameworks(self) -> set[str]:
        """Ids of the frameworks registered with the leading master now (``/master/frameworks``; where a master
        has no such endpoint, its ``/master/state``, which carries the same list)."""
        try:
            data = self._master("GET", "/master/frameworks")
        except MesosUnavailable as exc:
            if "HTTP 404" not in str(exc):
                raise
            data = self._master("GET", "/master/state")
        return {str(f.get("id")) for f in (data or {}).get("frameworks") or [] if isinstance(f, dict)
                and f.get("active", True)}

    def agent_state(self) -> AgentState:
        """This agent's ``/state`` (``/slave(1)/state``): running work and the frameworks that had executors."""
        try:
            answer = self.http.get(self.agent_url + "/state", timeout=self.timeout)
            answer.raise_for_status()
            data = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise MesosUnavailable(f"agent /state: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise MesosUnavailable("agent /state: not an object")
        tasks, busy, ids = 0, 0, set()
        for framework in data.get("frameworks") or []:
            executors = framework.get("executors") or []
            for executor in executors:
                tasks += len(executor.get("tasks") or []) + len(executor.get("queued_tasks") or [])
            busy += bool(executors)
            ids.add(str(framework.get("id")))
        for framework in data.get("completed_frameworks") or []:
            ids.add(str(framework.get("id")))
        return AgentState(str(data.get("id", "")), tasks, busy, tuple(sorted(ids)))


def _machine_id(entry: Any) -> dict[str, str]:
    """A MachineID from either shape the master uses (``{"id": {...}}`` in draining_machines)."""
    if isinstance(entry, dict) and isinstance(entry.get("id"), dict):
        entry = entry["id"]
    if not isinstance(entry, dict):
        return {}
    return {"hostname": str(entry.get("hostname", "")), "ip": str(entry.get("ip", ""))}
