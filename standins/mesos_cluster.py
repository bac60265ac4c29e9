"""The leading Mesos stand-in master's view of the cluster: agents, frameworks, tasks, offers, maintenance.

What it models, each from apache/mesos 1.11.0 (rules MB1-MB11 in STARTUP-RULES.md, "Mesos behaviour"):

* Agents register with an id the master gives (``<master id>-S<n>``, ``Master::registerSlave``), re-register
  with that id and their tasks after a master failover (``Master::reregisterSlave``; a new leader starts with no
  agents), and are marked unreachable when no ping came for ``agent_ping_timeout`` × ``max_agent_ping_timeouts``
  (``src/master/master.cpp`` ``SlaveObserver``; defaults 15secs × 5, ``src/master/constants.hpp``). Their tasks then
  become ``TASK_LOST`` (``TASK_UNREACHABLE`` for ``PARTITION_AWARE`` frameworks, ``Master::markUnreachable`` and
  ``__removeSlave``). An agent on a ``DOWN`` machine is refused ("Machine is `DOWN`", ``registerSlave``).
* Offers: each framework gets at most one outstanding offer per active agent with the agent's unused, unoffered
  resources. A machine in the maintenance schedule is still offered, before and after its window's start, each
  offer carrying the window as ``unavailability`` (``Master::offer``; ``HierarchicalAllocatorProcess::__allocate``
  does not skip it); a schedule update rescinds the outstanding offers (``Master::updateUnavailability``). The
  stand-in sends no inverse offers. A ``DOWN`` machine has no agents, so no offers.
* ``DEACTIVATE_AGENT`` (1.9+, ``Master::Http::_deactivateAgent``, ``Master::deactivate(Slave*)``): no more offers
  for the agent, its outstanding ones are rescinded, its tasks keep running; ``REACTIVATE_AGENT`` undoes it. The
  deactivation (and a drain's ``DrainInfo``) is kept in the registry (``DeactivateAgent``,
  ``src/master/registry_operations.cpp``), so it outlives a master failover; a gone agent loses it.
* ``machine/down`` shuts the machine's agents down and removes them (``_startMaintenance``): their tasks become
  ``TASK_LOST`` (``TASK_GONE_BY_OPERATOR`` for ``PARTITION_AWARE``), ``Master::__removeSlave``.
* Tasks stay in ``frameworks[].tasks`` until a terminal state, then move to ``completed_tasks``.

All methods run under one lock; talking to agents and writing to framework streams only queues work. The
frameworks, offers and tasks are ``mesos_offers.py`` (mixed into ``Cluster``), the agents, maintenance and
drains are here.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from standins import mesos_model as model
from standins.mesos_entities import Agent, Framework, Refused, Task
from standins.mesos_maintenance import Machine, Maintenance
from standins.mesos_offers import AgentSender, FrameworkOffers

__all__ = ["Agent", "Cluster", "Framework", "Refused", "Task"]


class Cluster(FrameworkOffers):
    def __init__(self, master_id: str, send_agent: AgentSender, ping_timeout: float, max_pings: int) -> None:
        self.master_id = master_id
        self.lock = threading.RLock()
        self.agents: dict[str, Agent] = {}
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: list[Framework] = []
        self.maintenance = Maintenance()
        self.send_agent = send_agent
        self.agent_timeout = ping_timeout * max_pings
        self.counts: dict[str, int] = {}
        self.drains: dict[str, dict[str, Any]] = {}  # agent id → v1 DrainInfo
        self.deactivated: set[str] = set()  # ``slaves.deactivated``: registry state, as the drains
        self.started = time.time()
        self.on_saved: Callable[[], None] = lambda: None
        self._ids = itertools.count()

    def saved(self) -> None:
        """The maintenance state changed: the registry stand-in stores it (``mesos_master.py``)."""
        self.on_saved()

    # Agents --------------------------------------------------------------------------------------------------

    def register_agent(self, info: dict[str, Any], tasks: list[dict[str, Any]]) -> str:
        with self.lock:
            machine = (str(info["hostname"]), str(info["ip"]))
            if self.maintenance.mode(machine) == "DOWN":
                raise Refused("Machine is `DOWN`")
            if not info.get("id"):  # a new agent process at an address where one is registered: the old one is
                for old_agent in [a for a in self.agents.values()  # gone (``registerSlave``, MB1)
                                  if (a.ip, a.port) == (str(info["ip"]), int(info["port"]))]:
                    self._remove_agent(old_agent, unreachable=False, message="a new agent registered at the same "
                                       "address")
            agent_id = str(info.get("id") or "") or self._next("S")
            now = time.time()
            old = self.agents.get(agent_id)
            agent = self.agents[agent_id] = Agent(
                agent_id, machine[0], machine[1], int(info["port"]), dict(info["resources"]),
                dict(info.get("attributes", {})), str(info.get("version", "")), old.registered_time if old else now,
                now, active=agent_id not in self.deactivated)  # ``reregisterSlave`` deactivates it again
            for item in tasks:
                self._recover_task(agent_id, item)
            if self.drains.get(agent_id, {}).get("state") == "DRAINING":
                self._kill_for_drain(agent)  # a re-registered draining agent gets the DrainSlaveMessage again
            self._check_drained(agent_id)
            return agent_id

    def _recover_task(self, agent_id: str, item: dict[str, Any]) -> None:
        fid = str(item["framework_id"])
        framework = self.frameworks.get(fid)
        if framework is None:  # known again from its agents, inactive until it re-subscribes
            framework = self.frameworks[fid] = Framework(fid, str(item.get("framework_name", "")),
                                                         {"name": item.get("framework_name", "")})
        if item["id"] not in framework.tasks and any(t.id == item["id"] for t in framework.completed):
            return  # a terminated, unacknowledged task this master already recorded (the agent re-registers)
        task = framework.tasks.get(item["id"]) or Task(str(item["id"]), str(item.get("name", "")), fid, agent_id,
                                                       model.scalars(item.get("resources", {})),
                                                       dict(item.get("command", {})))
        framework.tasks[task.id] = task
        # Known again, not forwarded: ``reregisterSlave`` sends frameworks nothing; the agent re-sends the
        # updates not yet acknowledged right after (MB11).
        self._set_state(framework, task, str(item["state"]), str(item.get("message", "")), forward=False)

    def ping(self, agent_id: str) -> bool:
        with self.lock:
            agent = self.agents.get(agent_id)
            if agent is None:
                return False
            agent.last_ping = time.time()
            return True

    def check_agents(self, now: float) -> list[str]:
        """Mark agents unreachable whose pings stopped (``SlaveObserver::timeout``); return their ids."""
        with self.lock:
            gone = [a for a in self.agents.values() if now - a.last_ping > self.agent_timeout]
            for agent in gone:
                self._remove_agent(agent, unreachable=True, message="Agent is unreachable")
            return [a.id for a in gone]

    def _remove_agent(self, agent: Agent, *, unreachable: bool, message: str) -> None:
        del self.agents[agent.id]
        if not unreachable and (agent.id in self.drains or agent.id in self.deactivated):
            self.drains.pop(agent.id, None)  # ``Master::removeSlave``: a gone agent's drain/deactivation go
            self.deactivated.discard(agent.id)
            self.saved()
        key = "slaves_unreachable" if unreachable else "slave_removals"
        self.counts[key] = self.counts.get(key, 0) + 1
        for framework in self.frameworks.values():
            for offer_id, (agent_id, _) in list(framework.offers.items()):
                if agent_id == agent.id:
                    self._rescind(framework, offer_id)
            for task in [t for t in framework.tasks.values() if t.agent_id == agent.id]:
                if framework.partition_aware:
                    state = "TASK_UNREACHABLE" if unreachable else "TASK_GONE_BY_OPERATOR"
                else:
                    state = "TASK_LOST"
                self._set_state(framework, task, state, message, source="SOURCE_MASTER")

    def machine_down(self, machines: list[Machine]) -> None:
        """``_startMaintenance``: validate, mark DOWN, shut down and remove the machines' agents."""
        with self.lock:
            self.maintenance.down(machines)
            for agent in [a for a in self.agents.values() if a.machine in machines]:
                self.send_agent(agent, "/standin/shutdown", {"message": "Operator initiated 'Machine DOWN'"})
                self._remove_agent(agent, unreachable=False, message="Operator initiated 'Machine DOWN'")
            self.rescind_unavailable()

    def drain_agent(self, agent: Agent, grace_ns: int | None, mark_gone: bool) -> None:
        """``DRAIN_AGENT`` (1.9+, ``Master::Http::_drainAgent``, ``Slave::drain``): deactivate, kill every task
        (grace capped by ``max_grace_period``), ``DRAINED`` when none is left; ``mark_gone`` removes it then."""
        with self.lock:
            config: dict[str, Any] = {"mark_gone": mark_gone}
            if grace_ns is not None:
                config["max_grace_period"] = {"nanoseconds": grace_ns}
            self.drains[agent.id] = {"state": "DRAINING", "config": config}
            self.deactivate_agent(agent.id)
            self._kill_for_drain(agent)
            self._check_drained(agent.id)

    def _kill_for_drain(self, agent: Agent) -> None:
        grace = self.drains[agent.id]["config"].get("max_grace_period", {}).get("nanoseconds")
        for framework in self.frameworks.values():
            for task in [t for t in framework.tasks.values() if t.agent_id == agent.id]:
                self.send_agent(agent, "/standin/kill", {"framework_id": framework.id, "task_id": task.id,
                                                         "grace_seconds": None if grace is None else grace / 1e9})

    def deactivate_agent(self, agent_id: str) -> None:
        """No more offers for the agent; outstanding ones are rescinded; its tasks go on (registry: saved)."""
        with self.lock:
            self.deactivated.add(agent_id)
            self.saved()
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.active = False
                self.rescind_unavailable()

    def reactivate_agent(self, agent_id: str) -> str | None:
        """``_reactivateAgent``: the error message, or None once the agent is offered again."""
        with self.lock:
            if agent_id not in self.deactivated:
                return "Agent is not deactivated"
            if self.drains.get(agent_id, {}).get("state") == "DRAINING":
                return "Agent is still in the DRAINING state"
            self.deactivated.discard(agent_id)
            self.drains.pop(agent_id, None)
            self.saved()
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.active = True
            return None

    def _check_drained(self, agent_id: str) -> None:
        drain = self.drains.get(agent_id)
        if drain is None or drain["state"] != "DRAINING" or self.used(agent_id):
            return
        drain["state"] = "DRAINED"
        self.saved()  # ``MarkAgentDrained`` is a registry operation
        agent = self.agents.get(agent_id)
        if drain["config"]["mark_gone"] and agent is not None:
            self.send_agent(agent, "/standin/shutdown", {"message": "Agent has been marked gone"})
            self._remove_agent(agent, unreachable=False, message="Agent has been marked gone")
