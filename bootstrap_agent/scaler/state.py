"""The scaler's memory in ZooKeeper (``/bootstrap-agent/<cluster>/scaler/state``), so a new leader continues.

One JSON document: the history a decision reads (``decide.History``: desired last set, cooldown times, the
manual-scale mark, pending removals, idle clocks), the decision counter, the open *intent*, the last decisions
(bounded: ``provision-min status`` and the dashboard show them) and the chart's series (one point a minute).

Acting is three steps: write the intent (the absolute outcome: "desired = 5", "remove i-1, i-2"), act through
the group, mark it done. A leader that dies between the first and the last leaves the intent open; the next
leader finds it and completes it (``loop.Scaler._recover``) rather than deciding afresh, and since the intent is
absolute, doing it again cannot count twice. Every write is *fenced*: one ZooKeeper transaction that checks
the writer's leader znode still exists (its session is alive and it is still the leader) and that nobody
wrote the document since it was read (its version). A leader that lost its session can no longer write an
intent, so it can no longer start an action.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError

from bootstrap_agent.scaler.decide import History
from bootstrap_agent.zk import acls
from bootstrap_agent.zk.errors import ClusterUnavailable
from bootstrap_agent.zk.session import Session

FORMAT = 1
KEEP_DECISIONS = 50
KEEP_POINTS = 360  # six hours at one point a minute
POINT_EVERY = 60.0


class LostLeadership(ClusterUnavailable):
    """A fenced write was refused: another scaler leads now, or wrote first. Stop acting; contend again."""


@dataclass
class ScalerState:
    history: History = field(default_factory=History)
    decision_id: int = 0
    intent: dict[str, Any] | None = None  # {"id", "action", "desired", "remove", "at"}
    decisions: list[dict[str, Any]] = field(default_factory=list)
    series: list[list[float]] = field(default_factory=list)  # [at, allocation, desired, ready]

    def record(self, event: dict[str, Any]) -> None:
        """A decision's event, newest last; a repeat of the last non-decision only refreshes its time. A new
        leader's first one is a line of its own even when it repeats its predecessor's reason, so the decisions
        show who took over and when."""
        last = self.decisions[-1] if self.decisions else None
        if last and event["action"] == "none" and last["action"] == "none" and last["reason"] == event["reason"] \
                and last.get("leader") == event.get("leader"):
            last.update(at=event["at"], signals=event["signals"], detail=event["detail"],
                        repeated=int(last.get("repeated", 1)) + 1)
            return
        self.decisions = [*self.decisions, event][-KEEP_DECISIONS:]

    def plot(self, at: float, allocation: float | None, desired: int, ready: int) -> None:
        if self.series and at - self.series[-1][0] < POINT_EVERY:
            return
        self.series = [*self.series, [round(at, 1), round(allocation if allocation is not None else -1, 4),
                                      desired, ready]][-KEEP_POINTS:]

    def to_json(self) -> bytes:
        h = self.history
        document = {
            "format": FORMAT, "decision_id": self.decision_id, "intent": self.intent,
            "last_set": h.last_set, "last_out": h.last_out, "last_in": h.last_in, "manual_at": h.manual_at,
            "pending": list(h.pending), "idle_since": dict(h.idle_since),
            "decisions": self.decisions, "series": self.series,
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ScalerState:
        """The stored document; an unreadable one is reported, never silently replaced (ValueError)."""
        try:
            doc = json.loads(raw.decode()) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"scaler state is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format", FORMAT) != FORMAT:
            raise ValueError("scaler state: not a format-1 document")
        try:
            history = History(
                last_set=_opt_int(doc.get("last_set")), last_out=_opt_float(doc.get("last_out")),
                last_in=_opt_float(doc.get("last_in")), manual_at=_opt_float(doc.get("manual_at")),
                pending=tuple(str(i) for i in doc.get("pending", [])),
                idle_since={str(k): float(v) for k, v in dict(doc.get("idle_since", {})).items()},
            )
            intent = doc.get("intent")
            return cls(history, int(doc.get("decision_id", 0)), dict(intent) if intent else None,
                       [dict(d) for d in doc.get("decisions", [])], [list(p) for p in doc.get("series", [])])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"scaler state: {exc}") from None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class StateStore:
    """Reads (anyone) and fenced writes (the leader) of the state znode."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.path = session.paths.scaler_state

    def load(self) -> tuple[ScalerState, int]:
        """The state and its znode version (-1: not created yet)."""
        session = self.session
        deadline = session.deadline()
        session.ready(deadline, "scaler_state")
        try:
            raw, stat = session.wait(session.client.get_async(self.path), deadline, "scaler_state",
                                     expect=(NoNodeError,))
        except NoNodeError:
            return ScalerState(), -1
        return ScalerState.from_json(raw), int(stat.version)

    def save(self, state: ScalerState, version: int, leader_node: str) -> int:
        """Write if ``leader_node`` still exists and nobody wrote since ``version``; the new version."""
        session = self.session
        deadline = session.deadline()
        session.ready(deadline, "scaler_state")
        txn = session.client.transaction()
        txn.check(leader_node, 0)  # a contender znode is never written: version 0 while it exists
        data = state.to_json()
        if version < 0:
            acl = acls.scaler_state(session.node_id, session.operator_id, session.masters, split=session.split)
            txn.create(self.path, data, acl=acl)
        else:
            txn.set_data(self.path, data, version=version)
        results = session.wait(txn.commit_async(), deadline, "scaler_state")
        failures = [r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError)]
        if failures:
            first = failures[0]
            if isinstance(first, NoNodeError | BadVersionError | NodeExistsError):
                raise LostLeadership(f"scaler_state: not written ({type(first).__name__}): another scaler leads "
                                     "or wrote first")
            raise ClusterUnavailable(f"scaler_state: ZooKeeper {type(first).__name__}")
        return 0 if version < 0 else version + 1
