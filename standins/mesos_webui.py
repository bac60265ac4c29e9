"""The Mesos master stand-in's leader election and web UI, shaped like the real master's.

The dashboards must work with the real Mesos web UI, which reads everything from the *leading* master: its
page fetches ``/master/state`` from the site root by JSONP, then polls
``//<leader_info.hostname>:<leader_info.port>/master/state`` (1.11.0 ``src/webui/app/controllers.js``,
``leadingMasterURLPrefix``; 1.4.3 ``src/webui/master/static/js/controllers.js``, ``leadingMasterURL``). A
master that does not lead answers ``/master/state`` with a 307 to ``//<leader hostname>:<port>/master/state``
and ``/master/redirect`` with a 307 to ``//<leader hostname>:<port>`` (``Master::Http::redirect``,
``src/master/http.cpp``), or 503 "No leader elected" while it knows none. The stand-in does the same, so a
proxy that only works while the local master leads fails a test.

The leader is found as real masters find it: each contends in ZooKeeper under the ``--zk`` path with an
ephemeral sequential ``json.info_`` znode holding its MasterInfo as JSON (``MASTER_INFO_JSON_LABEL``,
``src/master/constants.hpp``; ``src/zookeeper/group.cpp``), and the member with the lowest sequence leads
(``src/zookeeper/detector.cpp``). Without ``--zk`` a master leads alone (the standalone detector). Real
masters also need a quorum of the replicated log before they serve as leader; the stand-in does not model that.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from standins.common import Response, Route

MASTER_INFO_LABEL = "json.info_"
_ZK_URL = re.compile(r"^zk://(?:(?P<auth>[^@/]+)@)?(?P<hosts>[^/]+)(?P<path>/\S*)$")
_CALLBACK = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.]*$")
LEADER_ONLY = frozenset({"/master/state", "/master/state.json", "/master/roles", "/master/maintenance/schedule"})


def parse_zk(url: str) -> tuple[str, str | None, str]:
    """``zk://[user:pass@]host:port,.../path`` → (hosts, digest credentials, path); validated before."""
    match = _ZK_URL.match(url)
    if match is None:
        raise ValueError(f"not a zk:// URL: {url!r}")
    return match.group("hosts"), match.group("auth"), match.group("path").rstrip("/") or "/"


class Election:
    """Contends for leadership in ZooKeeper in the background; never blocks the master's start or stop."""

    def __init__(self, zk_url: str, info: Mapping[str, Any]) -> None:
        from kazoo.client import KazooClient  # only masters with --zk pay for the import

        logging.getLogger("kazoo").addHandler(logging.NullHandler())
        logging.getLogger("kazoo").propagate = False  # stderr carries only the stand-in's own failures
        hosts, auth, self.path = parse_zk(zk_url)
        self.info = dict(info)
        self._client = KazooClient(hosts=hosts, timeout=10.0, auth_data=[("digest", auth)] if auth else None,
                                   connection_retry={"max_tries": -1, "max_delay": 2.0})
        self._znode: str | None = None
        self._leader: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mesos-election", daemon=True)

    def start(self) -> Election:
        self._client.add_listener(self._on_change)  # (re)connected or lost: look again at once
        self._client.start_async()
        self._thread.start()
        return self

    def _on_change(self, *_: Any) -> None:
        """A watch or a connection state change: wake the loop (one bound method, so watches do not pile up)."""
        self._wake.set()

    def leader(self) -> dict[str, Any] | None:
        return self._leader

    @property
    def client(self) -> Any:
        """The session, for the stand-in's registry znode beside the group (``mesos_master.py``)."""
        return self._client

    def close(self) -> None:
        """Leave the group at once (the next master leads within a watch), bounded so SIGTERM stays quick."""
        self._stop.set()
        self._wake.set()
        closer = threading.Thread(target=lambda: (self._client.stop(), self._client.close()), daemon=True)
        closer.start()
        closer.join(0.5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._client.connected:
                    self._contend()
                    self._leader = self._read_leader()
            except Exception:  # a lost connection or session: try again on the next round
                self._leader = None
            self._wake.wait(5.0)  # watches wake it; the timeout is only a backstop
            self._wake.clear()

    def _contend(self) -> None:
        if self._znode is not None and self._client.exists(self._znode):
            return
        self._client.ensure_path(self.path)
        self._znode = self._client.create(f"{self.path}/{MASTER_INFO_LABEL}", json.dumps(self.info).encode(),
                                          ephemeral=True, sequence=True)

    def _read_leader(self) -> dict[str, Any] | None:
        children = self._client.get_children(self.path, watch=self._on_change)
        members = sorted((c for c in children if c.startswith(MASTER_INFO_LABEL)),
                         key=lambda c: int(c.rsplit("_", 1)[1]))
        if not members:
            return None
        data, _ = self._client.get(f"{self.path}/{members[0]}")
        leader = json.loads(data)
        return leader if isinstance(leader, dict) else None


def master_info(version: str, hostname: str, listen: str, pid: str) -> dict[str, Any]:
    """MasterInfo as the real master writes it into ZooKeeper and ``leader_info`` (mesos.proto field names)."""
    ip, _, port = listen.rpartition(":")
    return {"id": str(uuid.uuid4()), "pid": pid, "port": int(port), "hostname": hostname, "version": version,
            "address": {"hostname": hostname, "ip": ip.strip("[]"), "port": int(port)}}


class MasterWebUI:
    """The routes of the master's web UI: the page, its script, and the leader-aware API answers."""

    def __init__(self, version: str, info: Mapping[str, Any], base_state: Route, election: Election | None) -> None:
        self.version, self.info, self._base, self.election = version, dict(info), base_state, election

    def leader(self) -> dict[str, Any] | None:
        return self.election.leader() if self.election is not None else self.info

    def leads(self) -> bool:
        leader = self.leader()
        return leader is not None and leader.get("id") == self.info["id"]

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self._base().body)
        leader = self.leader()
        if leader is not None:
            state["leader"], state["leader_info"] = leader.get("pid"), leader
        state["elected"] = self.leads()
        return state

    def routes(self) -> dict[str, Route]:
        """``/`` serves the page (both versions serve index.html at the root), at the version's asset path."""
        page, script = _page(self.version)
        return {
            "/": lambda: Response(200, page, "text/html; charset=utf-8"),
            script: lambda: Response(200, _SCRIPT.replace("@PREFIX@", _PREFIX[self.version]).encode(),
                                     "application/javascript"),
            "/state": lambda: _compact(self.state()),
            "/master/state": lambda: _compact(self.state()),
            "/metrics/snapshot": lambda: _compact({"master/elected": 1.0 if self.leads() else 0.0}),
        }

    def request_route(self, path: str, query: Mapping[str, str]) -> Response | None:
        """Redirects to the leader as ``Master::Http::redirect`` does, and JSONP as libprocess' ``OK`` does."""
        if path in ("/redirect", "/master/redirect") or (path in LEADER_ONLY and not self.leads()):
            leader = self.leader()
            if leader is None:
                return Response(503, b"No leader elected", "text/plain")
            base = f"//{leader['hostname']}:{leader['port']}"
            target = base if path.endswith("/redirect") else base + path + _query(query)
            return Response(307, b"", "text/plain", (("Location", target),))
        callback = query.get("jsonp")
        route = self.routes().get(path)
        if callback is None or route is None or path == "/":
            return None
        if not _CALLBACK.match(callback):
            return Response(400, b"invalid jsonp callback", "text/plain")
        answer = route()
        return Response(answer.status, callback.encode() + b"(" + answer.body + b");", "text/javascript")


def _compact(payload: Any) -> Response:
    """JSON without blanks, as stout's ``jsonify`` writes it (the dashboard's nginx matches ``"leader_info":{``)."""
    return Response(200, json.dumps(payload, separators=(",", ":")).encode())


def _query(query: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return "?" + urlencode(dict(query)) if query else ""


# How each version finds the leader's address (see the module docstring for the upstream functions).
_PREFIX: Mapping[str, str] = {
    "1.11": "state && state.leader_info ? '//' + state.leader_info.hostname + ':' + state.leader_info.port : ''",
    "1.4": "'//' + (state && state.leader_info ? state.leader_info.hostname + ':' + state.leader_info.port"
           " : location.hostname + ':' + location.port)",
}
# Where each version's index.html loads its scripts from: 1.11 relative ("app/app.js"), 1.4 absolute
# ("/static/js/app.js"); the stand-in's one script sits beside them.
_ASSET: Mapping[str, tuple[str, str]] = {
    "1.11": ("app/standin.js", "/app/standin.js"),
    "1.4": ("/static/js/standin.js", "/static/js/standin.js"),
}

_SCRIPT = """(function () {
  'use strict';
  var calls = 0;
  function leaderPrefix(state) { return @PREFIX@; }
  function show(id, text) { document.getElementById(id).textContent = text; }
  function jsonp(url, done) {
    var name = 'standinCallback' + (calls++), script = document.createElement('script');
    window[name] = function (data) { delete window[name]; done(data); };
    script.onerror = function () { show('status', 'failed: ' + url); };
    script.src = url + (url.indexOf('?') < 0 ? '?' : '&') + 'jsonp=' + name;
    document.head.appendChild(script);
  }
  jsonp(leaderPrefix(null) + '/master/state', function (first) {
    show('status', 'loading the leader');
    jsonp(leaderPrefix(first) + '/master/state', function (state) {
      show('leader', state.leader || '(none)');
      show('hostname', state.hostname);
      show('agents', String((state.slaves || []).length));
      show('status', 'ok');
    });
  });
})();
"""


def _page(version: str) -> tuple[bytes, str]:
    src, path = _ASSET[version]
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Mesos {version} (stand-in)</title></head>
<body><h1>Mesos {version} (stand-in web UI)</h1>
<dl><dt>Leader</dt><dd id="leader">-</dd><dt>Leader's hostname</dt><dd id="hostname">-</dd>
<dt>Agents</dt><dd id="agents">-</dd></dl>
<p id="status">loading</p>
<script src="{src}"></script>
</body></html>
"""
    return html.encode(), path
