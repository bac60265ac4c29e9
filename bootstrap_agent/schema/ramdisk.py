"""One RAM-disk setting for the three folders that may live in RAM: Alluxio's tier 0, the Mesos agent's
work_dir and Docker's data-root.

A setting is ``OFF`` (``None``: the folder stays on disk), ``AUTO`` (sized from the node's memory when the plan
is made, ``bootstrap_agent/plan/memory.py``) or a size in bytes. The Mesos and Docker folders are off unless
the user-data says otherwise, so documents written before those keys existed mean what they meant. Alluxio's
tier 0 is where the worker keeps its blocks: it cannot be off, and its key has always taken ``auto`` or any
size (docs/node-agent.md, user-data table), so it keeps that contract and its errors.
"""

from __future__ import annotations

from typing import Any, Final

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.readers import kind, read_size

RamDisk = int | None
OFF: Final = None
AUTO: Final = -1
MIN_RAMDISK = 64 << 20  # less holds no blocks, sandbox or image worth having: a unit (or "off") was meant


def parse_ramdisk(value: Any, path: str, *, can_be_off: bool) -> RamDisk:
    """``off`` (where the folder may stay on disk), ``auto`` or a size; ``InvalidInput`` naming ``path``."""
    if value == "auto":
        return AUTO
    if can_be_off:
        if value == "off":
            return OFF
        if isinstance(value, bool):
            raise InvalidInput(path, f"expected 'off', 'auto' or a size, got {kind(value)}")
    return read_size(value, path, minimum=MIN_RAMDISK, meant="GB",
                     otherwise="use 'off' for no RAM disk" if can_be_off else "")
