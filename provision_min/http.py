"""What every call to the OTC API shares: the timeout, and OTC's several error shapes as one ``ApiError``."""

from __future__ import annotations

import requests

from bootstrap_agent.otc_errors import MAX_MESSAGE as MAX_MESSAGE  # re-exported
from bootstrap_agent.otc_errors import error_fields as _error_fields
from provision_min.errors import ApiError, NotFoundError

HTTP_TIMEOUT = (10.0, 60.0)


def error_from_response(response: requests.Response, call: str) -> ApiError:
    """An ``ApiError`` (``NotFoundError`` for 404) from any of the error bodies OTC services answer with."""
    code, message = _error_fields(response)
    cls = NotFoundError if response.status_code == 404 else ApiError
    return cls(response.status_code, code, message, call)
