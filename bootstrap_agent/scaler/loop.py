"""The scaler's loop on a master: contend for leadership; while leading, sample, decide, and act through the
group, keeping every step in ZooKeeper first (``state``).

One pass (``step``): take a sample of the signals, read the state and the group, finish an intent a previous
leader left open (``_recover``), decide (``decide.decide``, pure), log the decision as one
``scaler_decision`` event with the signal values, and when it is an action: write the intent (fenced), act
(scale out: raise the group's desired count to the absolute number; scale in: REMOVE exactly the chosen idle
instances with ``instance_delete``, so each one goes through the lifecycle hook and drains first), mark it
done (fenced). The clock and the sleep are injectable, so tests replay minutes in milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.autoscaling import AutoScalingError
from bootstrap_agent.scaler.decide import Decision, GroupView, History, InstanceView, decide, track_idle
from bootstrap_agent.scaler.group import GroupApi, group_view
from bootstrap_agent.scaler.leader import Leadership
from bootstrap_agent.scaler.signals import Sample, window
from bootstrap_agent.scaler.state import ScalerState, StateStore
from bootstrap_agent.schema.autoscaling import AutoscalingSettings
from bootstrap_agent.zk.errors import ClusterUnavailable
from bootstrap_agent.zk.session import Session

MAX_ATTEMPTS = 3  # passes that may retry an open intent before it is given up


class Scaler:
    """One master's scaler. ``sample(now)`` reads the signals; ``agents()`` the agents' member znodes as
    ``InstanceView`` by instance id (ready, tasks, cache)."""

    def __init__(self, session: Session, policy: AutoscalingSettings, group: GroupApi, group_id: str,
                 sample: Callable[[float], Sample], agents: Callable[[], Mapping[str, InstanceView]], *,
                 identifier: str, clock: Callable[[], float] = time.time, log: Any = None) -> None:
        self.policy = policy
        self.group = group
        self.group_id = group_id
        self.sample = sample
        self.agents = agents
        self.identifier = identifier
        self.clock = clock
        self.log = log if log is not None else logs.get()
        self.leadership = Leadership(session)
        self.store = StateStore(session)
        self.samples: list[Sample] = []
        # Called (from this thread) when a pass decides something other than the pass before (a new line in the
        # decisions, not a repeat): a master's daemon then renders its dashboard at once instead of at its tick.
        self.on_change: Callable[[], None] | None = None
        self._last: tuple[str, str] | None = None

    # --- leadership -----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: contend, and while leading run a pass every ``interval`` seconds."""
        while not stop.is_set():
            try:
                node = self.leadership.acquire(self.identifier, timeout=self.policy.interval)
                if node is None:
                    continue
                self.log.info("scaler_leading", identifier=self.identifier)
                try:
                    while not stop.is_set():
                        self._changed(self.step(node))
                        stop.wait(self.policy.interval)
                finally:
                    self.samples.clear()  # a later term starts its window anew
                    self.leadership.release(node)
            except ClusterUnavailable as exc:  # LostLeadership included: contend again after a pause
                self.log.warning("scaler_unavailable", error=str(exc))
                stop.wait(self.policy.interval)
            except AutoScalingError as exc:  # the intent stays open: the next pass finishes it (``_recover``)
                self.log.warning("scaler_group_failed", error=logs.mask(str(exc)))
                stop.wait(self.policy.interval)

    def _changed(self, decision: Decision | None) -> None:
        key = None if decision is None else (decision.action, decision.reason)
        if key is not None and key != self._last and self.on_change is not None:
            self.on_change()
        self._last = key

    # --- one pass -------------------------------------------------------------------------------------------
    def step(self, node: str) -> Decision | None:
        """One pass as the leader holding ``node``; the decision (None when only an open intent was finished)."""
        now = self.clock()
        try:
            self.samples = [*window(self.samples, now, self.policy.window), self.sample(now)]
        except (OSError, ValueError) as exc:  # Mesos away or garbage: decide on what the window holds
            self.log.warning("scaler_sample_failed", error=logs.mask(str(exc)))
            self.samples = window(self.samples, now, self.policy.window)
        state, version = self.store.load()
        view = group_view(self.group.group(self.group_id), self.group.instances(self.group_id), self.agents())
        if state.intent is not None:
            self._recover(state, version, view, node, now)
            return None
        present = {i.id for i in view.instances}
        history = replace(state.history, pending=tuple(i for i in state.history.pending if i in present),
                          idle_since=track_idle(state.history.idle_since, view.instances, now))
        if history.last_set is None:  # the first pass ever: the group's count is the baseline, not a manual scale
            history = replace(history, last_set=view.desired)
        decision = decide(self.policy, self.samples, view, history, now)
        state.history = history
        if decision.manual:
            state.history = replace(history, manual_at=now, last_set=view.desired, pending=())
        event = {**decision.event(), "at": round(now, 3), "leader": self.identifier}
        self.log.info("scaler_decision", **event)
        allocation = decision.signals.get("allocation")
        state.plot(now, allocation if isinstance(allocation, float) else None, view.desired, view.ready)
        if decision.action == "none":
            state.record(event)
            self.store.save(state, version, node)
            return decision
        state.decision_id += 1
        event["id"] = state.decision_id
        state.record(event)
        state.intent = {"id": state.decision_id, "action": decision.action, "desired": decision.desired,
                        "remove": list(decision.remove), "at": now}
        state.history = self._after(state.history, decision, now)
        version = self.store.save(state, version, node)  # intent first: a successor finishes it
        self._act(decision.action, decision.desired, decision.remove, view)
        self._done(state, version, node)
        return decision

    def _after(self, history: History, decision: Decision, now: float) -> History:
        if decision.action == "out":
            return replace(history, last_set=decision.desired, last_out=now)
        return replace(history, last_set=decision.desired, last_in=now,
                       pending=(*history.pending, *decision.remove),
                       idle_since={k: v for k, v in history.idle_since.items() if k not in decision.remove})

    def _act(self, action: str, desired: int, remove: tuple[str, ...] | list[str], view: GroupView) -> None:
        if action == "out":
            if view.desired < desired:  # absolute: done already (by us or a predecessor) is not done twice
                self.group.set_desired(self.group_id, desired)
            return
        still = [i for i in remove if any(v.id == i and not v.removing for v in view.instances)]
        if still:
            self.group.remove(self.group_id, still)

    def _done(self, state: ScalerState, version: int, node: str) -> None:
        intent = state.intent or {}
        state.intent = None
        self.store.save(state, version, node)
        self.log.info("scaler_acted", id=intent.get("id"), action=intent.get("action"),
                      desired=intent.get("desired"), remove=intent.get("remove"))

    def _recover(self, state: ScalerState, version: int, view: GroupView, node: str, now: float) -> None:
        """A previous pass (this leader's or a predecessor's) wrote this intent and may or may not have acted: act
        only where the group does not show it done yet, then mark it done. An intent the group keeps refusing
        is given up after ``MAX_ATTEMPTS`` passes, with an event, so one bad call cannot stop the scaler."""
        intent = state.intent or {}
        attempts = int(intent.get("attempts", 0)) + 1
        if attempts > MAX_ATTEMPTS:
            self.log.warning("scaler_intent_abandoned", id=intent.get("id"), action=intent.get("action"),
                             desired=intent.get("desired"), remove=intent.get("remove"), attempts=attempts - 1)
            dropped = {str(i) for i in intent.get("remove", [])}  # the group as it is becomes the baseline again
            state.history = replace(state.history, last_set=view.desired,
                                    pending=tuple(i for i in state.history.pending if i not in dropped))
            state.intent = None
            self.store.save(state, version, node)
            return
        self.log.info("scaler_intent_resumed", id=intent.get("id"), action=intent.get("action"),
                      desired=intent.get("desired"), remove=intent.get("remove"), at=round(now, 3), attempt=attempts)
        state.intent = {**intent, "attempts": attempts}
        version = self.store.save(state, version, node)
        self._act(str(intent.get("action")), int(intent.get("desired", view.desired)),
                  tuple(str(i) for i in intent.get("remove", [])), view)
        self._done(state, version, node)
