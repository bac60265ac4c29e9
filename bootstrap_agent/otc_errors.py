"""OTC's several error bodies read as one (code, message): shared by the provisioner's REST client and the
node's AS client, so both name an OTC failure the same way (one line, secrets masked)."""

from __future__ import annotations

from typing import Any

import requests

from bootstrap_agent import logs

MAX_MESSAGE = 300
#: the wrappers OTC's services put around ``code``/``message`` (Nova's, Neutron's, the API gateway's, ...)
WRAPPERS = ("error", "NeutronError", "badRequest", "itemNotFound", "forbidden", "conflictingRequest",
            "computeFault", "overLimit")


def error_fields(response: requests.Response) -> tuple[str, str]:
    """(code, message) from any of the error bodies OTC services answer with; the message one line, masked."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code: Any = ""
    message: Any = ""
    if isinstance(body, dict):
        inner = body
        for wrapper in WRAPPERS:
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
