"""Polling for a condition a test waits on, with a bound and a message that says what was last seen.

The one waiter of the test suite: support servers wait for readiness through it (``managed.ManagedProcess``),
and a class adds to it only what it knows better (``DaemonNode.wait_for`` stops at once when its daemon died).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class NotReached(AssertionError, TimeoutError):
    """The condition did not hold in time: a failed test to pytest, and a ``TimeoutError`` to code that
    catches timeouts (the support servers' ``start()`` always raised that)."""


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """``fn()``'s first truthy value; ``NotReached`` naming ``what`` and the last value after ``timeout``.

    Whatever ``fn`` raises ends the wait: a probe that knows the awaited thing can no longer happen (the
    process exited) says so at once instead of running out the clock.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotReached(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(interval)
