"""The scaler as a master runs it: built from the master's settings and store, in a thread of its own.

``ScalerService.create`` returns None (with a reason logged) when the policy is off or cannot act (no AS
``endpoint``/``group`` in the policy): the master then simply has no scaler. The thread first finds the group
by name (retrying while the AS API is away), then contends and runs ``Scaler.run`` until ``stop()``. The
AS client is handed in, so the caller decides its auth (a master uses the agency's AK/SK, as the agents'
lifecycle does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.autoscaling import AutoScaling, AutoScalingError
from bootstrap_agent.member import Member
from bootstrap_agent.ports import ALLUXIO_MASTER_WEB, MESOS_MASTER_PORT
from bootstrap_agent.scaler.decide import InstanceView
from bootstrap_agent.scaler.loop import Scaler
from bootstrap_agent.scaler.sources import MesosSignals, member_source
from bootstrap_agent.schema.settings import Settings
from bootstrap_agent.zk.session import Session


class ScalerService:
    def __init__(self, scaler_factory: Callable[[str], Scaler], find_group: Callable[[], str], interval: float,
                 log: Any) -> None:
        self._factory = scaler_factory
        self._find_group = find_group
        self._interval = interval
        self.log = log
        self.stopping = threading.Event()
        self.scaler: Scaler | None = None
        self._thread = threading.Thread(target=self._run, name="scaler", daemon=True)

    @classmethod
    def create(cls, settings: Settings, session: Session, members: Callable[[], list[Member]], client: AutoScaling,
               identifier: str, *, clock: Callable[[], float] = time.time, log: Any = None,
               agents: Callable[[], Mapping[str, InstanceView]] | None = None,
               on_change: Callable[[], None] | None = None) -> ScalerService | None:
        """``agents``: the agents' member views when the caller has them already (a master's daemon); else they
        are read from ZooKeeper with ``members`` at every pass. ``on_change``: ``Scaler.on_change``."""
        log = log if log is not None else logs.get()
        policy = settings.autoscaling
        if not policy.enabled:
            return None
        if settings.role != "master" or not policy.group or not policy.endpoint:
            log.warning("scaler_unconfigured", reason="autoscaling needs 'endpoint' and 'group' on a master "
                        "(provision-min fills them)")
            return None
        alluxio: list[str] = []
        if policy.alluxio_above is not None and settings.alluxio is not None:
            alluxio = [f"http://{ip}:{ALLUXIO_MASTER_WEB}/api/v1/master/info" for ip in settings.masters]
        signals = MesosSignals([f"{ip}:{MESOS_MASTER_PORT}" for ip in settings.masters], alluxio=alluxio)
        group_name = policy.group

        def find_group() -> str:
            group = client.find_group(group_name)
            if group is None:
                raise AutoScalingError("GET /scaling_group", f"no AS group called {group_name!r}")
            return group.id

        def factory(group_id: str) -> Scaler:
            scaler = Scaler(session, policy, client, group_id, signals, agents or member_source(members),
                            identifier=identifier, clock=clock, log=log)
            scaler.on_change = on_change
            return scaler

        return cls(factory, find_group, policy.interval, log)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        group_id = None
        while group_id is None and not self.stopping.is_set():
            try:
                group_id = self._find_group()
            except AutoScalingError as exc:
                self.log.warning("scaler_group_failed", error=logs.mask(str(exc)))
                self.stopping.wait(self._interval)
        if group_id is None:
            return
        self.scaler = self._factory(group_id)
        try:
            self.scaler.run(self.stopping)
        except Exception as exc:  # the scaler must never take the master's daemon down with it
            self.log.error("scaler_failed", error=logs.mask(f"{type(exc).__name__}: {exc}"))
