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
from collections import Counter
from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import Any

from bootstrap_agent.capacity import Share, add_up_counted, share
from bootstrap_agent.member_rows import Ordered, view_key
from bootstrap_agent.plan.fragments import Folded, Last, Memo

STATUS_SCHEMA = 1
ROLES = ("master", "agent")


def iso_time(epoch: Any) -> str | None:
    """``2026-11-29T12:00:00Z`` for epoch seconds; None for anything else."""
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def member_entry(member: Mapping[str, Any]) -> dict[str, Any]:
    """One member for programs; an agent's ``load`` and a draining node's ``drain`` only when it reports them
    (``provision-min scale`` picks victims by the one and reports progress from the other)."""
    services = member.get("services")
    extra = {key: dict(member[key]) for key in ("load", "drain", "capacity") if isinstance(member.get(key), Mapping)}
    return {**extra,
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
    listed = list(members)  # counted in C: a master counts 10,000 members on every change
    tally = Counter(zip(map(itemgetter("role"), listed), map(itemgetter("state"), listed), strict=True))
    result = {"members": len(listed), "ready": sum(n for (_, state), n in tally.items() if state == "ready")}
    for role in ROLES:
        result[f"{role}s"] = sum(n for (r, _), n in tally.items() if r == role)
        result[f"{role}s_ready"] = tally[(role, "ready")]
    return result


def _piece(member: Mapping[str, Any]) -> tuple[tuple[bool, str, str], dict[str, Any], str]:
    """A member's sort key, its entry (for the counts) and its JSON text indented as inside the document."""
    entry = member_entry(member)
    text = "  " + json.dumps(entry, indent=1, sort_keys=True).replace("\n", "\n  ")
    return (entry["role"] != "master", entry["ip"], entry["uuid"]), entry, text


_PIECES: Memo[tuple[tuple[bool, str, str], dict[str, Any], str]] = Memo(_piece)


class Listing:
    """The members' texts in the document's order (``Ordered``) and the tally by (role, state): built once, then
    a join or leave is one insertion or deletion (``Folded``), not a sort of every member."""

    def __init__(self, members: tuple[Mapping[str, Any], ...]) -> None:
        pieces = _PIECES.map(members)  # the member cache's order already: the sort is linear
        self.texts: Ordered[str] = Ordered((key, text) for key, _, text in pieces)
        self.tally = Counter((entry["role"], entry["state"]) for _, entry, _ in pieces)

    def fold(self, removed: tuple[Mapping[str, Any], ...], added: tuple[Mapping[str, Any], ...]) -> Listing:
        for member in removed:
            if self.texts.remove(view_key(member)):
                self.tally[(str(member.get("role", "")), str(member.get("state", "")))] -= 1
        for member in added:
            key, entry, text = _piece(member)
            self.texts.insert(key, text)
            self.tally[(entry["role"], entry["state"])] += 1
        return self

    def counts(self) -> dict[str, int]:
        """As ``counts`` makes them from every member."""
        tally = self.tally
        result = {"members": len(self.texts.keys),
                  "ready": sum(n for (_, state), n in tally.items() if state == "ready")}
        for role in ROLES:
            result[f"{role}s"] = sum(n for (r, _), n in tally.items() if r == role)
            result[f"{role}s_ready"] = tally[(role, "ready")]
        return result


_LISTING: Folded[Listing] = Folded(Listing, Listing.fold)


def status_document(cluster: str, members: Iterable[Mapping[str, Any]], read_at: float | None, *,
                    scaler: Mapping[str, Any] | None = None) -> str:
    """The JSON text of ``status.json``: cluster, when it was read, counts, every member (masters first).

    Byte for byte ``json.dumps(document, indent=1, sort_keys=True)``, but each member's text is made once per
    version of the member (``plan.fragments``), so a master's pass costs what changed, not the cluster's size.
    """
    members = members if isinstance(members, tuple) else tuple(members)
    tally, listed = _MEMBERS.get(members)
    document = {
        "schema": STATUS_SCHEMA,
        "cluster": cluster,
        "rendered_at": iso_time(read_at),
        "counts": tally,
        "totals": TOTALS.get(members),  # the agents' CPUs, memory, Alluxio RAM, in all and by state (capacity.py)
        "members": [],
    }
    if scaler is not None:  # the scaler's leader, hold and last decisions (``scaler.report.summary``)
        document["scaler"] = dict(scaler)
    text = json.dumps(document, indent=1, sort_keys=True)
    if listed:
        text = text.replace('\n "members": []', f'\n "members": [\n{listed}\n ]', 1)
    return text + "\n"


def _members(members: tuple[Mapping[str, Any], ...]) -> tuple[dict[str, int], str]:
    """The counts (as ``counts`` makes them) and the members' text of the document (empty without members)."""
    listing = _LISTING.get(members)
    return listing.counts(), ",\n".join(listing.texts.values)


_MEMBERS: Last[tuple[dict[str, int], str]] = Last(_members)


def _fold_shares(counted: Counter[Share], removed: tuple[Mapping[str, Any], ...],
                 added: tuple[Mapping[str, Any], ...]) -> Counter[Share]:
    counted.subtract(map(share, removed))
    counted.update(map(share, added))
    for gone in [key for key, n in counted.items() if n <= 0]:
        del counted[gone]
    return counted


# The totals: the members' shares counted (agents of one size are one entry), a join or leave changes a count,
# and the sum is made again from the distinct shares; the landing page shows the same object
# (plan.member_overview).
_SHARES: Folded[Counter[Share]] = Folded(lambda members: Counter(map(share, members)), _fold_shares)
TOTALS: Last[dict[str, Any]] = Last(lambda members: add_up_counted(_SHARES.get(members)))
