"""Mesos flag values checked the way Mesos parses them, so that a wrong value fails at the desk, not at start-up.

Each flag's value class comes from the versioned lists (``names.mesos_flag_types``, extracted from the flag's
C++ type in apache/mesos). The rules are those of stout, the library Mesos parses flags with (1.4.3 and
1.11.0 alike): ``duration.hpp`` wants a number and a unit (``3`` alone is "Invalid duration"), ``bytes.hpp``
a whole number and a unit (any case), ``flags/parse.hpp`` takes ``true``/``false``/``1``/``0`` for a boolean.
A value ``file://...`` is read from that file when Mesos starts (``flags/fetch.hpp``), so only its form is
known here and it is not checked further.
"""

from __future__ import annotations

import re

from bootstrap_agent.errors import InvalidInput

DURATION_UNITS = ("ns", "us", "ms", "secs", "mins", "hrs", "days", "weeks")
BYTES_UNITS = ("B", "KB", "MB", "GB", "TB")
_DURATION = re.compile(r"^(?P<number>[0-9.]*)(?P<unit>.*)$")
_BYTES = re.compile(r"^[0-9]+(?:" + "|".join(BYTES_UNITS) + r")$", re.IGNORECASE)
_NUMBERS = {
    "int": (re.compile(r"^[+-]?[0-9]+$"), "a whole number"),
    "uint": (re.compile(r"^[0-9]+$"), "a whole number >= 0"),
    "double": (re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"), "a number"),
}


def check_flag_value(value: str, value_type: str, path: str) -> None:
    """Raise ``InvalidInput`` naming ``path`` when Mesos would refuse ``value`` for a flag of ``value_type``."""
    if value.startswith("file://") and value_type != "path":
        return
    if value_type == "bool" and value not in ("true", "false", "1", "0"):
        raise InvalidInput(path, f"expected true or false (Mesos: a boolean), got {value!r}")
    if value_type == "duration":
        _check_duration(value, path)
    elif value_type == "bytes" and not _BYTES.match(value):
        hint = f"; did you mean {value}MB?" if value.isdigit() else ""
        raise InvalidInput(
            path, f"expected a size with a unit, e.g. 512MB (units: {', '.join(BYTES_UNITS)}), got {value!r}{hint}"
        )
    elif value_type in _NUMBERS:
        pattern, what = _NUMBERS[value_type]
        if not pattern.match(value):
            raise InvalidInput(path, f"expected {what}, got {value!r}")


def _check_duration(value: str, path: str) -> None:
    match = _DURATION.match(value)
    assert match is not None  # the pattern matches every string
    number, unit = match.group("number"), match.group("unit")
    units = ", ".join(DURATION_UNITS)
    try:
        float(number)
    except ValueError:
        raise InvalidInput(
            path, f"expected a duration such as 3days or 5mins (a number and one of {units}), got {value!r}"
        ) from None
    if not unit:
        raise InvalidInput(
            path, f"{value!r} has no unit; Mesos wants a duration such as {number}secs, {number}mins or "
                  f"{number}days (units: {units})"
        )
    if unit not in DURATION_UNITS:
        raise InvalidInput(path, f"{value!r}: unknown duration unit {unit!r} (units: {units})")
