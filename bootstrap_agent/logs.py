"""Structured logs: one JSON object a line on stderr, stable event names, secrets never printed.

Operators grep and alert on event names (``file_installed``, ``unit_restarted``), so those are the API; the
human wording lives in fields. Secrets are masked twice: by key name (anything that looks like a password
or key) and by value (every secret of the current user-data is registered and replaced wherever it shows
up, even inside an exception message).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

MASK = "***"
# scheme://user[:password]@ -- up to the first '@', also past a '/' (S3 secret keys may hold one)
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s@'\"]+@")
_SECRET_KEY = re.compile(r"secret|password|passwd|token|access_?key|private_?key|credential", re.IGNORECASE)
_lock = threading.Lock()
_by_source: dict[str, frozenset[str]] = {}
_current: frozenset[str] = frozenset()  # rebound, never mutated: readers on any thread take it without a lock


def register_secrets(*values: str | None, source: str) -> None:
    """The secrets ``source`` holds now, masked wherever they appear from now on.

    Each source (the user-data, the agency's rotating keys, a token) replaces its own previous values, so the
    registry holds the current secrets only: hourly key rotation does not grow it, and every log line scans a
    handful of values. A value a source no longer holds is no longer a secret of this node."""
    global _current
    with _lock:
        _by_source[source] = frozenset(v for v in values if v)
        _current = frozenset().union(*_by_source.values())


def registered() -> frozenset[str]:
    """The values masked now (for tests and for tools that print their own output)."""
    return _current


def mask(value: Any) -> Any:
    """``value`` with every registered secret and every URL's user:password replaced; recurses into lists and
    dicts. URL credentials are masked without being registered: a mistyped ``https://AK:SK@host`` is refused
    before anyone knew its keys were secrets."""
    if isinstance(value, str):
        value = mask_url_credentials(value)
        for secret in _current:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: (MASK if _SECRET_KEY.search(str(k)) and v else mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


def mask_url_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced (``https://***@host``)."""
    return _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)


def _mask_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key != "event" and _SECRET_KEY.search(key) and value:
            event_dict[key] = MASK
        else:
            event_dict[key] = mask(value)
    return event_dict


def configure(level: str = "info", *, enabled: bool = True) -> None:
    """JSON lines to stderr; called once by the CLI before anything is logged. ``enabled=False``: no lines at
    all (a command that talks to a person logs only on request: ``--verbose`` or ``--log-format json``)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_processor,
            structlog.processors.JSONRenderer(sort_keys=False),
        ] if enabled else [_drop],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper()) if enabled else logging.CRITICAL),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _drop(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    raise structlog.DropEvent


def get(name: str = "bootstrap-agent") -> Any:
    return structlog.get_logger(name)
