"""The node's side of the AS group's ``INSTANCE_TERMINATING`` lifecycle hook: notice its own pending removal
(``GET scaling_instance_hook/{group}/list?instance_id=<own uuid>``) and, once drained, complete the action
(``PUT scaling_instance_hook/{group}/callback``, ``CONTINUE``), signed with the ECS agency's temporary AK/SK
and security token from the metadata service (``bootstrap_agent/autoscaling.py``, ``otc_signing.py``).

The keys are fetched from the metadata service itself (never the nginx cache) and kept in memory only, until
ten minutes before they expire (``bootstrap_agent/agency_keys.py``); the group id is looked up by name once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests

from bootstrap_agent.agency_keys import AgencyKeys
from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, AutoScalingError
from bootstrap_agent.facts import TemporaryCredentials
from bootstrap_agent.schema.lifecycle import LifecycleSettings

T = TypeVar("T")


class LifecycleUnavailable(Exception):
    """The AS API or the agency's keys could not be had; one line."""


@dataclass(frozen=True)
class PendingRemoval:
    group_id: str
    action_key: str


class Lifecycle:
    def __init__(self, settings: LifecycleSettings, instance_id: str,
                 fetch_keys: Callable[[], TemporaryCredentials], session: requests.Session | None = None,
                 timeout: tuple[float, float] = (3.0, 10.0)) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self._keys = AgencyKeys(fetch_keys, unavailable=LifecycleUnavailable)
        self._group_id: str | None = None
        self.client = AutoScaling(settings.endpoint, AkSkAuth(self._keys), session=session, timeout=timeout)

    def group_id(self) -> str:
        if self._group_id is None:
            group = self._guard(lambda: self.client.find_group(self.settings.group))
            if group is None:
                raise LifecycleUnavailable(f"AS group {self.settings.group!r} not found")
            self._group_id = group.id
        return self._group_id

    def pending(self) -> PendingRemoval | None:
        """This instance's HANGING action of our hook, if the group is removing it."""
        gid = self.group_id()
        actions = self._guard(lambda: self.client.hanging(gid, self.instance_id))
        for action in actions:
            if action.instance_id == self.instance_id and action.hook_name == self.settings.hook \
                    and action.status == "HANGING" and action.action_key:
                return PendingRemoval(gid, action.action_key)
        return None

    def complete(self, group_id: str, action_key: str) -> None:
        """CONTINUE: the group may delete the instance now."""
        self._guard(lambda: self.client.callback(group_id, action_key, "CONTINUE"))

    @staticmethod
    def _guard(call: Callable[[], T]) -> T:
        try:
            return call()
        except AutoScalingError as exc:
            raise LifecycleUnavailable(str(exc)) from None
