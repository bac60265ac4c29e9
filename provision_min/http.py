"""What every call to the OTC API shares: the timeout, and OTC's several error shapes as one ``ApiError``."""

from __future__ import annotations

from typing import Any

import requests

from bootstrap_agent import logs
from provision_min.errors import ApiError, NotFoundError

HTTP_TIMEOUT = (10.0, 60.0)
MAX_MESSAGE = 300


def error_from_response(response: requests.Response, call: str) -> ApiError:
    """An ``ApiError`` (``NotFoundError`` for 404) from any of the error bodies OTC services answer with."""
    code, message = _error_fields(response)
    cls = NotFoundError if response.status_code == 404 else ApiError
    return cls(response.status_code, code, message, call)


def _error_fields(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    code: Any = ""
    message: Any = ""
    if isinstance(body, dict):
        inner = body
        for wrapper in ("error", "NeutronError", "badRequest", "itemNotFound", "forbidden", "conflictingRequest",
                        "computeFault", "overLimit"):
            if isinstance(body.get(wrapper), dict):
                inner = body[wrapper]
                break
        code = inner.get("code") or inner.get("error_code") or inner.get("type") or ""
        message = inner.get("message") or inner.get("error_msg") or inner.get("title") or ""
    if not message:
        message = (response.text or response.reason or "").strip() or "no error message"
    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return str(code), str(logs.mask(text))
