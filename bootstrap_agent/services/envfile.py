"""Read a systemd ``EnvironmentFile=`` the way systemd does, for the process manager.

Only what our own renderer writes needs to round-trip (``KEY="value"`` with shell escapes), but unquoted
and single-quoted values are read too so an operator's hand-written file behaves the same under both
managers.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_environment_file(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ValueError(f"line {number}: not KEY=value")
        env[key] = _unquote(value.strip(), number)
    return env


def _unquote(value: str, number: int) -> str:
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise ValueError(f"line {number}: unterminated double quote")
        out, chars, index = [], value[1:-1], 0
        while index < len(chars):
            ch = chars[index]
            if ch == "\\" and index + 1 < len(chars) and chars[index + 1] in '"\\`$':
                out.append(chars[index + 1])
                index += 2
                continue
            out.append(ch)
            index += 1
        return "".join(out)
    if value.startswith("'"):
        if len(value) < 2 or not value.endswith("'"):
            raise ValueError(f"line {number}: unterminated single quote")
        return value[1:-1]
    return value
