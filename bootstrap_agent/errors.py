"""Errors that end a pass with a clear, one-line reason instead of a traceback."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent reports to the operator by message, never by traceback."""

    exit_code = 1


class InvalidInput(AgentError):
    """User-data (or facts, peers, config) that cannot become a working configuration.

    ``path`` names the offending field (``alluxio.block_size``) so the operator knows what to fix.
    """

    exit_code = 2

    def __init__(self, path: str, message: str) -> None:
        # One line whatever the input held: a key or value with a newline is shown escaped, never broken.
        path, message = (_one_line(text) for text in (path, message))
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SourceUnavailable(AgentError):
    """No source could deliver user-data or metadata: nothing to act on, nothing changed."""

    exit_code = 1


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\x00")
