"""The operator credential for ``bootstrap-agent config set|migrate``: read from a file, never an argument.

An argument would show in ``/proc/<pid>/cmdline`` to every user of the node. The file is either the secret
alone or provision-min's state file (a JSON object with ``operator_secret``), so the operator can hand over
``<cluster>.state.json`` as it is; like every secret file it must be readable by its owner only. ``-`` reads
standard input, so the secret can be piped over ssh and never rest on a node.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from bootstrap_agent.errors import InvalidInput

FIELD = "--operator-secret-file"
MIN_LENGTH = 16


def read(path: Path) -> str:
    """The operator secret in ``path``; :class:`InvalidInput` naming the option when it is not usable."""
    try:
        if str(path) == "-":  # piped in (`jq -r .operator_secret state.json | ssh master sudo bootstrap-agent ...`)
            mode, raw = stat.S_IFIFO | 0o600, sys.stdin.buffer.read()
        else:
            with path.open("rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                raw = handle.read()
    except OSError as exc:
        raise InvalidInput(FIELD, f"cannot read {path}: {exc.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise InvalidInput(FIELD, f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput(FIELD, f"{path} is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("operator_secret", "")).strip()
        except (ValueError, AttributeError):
            raise InvalidInput(FIELD, f"{path} is neither a secret nor a provision-min state file") from None
        if not text:
            raise InvalidInput(FIELD, f"{path} holds no operator_secret (run provision-min migrate-credentials)")
    if len(text) < MIN_LENGTH or any(c.isspace() for c in text):
        raise InvalidInput(FIELD, f"the secret in {path} must be at least {MIN_LENGTH} characters without spaces")
    return text
