"""The Alluxio stand-in's web UI, at the paths the real UIs use, so the dashboard's proxy is tested against them.

* 2.9: a React build served from the web port's root (``MasterWebServer``/``WorkerWebServer``: the UI's files
  at ``/``, the REST API at ``/api/v1/*``). ``index.html`` loads ``/static/js/main.<hash>.js`` by absolute path
  (create-react-app without ``homepage``), and the app calls ``${REACT_APP_API_ROOT}/webui_overview`` etc. with
  ``REACT_APP_API_ROOT=/api/v1/master`` (``webui/master/.env``; ``/api/v1/worker`` in ``webui/worker/.env``),
  v2.9.3. Under a path prefix both the script and every call miss.
* 1.8: JSP pages rendered by the server (``/home``, ``/browse``, ...: ``MasterWebServer``, v1.8.2), reached from
  ``index.html``'s ``<meta http-equiv="refresh" content="0; url=home">``; their links are relative
  (``./browse``, ``css/...``), so 1.8 also worked below a prefix. Its data is in the page, no script needed.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from standins.common import Response, Route, json_response

SCRIPT_PATH = "/static/js/main.standin.js"

_SCRIPT = """(function () {
  'use strict';
  function show(id, text) { document.getElementById(id).textContent = text; }
  var request = new XMLHttpRequest();
  request.open('GET', '/api/v1/@ROLE@/webui_overview');
  request.onload = function () {
    if (request.status !== 200) { show('status', 'failed: HTTP ' + request.status); return; }
    var overview = JSON.parse(request.responseText);
    show('address', overview.masterNodeAddress || overview.workerAddress || '-');
    show('workers', String(overview.liveWorkerNodes === undefined ? '-' : overview.liveWorkerNodes));
    show('version', overview.version);
    show('status', 'ok');
  };
  request.onerror = function () { show('status', 'failed: no answer'); };
  request.send();
})();
"""


def _page(role: str, version: str, body: str) -> bytes:
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>Alluxio {role} {version} (stand-in)'
            f"</title></head>\n<body><h1>Alluxio {role} {version} (stand-in web UI)</h1>\n{body}</body></html>\n"
            ).encode()


def _fields(address: str, workers: str, version: str, status: str) -> str:
    return (f'<dl><dt>Address</dt><dd id="address">{html.escape(address)}</dd>'
            f'<dt>Live workers</dt><dd id="workers">{html.escape(workers)}</dd>'
            f'<dt>Version</dt><dd id="version">{html.escape(version)}</dd></dl>\n'
            f'<p id="status">{html.escape(status)}</p>\n')


def web_routes(role: str, version: str, info: Mapping[str, Any]) -> dict[str, Route]:
    """The page and its data for a master or worker web port (the proxy has no UI)."""
    address = str(info.get("rpcAddress", "-"))
    full = str(info.get("version", version))
    if version == "1.8":
        home = _page(role, version, _fields(address, "0" if role == "master" else "-", full, "ok")
                     + '<p><a href="./browse?path=/">Browse</a></p>\n')
        refresh = b'<html><head><meta HTTP-EQUIV="REFRESH" content="0; url=home"></head></html>\n'
        return {"/": lambda: Response(200, refresh, "text/html"),
                "/home": lambda: Response(200, home, "text/html; charset=utf-8")}
    page = _page(role, version, _fields("-", "-", "-", "loading") + f'<script src="{SCRIPT_PATH}"></script>\n')
    overview: dict[str, Any] = {"version": full}
    if role == "master":
        overview.update(masterNodeAddress=address, liveWorkerNodes=0, masterRole="PRIMARY")
    else:
        overview.update(workerAddress=address)
    script = _SCRIPT.replace("@ROLE@", role).encode()
    return {
        "/": lambda: Response(200, page, "text/html; charset=utf-8"),
        SCRIPT_PATH: lambda: Response(200, script, "application/javascript"),
        f"/api/v1/{role}/webui_overview": lambda: json_response(overview),
    }
