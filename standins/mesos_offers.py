"""The Mesos stand-in master's frameworks, offers and tasks (a mixin of ``mesos_cluster.Cluster``, which holds
the agents, maintenance and drains; the rules and their apache/mesos 1.11.0 sources are in its docstring):
subscribing and tearing down, allocation rounds (one outstanding offer per framework and active agent),
``ACCEPT``/``DECLINE``/``KILL``/``ACKNOWLEDGE``, status updates, rescinding offers a machine may no longer give.

Status updates (MB11, ``Master::statusUpdate``/``forward``/``acknowledge`` in ``src/master/master.cpp``): every
update an agent sends, retries included, is forwarded with the agent's ``uuid`` when the framework is connected
and dropped otherwise (the agent retries it until acknowledged); ACKNOWLEDGE goes to the task's agent.

All methods run under the cluster's one lock; writing to framework streams only queues work.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from standins import mesos_model as model
from standins.mesos_entities import Agent, Framework, Task
from standins.mesos_maintenance import Maintenance
from standins.mesos_scheduler_events import FrameworkStream, offer_event, subscribed_event, update_event

AgentSender = Callable[[Agent, str, dict[str, Any]], None]


class FrameworkOffers:
    """Frameworks and offers; the state is ``Cluster``'s own (set in its ``__init__``)."""

    master_id: str
    lock: threading.RLock
    agents: dict[str, Agent]
    frameworks: dict[str, Framework]
    completed_frameworks: list[Framework]
    maintenance: Maintenance
    send_agent: AgentSender
    counts: dict[str, int]
    _ids: itertools.count[int]

    def _check_drained(self, agent_id: str) -> None:
        """A draining agent whose tasks are gone is drained (``Cluster._check_drained``)."""
        raise NotImplementedError

    def _next(self, prefix: str) -> str:
        return f"{self.master_id}-{prefix}{next(self._ids)}"

    def count(self, state: str) -> None:
        """One more of a task state (``TASK_FINISHED`` counts as ``finished``) or of another counted event."""
        key = state.removeprefix("TASK_").lower()
        self.counts[key] = self.counts.get(key, 0) + 1

    def rescind_unavailable(self) -> None:
        """Offers for machines that may no longer be offered go back (``Master::updateUnavailability``)."""
        with self.lock:
            for framework in self.frameworks.values():
                for offer_id, (agent_id, _) in list(framework.offers.items()):
                    agent = self.agents.get(agent_id)
                    if agent is None or not self._offerable(agent):
                        self._rescind(framework, offer_id)

    def rescind_all(self) -> None:
        """A schedule update calls ``updateUnavailability`` for every known machine, which rescinds each offer
        there so that frameworks see the new ``unavailability`` at once (``___updateMaintenanceSchedule``)."""
        with self.lock:
            for framework in self.frameworks.values():
                for offer_id in list(framework.offers):
                    self._rescind(framework, offer_id)

    def _rescind(self, framework: Framework, offer_id: str) -> None:
        del framework.offers[offer_id]
        if framework.stream is not None:
            framework.stream.send_event({"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}})

    # Frameworks -----------------------------------------------------------------------------------------------

    def subscribe(self, info: dict[str, Any], stream: FrameworkStream, master_info: dict[str, Any]) -> Framework:
        """Register (or re-register) the framework and put ``SUBSCRIBED`` on its stream under the lock: it is the
        stream's first event (``docs/scheduler-http-api.md``; ``Master::_subscribe`` sends it in the same step that
        adds the framework, and the allocator's offers reach the master's actor only after that step), so no
        allocation round can slip an offer in ahead of it. A scheduler drops the
        offers it holds on ``SUBSCRIBED``; an offer sent before it would stay outstanding here for ever, the
        agent's resources held by an offer its framework does not know it has."""
        with self.lock:
            fid = str((info.get("id") or {}).get("value") or "") or self._next("")
            framework = self.frameworks.get(fid)
            if framework is None:
                framework = self.frameworks[fid] = Framework(fid, str(info.get("name", "")), info)
            if framework.stream is not None:
                framework.stream.close()  # the old connection is replaced, as on a real re-subscription
            framework.info, framework.name, framework.stream = info, str(info.get("name", "")), stream
            framework.offers.clear()
            stream.framework_id = fid
            stream.send_event(subscribed_event(fid, master_info))
            return framework

    def teardown(self, framework: Framework) -> None:
        with self.lock:
            for task in list(framework.tasks.values()):
                agent = self.agents.get(task.agent_id)
                if agent is not None:
                    self.send_agent(agent, "/standin/kill", {"framework_id": framework.id, "task_id": task.id})
                self._set_state(framework, task, "TASK_KILLED", "Framework teardown", source="SOURCE_MASTER")
            for agent in self.agents.values():  # ``Master::removeFramework``: ShutdownFrameworkMessage to all
                self.send_agent(agent, "/standin/shutdown_framework", {"framework_id": framework.id})
            framework.offers.clear()
            if framework.stream is not None:
                framework.stream.close()
                framework.stream = None
            self.frameworks.pop(framework.id, None)
            self.completed_frameworks.append(framework)

    def disconnected(self, framework_id: str) -> None:
        with self.lock:
            framework = self.frameworks.get(framework_id)
            if framework is not None and framework.stream is not None and framework.stream.closed:
                framework.stream = None
                framework.offers.clear()

    # Offers and tasks -----------------------------------------------------------------------------------------

    def _offerable(self, agent: Agent) -> bool:
        return agent.active and self.maintenance.mode(agent.machine) != "DOWN"

    def used(self, agent_id: str) -> model.Resources:
        total: model.Resources = {}
        for framework in self.frameworks.values():
            for task in framework.tasks.values():
                if task.agent_id == agent_id:
                    total = model.add(total, task.resources)
        return total

    def offered(self, agent_id: str) -> model.Resources:
        total: model.Resources = {}
        for framework in self.frameworks.values():
            for owner, resources in framework.offers.values():
                if owner == agent_id:
                    total = model.add(total, resources)
        return total

    def allocate(self, now: float) -> int:
        """One allocation round: offer each agent's free resources to frameworks without an offer there."""
        made = 0
        with self.lock:
            for agent in self.agents.values():
                if not self._offerable(agent):
                    continue
                for framework in self.frameworks.values():
                    if not framework.active or framework.filters.get(agent.id, 0.0) > now:
                        continue
                    if any(owner == agent.id for owner, _ in framework.offers.values()):
                        continue
                    free = model.subtract(model.subtract(model.scalars(agent.resources), self.used(agent.id)),
                                          self.offered(agent.id))
                    if free.get("cpus", 0.0) < 0.01 or free.get("mem", 0.0) < 32:
                        continue
                    offer_id = self._next("O")
                    framework.offers[offer_id] = (agent.id, free)
                    assert framework.stream is not None
                    framework.stream.send_event(offer_event(offer_id, framework.id, agent, free,
                                                            self.maintenance.unavailability(agent.machine)))
                    made += 1
        return made

    def accept(self, framework: Framework, offer_ids: list[str], operations: list[dict[str, Any]],
               refuse_seconds: float) -> None:
        """``Master::accept``: LAUNCH tasks from the offers. Invalid offers (``validation::offer``): every task
        ``TASK_LOST`` (``TASK_DROPPED`` if ``PARTITION_AWARE``) "Task launched with invalid offers: ..."; a task
        larger than the offers: ``TASK_ERROR`` "Total resources ... is more than available ...". Unused
        resources return, filtered for ``refuse_seconds``."""
        with self.lock:
            offers = [(oid, framework.offers.pop(oid, None)) for oid in offer_ids]
            valid = [(oid, o) for oid, o in offers if o is not None]
            agent_ids = {o[0] for _, o in valid}
            tasks = [t for op in operations if op.get("type") == "LAUNCH"
                     for t in op.get("launch", {}).get("task_infos", [])]
            problem = self._invalid_offers(offers)
            agent = self.agents.get(valid[0][1][0]) if valid and problem is None else None
            if agent is None and problem is None:
                problem = f"Offer {offer_ids[0] if offer_ids else ''} is no longer valid"
            available = model.Resources()
            for _, offer in valid:
                available = model.add(available, offer[1])
            for info in tasks:
                task_id = str(info.get("task_id", {}).get("value", ""))
                try:
                    resources = model.from_v1(info.get("resources", []))
                except ValueError as exc:
                    resources, error = {}, f"Task uses invalid resources: {exc}"
                else:
                    error = "" if model.contains(available, resources) else (
                        f"Total resources {_text(resources)} required by task and its executor is more than "
                        f"available {_text(available)}")
                task = Task(task_id, str(info.get("name", "")), framework.id,
                            agent.id if agent else str(info.get("agent_id", {}).get("value", "")), resources,
                            dict(info.get("command", {})))
                framework.tasks[task.id] = task
                if problem is not None or agent is None:
                    self._set_state(framework, task, "TASK_DROPPED" if framework.partition_aware else "TASK_LOST",
                                    f"Task launched with invalid offers: {problem}", source="SOURCE_MASTER")
                    continue
                if error:
                    self._set_state(framework, task, "TASK_ERROR", error, source="SOURCE_MASTER")
                    continue
                available = model.subtract(available, resources)
                self.count("TASK_STAGING")
                self.send_agent(agent, "/standin/launch", {
                    "framework_id": framework.id, "framework_name": framework.name,
                    "task": {"id": task.id, "name": task.name, "command": task.command,
                             "resources": resources}})
            for agent_id in agent_ids:
                framework.filters[agent_id] = time.time() + refuse_seconds

    def _invalid_offers(self, offers: list[tuple[str, tuple[str, model.Resources] | None]]) -> str | None:
        first_agent = None
        for offer_id, offer in offers:
            if offer is None or offer[0] not in self.agents:
                return f"Offer {offer_id} is no longer valid"
            if first_agent is None:
                first_agent = offer[0]
            elif offer[0] != first_agent:
                return (f"Aggregated offers must belong to one single agent. Offer {offer_id} uses agent "
                        f"{offer[0]} and agent {first_agent}")
        return None if offers else "No offers specified"  # Master::accept

    def decline(self, framework: Framework, offer_ids: list[str], refuse_seconds: float) -> None:
        with self.lock:
            for offer_id in offer_ids:
                offer = framework.offers.pop(offer_id, None)
                if offer is not None:
                    framework.filters[offer[0]] = time.time() + refuse_seconds

    def kill(self, framework: Framework, task_id: str) -> None:
        """``Master::kill``: an unknown task gets ``TASK_LOST`` ("Reconciliation: Task is unknown" path is not
        modelled); a known one is killed by its agent, which reports ``TASK_KILLED``."""
        with self.lock:
            task = framework.tasks.get(task_id)
            if task is None:
                return
            agent = self.agents.get(task.agent_id)
            if agent is None:
                self._set_state(framework, task, "TASK_LOST", "Agent is not registered", source="SOURCE_MASTER")
                return
            self.send_agent(agent, "/standin/kill", {"framework_id": framework.id, "task_id": task_id})

    def status_update(self, agent_id: str, item: dict[str, Any]) -> bool:
        """An agent's update (or its retry): the task's state here, then forwarded if the framework is connected
        (``Master::statusUpdate``; an unknown or disconnected framework: not forwarded, the agent retries)."""
        with self.lock:
            if agent_id not in self.agents:
                return False
            framework = self.frameworks.get(str(item["framework_id"]))
            if framework is None:
                return True
            state, message = str(item["state"]), str(item.get("message", ""))
            task = framework.tasks.get(str(item["id"]))
            if task is not None:
                self._set_state(framework, task, state, message, forward=False)
                self._check_drained(agent_id)
            if framework.stream is not None:
                shown = task or Task(str(item["id"]), str(item.get("name", "")), framework.id, agent_id, {}, {})
                timestamp = item.get("timestamp")
                framework.stream.send_event(update_event(
                    shown, state, message, "SOURCE_EXECUTOR",
                    float(timestamp) if isinstance(timestamp, int | float) else time.time(),
                    str(item.get("uuid") or base64.b64encode(uuid.uuid4().bytes).decode())))
            return True

    def acknowledge(self, framework: Framework, call: dict[str, Any]) -> None:
        """``Master::acknowledge``: pass the acknowledgement to the task's agent; an unregistered agent's is
        dropped (the agent retries the update, and the framework acknowledges it again)."""
        agent_id = str((call.get("agent_id") or {}).get("value", ""))
        task_id = str((call.get("task_id") or {}).get("value", ""))
        with self.lock:
            agent = self.agents.get(agent_id)
            if agent is None:
                self.count("invalid_status_update_acknowledgements")
                return
            self.count("valid_status_update_acknowledgements")
            self.send_agent(agent, "/standin/acknowledge", {"framework_id": framework.id, "task_id": task_id,
                                                            "uuid": str(call.get("uuid", ""))})

    def _set_state(self, framework: Framework, task: Task, state: str, message: str,
                   source: str = "SOURCE_EXECUTOR", *, forward: bool = True) -> None:
        if task.state == state:
            return
        now = time.time()
        task.state = state
        task.statuses.append({"state": state, "timestamp": now})
        self.count(state)
        if state in model.TERMINAL_STATES:
            framework.tasks.pop(task.id, None)
            framework.completed.append(task)
        if forward and framework.stream is not None:
            framework.stream.send_event(update_event(task, state, message, source, now,
                                                     base64.b64encode(uuid.uuid4().bytes).decode()))


def _text(resources: model.Resources) -> str:
    """Resources as ``stringify(Resources)`` prints offered ones: ``cpus(allocated: *):2; mem(allocated: *):128``."""
    return "; ".join(f"{name}(allocated: *):{value:g}" for name, value in sorted(resources.items()))
