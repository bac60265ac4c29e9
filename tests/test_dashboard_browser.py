"""The master's landing page as a person sees it: headless Chromium (Debian's) against the real nginx of a
master daemon, listing every member that a real ZooKeeper holds."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import pytest

from tests.support.daemon_node import AGENT_IPS, DASHBOARD_AUTH, MASTER_IP, DaemonNode
from tests.support.netns import TestNode

CHROMIUM = shutil.which("chromium")


def browse(net: TestNode, url: str, *, screenshot: str | None = None, flags: Sequence[str] = ()) -> str:
    """The DOM after Chromium loaded ``url`` (inside the test network; no other network traffic). ``flags``
    add to the fixed ones (``--virtual-time-budget=MS`` lets the page's scripts finish their requests)."""
    assert CHROMIUM, "Debian's chromium is not installed (.ci/setup installs it)"
    with tempfile.TemporaryDirectory(prefix="ba-chromium-") as profile:
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--ignore-certificate-errors", f"--user-data-dir={profile}", "--window-size=1200,800", *flags]
        if screenshot:
            net.run([*argv, f"--screenshot={screenshot}", url], capture_output=True, timeout=90)
        result = net.run([*argv, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("BA_REQUIRE_NETNS") != "1",
                    reason="Debian's chromium is not installed")
def test_landing_page_lists_every_member(cluster: Callable[..., DaemonNode], tmp_path_factory: pytest.TempPathFactory
                                         ) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    master = cluster("master", MASTER_IP).start()
    agents = [cluster("agent", ip).start() for ip in AGENT_IPS[:2]]
    for agent in agents:
        agent.wait_for("ready", lambda a=agent: a.status().get("state") == "ready")
    user, password = DASHBOARD_AUTH
    url = f"https://{user}:{password}@{MASTER_IP}/"

    def listed() -> bool:
        page = net.https_get(f"https://{MASTER_IP}/", auth=DASHBOARD_AUTH).body.decode()
        return all(a.ip in page for a in agents)

    master.wait_for("both agents rendered", listed)
    shot = os.environ.get("BA_SCREENSHOT") or str(tmp_path_factory.mktemp("shots") / "landing.png")
    dom = browse(net, url, screenshot=shot)
    assert "Cluster eo-live" in dom
    rows = [line for line in dom.splitlines() if 'class="member"' in line]
    assert len(rows) == 3, dom
    for agent in agents:
        row = next(r for r in rows if f'data-uuid="{agent.uuid}"' in r)
        assert agent.ip in row and "agent" in row
    assert any(f'data-uuid="{master.uuid}"' in r for r in rows)
    assert 'class="ready">ready' in dom
    assert os.path.getsize(shot) > 0

    # Without the password the browser is shown nothing of the cluster.
    denied = browse(net, f"https://{MASTER_IP}/")
    assert "Cluster eo-live" not in denied and AGENT_IPS[0] not in denied
