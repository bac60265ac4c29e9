"""The local cloud's subnet choice: ``--subnet``, else the first free /24, clear of this machine's networks and
of every other local cluster."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ProvisionError
from provision_min.local import network
from provision_min.local.layout import AUTO_SUBNETS, Paths, state_root

#: machine-wide, whatever the state root: two clusters must never take the same /24 of this machine
RESERVATION_LOCK = Path("/run/provision-min-local-subnets.lock")


@contextlib.contextmanager
def reserving() -> Iterator[None]:
    """Hold the machine's subnet reservation while a new cluster picks its /24 and puts its bridge on it.

    A choice is only visible to the next one once the bridge carries this machine's address (or the state file
    names it, under the same state root), so choosing and claiming happen under one lock: two ``up``s started
    together (also with different state roots) never pick the same /24. The kernel drops the lock with its
    holder."""
    fd = os.open(RESERVATION_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def local_config(config: ClusterConfig, subnet: ipaddress.IPv4Network) -> ClusterConfig:
    """The cluster file with the local subnet: the masters' fixed addresses follow the same rule as on OTC."""
    return dataclasses.replace(config, subnet_cidr=subnet, vpc_cidr=subnet)


def _taken_subnets(cluster: str) -> list[ipaddress.IPv4Network]:
    taken = []
    root = state_root()
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name == cluster:
                continue
            with contextlib.suppress(ProvisionError, OSError):
                other = Paths(folder).load()
                if other is not None:
                    taken.append(other.network)
    return taken


def pick_subnet(cluster: str, wanted: str | None) -> ipaddress.IPv4Network:
    host = network.host_ipv4_networks()
    taken = _taken_subnets(cluster)
    if wanted is not None:
        try:
            subnet = ipaddress.IPv4Network(wanted)
        except ValueError as exc:
            raise InputError(f"--subnet: {exc}") from None
        if subnet.prefixlen != 24 or not subnet.is_private:
            raise InputError(f"--subnet {wanted}: must be a private /24 (e.g. 10.231.7.0/24)")
        clash = [str(i) for i in host if i.network.overlaps(subnet)] + [str(t) for t in taken if t.overlaps(subnet)]
        if clash:
            raise InputError(f"--subnet {wanted}: overlaps {', '.join(clash)} already in use on this machine")
        return subnet
    found = network.choose_subnet(taken, AUTO_SUBNETS, host)
    if found is None:
        raise InputError(f"no free /24 left in {AUTO_SUBNETS} on this machine: pass --subnet")
    return found
