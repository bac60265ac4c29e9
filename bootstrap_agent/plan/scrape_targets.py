"""``prometheus/targets.json``: every member as a Prometheus HTTP service-discovery document.

Why: a user's Prometheus should find every node by itself, also the agents an autoscaling group adds at night.
The masters already hold the member list (the landing page's), so they publish it in the one format Prometheus
reads without a plugin: ``http_sd_configs`` (https://prometheus.io/docs/prometheus/latest/http_sd/), a JSON
list of target groups ``{"targets": ["<host>:<port>"], "labels": {...}}``. It is served behind the dashboard's
password like ``status.json``; the targets themselves (every node's exporter on its private address) are
reachable only from the cluster network.

One group per member, so each series carries that member's labels (``cluster``, ``role``, ``uuid``,
``hostname``: names Prometheus accepts, values that ``member.py`` validated). Sorted like ``status.json``
(masters first, by address): an unchanged cluster gives identical bytes and so no write.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bootstrap_agent.member_rows import Ordered
from bootstrap_agent.plan.fragments import Folded, Last, Memo
from bootstrap_agent.ports import METRICS_PORT

Piece = tuple[tuple[bool, str, str], str | None]  # a member's sort key and its group's JSON text (None: no ip)


def _piece(cluster: str, port: int, member: Mapping[str, Any]) -> Piece:
    key = (member.get("role") != "master", str(member.get("ip")), str(member.get("uuid")))
    if not member.get("ip"):
        return key, None
    group = {
        "targets": [f"{member['ip']}:{port}"],
        "labels": {
            "cluster": cluster,
            "role": str(member.get("role", "")),
            "uuid": str(member.get("uuid", "")),
            "hostname": str(member.get("hostname", "")),
        },
    }
    return key, " " + json.dumps(group, indent=1, sort_keys=True).replace("\n", "\n ")


_MEMO: dict[tuple[str, int], Last[str]] = {}  # one per (cluster, port): each member's group made once a version


def targets_document(cluster: str, members: Iterable[Mapping[str, Any]], port: int = METRICS_PORT) -> str:
    """The JSON text of the HTTP SD document: one target group per member, ``[]`` without members.

    Byte for byte ``json.dumps(groups, indent=1, sort_keys=True)``; each member's group is made once per
    version of the member (``plan.fragments``), so a master's pass costs what changed."""
    memo = _MEMO.get((cluster, port))
    if memo is None:
        _MEMO.clear()
        make = functools.partial(_piece, cluster, port)
        groups = Folded(functools.partial(_Groups, Memo(make)), functools.partial(_Groups.fold, make=make))
        memo = _MEMO[(cluster, port)] = Last(lambda members: groups.get(members).document())
    return memo.get(members if isinstance(members, tuple) else tuple(members))


class _Groups:
    """The members' groups in the document's order (``Ordered``): a join or leave is one insertion or deletion
    (``Folded``), not a sort of every member."""

    def __init__(self, pieces: Memo[Piece], members: tuple[Mapping[str, Any], ...]) -> None:
        self.texts: Ordered[str | None] = Ordered(pieces.map(members))

    def fold(self, removed: tuple[Mapping[str, Any], ...], added: tuple[Mapping[str, Any], ...], *,
             make: Callable[[Mapping[str, Any]], Piece]) -> _Groups:
        for member in removed:
            self.texts.remove(make(member)[0])
        for member in added:
            self.texts.insert(*make(member))
        return self

    def document(self) -> str:
        texts = [text for text in self.texts.values if text is not None]
        return ("[\n" + ",\n".join(texts) + "\n]\n") if texts else "[]\n"
