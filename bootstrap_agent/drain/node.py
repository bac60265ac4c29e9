"""The daemon's side of the drain, so that ``daemon.py`` only calls in at a few points: every pass of an agent
measures its ``load`` and polls the lifecycle hook (when due); a pass while draining advances the drain instead
of applying the plan (nothing is restarted under a leaving node); SIGTERM while the system stops drains within
``drain.stop_timeout``; a drained node never registers again in the boot it drained in. The same instance
booting again after a shutdown drain joins again: its first passes take its Mesos machine out of maintenance
and make sure its agent is offered (``Drainer.rejoin``), every 2 s until that is so.

Who may start a drain: the AS group's lifecycle hook (``reason: lifecycle``) and the system stopping
(``reason: shutdown``). A SIGTERM that only restarts the daemon (an upgrade, ``systemctl restart``) does not
drain: ``drain_on_stop`` ``auto`` asks systemd whether the system is stopping (``is-system-running``) and
not rebooting (a reboot brings the instance back; a shutdown drain also ends with its boot, ``record.py``);
``always`` (tests, the process manager) and ``never`` say it outright.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from bootstrap_agent.drain.alluxio_ops import ALLUXIO_CLI, AlluxioOps
from bootstrap_agent.drain.lifecycle import Lifecycle
from bootstrap_agent.drain.mesos_ops import MesosOps
from bootstrap_agent.drain.probe import LoadProbe
from bootstrap_agent.drain.record import DrainStore
from bootstrap_agent.drain.report import DrainReport, Load
from bootstrap_agent.drain.runner import STEP_EVERY, Drainer, Edges
from bootstrap_agent.facts import Facts
from bootstrap_agent.inputs import Options
from bootstrap_agent.layout import Layout
from bootstrap_agent.metadata import fetch_security_key
from bootstrap_agent.schema import Settings
from bootstrap_agent.state import State

DRAIN_ON_STOP = ("auto", "always", "never")
REBOOT_TARGETS = ("reboot.target", "kexec.target", "soft-reboot.target")


class NodeDrain:
    def __init__(self, state: State, layout: Layout, options: Options, log: Any, drain_on_stop: str = "auto") -> None:
        self.layout = layout
        self.options = options
        self.log = log
        self.drain_on_stop = drain_on_stop
        self.drainer = Drainer(DrainStore(state), log)
        self.probe = LoadProbe(log)
        self.load: Load | None = None
        self.settings: Settings | None = None
        self._edges_key: tuple[object, ...] = ()

    # --- what the daemon asks --------------------------------------------------------------------------------
    @property
    def draining(self) -> bool:
        return self.drainer.active

    @property
    def left(self) -> bool:
        """Deregistered by the drain: the node must not register again (until the instance is gone)."""
        return self.drainer.record is not None and self.drainer.record.deregistered

    def wake_at(self) -> float:
        """Monotonic time of the next drain step or lifecycle poll (inf when neither is due on a timer)."""
        settings = self.settings
        poll = settings.lifecycle.poll if settings is not None and settings.lifecycle is not None else None
        return self.drainer.due(poll)

    def member_fields(self) -> dict[str, Any]:
        record = self.drainer.record
        report: DrainReport | None = record.report() if record is not None else None
        return {"load": self.load, "drain": report}

    def reason(self) -> str:
        record = self.drainer.record
        if record is None:
            return ""
        text = record.waiting_for or f"drain {record.phase}"
        return f"{record.reason} drain: {text}"

    # --- every pass ------------------------------------------------------------------------------------------
    def pass_(self, settings: Settings, facts: Facts, uuid: str, deregister: Callable[[], None]) -> bool:
        """An agent's part of a pass; True when the node is draining (the daemon then applies nothing)."""
        if settings.role != "agent":
            return False
        self.settings = settings
        self._configure(settings, facts, uuid)
        edges = self.drainer.edges
        assert edges is not None
        if not self.drainer.active:
            self.drainer.rejoin()  # booted again after a shutdown drain: out of maintenance, offered again
            self.drainer.clear_stale_maintenance()
            self.load = self.probe.measure(edges.mesos, edges.alluxio)
            if settings.lifecycle is not None:
                self.drainer.poll_lifecycle(settings.drain.grace, settings.lifecycle.poll)
        if not self.drainer.active:
            return False
        self.drainer.advance(deregister)
        return True

    def on_stop(self, why: str, deregister: Callable[[], None], report: Callable[[], None],
                watchdog: Callable[[], None]) -> None:
        """SIGTERM: drain within ``drain.stop_timeout`` when the system is stopping (or a drain already runs
        and the system is stopping); a daemon restart leaves a running drain on disk for the next start."""
        settings = self.settings
        if settings is None or settings.role != "agent" or self.drainer.edges is None or not self._system_stopping():
            return
        timeout = float(settings.drain.stop_timeout)
        if not self.drainer.active:
            self.drainer.start("shutdown", min(float(settings.drain.grace), timeout))
        self.drainer.bound(timeout)
        self.log.info("drain_on_stop", signal=why, stop_timeout=timeout)
        end = time.monotonic() + timeout + 5.0
        while self.drainer.record is not None and not self.drainer.record.finished and time.monotonic() < end:
            self.drainer.advance(deregister)
            if not self.left:
                report()
            watchdog()
            time.sleep(STEP_EVERY)
        if self.drainer.edges.alluxio is not None:
            self.drainer.edges.alluxio.stop()

    # --- building the edges ----------------------------------------------------------------------------------
    def _configure(self, settings: Settings, facts: Facts, uuid: str) -> None:
        key = (settings.masters, facts.ip, settings.alluxio, settings.spark.shuffle_service, settings.lifecycle, uuid)
        if key == self._edges_key and self.drainer.edges is not None:
            return
        self._edges_key = key
        alluxio = None
        if settings.alluxio is not None:
            alluxio = AlluxioOps([self.layout.path(ALLUXIO_CLI)], settings.alluxio.version, facts.ip)
        lifecycle = None
        if settings.lifecycle is not None:
            options = self.options
            lifecycle = Lifecycle(settings.lifecycle, uuid,
                                  lambda: fetch_security_key(options.metadata_url, options.retry))
        # Mesos agents announce --hostname and --ip as the node's address (bootstrap_agent/plan/agent.py).
        self.drainer.edges = Edges(MesosOps(settings.masters, facts.ip, facts.ip), alluxio,
                                   settings.spark.shuffle_service, lifecycle)

    def _system_stopping(self) -> bool:
        if self.drain_on_stop != "auto":
            return self.drain_on_stop == "always"
        if self.options.service_manager != "systemd":
            return False
        try:
            done = subprocess.run(["systemctl", "is-system-running"], capture_output=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.stdout.decode(errors="replace").strip() != "stopping":
            return False
        # A reboot brings the same instance back at once: it rejoins instead of leaving (its tasks end with the
        # boot either way). Only a poweroff, an ACPI shutdown from the console, drains.
        try:
            jobs = subprocess.run(["systemctl", "list-jobs", "--no-legend", "--no-pager"], capture_output=True,
                                  timeout=5, check=False).stdout.decode(errors="replace")
        except (OSError, subprocess.TimeoutExpired):
            return True
        if any(target in jobs for target in REBOOT_TARGETS):
            self.log.info("drain_skipped", why="the system reboots: the instance comes back")
            return False
        return True
