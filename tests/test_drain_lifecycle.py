"""The node's side of the lifecycle hook (bootstrap_agent/drain/lifecycle.py, runner.poll_lifecycle): it finds
its own HANGING action and completes it with CONTINUE, every request signed with the agency's temporary keys.

The OTC AS API is faked with ``responses`` in the documented shapes (/work/shared/reference/otc-api.md: the
group list by name, ``instance_hanging_info``, the callback body → 204); each request's signature and security
token are checked with the verifier the local AS service uses (``otc_signing.verify_request``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from bootstrap_agent.drain.lifecycle import Lifecycle, LifecycleUnavailable
from bootstrap_agent.drain.mesos_ops import MesosOps
from bootstrap_agent.drain.record import DrainStore
from bootstrap_agent.drain.runner import Drainer, Edges
from bootstrap_agent.errors import SourceUnavailable
from bootstrap_agent.facts import TemporaryCredentials
from bootstrap_agent.layout import Layout
from bootstrap_agent.otc_signing import KnownKey, SigningKey, verify_request
from bootstrap_agent.schema.lifecycle import LifecycleSettings
from bootstrap_agent.state import State
from tests.support.event_log import EventLog

ENDPOINT = "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/0123abcd"
SETTINGS = LifecycleSettings(ENDPOINT, "c1-agents", "c1-drain", poll=1)
KEY = TemporaryCredentials("AKTEMP", "sk-temp", "token-temp", "2099-01-01T00:00:00.000000Z")
UUID = "1b2c3d4e-0000-4000-8000-000000000001"
GID = "6f0e-group"


class FakeAS:
    """The documented AS answers; refuses (401) whatever is not signed by the agency key with its token."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.hanging: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.refusals: list[str] = []
        rsps.add_callback(responses.GET, f"{ENDPOINT}/scaling_group", self.groups)
        rsps.add_callback(responses.GET, f"{ENDPOINT}/scaling_instance_hook/{GID}/list", self.list)
        rsps.add_callback(responses.PUT, f"{ENDPOINT}/scaling_instance_hook/{GID}/callback", self.callback)

    def _check(self, request: Any) -> tuple[int, dict[str, str], str] | None:
        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        known = KnownKey(SigningKey(KEY.access, KEY.secret, KEY.token))
        body = request.body or b""
        headers = {"Host": parts.netloc, **dict(request.headers)}  # http.client adds Host on the wire
        why = verify_request(request.method, target, headers,
                             body if isinstance(body, bytes) else body.encode(),
                             lambda access: known if access == KEY.access else None)
        if why is None:
            return None
        self.refusals.append(why)
        return 401, {}, json.dumps({"error": {"code": "APIGW.0301", "message": why}})

    def groups(self, request: Any) -> tuple[int, dict[str, str], str]:
        refused = self._check(request)
        if refused:
            return refused
        assert request.params == {"scaling_group_name": "c1-agents"}
        groups = [{"scaling_group_id": GID, "scaling_group_name": "c1-agents", "scaling_group_status": "INSERVICE"},
                  {"scaling_group_id": "other", "scaling_group_name": "c1-agents-old"}]
        return 200, {}, json.dumps({"scaling_groups": groups, "total_number": 2})

    def list(self, request: Any) -> tuple[int, dict[str, str], str]:
        refused = self._check(request)
        if refused:
            return refused
        mine = [h for h in self.hanging if h["instance_id"] == request.params.get("instance_id")]
        return 200, {}, json.dumps({"instance_hanging_info": mine})

    def callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        refused = self._check(request)
        if refused:
            return refused
        self.callbacks.append(json.loads(request.body))
        return 204, {}, ""

    def remove_me(self, hook: str = "c1-drain", status: str = "HANGING") -> None:
        self.hanging.append({"instance_id": UUID, "lifecycle_action_key": "key-123", "lifecycle_hook_name": hook,
                             "lifecycle_hook_status": status, "timeout": "2026-11-29T16:00:00Z",
                             "default_result": "CONTINUE", "scaling_group_id": GID})


@pytest.fixture
def fake_as() -> Iterator[FakeAS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeAS(rsps)


def lifecycle(keys: Any = lambda: KEY) -> Lifecycle:
    return Lifecycle(SETTINGS, UUID, keys)


def test_no_pending_removal_until_the_group_hangs_this_instance(fake_as: FakeAS) -> None:
    node = lifecycle()
    assert node.pending() is None
    fake_as.hanging.append({"instance_id": "someone-else", "lifecycle_action_key": "k2",
                            "lifecycle_hook_name": "c1-drain", "lifecycle_hook_status": "HANGING"})
    assert node.pending() is None
    fake_as.remove_me(hook="another-hook")
    fake_as.remove_me(status="CONTINUE")
    assert node.pending() is None
    fake_as.remove_me()
    removal = node.pending()
    assert removal is not None and (removal.group_id, removal.action_key) == (GID, "key-123")
    assert fake_as.refusals == []


def test_continue_is_sent_with_the_action_key_signed_with_the_token(fake_as: FakeAS) -> None:
    node = lifecycle()
    node.complete(GID, "key-123")
    assert fake_as.callbacks == [{"lifecycle_action_key": "key-123", "lifecycle_action_result": "CONTINUE"}]
    assert fake_as.refusals == []


def test_wrong_keys_are_refused_by_the_api_and_reported_in_one_line(fake_as: FakeAS) -> None:
    forged = TemporaryCredentials("AKTEMP", "not-the-secret", "token-temp", "")
    with pytest.raises(LifecycleUnavailable) as caught:
        lifecycle(lambda: forged).pending()
    assert "HTTP 401" in str(caught.value) and "\n" not in str(caught.value)
    assert fake_as.refusals and "signature does not match" in fake_as.refusals[0]


def test_no_agency_keys_is_one_line(fake_as: FakeAS) -> None:
    def missing() -> TemporaryCredentials:
        raise SourceUnavailable("agency credentials unavailable (does the ECS have an agency?): refused")

    with pytest.raises(LifecycleUnavailable, match="does the ECS have an agency"):
        lifecycle(missing).pending()


def test_the_poll_starts_a_lifecycle_drain_that_survives_a_restart(fake_as: FakeAS, tmp_path: Path) -> None:
    store = DrainStore(State(Layout(str(tmp_path))))
    log = EventLog()
    drainer = Drainer(store, log)
    drainer.edges = Edges(MesosOps(["127.0.0.1"], "127.0.0.1", "127.0.0.1"), lifecycle=lifecycle())
    assert not drainer.poll_lifecycle(grace=600, poll_every=0.0)
    fake_as.remove_me()
    assert not drainer.poll_lifecycle(grace=600, poll_every=3600.0)  # not due yet: the AS API is not asked
    assert drainer.poll_lifecycle(grace=600, poll_every=0.0)
    assert drainer.record is not None and drainer.record.reason == "lifecycle"
    assert drainer.record.action_key == "key-123" and drainer.record.deadline - drainer.record.started == 600
    assert ("drain_started", {"reason": "lifecycle", "grace": 600, "deadline": drainer.record.deadline,
                              "lifecycle_action": True}) in log.events
    again = Drainer(store, EventLog())
    assert again.record == drainer.record and again.active
