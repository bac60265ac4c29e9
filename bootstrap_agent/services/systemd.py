"""The ``systemd`` service manager: systemctl on a real node (and in the image's containers).

Every call has a timeout, so a hung systemd job can never hang the agent; failures come back as one-line
``ServiceError``s with systemctl's own words.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.services.base import ServiceError

SYSTEMCTL_TIMEOUT = 120.0
UNIT_TYPES = (".mount",)  # plan units with a type of their own; everything else is a service


def unit_name(unit: str) -> str:
    """systemd's name for a plan unit: ``mesos-agent`` → ``mesos-agent.service``, mounts as they are."""
    return unit if unit.endswith(UNIT_TYPES) else f"{unit}.service"


class SystemdManager:
    name = "systemd"

    def __init__(self, systemctl: str = "systemctl") -> None:
        self.systemctl = systemctl

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                [self.systemctl, *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT, check=False
            )
        except FileNotFoundError:
            raise ServiceError("systemctl not found (no systemd? use --service-manager process)") from None
        except subprocess.TimeoutExpired:
            raise ServiceError(f"systemctl {' '.join(args)}: no answer within {SYSTEMCTL_TIMEOUT:.0f} s") from None
        if check and result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()
            # A unit file changed on disk without daemon-reload makes systemctl put "Warning: ..." first.
            reason = next((line for line in lines if not line.startswith("Warning:")), lines[0])
            raise ServiceError(f"systemctl {' '.join(args)}: {reason}")
        return result

    def daemon_reload(self) -> None:
        self._run("daemon-reload")

    def enable(self, service: DesiredService) -> None:
        # --no-reload: enabling only adds a symlink; a daemon-reload for it costs ~0.2 s per unit at boot.
        self._run("enable", "--quiet", "--no-reload", unit_name(service.unit))

    def disable(self, unit: str) -> None:
        self._run("disable", "--quiet", unit_name(unit))

    def start(self, service: DesiredService) -> None:
        self._run("start", unit_name(service.unit))

    def start_all(self, services: Sequence[DesiredService]) -> None:
        """One ``systemctl start`` for several units (apply's first-boot starts): the jobs are enqueued in the
        order given, so a unit ordered After= an earlier one still waits for it, and run side by side."""
        self._run("start", *(unit_name(s.unit) for s in services))

    def restart(self, service: DesiredService) -> None:
        self._run("restart", unit_name(service.unit))

    def reload(self, service: DesiredService) -> None:
        self._run("reload-or-restart", unit_name(service.unit))

    def stop(self, unit: str) -> None:
        self._run("stop", unit_name(unit))

    def is_active(self, unit: str) -> bool:
        """Running or on its way up; readiness (its ports) is judged by the caller. A unit waiting to be
        restarted after a crash (activating/auto-restart) is not running."""
        result = self._run("show", "--property=ActiveState,SubState", unit_name(unit), check=False)
        return _running(dict(line.partition("=")[::2] for line in result.stdout.splitlines()))

    def unit_states(self, units: Sequence[str]) -> dict[str, tuple[bool, int | None]]:
        """unit -> (``is_active``, main pid) for several units in one ``systemctl show``: readiness polls every
        pending unit a few times a second at first boot, and two systemctl runs per unit and poll competed
        with the starting services for the CPU (issue 17). {} when systemctl's answer cannot be matched."""
        result = self._run("show", "--property=ActiveState,SubState,MainPID", *(unit_name(u) for u in units),
                           check=False)
        blocks = result.stdout.strip("\n").split("\n\n")  # one block per unit, in the order asked
        if result.returncode != 0 or len(blocks) != len(units):
            return {}
        states: dict[str, tuple[bool, int | None]] = {}
        for unit, block in zip(units, blocks, strict=True):
            props = dict(line.partition("=")[::2] for line in block.splitlines())
            pid = props.get("MainPID", "")
            states[unit] = (_running(props), int(pid) or None if pid.isdigit() else None)
        return states

    def main_pid(self, unit: str) -> int | None:
        result = self._run("show", "--property=MainPID", "--value", unit_name(unit), check=False)
        try:
            pid = int(result.stdout.strip())
        except ValueError:
            return None
        return pid or None

    def run_oneshot(self, unit: str, like: DesiredService) -> None:
        """``systemctl start`` of a ``Type=oneshot`` unit returns when it has run; a failure names its last words."""
        try:
            self._run("start", unit_name(unit))
        except ServiceError as exc:
            raise ServiceError(f"{exc}: {self.failure_reason(unit)}") from None

    def failure_reason(self, unit: str) -> str:
        """systemd's verdict plus the unit's last log line: what an operator would look up first."""
        result = self._run("show", "--property=ActiveState,SubState,Result", unit_name(unit), check=False)
        props = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
        verdict = f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')} (result: {props.get('Result', '?')})"
        try:
            journal = subprocess.run(
                # The program's own words (_SYSTEMD_UNIT), not systemd's messages about the unit (UNIT=).
                ["journalctl", f"_SYSTEMD_UNIT={unit_name(unit)}", "--lines", "1", "--no-pager", "--output", "cat"],
                capture_output=True, text=True, timeout=10, check=False,
            )
            last = journal.stdout.strip().splitlines()[-1:] if journal.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired):
            last = []
        return f"{verdict}: {last[0][:300]}" if last else verdict


def _running(props: dict[str, str]) -> bool:
    """Running or on its way up, from ``systemctl show``'s ActiveState and SubState (see ``is_active``)."""
    state, sub = props.get("ActiveState", ""), props.get("SubState", "")
    return state in ("active", "reloading") or (state == "activating" and sub != "auto-restart")
