"""The landing page's view of the members: the totals block at the top, the groups by role and state, the
masters' rows, and the agents' rows or their pages (``plan.member_pages``), with the pages' own files.

Why apart from ``plan.dashboard``: that module builds nginx and its files; this one decides what a person sees of
a cluster of any size. The totals are the same object ``status.json`` carries (``cluster_status.TOTALS``), so the
page and ``provision-min status`` never disagree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from bootstrap_agent.capacity import STATES, human_bytes
from bootstrap_agent.desired import DesiredFile
from bootstrap_agent.node_paths import DASHBOARD_INDEX
from bootstrap_agent.plan.cluster_status import TOTALS
from bootstrap_agent.plan.member_pages import (
    Page,
    Pager,
    leading_masters,
    page_path,
    retired_text,
    row_html,
    template,
    utc_text,
)

PAGER = Pager()  # the master daemon's one pager: page boundaries live as long as the process


@dataclass(frozen=True)
class Overview:
    totals: Markup  # the block at the top
    members: Markup  # groups, masters' rows, the agents' rows or their pages
    files: tuple[DesiredFile, ...]  # the agents' pages (and the notes of pages merged away)


def _figures(bucket: Mapping[str, Any]) -> dict[str, str]:
    return {"agents": str(bucket["agents"]), "cpus": str(bucket["cpus"]), "memory": human_bytes(bucket["memory_bytes"]),
            "alluxio": human_bytes(bucket["alluxio_bytes"])}


def totals_html(totals: Mapping[str, Any]) -> Markup:
    """All agents, then each state that has any: how many, their CPUs, memory and Alluxio RAM."""
    rows = [{"name": "all agents", **_figures(totals)}]
    rows += [{"name": state, **_figures(bucket)} for state, bucket in totals["by_state"].items() if bucket["agents"]]
    if totals.get("unreported"):
        rows.append({"name": "without capacity", "agents": str(totals["unreported"]), "cpus": "?", "memory": "?",
                     "alluxio": "?"})
    return Markup(template("member_totals.html.j2").render(rows=rows))


def _groups(masters: list[Mapping[str, Any]], totals: Mapping[str, Any]) -> list[dict[str, str]]:
    groups = []
    for state in STATES:
        count = sum(1 for m in masters if m.get("state") == state)
        if count:
            groups.append({"role": "master", "state": state, "count": str(count), "cpus": "", "memory": "",
                           "alluxio": ""})
    for state, bucket in totals["by_state"].items():
        if bucket["agents"]:
            figures = _figures(bucket)
            groups.append({"role": "agent", "state": state, "count": figures.pop("agents"), **figures})
    return groups


def overview(cluster: str, members: tuple[Mapping[str, Any], ...], read_at: float | None,
             pager: Pager | None = None) -> Overview:
    """What the landing page shows of ``members`` (the member view), and the agents' page files (``pager``:
    the process' own unless given)."""
    pager = pager or PAGER
    masters = leading_masters(members)
    totals = TOTALS.get(members)
    pages = pager.pages(cluster, members, read_at)
    single = len(pages) == 1
    body = template("member_overview.html.j2").render(
        count=len(members), agents=totals["agents"], groups=_groups(masters, totals), pages=pages,
        master_rows=Markup("".join(row_html(m, read_at) for m in masters)),
        agent_rows=pages[0].rows if single else Markup(""), as_of=utc_text(read_at) if read_at is not None else None)
    return Overview(totals_html(totals), Markup(body), _files(cluster, pages, pager))


def _files(cluster: str, pages: list[Page], pager: Pager) -> tuple[DesiredFile, ...]:
    www = posixpath.dirname(DASHBOARD_INDEX)
    shown, gone = pager.published(pages)
    files = [DesiredFile(posixpath.join(www, page.path), page.content(), durable=False) for page in shown]
    if gone:
        note = retired_text(cluster).encode()
        files += [DesiredFile(posixpath.join(www, page_path(page_id)), note, durable=False) for page_id in gone]
    return tuple(files)
