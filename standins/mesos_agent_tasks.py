"""Tasks on the stand-in agent: real processes, as Mesos's command executor runs them.

Each task runs ``sh -c <command.value>`` (or ``value`` with ``arguments`` when ``shell`` is false) in its
sandbox ``<work_dir>/slaves/<agent id>/frameworks/<framework id>/executors/<task id>/runs/<container id>``, with
``stdout``/``stderr`` files there, as the agent's own user, in a process group of its own (apache/mesos 1.11.0
``src/launcher/executor.cpp``, ``src/slave/paths.cpp``). States: ``TASK_RUNNING`` once started, then
``TASK_FINISHED`` (exit 0), ``TASK_FAILED`` (other exit) or ``TASK_KILLED`` (killed: SIGTERM to the group, SIGKILL
after the grace period, 3 s by default as the command executor's ``KillPolicy`` default). One executor per task,
its id the task id, as the command executor. In the agent's ``/state`` a framework with a live executor is in
``frameworks[]`` (``executors[].tasks[]``, finished ones in ``completed_executors``); once none is live it moves to
``completed_frameworks`` (``Slave::removeExecutor``/``removeFramework``, ``src/slave/slave.cpp``; the JSON is
``src/slave/http.cpp``'s ``FrameworkWriter``/``ExecutorWriter``).

Executors outlive the agent, as with the real agent's default ``--recover=reconnect`` (``src/slave/slave.cpp``
``Slave::recover``; see STARTUP-RULES.md M3 for the unit this needs): a small ``sh`` wrapper (the stand-in's
command executor) runs the command and writes its exit status into the sandbox, and the agent checkpoints its
id (``<work_dir>/meta/slaves/latest``, ``src/slave/paths.cpp``) and its tasks
(``meta/slaves/<id>/standin-tasks.json``). A restarted agent adopts the tasks whose process still runs, learns the
exit status of those that ended meanwhile, resends the updates the framework has not acknowledged, and
re-registers with the same id.

Status updates are reliable (STARTUP-RULES.md MB11; ``src/slave/task_status_update_manager.cpp``): each update gets
a ``uuid`` and stays in its task's queue (checkpointed) until the framework's ACKNOWLEDGE for that uuid comes back
through the master; the agent sends the head of each queue and re-sends it until then (``mesos_agent.py``). Updates
of a framework the master shut down (TEARDOWN) are dropped, as ``Slave::shutdownFramework`` cleans its streams up.
Completed tasks kept per framework: 150 (``DEFAULT_MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK``,
``src/slave/constants.hpp``); a task with unacknowledged updates is kept until they are acknowledged.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standins.common import log_event
from standins.mesos_model import TERMINAL_STATES

DEFAULT_KILL_GRACE = 3.0
MAX_COMPLETED_PER_FRAMEWORK = 150
EXIT_FILE = ".standin_exit_status"
# The stand-in's command executor: run the command, keep its exit status where a restarted agent finds it.
_WRAPPER = 'status_file=$1; shift; "$@"; status=$?; echo $status > "$status_file"; exit $status'
Report = Callable[[dict[str, Any]], None]


def _start_time(pid: int) -> str | None:
    """The process's start time (``/proc/<pid>/stat`` field 22): a pid reused by another process differs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if len(fields) < 20 or fields[0] == "Z" else fields[19]  # a zombie has ended


@dataclass
class AgentTask:
    id: str
    name: str
    framework_id: str
    framework_name: str
    command: dict[str, Any]
    resources: dict[str, float]
    sandbox: Path
    agent_id: str
    state: str = "TASK_STAGING"
    statuses: list[dict[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    killing: bool = False
    pid: int | None = None
    pid_start: str | None = None
    reported: str = ""  # the last state the framework acknowledged
    unacked: list[dict[str, Any]] = field(default_factory=list)  # updates sent, not yet acknowledged, oldest first
    sent_at: float = 0.0  # monotonic time the head of ``unacked`` was last sent (0: due now)

    def checkpoint(self) -> dict[str, Any]:
        return {**self.report(), "sandbox": str(self.sandbox), "pid": self.pid, "pid_start": self.pid_start,
                "reported": self.reported, "killing": self.killing, "unacked": self.unacked}

    def alive(self) -> bool:
        return self.pid is not None and self.pid_start is not None and _start_time(self.pid) == self.pid_start

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "framework_id": self.framework_id, "executor_id": "",
                "slave_id": self.agent_id, "state": self.state, "resources": dict(self.resources),
                "statuses": self.statuses}

    def executor_json(self) -> dict[str, Any]:
        live = self.state not in TERMINAL_STATES
        return {"id": self.id, "name": f"Command Executor (Task: {self.id}) (Command: sh -c "
                                      f"'{self.command.get('value', '')}')",
                "framework_id": self.framework_id, "source": self.id, "container": self.sandbox.name,
                "directory": str(self.sandbox), "resources": dict(self.resources),
                "tasks": [self.to_json()] if live else [], "queued_tasks": [],
                "completed_tasks": [] if live else [self.to_json()]}

    def report(self) -> dict[str, Any]:
        """What the agent sends the master (and, on re-registration, its view of the task)."""
        return {**self.to_json(), "framework_name": self.framework_name, "command": self.command}


class TaskRunner:
    def __init__(self, work_dir: str, report: Report) -> None:
        self.work_dir = Path(work_dir)
        self.report = report
        self.lock = threading.RLock()
        self.tasks: dict[tuple[str, str], AgentTask] = {}
        self.agent_id = ""
        self.gone_frameworks: set[str] = set()  # shut down by the master: their updates are dropped

    # Checkpoints ----------------------------------------------------------------------------------------------

    @property
    def _latest(self) -> Path:
        return self.work_dir / "meta" / "slaves" / "latest"

    def _checkpoint_file(self) -> Path:
        return self.work_dir / "meta" / "slaves" / self.agent_id / "standin-tasks.json"

    def save(self) -> None:
        """Write the checkpoint atomically (a crash leaves the old one or the new one).

        Task threads, the master's acknowledgements and the registration all save: one at a time, under the
        runner's lock, so that two writers never share the staging file (the second rename found it gone and
        killed its task's thread, which then never reported the task's end) and an older picture never replaces
        a newer one. A checkpoint that cannot be written is logged; the task's state here stays as it is."""
        if not self.agent_id:
            return
        path = self._checkpoint_file()
        tmp = path.with_name(path.name + ".tmp")
        with self.lock:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps([t.checkpoint() for t in self.tasks.values()]))
                os.replace(tmp, path)
            except OSError as exc:
                log_event("agent_checkpoint_failed", path=str(path), error=str(exc))

    def set_agent_id(self, agent_id: str) -> None:
        """The id the master gave: ``meta/slaves/latest`` points at it, as the real agent's symlink."""
        self.agent_id = agent_id
        self._latest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._latest.with_name("latest.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(agent_id)
        os.replace(tmp, self._latest)
        self.save()

    def forget(self) -> None:
        """After a shutdown from the master the next start is a new agent (the checkpoint is not recovered)."""
        self._latest.unlink(missing_ok=True)

    def recover(self) -> str:
        """Read the checkpoint; adopt live tasks, finish ended ones; return the recovered agent id or ""."""
        if not self._latest.is_symlink():
            return ""
        self.agent_id = os.readlink(self._latest)
        try:
            items = json.loads(self._checkpoint_file().read_text())
        except (OSError, ValueError):
            items = []
        for item in items:
            task = AgentTask(str(item["id"]), str(item.get("name", "")), str(item["framework_id"]),
                             str(item.get("framework_name", "")), dict(item.get("command", {})),
                             dict(item.get("resources", {})), Path(item["sandbox"]), self.agent_id,
                             str(item["state"]), list(item.get("statuses", [])), None, bool(item.get("killing")),
                             item.get("pid"), item.get("pid_start"), str(item.get("reported", "")))
            task.unacked = [u for u in item.get("unacked", []) if isinstance(u, dict)]
            self.tasks[(task.framework_id, task.id)] = task
            if task.state not in TERMINAL_STATES:
                threading.Thread(target=self._adopt, args=(task,), daemon=True).start()
            elif task.reported != task.state and not task.unacked:  # a checkpoint without the queue
                task.unacked.append(self._update(task, ""))
        return self.agent_id

    # Reliable status updates (MB11) ---------------------------------------------------------------------------

    @staticmethod
    def _update(task: AgentTask, message: str) -> dict[str, Any]:
        """A status update as the agent sends it: the task's view plus the update's own ``uuid`` (base64 of the
        16 bytes, the JSON form of the proto ``bytes`` field) and timestamp."""
        return {**task.report(), "message": message, "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
                "timestamp": time.time()}

    def due(self, now: float, interval: float) -> list[dict[str, Any]]:
        """The head update of every task whose queue waits for a (re)send; marks them sent at ``now``."""
        out: list[dict[str, Any]] = []
        with self.lock:
            for task in self.tasks.values():
                if task.unacked and (task.sent_at == 0.0 or now - task.sent_at >= interval):
                    task.sent_at = now
                    out.append(task.unacked[0])
        return out

    def resend_all(self) -> None:
        """After (re-)registering every pending update is due at once (``Slave::reregistered`` resumes the
        status update manager, which flushes its streams)."""
        with self.lock:
            for task in self.tasks.values():
                task.sent_at = 0.0

    def acknowledge(self, framework_id: str, task_id: str, status_uuid: str) -> bool:
        """The framework acknowledged ``status_uuid``: the head of the task's queue goes, the next is due."""
        with self.lock:
            task = self.tasks.get((framework_id, task_id))
            if task is None or not task.unacked or task.unacked[0].get("uuid") != status_uuid:
                return False  # "Unexpected task status update acknowledgment" (a duplicate or a stale one)
            done = task.unacked.pop(0)
            task.reported, task.sent_at = str(done["state"]), 0.0
            if task.state in TERMINAL_STATES:
                self._trim(task.framework_id)
        self.save()
        return True

    def shutdown_framework(self, framework_id: str) -> None:
        """The master removed the framework (TEARDOWN): its pending updates are dropped, later ones too."""
        with self.lock:
            self.gone_frameworks.add(framework_id)
            for task in self.tasks.values():
                if task.framework_id == framework_id:
                    task.unacked.clear()
                    task.reported = task.state
        self.save()

    def pending(self) -> int:
        with self.lock:
            return sum(len(t.unacked) for t in self.tasks.values())

    # Running --------------------------------------------------------------------------------------------------

    def launch(self, agent_id: str, framework_id: str, framework_name: str, info: dict[str, Any]) -> None:
        task_id = str(info["id"])
        sandbox = (self.work_dir / "slaves" / agent_id / "frameworks" / framework_id / "executors" / task_id /
                   "runs" / str(uuid.uuid4()))
        task = AgentTask(task_id, str(info.get("name", "")), framework_id, framework_name,
                         dict(info.get("command", {})), dict(info.get("resources", {})), sandbox, agent_id)
        with self.lock:
            if (framework_id, task_id) in self.tasks:
                return  # a duplicate launch (the master resent it) changes nothing
            self.tasks[(framework_id, task_id)] = task
        threading.Thread(target=self._run, args=(task,), daemon=True, name=f"task-{task_id}").start()

    def _argv(self, task: AgentTask) -> list[str]:
        value = str(task.command.get("value", ""))
        if task.command.get("shell", True):
            inner = ["sh", "-c", value]
        else:
            arguments = [str(a) for a in task.command.get("arguments", [])]
            inner = [value, *arguments[1:]] if arguments else [value]
        return ["sh", "-c", _WRAPPER, "mesos-executor", str(task.sandbox / EXIT_FILE), *inner]

    def _environment(self, task: AgentTask) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESOS_")}  # the agent's own flags
        env.update({"MESOS_SANDBOX": str(task.sandbox), "MESOS_TASK_ID": task.id,
                    "MESOS_FRAMEWORK_ID": task.framework_id, "MESOS_AGENT_ID": task.agent_id,
                    "MESOS_EXECUTOR_ID": task.id, "MESOS_DIRECTORY": str(task.sandbox)})
        for variable in (task.command.get("environment") or {}).get("variables", []):
            if isinstance(variable, dict) and "name" in variable:
                env[str(variable["name"])] = str(variable.get("value", ""))
        return env

    def _run(self, task: AgentTask) -> None:
        try:
            task.sandbox.mkdir(parents=True, exist_ok=True)
            with open(task.sandbox / "stdout", "wb") as out, open(task.sandbox / "stderr", "wb") as err:
                task.proc = subprocess.Popen(self._argv(task), cwd=task.sandbox, env=self._environment(task),
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             start_new_session=True)
        except OSError as exc:
            self._set(task, "TASK_FAILED", f"Failed to launch the command: {exc}")
            return
        task.pid, task.pid_start = task.proc.pid, _start_time(task.proc.pid)
        if task.killing:  # killed between launch and start
            self._signal(task, signal.SIGKILL)
        else:
            self._set(task, "TASK_RUNNING", "")
        self._ended(task, task.proc.wait())

    def _adopt(self, task: AgentTask) -> None:
        """A task of the agent before its restart: wait for its process by polling, then read its status."""
        while task.alive():
            time.sleep(0.2)
        try:
            code = int((task.sandbox / EXIT_FILE).read_text().strip())
        except (OSError, ValueError):
            code = -int(signal.SIGKILL)  # no status written: the executor was killed
        self._ended(task, code)

    def _ended(self, task: AgentTask, code: int) -> None:
        if task.killing:
            self._set(task, "TASK_KILLED", "Command terminated with signal "
                                           f"{signal.Signals(-code).name if code < 0 else code}")
        elif code == 0:
            self._set(task, "TASK_FINISHED", "Command exited with status 0")
        elif code < 0:
            self._set(task, "TASK_FAILED", f"Command terminated with signal {signal.Signals(-code).name}")
        else:
            self._set(task, "TASK_FAILED", f"Command exited with status {code}")

    def _set(self, task: AgentTask, state: str, message: str) -> None:
        with self.lock:
            task.state = state
            task.statuses.append({"state": state, "timestamp": time.time()})
            update = self._update(task, message)
            if task.framework_id in self.gone_frameworks:
                task.reported = state
            else:
                task.unacked.append(update)
            if state in TERMINAL_STATES:
                self._trim(task.framework_id)
        self.save()
        self.report(update)

    def _trim(self, framework_id: str) -> None:
        done = [key for key, t in self.tasks.items() if t.framework_id == framework_id
                and t.state in TERMINAL_STATES and t.reported == t.state and not t.unacked]
        for key in done[:max(len(done) - MAX_COMPLETED_PER_FRAMEWORK, 0)]:
            del self.tasks[key]

    def _signal(self, task: AgentTask, signum: int) -> None:
        if task.alive() and task.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task.pid, signum)

    def kill(self, framework_id: str, task_id: str, grace: float | None = None) -> None:
        with self.lock:
            task = self.tasks.get((framework_id, task_id))
            if task is None or task.state in TERMINAL_STATES:
                return
            task.killing = True
        self.save()
        self._signal(task, signal.SIGTERM)
        wait = DEFAULT_KILL_GRACE if grace is None else min(grace, DEFAULT_KILL_GRACE)

        def escalate() -> None:
            deadline = time.monotonic() + wait
            while task.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            self._signal(task, signal.SIGKILL)

        threading.Thread(target=escalate, daemon=True).start()

    def kill_all(self, grace: float = DEFAULT_KILL_GRACE) -> None:
        """Shut every executor down and wait for them (bounded), as ``Slave::shutdown`` does."""
        with self.lock:
            live = [t for t in self.tasks.values() if t.state not in TERMINAL_STATES]
        for task in live:
            self.kill(task.framework_id, task.id, grace)
        deadline = time.monotonic() + grace + 1.0
        while any(t.alive() for t in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for task in live:
            self._signal(task, signal.SIGKILL)

    def live(self) -> list[dict[str, Any]]:
        with self.lock:
            return [t.report() for t in self.tasks.values() if t.state not in TERMINAL_STATES]

    def for_reregistration(self) -> list[dict[str, Any]]:
        """Live tasks and terminated ones whose updates are not acknowledged (``Slave::doReliableRegistration``
        sends ``launchedTasks`` and ``terminatedTasks``): the new leader knows them, the updates keep flowing."""
        with self.lock:
            return [t.report() for t in self.tasks.values() if t.state not in TERMINAL_STATES or t.unacked]

    def state_json(self) -> dict[str, Any]:
        with self.lock:
            frameworks: dict[str, list[AgentTask]] = {}
            for task in self.tasks.values():
                frameworks.setdefault(task.framework_id, []).append(task)
            running: list[dict[str, Any]] = []
            completed: list[dict[str, Any]] = []
            for framework_id, tasks in frameworks.items():
                live = [t for t in tasks if t.state not in TERMINAL_STATES]
                entry = {"id": framework_id, "name": tasks[0].framework_name,
                         "executors": [t.executor_json() for t in live],
                         "completed_executors": [t.executor_json() for t in tasks if t not in live]}
                (running if live else completed).append(entry)
            return {"frameworks": running, "completed_frameworks": completed}
