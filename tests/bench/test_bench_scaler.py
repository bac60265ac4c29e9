"""The scaler's flapping figure: decisions over 10 minutes of an oscillating load (fast, injected clock),
against a naive threshold rule (raw sample, no window, no cooldown) on the same trace.

Run: ``python3 -m pytest tests/bench/test_bench_scaler.py -m bench -s``. Pure (no processes): milliseconds.
"""

from __future__ import annotations

import math

import pytest

from bootstrap_agent.schema.autoscaling import AutoscalingSettings
from tests.support.scaler_sim import simulate, square_wave

pytestmark = pytest.mark.bench
POLICY = AutoscalingSettings(enabled=True, min=1, max=10, max_step=2, cooldown_out=300, cooldown_in=600,
                             idle_before_removal=600, interval=15, window=120)


def test_decisions_under_oscillating_load_against_a_naive_rule() -> None:
    traces = {
        "square 1.0/3.9 agents, period 60 s": square_wave(1.0, 3.9, 60),
        "square 1.0/3.9 agents, period 120 s": square_wave(1.0, 3.9, 120),
        "square 1.0/3.9 agents, period 240 s": square_wave(1.0, 3.9, 240),
        "sine 2.4 ± 1.6 agents, period 90 s": lambda t: 2.4 + 1.6 * math.sin(2 * math.pi * t / 90),
        "square 2.5/5.0 agents, period 60 s (mean above)": square_wave(2.5, 5.0, 60),
    }
    print(f"\n{'trace (start 4 agents, 10 min, 15 s interval)':48} scaler  naive  scaler desired range")
    for name, load in traces.items():
        scaler = simulate(POLICY, load, start=4)
        naive = simulate(POLICY, load, start=4, naive=True)
        print(f"{name:48} {scaler.decisions:6} {naive.decisions:6}  {min(scaler.desired)}..{max(scaler.desired)}")
        assert scaler.decisions <= 2 and naive.decisions > 3 * max(scaler.decisions, 1)
