"""The valid Mesos flag names and Alluxio property keys, per supported version.

A rendered configuration that uses a name the target version does not know only fails on a real cluster,
long after the node was built. The lists live in ``data/names/`` as plain text (one name a line, ``#``
comments naming the upstream source; a Mesos flag's line adds the class of value it takes) so that
validation, the templates' tests and the Mesos/Alluxio stand-ins all check against the same facts.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

MESOS_VERSIONS: tuple[str, ...] = ("1.4", "1.11")
ALLUXIO_VERSIONS: tuple[str, ...] = ("1.8", "2.9")

MesosRole = Literal["master", "agent"]


@cache
def _entries(filename: str) -> dict[str, str]:
    """Each name of a list and what follows it on its line (a Mesos flag's value class; else empty)."""
    text = resources.files("bootstrap_agent").joinpath("data", "names", filename).read_text("utf-8")
    lines = (line.split(maxsplit=1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {parts[0]: parts[1].strip() if len(parts) > 1 else "" for parts in lines}


@cache
def _load(filename: str) -> frozenset[str]:
    return frozenset(_entries(filename))


def mesos_flags(version: str, role: MesosRole) -> frozenset[str]:
    """Flag names (without ``--``, lower case) that ``mesos-<role>`` of ``version`` accepts."""
    if version not in MESOS_VERSIONS:
        raise KeyError(f"unsupported Mesos version {version!r}")
    return _load(f"mesos-{version}-{role}.txt")


def mesos_flag_types(version: str, role: MesosRole) -> dict[str, str]:
    """Each flag of ``mesos-<role>`` of ``version`` with the class of value stout parses for it: ``bool``,
    ``duration``, ``bytes``, ``int``, ``uint``, ``double``, ``path``, ``string`` or ``other`` (SOURCES.md)."""
    mesos_flags(version, role)  # the version check
    return dict(_entries(f"mesos-{version}-{role}.txt"))


def alluxio_keys(version: str) -> frozenset[str]:
    """Property keys that Alluxio ``version`` knows (removed keys are absent)."""
    if version not in ALLUXIO_VERSIONS:
        raise KeyError(f"unsupported Alluxio version {version!r}")
    return _load(f"alluxio-{version}.txt")


def listed(filename: str) -> frozenset[str]:
    """The names in ``data/names/<filename>``: the hand-copied lists (dockerd's keys, Spark's properties)."""
    return _load(filename)
