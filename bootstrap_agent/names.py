"""The valid Mesos flag names and Alluxio property keys, per supported version.

A rendered configuration that uses a name the target version does not know only fails on a real cluster,
long after the node was built. The lists live in ``data/names/`` as plain text (one name a line, ``#``
comments naming the upstream source) so that validation, the templates' tests and the Mesos/Alluxio
stand-ins all check against the same facts.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

MESOS_VERSIONS: tuple[str, ...] = ("1.4", "1.11")
ALLUXIO_VERSIONS: tuple[str, ...] = ("1.8", "2.9")

MesosRole = Literal["master", "agent"]


@cache
def _load(filename: str) -> frozenset[str]:
    text = resources.files("bootstrap_agent").joinpath("data", "names", filename).read_text("utf-8")
    names = (line.strip() for line in text.splitlines())
    return frozenset(n for n in names if n and not n.startswith("#"))


def mesos_flags(version: str, role: MesosRole) -> frozenset[str]:
    """Flag names (without ``--``, lower case) that ``mesos-<role>`` of ``version`` accepts."""
    if version not in MESOS_VERSIONS:
        raise KeyError(f"unsupported Mesos version {version!r}")
    return _load(f"mesos-{version}-{role}.txt")


def alluxio_keys(version: str) -> frozenset[str]:
    """Property keys that Alluxio ``version`` knows (removed keys are absent)."""
    if version not in ALLUXIO_VERSIONS:
        raise KeyError(f"unsupported Alluxio version {version!r}")
    return _load(f"alluxio-{version}.txt")


def listed(filename: str) -> frozenset[str]:
    """The names in ``data/names/<filename>``: the hand-copied lists (dockerd's keys, Spark's properties)."""
    return _load(filename)
