"""The master's HTTPS dashboards: nginx, its TLS pair and password file, and the landing page."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from bootstrap_agent.desired import DesiredFile, DesiredService, Peers, text_file
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import (
    DASHBOARD_CERT,
    DASHBOARD_HTPASSWD,
    DASHBOARD_INDEX,
    DASHBOARD_KEY,
    DASHBOARD_STATUS,
    DASHBOARD_TARGETS,
    NGINX_DASHBOARD,
)
from bootstrap_agent.plan.cluster_status import status_document
from bootstrap_agent.plan.member_overview import overview
from bootstrap_agent.plan.part import Part
from bootstrap_agent.plan.scrape_targets import targets_document
from bootstrap_agent.ports import (
    ALLUXIO_MASTER_WEB,
    ALLUXIO_UI_PORT,
    DASHBOARD_PORT,
    MESOS_MASTER_PORT,
    MESOS_UI_PORT,
    SPARK_UI_PORT,
)
from bootstrap_agent.scaler.chart import chart_svg
from bootstrap_agent.scaler.report import html_section
from bootstrap_agent.schema import Settings
from bootstrap_agent.templates import render

_ENCODED: dict[str, tuple[str, bytes]] = {}  # path -> the last text and its bytes


def _view_file(path: str, text: str) -> DesiredFile:
    """A document of the members, remade on every pass: installed whole but without .bak or fsync. The same
    text (an unchanged view's document is the same object) gives the same bytes object, which the install
    knows it already wrote (``install``)."""
    last = _ENCODED.get(path)
    if last is None or last[0] is not text:
        last = _ENCODED[path] = (text, text.encode("utf-8"))
    return DesiredFile(path, last[1], durable=False)


def dashboard(settings: Settings, facts: Facts, peers: Peers, layout: Layout, tools: list[dict[str, Any]]) -> Part:
    """nginx with its files; ``tools`` are the enabled tools it proxies and links (``plan.tools``)."""
    masters = settings.masters
    dashboard = settings.dashboard
    if dashboard.tls_certificate and dashboard.tls_key:
        cert, key = dashboard.tls_certificate, dashboard.tls_key
    elif facts.tls:
        cert, key = facts.tls
    else:
        raise InvalidInput("dashboard.tls_certificate", "no certificate for the dashboard: give one in the "
                           "user-data, or let the node make its own (it does in once/run)")
    files: list[DesiredFile] = [text_file(DASHBOARD_CERT, cert), text_file(DASHBOARD_KEY, key, mode=0o600, secret=True)]
    nginx_inputs = [NGINX_DASHBOARD, DASHBOARD_CERT, DASHBOARD_KEY]
    if dashboard.auth and dashboard.password_hash:
        files.append(DesiredFile(DASHBOARD_HTPASSWD, f"{dashboard.user}:{dashboard.password_hash}\n".encode(),
                                 0o640, secret=True, group="www-data"))
        nginx_inputs.append(DASHBOARD_HTPASSWD)
    www = layout.path(posixpath.dirname(DASHBOARD_INDEX))
    scaler = peers.scaler  # the scaler's report and chart (masters with autoscaling on; bootstrap_agent/scaler/)
    # The totals, the groups by role and state, and the agents in pages of their own: only the pages whose
    # members changed are rendered again (plan/member_overview.py, plan/member_pages.py).
    view = overview(settings.cluster, peers.members, peers.read_at)
    files.append(_view_file(DASHBOARD_INDEX, render(
        "index.html.j2", cluster=settings.cluster, masters=masters, alluxio=settings.alluxio is not None,
        members=peers.members, totals=view.totals, member_rows=view.members, tools=tools,
        scaler=_scaler_section(scaler),
    )))
    files.extend(view.files)
    # The same members for programs (provision-min up/status): served only behind the password (the template).
    files.append(_view_file(DASHBOARD_STATUS, status_document(
        settings.cluster, peers.members, peers.read_at, scaler=None if scaler is None else scaler["summary"])))
    # Every member's exporter for a user's Prometheus (http_sd_configs), behind the same password.
    files.append(_view_file(DASHBOARD_TARGETS, targets_document(settings.cluster, peers.members)))
    files.append(text_file(NGINX_DASHBOARD, render(
        "nginx-dashboard.conf.j2", cluster=settings.cluster, ip=facts.ip, port=DASHBOARD_PORT, www_dir=www,
        alluxio=settings.alluxio is not None, spark_ui_port=SPARK_UI_PORT,
        cert=layout.path(DASHBOARD_CERT), key=layout.path(DASHBOARD_KEY),
        auth="off" if not dashboard.auth else ("on" if dashboard.password_hash else "locked"),
        htpasswd=layout.path(DASHBOARD_HTPASSWD), tools=tools, masters=masters, mesos_port=MESOS_MASTER_PORT,
        alluxio_web_port=ALLUXIO_MASTER_WEB, mesos_ui_port=MESOS_UI_PORT, alluxio_ui_port=ALLUXIO_UI_PORT,
    ), check="nginx"))
    # index.html, status.json and prometheus/targets.json are served as files: new ones need no reload.
    nginx_ports = (DASHBOARD_PORT, MESOS_UI_PORT, *((ALLUXIO_UI_PORT,) if settings.alluxio else ()))
    nginx = DesiredService("nginx", tuple(nginx_inputs), tuple((facts.ip, p) for p in nginx_ports), reload=True)
    return Part(tuple(files), (nginx,))


def _scaler_section(view: Mapping[str, Any] | None) -> Markup | None:
    """The landing page's scaler section: who leads, the hold, the last decisions (escaped) and the chart
    (SVG drawn here, inline: no script, nothing fetched; ``scaler.chart``)."""
    if view is None:
        return None
    return Markup(html_section(dict(view["summary"]), chart_svg(view["series"], title="Scaler: allocation, "
                                                               "desired and ready agents")))
