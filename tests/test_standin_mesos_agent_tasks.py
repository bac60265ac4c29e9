"""The stand-in agent's task runner on its own: real processes, its checkpoint, its queue of updates (MB11).

Many tasks ending at once each save the checkpoint from their own thread while the master's acknowledgements
save too; every task's end must still be known and queued for the framework, and the checkpoint must hold the
latest picture (``src/slave/task_status_update_manager.cpp`` checkpoints every update before it is sent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from standins.mesos_agent_tasks import TaskRunner
from tests.support.waiting import wait_for

TASKS = 40


def test_tasks_ending_together_each_report_their_end_and_the_checkpoint_keeps_the_last_picture(
        tmp_path: Path) -> None:
    queued: list[dict[str, Any]] = []
    runner = TaskRunner(str(tmp_path / "work"), queued.append)
    runner.set_agent_id("S1")
    try:
        for n in range(TASKS):
            runner.launch("S1", "F1", "job", {"id": f"t{n}", "name": f"t{n}",
                                               "command": {"value": "true", "shell": True}, "resources": {}})

        def ended() -> dict[str, str] | None:
            with runner.lock:
                states = {task_id: t.state for (_, task_id), t in runner.tasks.items()}
            return states if all(s == "TASK_FINISHED" for s in states.values()) else None

        assert len(wait_for("every task's end", ended, timeout=30)) == TASKS
        # Each task's two updates are queued (RUNNING, then FINISHED behind it until RUNNING is acknowledged).
        assert sorted((u["id"], u["state"]) for u in queued) == sorted(
            (f"t{n}", s) for n in range(TASKS) for s in ("TASK_RUNNING", "TASK_FINISHED"))
        assert runner.pending() == 2 * TASKS
        # The framework acknowledges every RUNNING: the checkpoint then holds each task's FINISHED, still owed.
        for update in [u for u in queued if u["state"] == "TASK_RUNNING"]:
            assert runner.acknowledge("F1", update["id"], update["uuid"])
        saved = json.loads((tmp_path / "work" / "meta" / "slaves" / "S1" / "standin-tasks.json").read_text())
        assert sorted((t["id"], t["state"], [u["state"] for u in t["unacked"]]) for t in saved) == sorted(
            (f"t{n}", "TASK_FINISHED", ["TASK_FINISHED"]) for n in range(TASKS))
        assert not list((tmp_path / "work" / "meta" / "slaves" / "S1").glob("*.tmp"))
    finally:
        runner.kill_all(grace=0.1)
