"""Polling with a deadline instead of fixed sleeps.

The original playbooks paused five minutes after creating the master; here every asynchronous step (VPC,
subnet, ECS job, server, EIP, AS group) is polled until it reaches its state, with a growing interval and a
timeout that names what was awaited and the last state seen. ``sleep`` and ``clock`` are injectable so tests
run without real waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bootstrap_agent import logs
from provision_min.errors import ApiError, NotFoundError, WaitTimeout

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_TRANSIENT_ERRORS = 3


@dataclass(frozen=True)
class Progress(Generic[T]):
    """One look at a resource: done or not, the state in words, and the value to hand back when done."""

    done: bool
    state: str
    value: T | None = None


@dataclass
class Poller:
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    interval: float = 2.0
    max_interval: float = 15.0
    timeout: float | None = None  # overrides every per-resource default when set (``--wait-timeout``)

    def until(self, what: str, probe: Callable[[], Progress[T]], timeout: float) -> T | None:
        """Call ``probe`` until it reports done; ``WaitTimeout`` naming ``what`` and its last state.

        A few transient API errors in a row (HTTP 5xx, 429) are waited out: a 10-minute job must not fail on
        one bad answer. Anything else ``probe`` raises (a failed job, a resource in ERROR) ends the wait.
        """
        limit = self.timeout if self.timeout is not None else timeout
        deadline = self.clock() + limit
        interval = self.interval
        state = "not looked at yet"
        transient = 0
        log = logs.get("provision-min")
        while True:
            try:
                progress = probe()
                transient = 0
            except NotFoundError:
                raise
            except ApiError as exc:
                if exc.status not in TRANSIENT_STATUS or transient >= MAX_TRANSIENT_ERRORS:
                    raise
                transient += 1
                progress = Progress(False, f"API error {exc.status}")
            if progress.done:
                return progress.value
            state = progress.state
            if self.clock() >= deadline:
                raise WaitTimeout(f"timed out after {limit:g} s waiting for {what} (last state: {state})")
            log.debug("waiting", what=what, state=state, next_s=interval)
            self.sleep(min(interval, max(0.0, deadline - self.clock())))
            interval = min(self.max_interval, interval * 1.5)
