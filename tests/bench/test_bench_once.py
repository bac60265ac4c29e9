"""Benchmarks of `once` and of the CLI's start-up, each against a floor measured in the same run.

Run: ``python3 -m pytest tests/bench -m bench -s`` (as root: nodes are network namespaces).
Machines here are noisy, so every figure is a median of several runs and comes with a ratio to a floor
measured alongside it: a bare ``python3 -c pass`` for imports, ``bootstrap-agent validate`` (interpreter +
schema, no I/O) for a whole pass.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import pytest

from tests.support.node import Node, user_data

pytestmark = pytest.mark.bench
RUNS = 9


def wall(argv: Sequence[str], runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> float:
    start = time.perf_counter()
    result = runner(list(argv), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    return elapsed


def median_ms(samples: Sequence[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def report(name: str, figures: dict[str, float | str]) -> None:
    print(f"\nBENCH {name} " + json.dumps(figures))


def test_cli_import_time() -> None:
    floor = [wall([sys.executable, "-c", "pass"]) for _ in range(RUNS)]
    cli = [wall([sys.executable, "-c", "import bootstrap_agent.cli"]) for _ in range(RUNS)]
    help_ = [wall([sys.executable, "-m", "bootstrap_agent.cli", "--help"]) for _ in range(RUNS)]
    import_ms = median_ms(cli) - median_ms(floor)
    report("cli_import", {"python_floor_ms": median_ms(floor), "import_cli_ms": median_ms(cli),
                          "import_cost_ms": round(import_ms, 1), "help_ms": median_ms(help_),
                          "ratio_import_to_floor": round(median_ms(cli) / median_ms(floor), 2)})
    assert import_ms <= 150, f"importing the CLI costs {import_ms} ms (aim: <= 150 ms)"


def test_once_wall_time(make_node: Callable[..., Node], tmp_path_factory: pytest.TempPathFactory) -> None:
    node = make_node("agent")
    first = node.once()
    assert first.returncode == 0, first.stderr
    path = tmp_path_factory.mktemp("bench") / "user-data.json"
    path.write_text(json.dumps(user_data("agent")))
    floor = [wall([sys.executable, "-m", "bootstrap_agent.cli", "validate", str(path)]) for _ in range(RUNS)]

    idle: list[float] = []  # nothing changed: fetch, validate, plan, compare, check the units
    for _ in range(RUNS):
        start = time.perf_counter()
        run = node.once()
        idle.append(time.perf_counter() - start)
        assert run.returncode == 0 and not run.units("restarted")

    changed: list[float] = []  # a changed attribute: one file installed, mesos-agent restarted
    waited: list[float] = []
    for i in range(RUNS):
        node.set_user_data(user_data("agent", mesos__attributes={"az": f"eu-de-{i:02d}"}))
        start = time.perf_counter()
        run = node.once()
        changed.append(time.perf_counter() - start)
        assert run.returncode == 0 and run.units("restarted") == ["mesos-agent"]
        waited.append(float(run.named("node_ready")[0]["waited_s"]))
    excluding_start = [c - w for c, w in zip(changed, waited, strict=True)]
    report("once", {
        "validate_floor_ms": median_ms(floor),
        "once_idle_ms": median_ms(idle),
        "once_changed_ms": median_ms(changed),
        "once_changed_excluding_service_startup_ms": median_ms(excluding_start),
        "ratio_idle_to_floor": round(statistics.median(idle) / statistics.median(floor), 2),
        "runs": RUNS,
    })
    assert statistics.median(idle) <= 0.5, "an idle pass should take at most 0.5 s"
    assert statistics.median(excluding_start) <= 0.5
