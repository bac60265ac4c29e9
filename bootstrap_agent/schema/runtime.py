"""The run-time allow-list: which keys the cluster's run-time config may set, and the checks of their values.

Whoever can write ``/bootstrap-agent/<cluster>/config`` changes every node at once, and root's Mesos loads or
executes what some of its flags name. So the run-time config may only tune a documented set of keys
(``data/runtime-tunables.txt``, with the reason for every refusal); the operator's user-data may set more and
is validated as before. Both ``config set`` and the daemon go through ``runtime_leaves``: a refused key is one
line naming it, and nothing of that config is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.readers import kind, read_scalar

TUNABLES_FILE = "runtime-tunables.txt"
# Keys below these are named one level deeper: mesos.agent_flags.<flag>, mesos.attributes.<name>.
_THREE_DEEP = frozenset({"mesos.agent_flags", "mesos.master_flags", "mesos.attributes"})
LOGGING_LEVELS = ("INFO", "WARNING", "ERROR")  # glog's levels that Mesos' --logging_level accepts
ROLE_NAME = re.compile(r"^(?![.-])[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # Mesos' roles::validate, simplified


@dataclass(frozen=True)
class Tunable:
    """One line of the allow-list: a key (or ``prefix.*``), allowed with a value type or refused with a reason."""

    key: str
    allowed: bool
    kind: str  # allowed: the value type; refused: the class
    reason: str = ""


@cache
def tunables() -> dict[str, Tunable]:
    """Every key of the allow-list file, allowed or refused, by its key."""
    text = resources.files("bootstrap_agent").joinpath("data", TUNABLES_FILE).read_text("utf-8")
    classes: dict[str, str] = {}
    result: dict[str, Tunable] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        first, second, rest = [*line.split(maxsplit=2), "", ""][:3]
        if first == "class":
            classes[second] = rest.strip()
        elif second == "allow":
            result[first] = Tunable(first, True, rest.strip())
        else:
            result[first] = Tunable(first, False, rest.strip(), classes[rest.strip()])
    return result


def lookup(key: str) -> Tunable | None:
    """The allow-list's line for ``key``: its own, else the ``prefix.*`` line above it."""
    table = tunables()
    if key in table:
        return table[key]
    return table.get(key.rsplit(".", 1)[0] + ".*")


def runtime_leaves(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides as one value per tunable key, each key on the allow-list and its value of the key's type.

    An object at a shorter key (``{"mesos.agent_flags": {...}}``) is spread into its keys, so a run-time
    writer adds to the operator's user-data and never replaces or removes what the operator set there.
    """
    leaves: dict[str, Any] = {}
    for key in sorted(overrides):
        _spread(key, overrides[key], leaves)
    for key, value in leaves.items():
        check_runtime_value(key, value)
    return leaves


def _spread(key: str, value: Any, leaves: dict[str, Any]) -> None:
    parts = key.split(".")
    depth = 3 if ".".join(parts[:2]) in _THREE_DEEP else 2
    if len(parts) < depth and isinstance(value, dict):
        for child in sorted(value):
            _spread(f"{key}.{child}", value[child], leaves)
    elif len(parts) != depth:
        example = "mesos.agent_flags.gc_delay" if key.startswith("mesos") else "alluxio.block_size"
        raise InvalidInput(key, f"not a run-time tunable: set each by its own key, e.g. {example}")
    else:
        leaves[key] = value


def check_runtime_key(key: str) -> Tunable:
    """The allow-list's line for ``key`` when it may be set at run time; else ``InvalidInput`` naming it."""
    tunable = lookup(key)
    if tunable is None:
        raise InvalidInput(key, "not a run-time tunable (docs/node-agent.md, \"Run-time configuration\"); "
                                "set it in the user-data")
    if not tunable.allowed:
        raise InvalidInput(
            key, f"refused at run time ({tunable.kind}: {tunable.reason}); only the user-data may set it"
        )
    return tunable


def check_runtime_value(key: str, value: Any) -> None:
    """``InvalidInput`` naming ``key`` unless it is a tunable and ``value`` of its type. The schema checks the
    types again when it validates the whole document (durations, sizes, booleans, ports, attributes)."""
    tunable = check_runtime_key(key)
    if value is None or isinstance(value, (dict, list)):
        raise InvalidInput(key, f"expected a value, got {kind(value)}; `config set {key} null` removes the override")
    if not key.startswith(("mesos.agent_flags.", "mesos.master_flags.")):
        return
    text = read_scalar(value, key)
    if text.startswith("file://"):
        raise InvalidInput(key, "a file:// value makes Mesos read a file as root; give the value itself")
    if tunable.kind == "level" and text not in LOGGING_LEVELS:
        raise InvalidInput(key, f"expected one of {', '.join(LOGGING_LEVELS)}, got {text!r}")
    if tunable.kind == "role" and not ROLE_NAME.match(text):
        raise InvalidInput(key, f"expected a Mesos role name (letters, digits, '_', '.', '-'), got {text!r}")
