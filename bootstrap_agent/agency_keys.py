"""The ECS agency's temporary AK/SK and security token, for the AS API calls a node signs itself: the
master's scaler (``scaler/node.py``) and an agent's lifecycle poll (``drain/lifecycle.py``).

The keys come from the metadata service itself (never the nginx cache) and are kept in memory only, until
ten minutes before they expire (the metadata service renews them then); a refused signature (401) drops them
(``AgencyClient``), so keys the metadata service replaced early are not used until they expire. The secret
and the token are registered with ``logs`` so that no log line shows them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, AutoScalingError
from bootstrap_agent.errors import SourceUnavailable
from bootstrap_agent.facts import TemporaryCredentials
from bootstrap_agent.otc_signing import SigningKey, parse_expiry

RENEW_BEFORE = 600.0  # the metadata service renews the keys 10 minutes before they expire


def _as_error(message: str) -> Exception:
    return AutoScalingError("agency keys", message)


class AgencyKeys:
    """``AkSkAuth``'s key source: the agency's keys, fetched again shortly before they expire. A metadata
    service that cannot answer is ``unavailable(message)`` (default an ``AutoScalingError``, which the
    scaler's loop retries, one line each; the lifecycle poll raises its own ``LifecycleUnavailable``)."""

    def __init__(self, fetch: Callable[[], TemporaryCredentials], clock: Callable[[], float] = time.time,
                 unavailable: Callable[[str], Exception] = _as_error) -> None:
        self._fetch = fetch
        self._clock = clock
        self._unavailable = unavailable
        self._key: SigningKey | None = None
        self._until = 0.0

    def __call__(self) -> SigningKey:
        now = self._clock()
        if self._key is None or now >= self._until:
            try:
                keys = self._fetch()
            except SourceUnavailable as exc:
                raise self._unavailable(str(exc)) from None
            logs.register_secrets(keys.secret, keys.token, source="agency")
            expires = parse_expiry(keys.expires_at)
            self._key = SigningKey(keys.access, keys.secret, keys.token)
            self._until = (expires - RENEW_BEFORE) if expires else now + 300.0
        return self._key

    def forget(self) -> None:
        """The AS API refused the key (401): the next call asks the metadata service again."""
        self._key = None


class AgencyClient(AutoScaling):
    """The AS client signing with ``keys``; a refused signature (401) drops the keys, so keys the metadata
    service replaced early (or a key it had handed out wrongly) are not used until they expire."""

    def __init__(self, endpoint: str, keys: AgencyKeys) -> None:
        super().__init__(endpoint, AkSkAuth(keys))
        self.keys = keys

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, str | int] | None = None) -> Any:
        try:
            return super().call(method, path, body, params)
        except AutoScalingError as exc:
            if exc.status == 401:
                self.keys.forget()
            raise
