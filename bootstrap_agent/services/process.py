"""The ``process`` service manager: the agent runs each unit as a plain supervised process under ``--root``.

For tests and machines without systemd as PID 1. It keeps the unit contract of the systemd units in
``systemd/``: the same ``EnvironmentFile=`` is read (same quoting rules), the same program gets the same
configuration file. What runs for each unit comes from an injected command table (``services/commands.py``):
the product's own runs ZooKeeper and nginx for real; the stand-ins' distribution (``standins/``) adds Mesos,
Alluxio and the tools (they validate every flag and key against the versioned lists). Processes outlive
``bootstrap-agent once``: each is recorded in ``<root>/run/bootstrap-agent/process/<unit>.json`` with its pid
and start time, so a later pass finds it again and a recycled pid is never mistaken for it.

nginx runs with ``<root>/etc/nginx/nginx.conf``, which the image provides; it must not set ``daemon`` (the
manager passes ``daemon off;``) and should ``include`` ``<root>/etc/nginx/conf.d/*.conf``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.install import write_atomic
from bootstrap_agent.layout import Layout
from bootstrap_agent.services.alluxio_java import alluxio_java_environment
from bootstrap_agent.services.base import ServiceError
from bootstrap_agent.services.commands import PRODUCT_COMMANDS, CommandTable
from bootstrap_agent.services.envfile import parse_environment_file
from bootstrap_agent.services.zookeeper_cmd import ZooKeeperNotInstalled

STOP_TIMEOUT = 10.0
ONESHOT_TIMEOUT = 120.0


class ProcessManager:
    name = "process"

    def __init__(self, layout: Layout, commands: CommandTable = PRODUCT_COMMANDS) -> None:
        self.layout = layout
        self.commands = commands
        self.run_dir = Path(layout.path("/run/bootstrap-agent/process"))
        self.log_dir = Path(layout.path("/var/log/bootstrap-agent"))

    # the commands -----------------------------------------------------------------------------------------
    def command(self, service: DesiredService) -> tuple[list[str], list[str]]:
        """argv and EnvironmentFiles of a unit, mirroring ``ExecStart=``/``EnvironmentFile=`` of its unit."""
        build = self.commands.get(service.unit)
        if build is None:
            raise ServiceError(f"{service.unit}: the process manager does not know how to run this unit"
                               " (its stand-in: pip install ./standins)")
        return build(service, self.layout)

    # ServiceManager -----------------------------------------------------------------------------------------
    def daemon_reload(self) -> None:
        """Nothing to reload: commands are built fresh on every start."""

    def enable(self, service: DesiredService) -> None:
        """Processes do not survive a reboot; the agent starts them again at boot."""

    def disable(self, unit: str) -> None:
        """See ``enable``."""

    def start(self, service: DesiredService) -> None:
        if self.is_active(service.unit):
            return
        if service.unit.endswith(".mount"):
            self._make_folder(service)
            return
        try:
            argv, env_files = self.command(service)
        except ZooKeeperNotInstalled as exc:
            raise ServiceError(f"{service.unit}: {exc}") from None
        env = self._environment(service.unit, env_files)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{service.unit}.log"
        with open(log_path, "ab") as log:
            try:
                process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    cwd=self.layout.root, start_new_session=True, close_fds=True,
                )
            except OSError as exc:
                raise ServiceError(f"{service.unit}: cannot run {argv[0]}: {exc.strerror}") from None
        record = {"pid": process.pid, "started": psutil.Process(process.pid).create_time(), "argv": argv}
        write_atomic(self.run_dir / f"{service.unit}.json", json.dumps(record).encode(), 0o644)

    def _environment(self, unit: str, env_files: list[str]) -> dict[str, str]:
        """The process' environment: ours, the unit's ``Environment=`` (the Alluxio units' Java 11), then its
        ``EnvironmentFile=``s, in that order as systemd applies them."""
        env = dict(os.environ)
        if unit.startswith("alluxio-"):
            env.update(alluxio_java_environment(self.layout))
        for env_file in env_files:
            optional = env_file.startswith("-")
            file_path = Path(self.layout.path(env_file.lstrip("-")))
            if optional and not file_path.exists():
                continue
            try:
                env.update(parse_environment_file(file_path.read_text("utf-8")))
            except (OSError, ValueError) as exc:
                raise ServiceError(f"{unit}: cannot read {file_path}: {exc}") from None
        return env

    def run_oneshot(self, unit: str, like: DesiredService) -> None:
        """Run the oneshot's command to its end, logged like a unit (``<unit>.log``)."""
        argv, env_files = self.command(DesiredService(unit, (), (), like.version))
        env = self._environment(unit, env_files)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{unit}.log", "ab") as log:
            try:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=self.layout.root, timeout=ONESHOT_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ServiceError(f"{unit}: {exc}") from None
        if result.returncode != 0:
            raise ServiceError(f"{unit}: exit {result.returncode}: {self.failure_reason(unit)}")

    def restart(self, service: DesiredService) -> None:
        self.stop(service.unit)
        self.start(service)

    def reload(self, service: DesiredService) -> None:
        if service.unit.endswith(".mount"):
            self._make_folder(service)  # a new size means nothing to a plain folder; a new mode does
            return
        process = self._process(service.unit)
        if process is None:
            self.start(service)
            return
        if service.unit != "nginx":
            self.restart(service)
            return
        process.send_signal(signal.SIGHUP)

    def stop(self, unit: str) -> None:
        process = self._process(unit)
        if process is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
                if _wait_dead(process, STOP_TIMEOUT):
                    break
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / f"{unit}.json").unlink()

    def is_active(self, unit: str) -> bool:
        if unit.endswith(".mount"):
            return self._folder(unit) is not None
        return self._process(unit) is not None

    def main_pid(self, unit: str) -> int | None:
        process = self._process(unit)
        return process.pid if process else None

    def failure_reason(self, unit: str) -> str:
        try:
            lines = (self.log_dir / f"{unit}.log").read_text("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return "never started"
        last = [line for line in lines[-20:] if line.strip()]
        return last[-1][:300] if last else "exited without output"

    def stop_all(self) -> None:
        """Stop every unit this manager started under its root (tests, and leaving a node for good)."""
        if self.run_dir.exists():
            for record in sorted(self.run_dir.glob("*.json")):
                self.stop(record.stem)

    # mount units: no tmpfs without systemd (and no mounting in tests), the folder alone -----------------------
    def _make_folder(self, service: DesiredService) -> None:
        """Create the folder a mount unit names (``Where=``) with its ``mode=``: the services that use it find
        it as on a real node, only on the disk instead of in RAM."""
        unit_file = Path(self.layout.path(service.unit_file or service.inputs[0]))
        try:
            where, mode = mount_target(unit_file.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ServiceError(f"{service.unit}: cannot read {unit_file}: {exc}") from None
        folder = Path(where)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, mode)
        write_atomic(self.run_dir / f"{service.unit}.json", json.dumps({"mount": where}).encode(), 0o644)

    def _folder(self, unit: str) -> str | None:
        try:
            where = json.loads((self.run_dir / f"{unit}.json").read_text("utf-8"))["mount"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        return where if isinstance(where, str) and os.path.isdir(where) else None

    def _process(self, unit: str) -> psutil.Process | None:
        try:
            record = json.loads((self.run_dir / f"{unit}.json").read_text("utf-8"))
            process = psutil.Process(int(record["pid"]))
            if abs(process.create_time() - float(record["started"])) > 0.01:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(process.pid, os.WNOHANG)
                return None
            return process
        except (FileNotFoundError, ValueError, KeyError, TypeError, json.JSONDecodeError, psutil.Error):
            return None



def mount_target(text: str) -> tuple[str, int]:
    """``Where=`` and the ``mode=`` of ``Options=`` (default 0755) of a rendered mount unit."""
    where, mode = None, 0o755
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep:
            continue
        if key == "Where":
            where = value.strip()
        elif key == "Options":
            for option in value.split(","):
                name, _, setting = option.partition("=")
                if name.strip() == "mode":
                    mode = int(setting, 8)
    if not where or not where.startswith("/"):
        raise ValueError("no absolute Where=")
    return where, mode


def _wait_dead(process: psutil.Process, timeout: float) -> bool:
    """Wait until ``process`` is gone or a zombie (its new parent may reap it whenever it likes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(process.pid, os.WNOHANG)
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False
