"""``bootstrap-agent run``: one loop that keeps the node converged, the way Patroni's does.

Watches, ZooKeeper session changes, signals and a slow periodic tick only *enqueue* events. The loop waits
for an event, lets a burst settle (debounce: quiet for ``debounce_min``, at most ``debounce_max`` after the
first event), then recomputes the whole desired state from current inputs and applies the difference. It is
level-triggered: a lost watch costs at most one tick, never a wrong configuration, and the tick re-lists
everything as the backstop.

Nothing outside the node can stop it: with ZooKeeper unreachable it keeps the services as configured,
reports ``degraded`` and keeps trying; with bad user-data or a bad cluster config it keeps the last good
configuration and says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.apply import apply
from bootstrap_agent.cluster import ClusterStore, ClusterUnavailable, Store
from bootstrap_agent.conceal import concealment_problem
from bootstrap_agent.desired import Peers
from bootstrap_agent.errors import InvalidInput, SourceUnavailable
from bootstrap_agent.facts import Facts
from bootstrap_agent.inputs import Inputs, Options, commit_inputs, node_facts, read_inputs
from bootstrap_agent.layout import Layout
from bootstrap_agent.member import Member
from bootstrap_agent.plan import plan
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


class Daemon:
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

    # --- events ----------------------------------------------------------------------------------------------
    def enqueue(self, kind: str, detail: str = "") -> None:
        """Called from signal handlers and kazoo's threads: never blocks, never touches ZooKeeper."""
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
            batch = self.next_batch(tick_due)
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
        try:
            self.reconcile(kinds, events)
        except Exception as exc:
            reason = f"pass failed: {type(exc).__name__}: {exc}"
            self.log.error("reconcile_failed", error=str(exc), error_type=type(exc).__name__,
                           reasons=sorted(kinds))
            try:
                self._report("degraded", reason, {})
            except Exception as report_exc:  # the report reads the same state: say so, keep looping
                self.log.error("report_failed", error=str(report_exc), error_type=type(report_exc).__name__)

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
        if not self.registered and not self.ready_sent and self.store is not None and self.store.connected():
            self._report("bootstrapping", "", {})  # the cluster sees the node before its services are up
        settings = self._effective_settings(problems)
        assert self.facts is not None
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
        if outcome.reason:
            problems.append(outcome.reason)
        self._check_concealment(problems)
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

    def _check_concealment(self, problems: list[str]) -> None:
        """A node whose metadata is open to every uid is degraded (bootstrap_agent/conceal.py); logged once."""
        problem = concealment_problem(self.layout)
        if problem:
            problems.append(problem)
            if not self.conceal_logged:
                self.log.error("metadata_not_concealed", reason=problem)
        self.conceal_logged = bool(problem)

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
        if previous is not None and self.store is not None and _store_inputs(previous.settings) != _store_inputs(
                inputs.settings):
            self._drop_store("masters or secret changed")

    def _drop_store(self, why: str) -> None:
        """Leave the old ensemble (or the old secret's session) so that the next step builds the store and its
        watches from the current user-data: growing 3 → 5 masters, or a rotated secret, takes effect at once."""
        self.log.info("store_rebuilding", why=why)
        assert self.store is not None
        with contextlib.suppress(ClusterUnavailable):
            if self.registered:
                self.store.deregister()
        self.store.stop()
        self.store, self.watching, self.registered = None, False, False

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

    def _ensure_watches(self) -> None:
        if self.watching or self.store is None or self.inputs is None or not self.store.connected():
            return
        try:
            self.store.ensure_tree()
            if self.inputs.settings.role == "master":
                self.store.watch_members()
            else:
                self.store.watch_masters(self.inputs.settings.masters)
            self.store.watch_config()
        except ClusterUnavailable as exc:
            self.log.warning("watch_failed", error=str(exc))
            return
        self.watching = True

    def _refresh_cluster(self, problems: list[str], relist: bool) -> None:
        assert self.inputs is not None
        if self.store is None:
            return
        if not self.store.connected():
            problems.append("ZooKeeper unreachable")
            return
        self._ensure_watches()
        settings = self.inputs.settings
        try:
            self.overrides = self.store.get_config()
            if settings.role == "master":
                members = self.store.members()
                self.peers = Peers(tuple(dataclasses.asdict(m) for m in members), read_at=time.time())
            elif relist:
                self.store.masters(settings.masters)  # the tick's re-read: proves the masters' znodes are reachable
        except ClusterUnavailable as exc:
            problems.append(f"ZooKeeper: {exc}")

    @contextlib.contextmanager
    def _restart_guard(self) -> Iterator[bool]:
        """Agents restart under the cluster-wide lock, so the cluster never loses all its workers at once."""
        if self.store is None or self.inputs is None or not self.store.connected():
            yield False
            return
        with restart_guard(self.store, self.inputs.meta.uuid, self.options.restart_lock_timeout, self.log) as granted:
            yield granted

    def _report(self, state: str, reason: str, services: dict[str, str], services_up: bool = False) -> None:
        """Tell systemd and the cluster how this node is; ZooKeeper being away is no reason to fail."""

        status = state if not reason else f"{state}: {reason}"
        if services_up and not self.ready_sent:  # the role's services run (ZooKeeper may still be away)
            self.notifier.ready(status)
            self.ready_sent = True
        else:
            self.notifier.status(status)
        if self.store is None or self.inputs is None or self.facts is None or not self.store.connected():
            return
        previous = self.state.status() or {}
        member = Member(
            uuid=self.inputs.meta.uuid, role=self.inputs.settings.role, ip=self.facts.ip,
            hostname=self.facts.hostname, state=state, reason=reason, services=services,
            since=float(previous.get("since", time.time())),
        )
        try:
            if self.registered:
                self.store.update(member)
            else:
                self.store.register(self.inputs.meta.uuid, member, master=self.inputs.settings.role == "master")
                self.registered = True
                self.log.info("member_registered", uuid=member.uuid, role=member.role, state=member.state)
        except ClusterUnavailable as exc:
            self.log.warning("member_report_failed", error=str(exc))

    def shutdown(self, why: str) -> None:
        """Leave the cluster cleanly: draining, then gone. Services keep running (systemd stops them)."""
        self.log.info("leaving", signal=why)
        self.notifier.stopping("draining")
        if self.store is not None:
            with contextlib.suppress(ClusterUnavailable):
                if self.registered and self.inputs and self.facts:
                    self._report("draining", f"stopping ({why})", (self.state.status() or {}).get("services", {}))
                self.store.deregister()
            self.store.stop()
        self.log.info("left")


@contextlib.contextmanager
def restart_guard(store: Store, identifier: str, timeout: float, log: Any) -> Iterator[bool]:
    """The restart lock for the ``with`` body, or False when ZooKeeper cannot be asked (restarts wait for the
    next pass). Only asking for the lock fails quietly: what the guarded body raises passes through unchanged,
    since a generator context manager must yield exactly once."""
    with contextlib.ExitStack() as held:
        try:
            granted = held.enter_context(store.restart_lock(identifier, timeout))
        except ClusterUnavailable as exc:
            log.warning("restart_lock_unavailable", error=str(exc))
            granted = False
        if granted:
            log.info("restart_lock_acquired")
        yield granted
        if granted:
            log.info("restart_lock_released")


def _store_inputs(settings: Settings) -> tuple[object, ...]:
    """What the ZooKeeper store and the watches are built from."""
    return (tuple(settings.masters), settings.secret, settings.cluster)


def run(options: DaemonOptions) -> int:
    logs.configure()
    return Daemon(options, logs.get()).run()
