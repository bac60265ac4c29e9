"""``scale`` on OTC: the AS client with the provisioner's token, and the agents' members (their ``load`` and
``drain``) from the first master's status document behind the EIP (``otc_readiness``'s login and pin).

Kept apart from ``scale`` (which works on any AS endpoint, the local cloud's too) and from ``otc_cloud``
(a thin list of commands).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bootstrap_agent.autoscaling import AutoScaling, TokenAuth
from provision_min.config import ClusterConfig
from provision_min.errors import ProvisionError
from provision_min.otc import OtcClient
from provision_min.scale import Members
from provision_min.topology import topology


def as_client(client: OtcClient) -> AutoScaling:
    """The AS API of the token's catalog, authenticated with the provisioner's (cached, renewed) token."""
    return AutoScaling(client.endpoints.as_, TokenAuth(lambda: client.tokens.token().value), session=client.http)


def public_address(config: ClusterConfig, client: OtcClient) -> str | None:
    """The first master's EIP (found by its bandwidth's name, as ``discover`` finds it)."""
    name = topology(config).eip_bandwidth_name
    answer = client.get("vpc", "/publicips")
    for item in (answer or {}).get("publicips") or []:
        if isinstance(item, dict) and item.get("bandwidth_name") == name and item.get("public_ip_address"):
            return str(item["public_ip_address"])
    return None


def members_source(config: ClusterConfig, client: OtcClient, state_path: Path, env: Mapping[str, str]) -> Members:
    """The agents' members as the master's status document lists them; ``ProvisionError`` when unreadable."""
    from provision_min.otc_readiness import status_access
    from provision_min.status_client import fetch

    address: list[str] = []

    def read() -> Sequence[Mapping[str, Any]]:
        if not address:
            found = public_address(config, client)
            if found is None:
                raise ProvisionError("the first master has no public address")
            address.append(found)
        document = fetch(status_access(config, state_path, address[0], env)).document
        return [m for m in document["members"] if isinstance(m, dict) and m.get("role") == "agent"]

    return read
