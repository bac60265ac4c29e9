"""``.properties`` files as ``java.util.Properties.load`` reads them: Alluxio's ``alluxio-site.properties`` and
Spark's ``spark-defaults.conf`` are both loaded this way, so both stand-ins read them with this one parser
(continuations, escapes, ``\\uXXXX``, comments only at the start of a logical line, a later key wins)."""

from __future__ import annotations

import re
from collections.abc import Iterator

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "f": "\f"}
_HEX = frozenset("0123456789abcdefABCDEF")


class PropertiesError(ValueError):
    """A ``.properties`` text that ``Properties.load`` refuses (a malformed ``\\uxxxx``)."""


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join natural lines the way ``Properties.load`` does, yielding (first line number, logical line).

    Leading whitespace is dropped from every natural line (also continuations); ``#``/``!`` start a comment
    only at the beginning of a logical line; an odd number of trailing backslashes continues the line; a
    blank continuation line ends it.
    """
    pending: str | None = None
    start = 0
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        stripped = raw.lstrip(_WHITESPACE)
        if pending is None:
            if not stripped or stripped[0] in "#!":
                continue
            start = number
            line = stripped
        else:
            line = pending + stripped
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        if trailing % 2 == 1:
            pending = line[:-1]
            continue
        pending = None
        if line:
            yield start, line
    if pending:
        yield start, pending


def _unescape(text: str, line: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char != "\\":
            out.append(char)
            continue
        if i >= len(text):
            break
        char = text[i]
        i += 1
        if char == "u":
            digits = text[i : i + 4]
            if len(digits) != 4 or not set(digits) <= _HEX:
                raise PropertiesError(f"line {line}: malformed \\uxxxx encoding")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(char, char))
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    """The key ends at the first unescaped ``=``, ``:`` or blank; one separator and blanks around it go."""
    end = len(line)
    value_start = end
    has_separator = False
    escaped = False
    index = 0
    while index < end:
        char = line[index]
        if not escaped and char in "=:":
            value_start, has_separator = index + 1, True
            break
        if not escaped and char in _WHITESPACE:
            value_start = index + 1
            break
        escaped = char == "\\" and not escaped
        index += 1
    key_end = index
    while value_start < end:
        char = line[value_start]
        if char not in _WHITESPACE:
            if has_separator or char not in "=:":
                break
            has_separator = True
        value_start += 1
    return line[:key_end], line[value_start:]


def parse_properties(text: str) -> dict[str, str]:
    """Parse a ``.properties`` text; a later duplicate key wins, as in ``java.util.Properties``."""
    properties: dict[str, str] = {}
    for number, line in _logical_lines(text):
        raw_key, raw_value = _split_key_value(line)
        properties[_unescape(raw_key, number)] = _unescape(raw_value, number)
    return properties
