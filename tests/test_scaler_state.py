"""The scaler's decision list in ``scaler/state`` (``ScalerState.record``): repeats collapse, a handover shows."""

from __future__ import annotations

from typing import Any

from bootstrap_agent.scaler.state import ScalerState


def event(at: float, reason: str, leader: str, action: str = "none") -> dict[str, Any]:
    return {"action": action, "reason": reason, "detail": reason, "signals": {"allocation": 0.9}, "at": at,
            "leader": leader}


def test_a_repeat_refreshes_the_line_but_a_new_leader_gets_its_own() -> None:
    state = ScalerState()
    a, b = "m-1 (192.168.0.10)", "m-2 (192.168.0.11)"
    for at in (10.0, 12.0, 14.0):
        state.record(event(at, "warming_up", a))
    assert [(d["leader"], d["at"], d.get("repeated")) for d in state.decisions] == [(a, 14.0, 3)]
    # m-1 died warming up; m-2 leads and warms up too: its line says so, from its own first pass.
    state.record(event(30.0, "warming_up", b))
    state.record(event(32.0, "warming_up", b))
    assert [(d["leader"], d["at"], d.get("repeated")) for d in state.decisions] == [(a, 14.0, 3), (b, 32.0, 2)]
    state.record(event(34.0, "scale_out", b, action="out"))
    state.record(event(36.0, "scale_out", b, action="out"))  # actions are never collapsed
    assert len(state.decisions) == 4
