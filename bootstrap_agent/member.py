"""A cluster member as it reports itself in ZooKeeper, and the checks its data must pass before use.

Any client holding the cluster secret can write member znodes, and whatever a master reads there ends up in
its rendered dashboard: so peer data is parsed strictly, and anything implausible is refused with a one-line
reason instead of being rendered (Synapse crashed on such races; confd rendered ``<no value>``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent.capacity import Capacity, parse_capacity
from bootstrap_agent.drain.report import DrainReport, Load, parse_drain_report, parse_load
from bootstrap_agent.errors import AgentError

ROLES = ("master", "agent")
STATES = ("bootstrapping", "ready", "degraded", "draining")
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_UNIT = re.compile(r"[A-Za-z0-9@._:-]{1,128}")


class PeerInvalid(AgentError):
    """A member znode that cannot be one of ours; the message is one line naming what is wrong."""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def private_ipv4(ip: str) -> bool:
    """Default peer address check: a private, unicast IPv4 address (no loopback, link-local, multicast)."""
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return address.is_private and not (
        address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified
    )


def _valid_hostname(name: str) -> bool:
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


@dataclass(frozen=True)
class Member:
    """One node as it reports itself in its member znode (``nodes/<uuid>``, and ``masters/<ip>`` for masters).

    ``services`` maps a unit name to its state string; ``since`` is when the node entered ``state`` (epoch
    seconds). ``reason`` says why the node is not ``ready`` (empty otherwise).
    """

    uuid: str
    role: str
    ip: str
    hostname: str
    state: str
    reason: str
    services: dict[str, str] = field(hash=False)
    since: float
    load: Load | None = None  # agents: how busy (provision-min's victim choice)
    drain: DrainReport | None = None  # while draining: what the node waits for
    capacity: Capacity | None = None  # CPUs, memory, Alluxio RAM (bootstrap_agent/capacity.py)

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys, compact), so an unchanged member gives identical bytes: no write."""
        body = {
            "uuid": self.uuid, "role": self.role, "ip": self.ip, "hostname": self.hostname, "state": self.state,
            "reason": self.reason, "services": dict(self.services), "since": float(self.since),
        }
        if self.load is not None:
            body["load"] = self.load.to_dict()
        if self.drain is not None:
            body["drain"] = self.drain.to_dict()
        if self.capacity is not None:
            body["capacity"] = self.capacity.to_dict()
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, uuid: str | None, raw: bytes | None, *, cluster_ips_ok: Callable[[str], bool]) -> Member:
        """Parse and validate a peer's znode; raises :class:`PeerInvalid` with a one-line reason.

        ``uuid`` is the znode's name under ``nodes/`` (the data's ``uuid``, when present, must match it); pass
        ``None`` for a ``masters/<ip>`` znode, whose data must then name the uuid itself. Unknown extra keys
        are allowed (a newer agent may report more). Everything later rendered into configuration or the
        dashboard is checked here, because any client holding the secret can write these znodes.
        """
        if not raw:
            raise PeerInvalid("empty znode")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise PeerInvalid(f"not JSON: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise PeerInvalid(f"not a JSON object but {type(data).__name__}")
        name = data.get("uuid", uuid)
        if not isinstance(name, str) or not _UUID.fullmatch(name):
            raise PeerInvalid(f"uuid {_short(name)} is not a plausible instance uuid")
        if uuid is not None and name != uuid:
            raise PeerInvalid(f"uuid {_short(name)} in the data does not match the znode name {_short(uuid)}")
        role = data.get("role")
        if role not in ROLES:
            raise PeerInvalid(f"role {_short(role)} is not master or agent")
        ip = data.get("ip")
        if not isinstance(ip, str):
            raise PeerInvalid(f"ip {_short(ip)} is not a string")
        try:
            canonical = str(ipaddress.IPv4Address(ip))
        except ValueError:
            raise PeerInvalid(f"ip {_short(ip)} is not an IPv4 address") from None
        try:
            inside = canonical == ip and bool(cluster_ips_ok(ip))
        except Exception:  # a faulty check must not let the peer through
            inside = False
        if not inside:
            raise PeerInvalid(f"ip {ip} is not an address of this cluster")
        hostname = data.get("hostname")
        if not isinstance(hostname, str) or not _valid_hostname(hostname):
            raise PeerInvalid(f"hostname {_short(hostname)} is not a host name")
        state = data.get("state")
        if state not in STATES:
            raise PeerInvalid(f"state {_short(state)} is not one of {', '.join(STATES)}")
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise PeerInvalid(f"reason {_short(reason)} is not a string")
        services = data.get("services")
        if not isinstance(services, dict):
            raise PeerInvalid(f"services {_short(services)} is not an object")
        for unit, unit_state in services.items():
            if not _UNIT.fullmatch(unit) or not isinstance(unit_state, str):
                raise PeerInvalid(f"services entry {_short(unit)}: {_short(unit_state)} is not unit: state")
        since = data.get("since")
        if isinstance(since, bool) or not isinstance(since, int | float) or not math.isfinite(since) or since < 0:
            raise PeerInvalid(f"since {_short(since)} is not a time in epoch seconds")
        try:
            load = parse_load(data["load"]) if data.get("load") is not None else None
            drain = parse_drain_report(data["drain"]) if data.get("drain") is not None else None
            capacity = parse_capacity(data["capacity"]) if data.get("capacity") is not None else None
        except ValueError as exc:
            raise PeerInvalid(str(exc)) from None
        return cls(name, role, ip, hostname, state, reason, dict(services), float(since), load, drain, capacity)
