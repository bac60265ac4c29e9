"""``status``'s scaler lines, on both clouds: who leads, a hold after a manual scale ("held off until HH:MM UTC:
manual scale seen"), pending removals and the last decisions with their reasons and signal values.

The words are the agent's own (``bootstrap_agent.scaler.report.lines``), so the dashboard and ``status`` never
disagree. OTC reads them from the master's ``status.json`` (its ``scaler`` field, written by the leading
master's daemon at every pass); the local cloud reads ZooKeeper directly, as its ``status`` does for members.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.scaler.decide import hold_after_manual
from bootstrap_agent.scaler.report import lines
from bootstrap_agent.schema.autoscaling import parse_autoscaling
from provision_min.config import ClusterConfig

SHOWN = 5  # decisions in the text; --json has the ten the summary keeps


def enabled(config: ClusterConfig) -> bool:
    return bool(config.autoscaling and config.autoscaling.get("enabled") is True)


def hold_of(config: ClusterConfig) -> int:
    """The policy's hold after a manual scale, from the cluster file (the masters' user-data says the same)."""
    try:
        return hold_after_manual(parse_autoscaling(dict(config.autoscaling or {})))
    except InvalidInput:  # checked when the cluster file was read: cannot happen, but status must not fail
        return 0


def local_summary(config: ClusterConfig, state: Any, timeout: float = 5.0) -> dict[str, Any] | None:
    """The scaler's summary from the local cluster's ZooKeeper; ``{"error": ...}`` when it cannot be read."""
    if not enabled(config):
        return None
    from bootstrap_agent.scaler.report import read_view
    from bootstrap_agent.zk.errors import ClusterUnavailable
    from provision_min.local.readiness import store_of

    store = store_of(state)
    store.start()
    try:
        if not store.wait_connected(timeout):
            return {"error": "ZooKeeper unreachable"}
        summary: dict[str, Any] = read_view(store.session, hold_of(config), time.time())["summary"]
        return summary
    except (ClusterUnavailable, ValueError) as exc:
        return {"error": str(exc)}
    finally:
        store.stop()


def render(summary: Mapping[str, Any] | None, shown: int = SHOWN) -> list[str]:
    """The text lines (indented like the rest of ``status``); nothing when the scaler is off."""
    if summary is None:
        return []
    if "error" in summary:
        return [f"  scaler: cannot be read: {summary['error']}"]
    view = {**summary, "decisions": list(summary.get("decisions") or [])[-shown:]}
    return [f"  {line}" for line in lines(view)]
