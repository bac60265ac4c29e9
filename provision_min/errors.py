"""Errors that end a command with one clear line instead of a traceback.

Every failure an operator can meet (a bad cluster file, missing credentials, an API error, a bucket that does
not exist, a wait that timed out) is one of these, so the CLI can print ``provision-min: <message>`` and exit
with a code a script can act on: 2 for input the user must fix (nothing was changed), 1 for everything else.
"""

from __future__ import annotations


class ProvisionError(Exception):
    """Base class: a failure reported by message, never by traceback."""

    exit_code = 1


class InputError(ProvisionError):
    """The cluster file, the command line or the credentials configuration cannot work; nothing was changed."""

    exit_code = 2


class ApiError(ProvisionError):
    """The OTC API refused a call: status, OTC's error code and message, and the call, in one line."""

    def __init__(self, status: int, code: str, message: str, call: str) -> None:
        self.status = status
        self.code = code
        self.api_message = message
        self.call = call
        detail = f"{code}: {message}" if code else message
        super().__init__(f"OTC API error: HTTP {status} {detail} (call: {call})")


class NotFoundError(ApiError):
    """HTTP 404: the resource is gone, which ``down`` and the lookups treat as a normal answer."""


class ObsError(ProvisionError):
    """The Alluxio under-FS bucket cannot be used with the configured keys (or does not exist)."""


class WaitTimeout(ProvisionError):
    """A resource did not reach the wanted state in time; the next ``up`` (or ``down``) picks it up again."""


class ResourceFailed(ProvisionError):
    """The cloud reports a resource (or its creation job) as failed."""
