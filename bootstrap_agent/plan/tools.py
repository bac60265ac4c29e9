"""Zeppelin and Jenkins on the masters, when the user-data enables them."""

from __future__ import annotations

from typing import Any

from bootstrap_agent.desired import DesiredService, text_file
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import JENKINS_ENV, ZEPPELIN_ENV
from bootstrap_agent.plan.common import mesos_url
from bootstrap_agent.plan.part import Part
from bootstrap_agent.ports import JENKINS_PORT, TOOLS_ADDRESS, ZEPPELIN_PORT
from bootstrap_agent.schema import Settings
from bootstrap_agent.templates import render


def tools(settings: Settings, layout: Layout) -> tuple[Part, list[dict[str, Any]]]:
    """Zeppelin and Jenkins, when enabled: an EnvironmentFile each, a unit each (run as their own users, see
    ``systemd/``), on the master's loopback; nginx proxies ``/zeppelin/`` and ``/jenkins/`` to them. Also returns
    what the dashboard templates need: only enabled tools get a proxy and a link."""
    part = Part()
    links: list[dict[str, Any]] = []
    if settings.zeppelin.enabled:
        part += Part((text_file(ZEPPELIN_ENV, render(
            "env.j2", cluster=settings.cluster, program="Zeppelin", variables=[
                ("ZEPPELIN_ADDR", TOOLS_ADDRESS), ("ZEPPELIN_PORT", str(ZEPPELIN_PORT)),
                ("ZEPPELIN_SERVER_CONTEXT_PATH", "/zeppelin"),
                ("ZEPPELIN_NOTEBOOK_DIR", layout.path("/var/lib/zeppelin/notebook")),
                # Zeppelin writes below ZEPPELIN_HOME by default, read-only under the unit's ProtectSystem=strict:
                # the WAR's unpack dir (default webapps/) and interpreter.json (default conf/) go to the unit's
                # CacheDirectory/StateDirectory instead (systemd/zeppelin.service).
                ("ZEPPELIN_WAR_TEMPDIR", layout.path("/var/cache/zeppelin/webapps")),
                ("ZEPPELIN_CONFIG_FS_DIR", layout.path("/var/lib/zeppelin/conf")),
                ("ZEPPELIN_INTERPRETER_LOCALREPO", layout.path("/var/cache/zeppelin/local-repo")),
                ("MASTER", mesos_url(settings.masters)),
            ],
        )),), (DesiredService("zeppelin", (ZEPPELIN_ENV,), ((TOOLS_ADDRESS, ZEPPELIN_PORT),)),))
        links.append({"name": "zeppelin", "title": "Zeppelin", "port": ZEPPELIN_PORT, "websocket": True})
    if settings.jenkins.enabled:
        part += Part((text_file(JENKINS_ENV, render(
            "env.j2", cluster=settings.cluster, program="Jenkins", variables=[
                ("JENKINS_HOME", layout.path("/var/lib/jenkins")), ("JENKINS_LISTEN_ADDRESS", TOOLS_ADDRESS),
                ("JENKINS_PORT", str(JENKINS_PORT)), ("JENKINS_PREFIX", "/jenkins"),
            ],
        )),), (DesiredService("jenkins", (JENKINS_ENV,), ((TOOLS_ADDRESS, JENKINS_PORT),)),))
        links.append({"name": "jenkins", "title": "Jenkins", "port": JENKINS_PORT, "websocket": False})
    return part, links
