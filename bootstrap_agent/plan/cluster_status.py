"""The cluster status document (``status.json``) a master serves beside its landing page, behind the same password.

Why a document of its own: the landing page is for people; ``provision-min up`` and ``status`` need the same
view — every member with its state and the reason it is not ready — in a form a program reads without scraping
HTML, through the one port a cloud opens to the world (the dashboard's HTTPS). It is built from the same members
the landing page shows (the master's ZooKeeper view), so the two never disagree.

Kept small and stable (schema 1, documented in docs/node-agent.md): fields are added, never renamed or re-typed.
Times are UTC ISO-8601 strings to the second; ``rendered_at`` is when the members were read (null when the
node did not read ZooKeeper, as in ``once`` and ``render``), so a reader can tell a live view from an old file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

STATUS_SCHEMA = 1
ROLES = ("master", "agent")


def iso_time(epoch: Any) -> str | None:
    """``2026-11-29T12:00:00Z`` for epoch seconds; None for anything else."""
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def member_entry(member: Mapping[str, Any]) -> dict[str, Any]:
    services = member.get("services")
    return {
        "uuid": str(member.get("uuid", "")),
        "role": str(member.get("role", "")),
        "ip": str(member.get("ip", "")),
        "hostname": str(member.get("hostname", "")),
        "state": str(member.get("state", "")),
        "reason": str(member.get("reason") or ""),
        "services": {str(k): str(v) for k, v in sorted(services.items())} if isinstance(services, dict) else {},
        "since": iso_time(member.get("since")),
    }


def counts(members: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many members there are and how many are ready, in all and per role."""
    listed = list(members)
    result = {"members": len(listed), "ready": sum(1 for m in listed if m["state"] == "ready")}
    for role in ROLES:
        mine = [m for m in listed if m["role"] == role]
        result[f"{role}s"] = len(mine)
        result[f"{role}s_ready"] = sum(1 for m in mine if m["state"] == "ready")
    return result


def status_document(cluster: str, members: Iterable[Mapping[str, Any]], read_at: float | None) -> str:
    """The JSON text of ``status.json``: cluster, when it was read, counts, every member (masters first)."""
    entries = sorted((member_entry(m) for m in members), key=lambda m: (m["role"] != "master", m["ip"], m["uuid"]))
    document = {
        "schema": STATUS_SCHEMA,
        "cluster": cluster,
        "rendered_at": iso_time(read_at),
        "counts": counts(entries),
        "members": entries,
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
