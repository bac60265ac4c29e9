"""How often a daemon pass probes the metadata concealment (``DaemonReport._check_concealment``): at the start,
at every SIGHUP, at least every ``CONCEAL_RECHECK`` seconds and at every pass while exposed, not at a pass for a
member's news (the probe is a process of its own: it cost a master more than a join's whole pass, issue 17).
The probe itself is tested for real in tests/test_conceal.py; here it is counted."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bootstrap_agent import daemon_report
from bootstrap_agent.daemon_report import CONCEAL_RECHECK, DaemonReport


class Node(DaemonReport):
    def __init__(self) -> None:
        self.layout: Any = None
        self.log: Any = type("Log", (), {"error": staticmethod(lambda *a, **k: None)})()
        self.conceal_logged, self.conceal_problem, self.conceal_checked_at = False, "", None


def test_the_probe_runs_at_start_reload_tick_and_while_exposed_not_for_member_news(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answers = ["", "", "metadata concealment missing: uid 65534 reaches 127.0.0.1:80", "", ""]
    probes: list[int] = []

    def probe(_layout: Any) -> str:
        probes.append(1)
        return answers[len(probes) - 1]

    clock = [1000.0]
    monkeypatch.setattr(daemon_report, "concealment_problem", probe)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    node = Node()

    def check(*kinds: str) -> list[str]:
        problems: list[str] = []
        node._check_concealment(problems, set(kinds))
        return problems

    assert check("start") == [] and len(probes) == 1
    clock[0] += 5
    assert check("members") == [] and len(probes) == 1  # a join's pass: the last answer
    assert check("reload") == [] and len(probes) == 2  # SIGHUP: checked again
    clock[0] += CONCEAL_RECHECK
    assert check("members") == [answers[2]] and len(probes) == 3  # a minute later: checked, exposed
    assert check("members") == [] and len(probes) == 4  # exposed: every pass, so the repair shows at once
    assert check("members") == [] and len(probes) == 4
