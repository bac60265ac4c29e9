"""What the node knows about itself: address, name, size and identity.

Facts come from two places that both can be wrong in their own way: psutil sees the kernel's view (several
addresses, no idea which one the cluster uses), the metadata service knows the instance's identity. They are
combined here once, into a frozen value, so ``plan()`` never has to ask anything.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import PRIVATE_NETWORKS
from bootstrap_agent.sizes import parse_size

HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class TemporaryCredentials:
    """An ECS agency's temporary S3 keys (``/openstack/latest/securitykey``)."""

    access: str
    secret: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: str = ""


@dataclass(frozen=True)
class Facts:
    ip: str
    hostname: str
    cpus: int
    memory: int  # bytes
    instance_uuid: str
    availability_zone: str | None = None
    instance_name: str | None = None
    s3_credentials: TemporaryCredentials | None = field(default=None, repr=False)
    tls: tuple[str, str] | None = field(default=None, repr=False)  # this instance's self-signed (cert, key)


@dataclass(frozen=True)
class InstanceMeta:
    """The parts of OpenStack's ``meta_data.json`` the agent uses."""

    uuid: str
    hostname: str | None = None
    name: str | None = None
    availability_zone: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> InstanceMeta:
        if not isinstance(data, dict) or not isinstance(data.get("uuid"), str) or not data["uuid"]:
            raise InvalidInput("meta_data.uuid", "meta_data.json has no instance uuid")
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None
        return cls(data["uuid"], text("hostname"), text("name"), text("availability_zone"))


def choose_ip(addresses: list[str], preferred: tuple[str, ...] = ()) -> str | None:
    """The address the cluster knows this node by.

    A master must use the address listed in ``masters``; otherwise the first private (RFC 1918) address
    wins, so a docker0 bridge or a public address never becomes the node's identity.
    """
    candidates = []
    for text in addresses:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            continue
        candidates.append(address)
    for address in candidates:
        if str(address) in preferred:
            return str(address)
    for address in candidates:
        if any(address in net for net in PRIVATE_NETWORKS):
            return str(address)
    return str(candidates[0]) if candidates else None


def local_ipv4_addresses() -> list[str]:
    import psutil

    return [
        addr.address
        for addrs in psutil.net_if_addrs().values()
        for addr in addrs
        if addr.family == socket.AF_INET
    ]


def gather(meta: InstanceMeta, preferred_ips: tuple[str, ...] = (), ip: str | None = None) -> Facts:
    """Facts of the running machine (psutil) combined with its metadata.

    ``ip`` pins the cluster address on a machine with several private addresses; it must be one of them.
    """
    import psutil

    local = local_ipv4_addresses()
    if ip is not None and ip not in local:
        raise InvalidInput("facts.ip", f"{ip} is not an address of this machine")
    ip = ip or choose_ip(local, preferred_ips)
    if ip is None:
        raise InvalidInput("facts.ip", "this machine has no usable IPv4 address")
    named = meta.name if meta.name and HOSTNAME.match(meta.name) else None
    hostname = _short_name(meta.hostname) or named or socket.gethostname().split(".", 1)[0]
    if not HOSTNAME.match(hostname):
        raise InvalidInput("facts.hostname", f"{hostname!r} is not a host name (one DNS label)")
    return Facts(
        ip=ip,
        hostname=hostname,
        cpus=psutil.cpu_count() or 1,
        memory=psutil.virtual_memory().total,
        instance_uuid=meta.uuid,
        availability_zone=meta.availability_zone,
        instance_name=meta.name,
    )


def _short_name(hostname: str | None) -> str | None:
    """OTC hands out ``name.novalocal``; the node is known by the first label."""
    if not hostname:
        return None
    return hostname.split(".", 1)[0] or None


FACT_KEYS = frozenset({
    "ip", "hostname", "cpus", "memory", "instance_uuid", "availability_zone", "instance_name", "s3_credentials",
})


def with_credentials(facts: Facts, credentials: TemporaryCredentials | None) -> Facts:
    return replace(facts, s3_credentials=credentials)


def with_tls(facts: Facts, pair: tuple[str, str] | None) -> Facts:
    return replace(facts, tls=pair)


def load(path: str | os.PathLike[str]) -> Facts:
    """Facts from a JSON file (``render --facts``), checked like user-data: one line naming the field."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise InvalidInput("facts", f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput("facts", f"{path} is not valid JSON: {exc}") from None
    return from_json(data)


def from_json(data: Any) -> Facts:
    if not isinstance(data, dict):
        raise InvalidInput("facts", "expected a JSON object")
    for key in data:
        if key not in FACT_KEYS:
            raise InvalidInput(f"facts.{key}", "unknown key")
    for key in ("ip", "hostname", "cpus", "memory"):
        if key not in data:
            raise InvalidInput(f"facts.{key}", "required")
    ip = data["ip"]
    try:
        ipaddress.IPv4Address(ip)
    except (ValueError, TypeError):
        raise InvalidInput("facts.ip", f"{ip!r} is not an IPv4 address") from None
    cpus = data["cpus"]
    if type(cpus) is not int or cpus < 1:
        raise InvalidInput("facts.cpus", "must be a positive whole number")
    memory = data["memory"]
    try:
        memory_bytes = memory if type(memory) is int and memory > 0 else parse_size(str(memory))
    except ValueError as exc:
        raise InvalidInput("facts.memory", str(exc)) from None
    strings = {}
    for key in ("hostname", "instance_uuid", "availability_zone", "instance_name"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value or "\n" in value):
            raise InvalidInput(f"facts.{key}", "must be a non-empty one-line string")
        strings[key] = value
    if not HOSTNAME.match(strings["hostname"] or ""):
        raise InvalidInput("facts.hostname", f"{strings['hostname']!r} is not a host name (one DNS label)")
    credentials = None
    if "s3_credentials" in data:
        raw = data["s3_credentials"]
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw[k] for k in ("access", "secret",
                                                                                                   "token")):
            raise InvalidInput("facts.s3_credentials", "expected {\"access\", \"secret\", \"token\"} strings")
        credentials = TemporaryCredentials(raw["access"], raw["secret"], raw["token"], str(raw.get("expires_at", "")))
    return Facts(
        s3_credentials=credentials,
        ip=ip,
        hostname=strings["hostname"] or "",
        cpus=cpus,
        memory=memory_bytes,
        instance_uuid=strings["instance_uuid"] or "unknown",
        availability_zone=strings["availability_zone"],
        instance_name=strings["instance_name"],
    )
