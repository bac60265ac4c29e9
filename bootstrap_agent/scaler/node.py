"""The master daemon's side of the scaler, so that ``daemon.py`` only calls in at three points: every pass
(``ensure``: start, stop or rebuild the scaler's thread as the effective settings say, and read what the
dashboard shows), when the ZooKeeper store is rebuilt and at shutdown (``stop``).

Nothing here may end the daemon's loop: every failure is one logged event (``scaler_start_failed``,
``scaler_report_failed``, ``scaler_thread_ended``) and the next pass tries again. A thread that ended on its
own (``scaler_failed`` inside it) is started again after ``RESTART_AFTER`` seconds, not at every pass.

The AS client signs with the ECS agency's temporary AK/SK from the metadata service (never the nginx cache),
kept in memory only until ten minutes before they expire (``agency_keys.py``, shared with the agents'
lifecycle poll). The local cloud's metadata service hands every node such keys and its AS service
verifies them, so one code path serves both clouds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from bootstrap_agent import logs
from bootstrap_agent.agency_keys import AgencyClient, AgencyKeys
from bootstrap_agent.cluster import ClusterStore, Store
from bootstrap_agent.facts import TemporaryCredentials
from bootstrap_agent.scaler.decide import hold_after_manual
from bootstrap_agent.scaler.service import ScalerService
from bootstrap_agent.scaler.sources import agents_from_fields
from bootstrap_agent.schema import Settings
from bootstrap_agent.zk.errors import ClusterUnavailable

RESTART_AFTER = 60.0  # a scaler thread that ended by itself is started again after this long


class Runner(Protocol):
    """What the hooks need of the scaler's thread (``ScalerService``)."""

    def start(self) -> None: ...
    def stop(self, timeout: float = 10.0) -> None: ...
    def alive(self) -> bool: ...


class MasterScaler:
    """One master's scaler thread, kept in line with the settings. ``fetch_keys``: the metadata service's
    ``securitykey`` (``metadata.fetch_security_key``)."""

    def __init__(self, fetch_keys: Callable[[], TemporaryCredentials], log: Any, *,
                 create: Callable[..., Runner | None] = ScalerService.create,
                 stop_timeout: float = 20.0, notify: Callable[[], None] | None = None) -> None:
        self._fetch_keys = fetch_keys
        self._notify = notify  # a new kind of decision: the daemon runs a pass (its dashboard shows it at once)
        self._create = create
        self.log = log
        self.stop_timeout = stop_timeout
        self.service: Runner | None = None
        self._key: tuple[object, ...] | None = None
        self._started = 0.0
        self._members: tuple[dict[str, Any], ...] = ()

    # --- every pass ------------------------------------------------------------------------------------------
    def ensure(self, settings: Settings, store: Store | None, identifier: str,
               members: tuple[dict[str, Any], ...] = ()) -> dict[str, Any] | None:
        """Start, keep, rebuild or stop the thread; the scaler's view for the dashboard (None: none to show).
        ``members``: this pass's member view, which the thread reads instead of the znodes (one reference,
        swapped whole: no lock needed)."""
        self._members = members
        try:
            self._ensure(settings, store, identifier)
        except Exception as exc:  # the scaler must never end the daemon's pass, let alone its loop
            self.log.error("scaler_start_failed", error=logs.mask(f"{type(exc).__name__}: {exc}"))
        return self.view(settings, store)

    def _ensure(self, settings: Settings, store: Store | None, identifier: str) -> None:
        policy = settings.autoscaling
        if settings.role != "master" or not policy.enabled or not isinstance(store, ClusterStore):
            self.stop("autoscaling.enabled is off" if settings.role == "master" else "not a master")
            self._key = None
            return
        key = (policy, tuple(settings.masters), settings.alluxio is not None, id(store), identifier)
        service = self.service
        if key == self._key and (service is None or service.alive()):
            return  # running as configured (or not configurable: scaler_unconfigured was logged once)
        if key == self._key and service is not None:  # it ended by itself (scaler_failed was logged)
            if time.monotonic() - self._started < RESTART_AFTER:
                return
            self.log.warning("scaler_thread_ended", restarting=True)
        self.stop("settings changed" if self._key is not None and key != self._key else "restarting")
        self._key = key
        client = AgencyClient(str(policy.endpoint), AgencyKeys(self._fetch_keys))
        self.service = self._create(settings, store.session, store.members, client, identifier, log=self.log,
                                    agents=lambda: agents_from_fields(self._members), on_change=self._notify)
        if self.service is None:
            return
        self._started = time.monotonic()
        self.service.start()
        self.log.info("scaler_started", identifier=identifier, group=policy.group, interval=policy.interval)

    def view(self, settings: Settings, store: Store | None) -> dict[str, Any] | None:
        """Who leads, the hold, the last decisions and the chart's series, read from ZooKeeper (masters with
        the scaler enabled); None when there is nothing to show or it cannot be read now."""
        if settings.role != "master" or not settings.autoscaling.enabled or not isinstance(store, ClusterStore) \
                or not store.connected():
            return None
        from bootstrap_agent.scaler.report import read_view

        try:
            return read_view(store.session, hold_after_manual(settings.autoscaling))
        except (ClusterUnavailable, ValueError) as exc:
            self.log.warning("scaler_report_failed", error=str(exc))
            return None

    # --- store rebuilt, setting off, shutdown ----------------------------------------------------------------
    def stop(self, why: str) -> None:
        """End the thread (it releases its leadership on the way out); a thread stuck in a call past
        ``stop_timeout`` is left to finish (a daemon thread) and said so."""
        service, self.service = self.service, None
        if service is None:
            return
        try:
            service.stop(self.stop_timeout)
        except Exception as exc:
            self.log.error("scaler_stop_failed", error=logs.mask(f"{type(exc).__name__}: {exc}"))
            return
        if service.alive():
            self.log.warning("scaler_stop_slow", why=why, waited=self.stop_timeout)
        else:
            self.log.info("scaler_stopped", why=why)

    def forget(self) -> None:
        """After ``stop`` for a rebuilt store: the next ``ensure`` builds the thread on the new session."""
        self._key = None
