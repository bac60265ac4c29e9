"""The master daemon's hooks for the scaler (``scaler/node.py``): the thread follows the settings, and nothing it
does can end a pass: a build that raises, a thread that dies, keys the metadata service cannot give."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.autoscaling import AutoScalingError
from bootstrap_agent.cluster import ClusterStore
from bootstrap_agent.errors import SourceUnavailable
from bootstrap_agent.facts import TemporaryCredentials
from bootstrap_agent.scaler import node
from bootstrap_agent.scaler.node import AgencyKeys, MasterScaler
from bootstrap_agent.scaler.sources import agents_from_fields
from bootstrap_agent.schema import Settings, validate
from tests.test_scaler_zk import Log

EXAMPLE = Path(__file__).resolve().parents[1] / "bootstrap_agent/examples/agent.json"
POLICY = {"enabled": True, "min": 1, "max": 4, "interval": 1, "window": 2, "group": "eo-agents",
          "endpoint": "http://127.0.0.1:9/autoscaling-api/v1/local"}


def settings(**policy: Any) -> Settings:
    document = json.loads(EXAMPLE.read_text())
    document.update(role="master", autoscaling={**POLICY, **policy})
    return validate(document)


class FakeService:
    def __init__(self, lives: bool) -> None:
        self.lives, self.started, self.stopped = lives, threading.Event(), threading.Event()

    def start(self) -> None:
        self.started.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopped.set()

    def alive(self) -> bool:
        return self.started.is_set() and self.lives and not self.stopped.is_set()


@pytest.fixture
def store() -> ClusterStore:
    """Never started: the hooks only need its type, session and members (nothing is read here)."""
    return ClusterStore("127.0.0.1:9", "eo-live", "s" * 43, on_event=lambda kind, detail: None)


def test_the_thread_follows_the_settings_and_a_dead_one_is_restarted_later(
        store: ClusterStore, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeService] = []
    agents_seen: list[Any] = []

    def create(*args: Any, **kwargs: Any) -> FakeService:
        made.append(FakeService(lives=len(made) != 1))  # the second one dies at once
        agents_seen.append(kwargs["agents"])
        return made[-1]

    log = Log()
    scaler = MasterScaler(lambda: TemporaryCredentials("a", "s", "t", ""), log, create=create)
    members = ({"uuid": "i-1", "role": "agent", "state": "ready", "load": {"tasks": 0, "cache_bytes": 5}},
               {"uuid": "m-1", "role": "master", "state": "ready"})
    assert scaler.ensure(settings(), store, "m-1 (10.0.0.10)", members) is None  # not connected: nothing to show
    assert len(made) == 1 and made[0].started.is_set() and log.named("scaler_started")
    assert agents_seen[0]().keys() == {"i-1"} and agents_seen[0]()["i-1"].tasks == 0  # this pass's members
    scaler.ensure(settings(), store, "m-1 (10.0.0.10)", members)
    assert len(made) == 1  # unchanged settings: the same thread

    scaler.ensure(settings(max_step=3), store, "m-1 (10.0.0.10)")  # a changed policy: rebuilt
    assert made[0].stopped.is_set() and len(made) == 2
    scaler.ensure(settings(max_step=3), store, "m-1 (10.0.0.10)")
    assert len(made) == 2  # it died, but not long ago: not restarted at every pass
    monkeypatch.setattr(node, "RESTART_AFTER", 0.0)
    scaler.ensure(settings(max_step=3), store, "m-1 (10.0.0.10)")
    assert len(made) == 3 and log.named("scaler_thread_ended")

    scaler.ensure(settings(enabled=False), store, "m-1 (10.0.0.10)")
    assert made[2].stopped.is_set() and log.named("scaler_stopped")[-1]["why"] == "autoscaling.enabled is off"


def test_a_build_that_raises_is_one_event_and_the_pass_goes_on(store: ClusterStore) -> None:
    def create(*args: Any, **kwargs: Any) -> FakeService:
        raise RuntimeError("boom with secret-agency-key-123")

    log = Log()
    scaler = MasterScaler(lambda: TemporaryCredentials("a", "s", "t", ""), log, create=create)
    assert scaler.ensure(settings(), store, "m-1") is None
    assert "RuntimeError: boom" in log.named("scaler_start_failed")[0]["error"]


def test_agency_keys_are_kept_until_shortly_before_they_expire_and_dropped_when_refused() -> None:
    calls: list[int] = []
    now = [1_800_000_000.0]

    def fetch() -> TemporaryCredentials:
        calls.append(1)
        if len(calls) == 3:
            raise SourceUnavailable("agency credentials unavailable (does the ECS have an agency?): timed out")
        return TemporaryCredentials(f"AK{len(calls)}", "agency-secret-of-the-node-test-0001",
                                    "agency-token-of-the-node-test-0001", "2027-01-15T09:00:00.000000Z")

    keys = AgencyKeys(fetch, clock=lambda: now[0])  # 1_800_000_000 is 2027-01-15 08:00 UTC
    assert keys().access == "AK1" and keys().access == "AK1" and len(calls) == 1
    now[0] += 3600 - 600  # ten minutes before they expire
    assert keys().access == "AK2"
    keys.forget()  # a 401
    with pytest.raises(AutoScalingError, match="agency keys: no answer: agency credentials unavailable"):
        keys()


def test_agents_from_the_member_view() -> None:
    views = agents_from_fields([
        {"uuid": "i-1", "role": "agent", "state": "ready", "load": {"tasks": 2, "cache_bytes": 7,
                                                                    "unpersisted_bytes": None}},
        {"uuid": "i-2", "role": "agent", "state": "draining", "drain": {"phase": "tasks"}},
        {"uuid": "i-3", "role": "agent", "state": "bootstrapping"},
        {"uuid": "m-1", "role": "master", "state": "ready"},
    ])
    assert sorted(views) == ["i-1", "i-2", "i-3"]
    assert views["i-1"].ready and views["i-1"].tasks == 2 and views["i-1"].cache_bytes == 7
    assert views["i-2"].removing and views["i-2"].tasks is None  # unknown load: never chosen for removal
    assert not views["i-3"].ready
