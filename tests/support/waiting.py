"""Polling for a condition a test waits on, with a bound and a message that says what was last seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """``fn()``'s first truthy value; an ``AssertionError`` naming ``what`` and the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(interval)
