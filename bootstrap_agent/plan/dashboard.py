"""The master's HTTPS dashboards: nginx, its TLS pair and password file, and the landing page."""

from __future__ import annotations

import posixpath
from typing import Any

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
    NGINX_DASHBOARD,
)
from bootstrap_agent.plan.cluster_status import status_document
from bootstrap_agent.plan.part import Part
from bootstrap_agent.ports import (
    ALLUXIO_MASTER_WEB,
    ALLUXIO_UI_PORT,
    DASHBOARD_PORT,
    MESOS_MASTER_PORT,
    MESOS_UI_PORT,
    SPARK_UI_PORT,
)
from bootstrap_agent.schema import Settings
from bootstrap_agent.templates import render


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
    members = sorted(peers.members, key=lambda m: (m.get("role") != "master", str(m.get("ip")), str(m.get("uuid"))))
    files.append(text_file(DASHBOARD_INDEX, render(
        "index.html.j2", cluster=settings.cluster, masters=masters, alluxio=settings.alluxio is not None,
        members=members, tools=tools,
    )))
    # The same members for programs (provision-min up/status): served only behind the password (the template).
    files.append(text_file(DASHBOARD_STATUS, status_document(settings.cluster, peers.members, peers.read_at)))
    files.append(text_file(NGINX_DASHBOARD, render(
        "nginx-dashboard.conf.j2", cluster=settings.cluster, ip=facts.ip, port=DASHBOARD_PORT, www_dir=www,
        alluxio=settings.alluxio is not None, spark_ui_port=SPARK_UI_PORT,
        cert=layout.path(DASHBOARD_CERT), key=layout.path(DASHBOARD_KEY),
        auth="off" if not dashboard.auth else ("on" if dashboard.password_hash else "locked"),
        htpasswd=layout.path(DASHBOARD_HTPASSWD), tools=tools, masters=masters, mesos_port=MESOS_MASTER_PORT,
        alluxio_web_port=ALLUXIO_MASTER_WEB, mesos_ui_port=MESOS_UI_PORT, alluxio_ui_port=ALLUXIO_UI_PORT,
    ), check="nginx"))
    # index.html and status.json are served as files: new ones need no reload.
    nginx_ports = (DASHBOARD_PORT, MESOS_UI_PORT, *((ALLUXIO_UI_PORT,) if settings.alluxio else ()))
    nginx = DesiredService("nginx", tuple(nginx_inputs), tuple((facts.ip, p) for p in nginx_ports), reload=True)
    return Part(tuple(files), (nginx,))
