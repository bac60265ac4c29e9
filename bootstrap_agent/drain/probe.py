"""The agent's ``load`` figures, measured every pass for provision-min's choice of victims: running Mesos tasks
and frameworks with executors here (the agent's ``/state``), the Alluxio worker's cached bytes (its web API) and
the bytes of files only this worker holds unpersisted (the CLI: costly, so listed in the background at most every
five minutes, ``None`` while unknown)."""

from __future__ import annotations

import time
from typing import Any

from bootstrap_agent.drain.alluxio_ops import AlluxioOps, AlluxioUnavailable
from bootstrap_agent.drain.mesos_ops import MesosOps, MesosUnavailable
from bootstrap_agent.drain.report import Load

UNPERSISTED_EVERY = 300.0


class LoadProbe:
    def __init__(self, log: Any, clock: Any = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self._unpersisted: int | None = None
        self._failing: set[str] = set()  # what is logged as away (once, until it answers again)

    def measure(self, mesos: MesosOps, alluxio: AlluxioOps | None) -> Load | None:
        """The figures, or None when the Mesos agent does not answer (a load without tasks would be a lie)."""
        try:
            agent = mesos.agent_state()
        except MesosUnavailable as exc:
            self._away("mesos", str(exc))
            return None
        self._back("mesos")
        if alluxio is None:
            return Load(agent.tasks, agent.frameworks_with_executors, 0, 0)
        try:
            cached = alluxio.cache_bytes()
        except AlluxioUnavailable as exc:
            self._away("alluxio", str(exc))
            return Load(agent.tasks, agent.frameworks_with_executors, 0, None)
        self._back("alluxio")
        if not cached:
            return Load(agent.tasks, agent.frameworks_with_executors, 0, 0)
        try:  # a listing at most every UNPERSISTED_EVERY seconds, made in the background
            held = alluxio.held_since(self.clock() - UNPERSISTED_EVERY)
            if held is not None:
                self._unpersisted = held.bytes
        except AlluxioUnavailable as exc:
            if self._unpersisted is not None:
                self.log.warning("load_unpersisted_unknown", error=str(exc))
            self._unpersisted = None
        return Load(agent.tasks, agent.frameworks_with_executors, cached, self._unpersisted)

    def _away(self, what: str, error: str) -> None:
        if what not in self._failing:
            self._failing.add(what)
            self.log.warning("load_probe_failed", service=what, error=error)

    def _back(self, what: str) -> None:
        self._failing.discard(what)
