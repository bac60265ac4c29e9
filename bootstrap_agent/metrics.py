"""The agent's own metrics in Prometheus' format, and the HTTP listener that serves them.

Why: an operator's monitoring should see what ``status`` shows without logging in: how often and how long the
daemon's passes run and why, which units it had to restart, each unit's and the node's state, the ZooKeeper
session, where the user-data came from and how long ago the node was last good. ``prometheus_client`` writes
the exposition (text format 0.0.4); nothing here formats it by hand. Names are a contract (prefix
``bootstrap_agent_``, documented in docs/node-agent.md): series are added, never renamed.

The daemon owns one :class:`NodeMetrics` and updates it at the end of every pass (``observe_pass``) and on
ZooKeeper session events (``zk_session``, from kazoo's thread: prometheus_client is thread-safe). Masters add
the cluster's figures (``metrics_cluster.ClusterMetrics``). Values are counts, states and times only: no label
or value ever carries a reason text, a user-data value or a secret.

The listener binds the node's private address only (``Exporter``): never 0.0.0.0, never a public or loopback
address; it is plain HTTP inside the cluster network, which the security groups keep to the subnet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import start_http_server

from bootstrap_agent import __version__
from bootstrap_agent.member import STATES, private_ipv4

# Why a pass ran, most telling first: a pass caused by several events is labelled with the first of these it
# has. Event kinds not listed (a new one) come before "tick", which rides along with other passes.
REASONS = ("start", "reload", "session", "config", "masters", "members")
OUTCOMES = ("ready", "degraded", "draining", "bootstrapping", "error")
UNIT_STATES = ("active", "failed")
# Why a unit was restarted: its inputs changed (a restart the plan asked for; a reload is none), or it had stopped
# since an earlier pass started it and the agent started it again.
RESTART_CAUSES = ("changed", "recovered")
ZK_STATES = ("connected", "suspended", "lost", "none")
SOURCES = ("cache", "metadata", "last-good")
PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def pass_reason(kinds: Iterable[str]) -> str:
    """The one label for why a pass ran (``kinds`` is the set of event kinds of its burst)."""
    present = set(kinds)
    for reason in REASONS:
        if reason in present:
            return reason
    others = sorted(present - {"tick"})
    return others[0] if others else "tick"


def unit_state(value: str) -> str:
    """A unit's state string from ``Outcome.services`` ("active" or "failed: <why>") as a label value."""
    return "active" if value == "active" else "failed"


class NodeMetrics:
    """Every node's series, in a registry of its own (the process's default one stays untouched)."""

    def __init__(self, registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created twin of every counter
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        self.started = clock()
        self.last_good: float | None = None
        self.units: set[str] = set()
        self.zk_current = "none"
        reg = self.registry
        ProcessCollector(registry=reg)  # process_resident_memory_bytes, cpu seconds, open fds
        # The node's cluster, role and uuid are the discovery document's target labels (plan/scrape_targets.py):
        # series of the node itself carry no label of those names, or Prometheus would rename one (exported_*).
        self.info = Gauge("bootstrap_agent_info", "1, labelled with the agent's version", ["version"], registry=reg)
        self.passes = Counter("bootstrap_agent_passes", "Passes of the daemon by why they ran and how they ended",
                              ["reason", "outcome"], registry=reg)
        self.pass_seconds = Histogram("bootstrap_agent_pass_duration_seconds", "How long a pass took, by why it ran",
                                      ["reason"], buckets=PASS_BUCKETS, registry=reg)
        self.restarts = Counter("bootstrap_agent_unit_restarts", "Restarts of a unit by the agent, by cause",
                                ["unit", "cause"], registry=reg)
        self.unit_state = Gauge("bootstrap_agent_unit_state", "1 for each unit's state at the last pass, else 0",
                                ["unit", "state"], registry=reg)
        self.member_state = Gauge("bootstrap_agent_member_state", "1 for the state the node reports, else 0",
                                  ["state"], registry=reg)
        self.zk_state = Gauge("bootstrap_agent_zookeeper_session_state",
                              "1 for the state of the agent's ZooKeeper session, else 0", ["state"], registry=reg)
        self.source = Gauge("bootstrap_agent_user_data_source",
                            "1 for where the last good user-data came from, else 0", ["source"], registry=reg)
        self.last_good_at = Gauge("bootstrap_agent_last_good_pass_timestamp_seconds",
                                  "When the last pass that left the node ready ended (0: none yet)", registry=reg)
        since = Gauge("bootstrap_agent_seconds_since_last_good_pass",
                      "Seconds since a pass last left the node ready (since the daemon started when none has)",
                      registry=reg)
        since.set_function(lambda: max(0.0, self.clock() - (self.last_good or self.started)))
        self._one_of(self.member_state, STATES, None)
        self._one_of(self.zk_state, ZK_STATES, "none")
        self._one_of(self.source, SOURCES, None)

    @staticmethod
    def _one_of(gauge: Gauge, values: Iterable[str], current: str | None) -> None:
        for value in values:
            gauge.labels(value).set(1 if value == current else 0)

    # --- what the daemon calls ---------------------------------------------------------------------------------
    def identify(self) -> None:
        self.info.labels(__version__).set(1)

    def zk_session(self, state: str | None) -> None:
        """kazoo's ``CONNECTED``/``SUSPENDED``/``LOST``, or None when the node has no session (no store)."""
        value = (state or "none").lower()
        self.zk_current = value if value in ZK_STATES else "lost"
        self._one_of(self.zk_state, ZK_STATES, self.zk_current)

    def zk_connected(self, connected: bool | None) -> None:
        """The session as a pass finds it: the events may lag behind it, the pass's view wins."""
        if connected is None:
            self.zk_session(None)
        elif connected:
            self.zk_session("connected")
        elif self.zk_current in ("connected", "none"):
            self.zk_session("suspended")  # not connected (yet, or any more): kazoo's LOST comes on its own

    def member(self, state: str) -> None:
        self._one_of(self.member_state, STATES, state)

    def user_data_source(self, source: str) -> None:
        self._one_of(self.source, SOURCES, source)

    def applied(self, services: Mapping[str, str], actions: Mapping[str, str]) -> None:
        """A pass's units: their states now, and the restarts it made (``Outcome.actions``: unit → what it did;
        ``restarted`` counts as changed, ``recovered`` as recovered)."""
        for unit in services:
            if unit not in self.units:
                for cause in RESTART_CAUSES:
                    self.restarts.labels(unit, cause)  # 0 from the start, so increase() sees the first one
        for unit, action in actions.items():
            if action == "restarted":
                self.restarts.labels(unit, "changed").inc()
            elif action == "recovered":
                self.restarts.labels(unit, "recovered").inc()
        for gone in self.units - set(services):
            for state in UNIT_STATES:
                self.unit_state.remove(gone, state)
        for unit, value in services.items():
            current = unit_state(value)
            for state in UNIT_STATES:
                self.unit_state.labels(unit, state).set(1 if state == current else 0)
        self.units = set(services)

    def observe_pass(self, kinds: Iterable[str], outcome: str, seconds: float) -> None:
        reason = pass_reason(kinds)
        self.passes.labels(reason, outcome if outcome in OUTCOMES else "error").inc()
        self.pass_seconds.labels(reason).observe(seconds)
        if outcome == "ready":
            self.last_good = self.clock()
            self.last_good_at.set(self.last_good)


class Exporter:
    """prometheus_client's HTTP listener on ``<private ip>:<port>``, started at the first pass that knows the
    node's address and moved when the address changes; ``port`` 0 turns it off. A refusal (a public or
    unspecified address, the port taken) is logged once and tried again at the next pass: metrics are never a
    reason for the node to be unready."""

    def __init__(self, port: int, registry: CollectorRegistry, log: Any) -> None:
        self.port = port
        self.registry = registry
        self.log = log
        self.address: str | None = None
        self._server: Any = None
        self._refused: str | None = None

    def ensure(self, ip: str) -> None:
        if self.port == 0 or ip == self.address:
            return
        if not private_ipv4(ip):
            self._refuse(ip, "not a private address: the metrics stay inside the cluster network")
            return
        self.stop()
        try:
            server, _thread = start_http_server(self.port, addr=ip, registry=self.registry)
        except OSError as exc:
            self._refuse(ip, f"{type(exc).__name__}: {exc.strerror or exc}")
            return
        self._server, self.address, self._refused = server, ip, None
        self.log.info("metrics_listening", address=ip, port=self.port)

    def _refuse(self, ip: str, why: str) -> None:
        if self._refused != f"{ip} {why}":
            self._refused = f"{ip} {why}"
            self.log.error("metrics_listen_failed", address=ip, port=self.port, error=why)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server, self.address = None, None
