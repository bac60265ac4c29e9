"""What the scaler shows to people: who leads, whether it holds off after a manual scale, the last decisions
with their reasons and signal values, and the chart. Read by anyone with the node credential (``provision-min
status``, the master's dashboard): a pure summary of the state document plus one read of ZooKeeper."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from bootstrap_agent.scaler.chart import chart_svg
from bootstrap_agent.scaler.leader import Leadership
from bootstrap_agent.scaler.state import ScalerState, StateStore
from bootstrap_agent.zk.session import Session

SHOWN = 10


def summary(state: ScalerState, leader: str | None, now: float, hold: int, limit: int = SHOWN) -> dict[str, Any]:
    """``hold``: the policy's hold after a manual scale (``decide.hold_after_manual``)."""
    manual = state.history.manual_at
    holding_until = manual + hold if manual is not None and now < manual + hold else None
    return {
        "leader": leader,
        "desired_set": state.history.last_set,
        "holding_until": holding_until,
        "pending_removals": list(state.history.pending),
        "intent": state.intent,
        "decisions": state.decisions[-limit:],
    }


def lines(report: dict[str, Any]) -> list[str]:
    """``provision-min status``'s scaler lines, newest decision last."""
    out = [f"scaler: leader {report['leader'] or 'none'}, desired last set {report['desired_set']}"]
    if report["holding_until"] is not None:
        until = time.strftime("%H:%M", time.gmtime(report["holding_until"]))
        out.append(f"scaler: held off until {until} UTC: manual scale seen")
    if report["pending_removals"]:
        out.append(f"scaler: draining before removal: {', '.join(report['pending_removals'])}")
    for d in report["decisions"]:
        at = time.strftime("%H:%M:%S", time.gmtime(float(d.get("at", 0))))
        signals = d.get("signals", {})
        allocation = signals.get("allocation")
        shown = f"{allocation:.0%}" if isinstance(allocation, float) else "n/a"
        repeated = f" (×{d['repeated']})" if d.get("repeated") else ""
        out.append(f"  {at} {d.get('action')} {d.get('reason')}{repeated}: {d.get('detail')} "
                   f"[allocation {shown}, desired {signals.get('desired')}, ready {signals.get('ready')}]")
    return out


def html_section(report: dict[str, Any], svg: str) -> str:
    """The master's landing page's scaler section: the lines of ``lines`` (escaped) and the chart, no script."""
    shown = lines(report)
    notes = "".join(f"<p>{escape(line.removeprefix('scaler: '))}</p>" for line in shown if line.startswith("scaler:"))
    items = "".join(f"<li>{escape(line.strip())}</li>" for line in shown if not line.startswith("scaler:"))
    return (f'<section id="scaler"><h2>Scaler</h2>{notes}'
            f'<figure>{svg}</figure><ol class="decisions">{items}</ol></section>')


def read(session: Session, hold: int, now: float | None = None) -> tuple[dict[str, Any], str]:
    """The summary and the chart's SVG, as the dashboard and ``status`` show them."""
    state, _ = StateStore(session).load()
    leader = Leadership(session).leader()
    return summary(state, leader, time.time() if now is None else now, hold), chart_svg(state.series)


def read_view(session: Session, hold: int, now: float | None = None) -> dict[str, Any]:
    """What a master's pass hands its dashboard (``desired.Peers.scaler``): the summary and the chart's series."""
    state, _ = StateStore(session).load()
    leader = Leadership(session).leader()
    return {"summary": summary(state, leader, time.time() if now is None else now, hold),
            "series": up_to_now(state)}


def up_to_now(state: ScalerState) -> list[list[float]]:
    """The chart's series (a point a minute) with the newest decision's values as its last point, so the chart
    reaches the present and a young scaler's first minute already draws its lines."""
    series = [list(p) for p in state.series]
    if not state.decisions:
        return series
    newest = state.decisions[-1]
    signals = newest.get("signals") or {}
    at = float(newest.get("at", 0))
    if series and at <= series[-1][0]:
        return series
    allocation = signals.get("allocation")
    point = [at, float(allocation) if isinstance(allocation, int | float) else -1.0,
             float(signals.get("desired") or 0), float(signals.get("ready") or 0)]
    return [*series, point]
