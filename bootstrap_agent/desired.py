"""The desired state ``plan()`` returns and ``apply()`` installs: files, services, and the peers it was made from.

Plain frozen values with no behaviour beyond identity (``Plan.inputs_digest``), so the service managers, the
installer and the readiness checks can depend on them without depending on how a plan is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DesiredFile:
    path: str  # absolute path on the node, before the layout's root is applied
    content: bytes = field(repr=False)
    mode: int = 0o644
    check: str | None = None  # name of a checker run on the staged file (e.g. "nginx")
    secret: bool = False
    group: str | None = None  # group owner (e.g. www-data for a 0640 file nginx workers read); owner is root
    # False: a document remade from ZooKeeper on every pass (a master's member views, megabytes at 10,000
    # members): still staged and renamed in whole, but no .bak and no fsync (after a crash the next pass
    # writes it again).
    durable: bool = True


@dataclass(frozen=True)
class DesiredService:
    unit: str
    inputs: tuple[str, ...]  # node paths whose content the running unit depends on
    ports: tuple[tuple[str, int], ...]  # (host, port) that answer once the unit is up
    version: str | None = None  # of the program, for stand-ins and process supervision
    reload: bool = False  # apply input changes with a reload instead of a restart
    # Mount units (``var-lib-mesos.mount``) the unit's folders live on. Part of the digest: a folder that moves
    # into RAM (or back) restarts the unit that uses it; a new size only remounts the folder (its reload).
    requires: tuple[str, ...] = ()
    unit_file: str | None = None  # the unit's own file when the plan renders it (mounts): removed with the unit
    sockets: tuple[str, ...] = ()  # unix sockets its own processes must have bound to be up (dockerd's API)
    # A oneshot unit run once per instance, before the unit's first start: the Alluxio master's journal format.
    first_start: str | None = None


@dataclass(frozen=True)
class Plan:
    files: tuple[DesiredFile, ...]
    services: tuple[DesiredService, ...]  # in start order: dependencies first

    def file(self, path: str) -> DesiredFile:
        for desired in self.files:
            if desired.path == path:
                return desired
        raise KeyError(path)

    def inputs_digest(self, service: DesiredService) -> str:
        """Identity of what a unit was started with: it is restarted exactly when this changes."""
        digest = hashlib.sha256(service.unit.encode())
        for path in service.inputs:
            desired = self.file(path)
            digest.update(b"\0" + path.encode() + b"\0" + desired.content + oct(desired.mode).encode())
        if service.requires:  # only then: units without mounts keep the digest they were started with
            digest.update(b"\0requires\0" + ",".join(service.requires).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Peers:
    """Other members as seen in ZooKeeper; empty until the node has registered."""

    members: tuple[dict[str, Any], ...] = ()  # Member fields: uuid, role, ip, hostname, state, reason, services
    # When the members were read (epoch seconds; None when not read from ZooKeeper, e.g. ``once``, ``render``):
    # the cluster status document carries it, so a reader sees how fresh the view is.
    read_at: float | None = None
    # A master's scaler as ZooKeeper holds it (``scaler.report.read_view``: summary and chart series), shown on
    # the dashboard and in ``status.json``; None without an enabled scaler.
    scaler: Mapping[str, Any] | None = field(default=None, compare=False)


def text_file(path: str, text: str, mode: int = 0o644, check: str | None = None, secret: bool = False) -> DesiredFile:
    """A rendered text file, UTF-8 encoded: how every builder makes its files."""
    return DesiredFile(path, text.encode("utf-8"), mode, check, secret)
