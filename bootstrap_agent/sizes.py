"""Byte sizes as operators write them (``4MB``, ``512MiB``, ``2g``).

Alluxio reads sizes with 1024-based units whatever the suffix says, so we do the same: ``1MB`` here is what
Alluxio means by ``1MB``. Rendering uses the largest unit that keeps the value whole.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)

MiB = 1 << 20
GiB = 1 << 30


def parse_size(text: str) -> int:
    """Bytes in ``text``; ValueError for anything that is not a positive whole size."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 64MB, 4GB, 1048576)")
    value = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if value <= 0:
        raise ValueError(f"{text!r} is not positive")
    return value


def format_size(value: int) -> str:
    """Alluxio-style text for ``value`` bytes: the largest unit that divides it exactly."""
    for suffix, unit in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return f"{value}B"
