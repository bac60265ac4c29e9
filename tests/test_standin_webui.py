"""The stand-ins' web UIs answer as the real ones do: the Mesos master's leader election, redirects and JSONP
(``standins/mesos_webui.py``), and the UIs' pages at the real absolute paths."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from standins.alluxio_webui import SCRIPT_PATH, web_routes
from tests.support.waiting import wait_for
from tests.support.zookeeper import ZooKeeperServer
from tests.test_standins import LOOPBACK, Standins, free_port, get, mesos_env, start_mesos, stop, wait_listening


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def location(port: int, path: str) -> tuple[int, str | None]:
    """Status and Location of a GET, redirects not followed (browsers follow the real ones themselves)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(f"http://{LOOPBACK}:{port}{path}", timeout=5) as response:
            return response.status, response.headers.get("Location")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location")


@pytest.mark.parametrize(("version", "script"), [("1.11", "app/standin.js"), ("1.4", "/static/js/standin.js")])
def test_a_master_alone_leads_and_serves_its_ui(standins: Standins, version: str, script: str) -> None:
    port = free_port()
    proc = start_mesos(standins, "master", version, mesos_env(port, work_dir="/w", hostname="m1.example"))
    wait_listening(proc, port)
    status, body, kind = get(port, "/master/state")
    assert status == 200 and kind == "application/json"
    assert b'"leader_info":{' in body  # compact, as stout's jsonify writes it: the dashboard rewrites exactly this
    state = json.loads(body)
    assert state["leader"] == state["pid"] == f"master@{LOOPBACK}:{port}" and state["elected"] is True
    assert (state["leader_info"]["hostname"], state["leader_info"]["port"]) == ("m1.example", port)

    status, body, kind = get(port, "/master/state?jsonp=angular.callbacks._0")
    assert status == 200 and kind == "text/javascript"
    assert body.startswith(b"angular.callbacks._0({") and body.endswith(b"});")
    assert get(port, "/master/state?jsonp=alert(1)")[0] == 400
    assert location(port, "/master/redirect") == (307, f"//m1.example:{port}")

    status, page, kind = get(port, "/")
    assert status == 200 and kind.startswith("text/html") and f'<script src="{script}">'.encode() in page
    status, code, kind = get(port, "/" + script.lstrip("/"))
    assert status == 200 and kind == "application/javascript" and b"'/master/state'" in code
    assert stop(proc)[0] == 0


def test_masters_elect_through_zookeeper_and_redirect_to_the_leader(standins: Standins,
                                                                      zookeeper: ZooKeeperServer) -> None:
    ports = [free_port(), free_port()]
    zk = f"zk://{zookeeper.hosts}/mesos-ui-test"
    first, second = ports
    procs = []
    for port in ports:  # the first to join leads
        procs.append(start_mesos(standins, "master", "1.11",
                                 mesos_env(port, work_dir="/w", zk=zk, quorum="1", hostname=LOOPBACK)))
        wait_listening(procs[-1], port)
        wait_for(f"{port} redirects to the leader", lambda port=port: location(port, "/master/redirect")
                 == (307, f"//{LOOPBACK}:{first}"), timeout=15.0)
    assert location(second, "/master/state?jsonp=cb") == (307, f"//{LOOPBACK}:{first}/master/state?jsonp=cb")
    assert json.loads(get(second, "/state")[1])["leader"] == f"master@{LOOPBACK}:{first}"
    assert json.loads(get(first, "/master/state")[1])["elected"] is True

    assert stop(procs[0])[0] == 0  # the leader leaves the group at once: the other one leads
    wait_for("the new leader", lambda: location(second, "/master/redirect") == (307, f"//{LOOPBACK}:{second}"),
             timeout=15.0)
    assert get(second, "/master/state")[0] == 200
    assert stop(procs[1])[0] == 0


def test_alluxio_pages_sit_at_the_real_paths() -> None:
    info = {"version": "2.9.0", "rpcAddress": "10.0.0.11:19998"}
    routes = web_routes("master", "2.9", info)
    page = routes["/"]()
    assert f'<script src="{SCRIPT_PATH}">'.encode() in page.body  # CRA's absolute /static/js/main.<hash>.js
    assert b"'/api/v1/master/webui_overview'" in routes[SCRIPT_PATH]().body  # REACT_APP_API_ROOT=/api/v1/master
    overview = json.loads(routes["/api/v1/master/webui_overview"]().body)
    assert overview["masterNodeAddress"] == "10.0.0.11:19998" and overview["liveWorkerNodes"] == 0
    assert "/api/v1/worker/webui_overview" in web_routes("worker", "2.9", info)

    old = web_routes("master", "1.8", {"version": "1.8.0", "rpcAddress": "10.0.0.11:19998"})
    assert b'content="0; url=home"' in old["/"]().body  # index.html of 1.8.2's webapp
    assert b"10.0.0.11:19998" in old["/home"]().body  # server-rendered, as the JSP is
