"""The daemon's reporting side (``daemon.py``'s ``Daemon`` mixes it in): how the node tells systemd
(READY=1 once its services run, STATUS= every pass), the cluster (its member znode: registered once, then
updated) and the metrics (the pass, ZooKeeper, the exporter) how it is, and the metadata-concealment check
that can make it ``degraded``. Kept apart from the loop so that ``Daemon.reconcile`` reads as the one pass.

Nothing here may end the loop: ZooKeeper being away is no reason to fail a report, and a metrics failure is
one ``metrics_failed`` line.
"""

from __future__ import annotations

import time
from typing import Any

from bootstrap_agent.capacity import node_capacity
from bootstrap_agent.cluster import ClusterUnavailable, Store
from bootstrap_agent.conceal import concealment_problem
from bootstrap_agent.desired import Peers
from bootstrap_agent.drain.node import NodeDrain
from bootstrap_agent.facts import Facts
from bootstrap_agent.inputs import Inputs
from bootstrap_agent.layout import Layout
from bootstrap_agent.member import Member
from bootstrap_agent.metrics import Exporter, NodeMetrics
from bootstrap_agent.metrics_cluster import ClusterMetrics
from bootstrap_agent.schema import Settings
from bootstrap_agent.sdnotify import Notifier
from bootstrap_agent.state import State
from bootstrap_agent.status import Outcome, save_status

CONCEAL_RECHECK = 60.0  # seconds a concealed node's probe answer is kept (see _check_concealment)


class DaemonReport:
    """The reporting methods; the attributes are the daemon's own (set in ``Daemon.__init__``)."""

    log: Any
    layout: Layout
    state: State
    notifier: Notifier
    store: Store | None
    registered: bool
    inputs: Inputs | None
    settings: Settings | None
    facts: Facts | None
    peers: Peers
    ready_sent: bool
    conceal_logged: bool
    conceal_problem: str  # the last probe's answer ("" : concealed, or not ours to check)
    conceal_checked_at: float | None  # monotonic time of that probe
    metrics: NodeMetrics
    exporter: Exporter
    cluster_metrics: ClusterMetrics | None
    reported: str
    drain: NodeDrain

    def _observe_pass(self, kinds: set[str], outcome: str, started: float) -> None:
        """The pass in the metrics (bootstrap_agent/metrics.py); the exporter starts once the address is known.
        Metrics never end the loop: a failure here is logged (``metrics_failed``) and the loop goes on."""
        try:
            self.metrics.observe_pass(kinds, outcome, time.monotonic() - started)
            self.metrics.zk_connected(None if self.store is None else self.store.connected())
            if self.inputs is None or self.facts is None:
                return
            self.metrics.identify()
            self.metrics.user_data_source(self.inputs.fetched.source)
            if self.inputs.settings.role == "master" and self.peers.read_at is not None:
                if self.cluster_metrics is None:
                    self.cluster_metrics = ClusterMetrics(self.metrics.registry)
                self.cluster_metrics.rendered_members(self.peers.members, self.peers.read_at, time.time())
            self.exporter.ensure(self.facts.ip)
        except Exception as exc:
            self.log.error("metrics_failed", error=f"{type(exc).__name__}: {exc}")

    def _check_concealment(self, problems: list[str], kinds: set[str] | frozenset[str] = frozenset()) -> None:
        """A node whose metadata is open to every uid is degraded (bootstrap_agent/conceal.py); logged once.

        The probe (a Python process as another uid that tries two connections) cost a master more than the rest
        of a pass whose only news was a join (issue 17), so it runs at the daemon's start, at every SIGHUP (an
        operator's request to check everything), at least every ``CONCEAL_RECHECK`` seconds (so at every
        tick), and at every pass while the node is found exposed (a repair shows at once); a pass for a
        member's or a watch's news in between keeps the last answer."""
        now = time.monotonic()
        if (self.conceal_problem or self.conceal_checked_at is None or kinds & {"start", "reload"}
                or now - self.conceal_checked_at >= CONCEAL_RECHECK):
            self.conceal_problem = concealment_problem(self.layout)
            self.conceal_checked_at = now
        problem = self.conceal_problem
        if problem:
            problems.append(problem)
            if not self.conceal_logged:
                self.log.error("metadata_not_concealed", reason=problem)
        self.conceal_logged = bool(problem)

    def _report(self, state: str, reason: str, services: dict[str, str], services_up: bool = False) -> None:
        """Tell systemd and the cluster how this node is; ZooKeeper being away is no reason to fail."""

        status = state if not reason else f"{state}: {reason}"
        self.reported = state
        self.metrics.member(state)
        if services_up and not self.ready_sent:  # the role's services run (ZooKeeper may still be away)
            self.notifier.ready(status)
            self.ready_sent = True
        else:
            self.notifier.status(status)
        if self.store is None or self.inputs is None or self.facts is None or not self.store.connected() \
                or self.drain.left:
            return
        previous = self.state.status() or {}
        member = Member(
            uuid=self.inputs.meta.uuid, role=self.inputs.settings.role, ip=self.facts.ip,
            hostname=self.facts.hostname, state=state, reason=reason, services=services,
            since=float(previous.get("since", time.time())), **self.drain.member_fields(),
            capacity=node_capacity(self.settings or self.inputs.settings, self.facts),  # CPUs, memory, Alluxio RAM
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

    def _scaler_id(self) -> str:
        """How ``provision-min status`` and the dashboard name the leading master's scaler."""
        assert self.facts is not None
        return f"{self.facts.hostname} ({self.facts.ip})" if self.facts.hostname else self.facts.ip

    def _report_draining(self) -> None:
        """status.json and the member say what the drain waits for; READY=1 too (an agent restarted mid-drain
        must not time out its start)."""
        services = (self.state.status() or {}).get("services", {})
        if self.inputs is not None and self.facts is not None and self.settings is not None:
            save_status(self.state, self.settings, self.facts.ip, self.inputs.fetched.source,
                        Outcome(0, "draining", self.drain.reason(), services), self.log)
        self._report("draining", self.drain.reason(), services, services_up=True)
