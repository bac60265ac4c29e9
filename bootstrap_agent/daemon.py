"""``bootstrap-agent run``: one loop that keeps the node converged, the way Patroni's does.

Watches, ZooKeeper session changes, signals and a slow periodic tick only *enqueue* events. The loop waits
for an event, lets a burst settle (debounce: quiet for ``debounce_min``, at most ``debounce_max`` after the
first event), then recomputes the whole desired state from current inputs and applies the difference. It is
level-triggered: a lost watch costs at most one tick, never a wrong configuration, and the tick re-lists
everything as the backstop.

Nothing outside the node can stop it: with ZooKeeper unreachable it keeps the services as configured,
reports ``degraded`` and keeps trying; with bad user-data or a bad cluster config it keeps the last good
configuration and says why.

The loop and the pass are here; the ZooKeeper side (watches, the cluster read, the restart lock, leaving) is
``daemon_cluster.py`` and the reporting side (systemd, the member znode, the metrics) ``daemon_report.py``,
both mixed into ``Daemon``.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.apply import apply
from bootstrap_agent.cluster import ClusterStore, ClusterUnavailable, Store
from bootstrap_agent.daemon_cluster import DaemonCluster, store_inputs
from bootstrap_agent.daemon_cluster import restart_guard as restart_guard  # re-exported: tests/test_cluster.py
from bootstrap_agent.daemon_report import DaemonReport
from bootstrap_agent.desired import Peers
from bootstrap_agent.drain.node import NodeDrain
from bootstrap_agent.errors import InvalidInput, SourceUnavailable
from bootstrap_agent.facts import Facts
from bootstrap_agent.inputs import Inputs, Options, commit_inputs, node_facts, read_inputs
from bootstrap_agent.layout import Layout
from bootstrap_agent.metadata import fetch_security_key
from bootstrap_agent.metrics import Exporter, NodeMetrics
from bootstrap_agent.metrics_cluster import ClusterMetrics
from bootstrap_agent.plan import plan
from bootstrap_agent.ports import METRICS_PORT
from bootstrap_agent.scaler.node import MasterScaler
from bootstrap_agent.schema import Settings, validate, with_overrides
from bootstrap_agent.sdnotify import Notifier
from bootstrap_agent.services import make_manager
from bootstrap_agent.state import State
from bootstrap_agent.status import Outcome, save_status
from bootstrap_agent.zk.paths import ensemble


@dataclass(frozen=True)
class DaemonOptions:
    once: Options = field(default_factory=Options)
    tick: float = 60.0  # full re-list and re-fetch: the backstop for anything a watch missed
    debounce_min: float = 0.2
    debounce_max: float = 2.0
    zk_call_timeout: float = 5.0
    zk_session_timeout: float = 10.0
    restart_lock_timeout: float = 1.0  # waiting longer only delays the loop; the next pass asks again
    zk_connect_grace: float = 2.0
    metrics_port: int = METRICS_PORT  # the exporter on the node's private address (0: off)
    drain_on_stop: str = "auto"  # SIGTERM drains an agent: auto (the system is stopping), always, never


class Daemon(DaemonCluster, DaemonReport):
    def __init__(self, options: DaemonOptions, log: Any) -> None:
        self.options = options
        self.log = log
        self.layout = Layout(options.once.root)
        self.state = State(self.layout)
        self.manager = make_manager(options.once.service_manager, self.layout)
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.notifier = Notifier()
        self.store: Store | None = None  # created once the settings are known
        self.watching = False
        self.registered = False
        self.inputs: Inputs | None = None  # last good
        self.settings: Settings | None = None  # last good, with the cluster's run-time overrides
        self.facts: Facts | None = None
        self.overrides: dict[str, Any] = {}
        self.peers = Peers()
        self.ready_sent = False
        self.reconciles = 0
        self.conceal_logged = False  # metadata_not_concealed is logged when it starts, not every pass
        self.conceal_problem, self.conceal_checked_at = "", None  # the last concealment probe (daemon_report)
        self.metrics = NodeMetrics()  # bootstrap_agent/metrics.py: updated by every pass, served by the exporter
        self.exporter = Exporter(options.metrics_port, self.metrics.registry, log)
        self.cluster_metrics: ClusterMetrics | None = None  # masters: members by state, join→rendered latency
        self.reported = ""  # the state the last report gave (the pass's outcome in the metrics)
        # An agent's drain (bootstrap_agent/drain/): its load every pass, the lifecycle poll, the drain's steps.
        self.drain = NodeDrain(self.state, self.layout, options.once, log, options.drain_on_stop)
        # A master's scaler (bootstrap_agent/scaler/node.py): its own thread, kept in line with the settings.
        self.scaler = MasterScaler(lambda: fetch_security_key(options.once.metadata_url, options.once.retry), log,
                                   notify=lambda: self.enqueue("scaler"))

    # --- events ----------------------------------------------------------------------------------------------
    def enqueue(self, kind: str, detail: str = "") -> None:
        """Called from signal handlers and kazoo's threads: never blocks, never touches ZooKeeper."""
        if kind == "session":
            self.metrics.zk_session(detail)
        self.events.put((kind, detail))

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.enqueue("stop", "SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.enqueue("stop", "SIGINT"))
        signal.signal(signal.SIGHUP, lambda *_: self.enqueue("reload", "SIGHUP"))

    def _wait(self, deadline: float) -> tuple[str, str] | None:
        """Next event, or None at ``deadline``; pings the watchdog while waiting."""
        interval = self.notifier.watchdog_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            timeout = deadline - now if interval is None else min(deadline - now, interval)
            try:
                return self.events.get(timeout=timeout)
            except queue.Empty:
                self.notifier.watchdog()

    def next_batch(self, tick_due: float) -> list[tuple[str, str]]:
        """Block until an event (or the tick), then collect the burst that follows it."""
        first = self._wait(tick_due)
        if first is None:
            return [("tick", "")]
        batch = [first]
        started = time.monotonic()
        quiet_until = started + self.options.debounce_min
        hard_limit = started + self.options.debounce_max
        while first[0] != "stop":
            event = self._wait(min(quiet_until, hard_limit))
            if event is None:
                break
            batch.append(event)
            if event[0] == "stop":
                break
            quiet_until = time.monotonic() + self.options.debounce_min
        return batch

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self.notifier.status("bootstrapping")
        self.enqueue("start")
        tick_due = time.monotonic()
        while True:
            batch = self.next_batch(min(tick_due, self.drain.wake_at()))
            if batch == [("tick", "")] and time.monotonic() < tick_due:
                batch = [("drain", "")]  # a drain step or lifecycle poll fell due: no re-fetch of the inputs
            kinds = {kind for kind, _ in batch}
            if "stop" in kinds:
                self.shutdown(next(d for k, d in batch if k == "stop"))
                return 0
            if time.monotonic() >= tick_due:
                # The tick fell due while a burst was settling: it rides along with this pass, or a steady
                # stream of events would postpone the backstop re-fetch for ever.
                kinds.add("tick")
            if "tick" in kinds:
                tick_due = time.monotonic() + self.options.tick
            self.run_cycle(kinds, len(batch))
            self.notifier.watchdog()

    def run_cycle(self, kinds: set[str], events: int) -> None:
        """One pass that never ends the loop (Patroni's ``Ha.run_cycle``): a failure the pass did not expect
        (a unit manager error, a damaged state folder) is logged, reported as ``degraded`` with its reason,
        and the next event or tick tries again. Only ``stop`` ends the daemon."""
        started, outcome = time.monotonic(), "error"
        try:
            self.reconcile(kinds, events)
            outcome = self.reported
        except Exception as exc:
            reason = f"pass failed: {type(exc).__name__}: {exc}"
            self.log.error("reconcile_failed", error=str(exc), error_type=type(exc).__name__,
                           reasons=sorted(kinds))
            try:
                self._report("degraded", reason, {})
            except Exception as report_exc:  # the report reads the same state: say so, keep looping
                self.log.error("report_failed", error=str(report_exc), error_type=type(report_exc).__name__)
        self._observe_pass(kinds, outcome, started)

    def reconcile(self, kinds: set[str], events: int) -> Outcome | None:
        started = time.monotonic()
        self.reconciles += 1
        refetch = self.inputs is None or bool(kinds & {"start", "reload", "tick"})
        problems: list[str] = []
        if refetch:
            self._refresh_inputs(problems)
        if self.inputs is None:
            self._report("degraded", problems[-1] if problems else "no user-data yet", {})
            return None
        self._ensure_store()
        self._refresh_cluster(problems, relist=refetch or "session" in kinds)
        if not self.registered and not self.ready_sent and self.store is not None and self.store.connected() \
                and not self.drain.draining:
            self._report("bootstrapping", "", {})  # the cluster sees the node before its services are up
        settings = self._effective_settings(problems)
        if settings.role == "master":  # start/stop the scaler as the settings say; its view for the dashboard
            self.peers = replace(self.peers, scaler=self.scaler.ensure(settings, self.store, self._scaler_id(),
                                                                       self.peers.members))
        assert self.facts is not None
        if self.drain.pass_(settings, self.facts, self.inputs.meta.uuid, self._leave_cluster):
            self._report_draining()
            return None  # a leaving node applies nothing: no restart under its draining services
        try:
            desired = plan(settings, self.facts, self.peers, self.layout)
        except InvalidInput as exc:
            problems.append(f"cannot configure this node: {exc}")
            self.log.error("plan_invalid", field=exc.path, error=exc.message)
            self._report("degraded", "; ".join(problems), {})
            return None
        guard = self._restart_guard if settings.role == "agent" else None
        outcome = apply(desired, self.layout, self.manager, self.state, self.options.once.start_timeout, self.log,
                        restart_guard=guard)
        self.metrics.applied(outcome.services, outcome.actions)
        if outcome.reason:
            problems.append(outcome.reason)
        self._check_concealment(problems, kinds)
        state = "ready" if outcome.exit_code == 0 and not problems else "degraded"
        save_status(self.state, settings, self.facts.ip, self.inputs.fetched.source,
                    Outcome(outcome.exit_code, state, "; ".join(problems), outcome.services), self.log)
        self._report(state, "; ".join(problems), outcome.services, services_up=outcome.exit_code == 0)
        if settings.role == "master" and self.store is not None and not self.watching:
            # Masters start their ZooKeeper in the pass above, then register and watch.
            self._ensure_watches()
        self.log.info("reconciled", reasons=sorted(kinds), events=events, state=state,
                      seconds=round(time.monotonic() - started, 3), reconciles=self.reconciles)
        return outcome

    def _refresh_inputs(self, problems: list[str]) -> None:
        try:
            inputs = read_inputs(self.options.once, self.state, self.log)
            facts = node_facts(self.options.once, inputs.settings, inputs.meta, self.log)
        except (InvalidInput, SourceUnavailable) as exc:
            event = "user_data_invalid" if isinstance(exc, InvalidInput) else "user_data_unavailable"
            self.log.error(event, error=str(exc), keeping="last good" if self.inputs else "nothing yet")
            problems.append(f"{'invalid user-data' if isinstance(exc, InvalidInput) else 'inputs'}: {exc}")
            return
        if self.inputs and inputs.settings.cluster != self.inputs.settings.cluster:
            self.log.error("cluster_changed", previous=self.inputs.settings.cluster, now=inputs.settings.cluster)
        commit_inputs(self.state, inputs, facts, self.log)
        previous, self.inputs, self.facts = self.inputs, inputs, facts
        if previous is not None and self.store is not None and store_inputs(previous.settings) != store_inputs(
                inputs.settings):
            self._drop_store("masters or secret changed")

    def _effective_settings(self, problems: list[str]) -> Settings:
        """User-data with the cluster's run-time overrides; a bad override keeps the last good settings."""
        assert self.inputs is not None
        if not self.overrides:
            self.settings = self.inputs.settings
            return self.settings
        try:
            self.settings = validate(with_overrides(self.inputs.document, self.overrides))
        except InvalidInput as exc:
            self.log.error("config_invalid", field=exc.path, error=exc.message)
            problems.append(f"cluster config refused: {exc}")
            if self.settings is None or self.settings.cluster != self.inputs.settings.cluster:
                self.settings = self.inputs.settings
        return self.settings

    # --- ZooKeeper --------------------------------------------------------------------------------------------
    def _ensure_store(self) -> None:
        if self.store is not None or self.inputs is None:
            return
        settings = self.inputs.settings
        self.store = ClusterStore(
            ensemble(settings.masters), settings.cluster, settings.secret, on_event=self.enqueue, log=self.log,
            call_timeout=self.options.zk_call_timeout, session_timeout=self.options.zk_session_timeout,
            operator_acl_id=settings.operator_acl_id,
        )
        self.store.start()
        if settings.role == "agent":
            # A moment for the session, so the cluster sees this node bootstrapping before its services start;
            # ZooKeeper being away only costs this grace, the services start anyway.
            self.store.wait_connected(self.options.zk_connect_grace)
            self._ensure_watches()

    def shutdown(self, why: str) -> None:
        """Leave the cluster cleanly: draining, then gone. Services keep running (systemd stops them)."""
        self.log.info("leaving", signal=why)
        self.scaler.stop(f"stopping ({why})")  # first: its leadership goes while the session is still up
        self.notifier.stopping("draining")
        self.drain.on_stop(why, self._leave_cluster, self._report_draining, self.notifier.watchdog)
        if self.store is not None:
            with contextlib.suppress(ClusterUnavailable):
                if self.registered and self.inputs and self.facts:
                    self._report("draining", f"stopping ({why})", (self.state.status() or {}).get("services", {}))
                self.store.deregister()
            self.store.stop()
        self.log.info("left")


def run(options: DaemonOptions) -> int:
    logs.configure()
    return Daemon(options, logs.get()).run()
