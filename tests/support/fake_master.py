"""The first master's status document as the fake OTC cloud's EIP would serve it (``https://<eip>/status.json``).

Only the provisioner's side is faked here (tests/test_status_endpoint.py runs the real agent behind real nginx):
the fake derives the members from what the fake cloud holds (masters = servers made with master user-data,
agents = the AS group's instances), each ``ready`` unless a test says otherwise, and checks what nginx and TLS
would check, from the masters' own user-data:

* TLS: the certificate it serves is the masters' ``dashboard.tls_certificate``; a client whose trust anchor
  (``verify=`` file, as requests hands it to the adapter) is another certificate gets an ``SSLError`` and its
  request, with the password, never arrives;
* basic auth: the password must match ``dashboard.password_hash`` (``openssl passwd`` recomputes it), else 401;
  no hash in the user-data: 403, as nginx answers a locked dashboard.
"""

from __future__ import annotations

import base64
import email.utils
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from bootstrap_agent.capacity import totals

if TYPE_CHECKING:
    from tests.support.fake_otc import FakeOtc


@dataclass
class FakeMasterStatus:
    otc: FakeOtc
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # ip -> (state, reason); default ready
    serve_certificate: str | None = None  # another certificate than the user-data's (a wrong or foreign host)
    requests_seen: list[dict[str, Any]] = field(default_factory=list)  # each request that passed TLS
    rendered_ago: float = 0.0  # how long ago the master's daemon last rendered the document (0: it runs)
    loads: dict[str, dict[str, Any]] = field(default_factory=dict)  # ip -> the member's ``load`` (agents)
    drains: dict[str, dict[str, Any]] = field(default_factory=dict)  # ip -> the member's ``drain`` (draining)
    capacities: dict[str, dict[str, int]] = field(default_factory=dict)  # ip -> the member's ``capacity``
    in_state: dict[str, float] = field(default_factory=dict)  # ip -> seconds since the member entered its state

    def answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str] | None:
        """The answer for a status request, None for any other URL; raises what the connection would."""
        parts = urlsplit(str(request.url))
        master = self._master_at(parts.hostname or "")
        if master is None:
            if any(e.data.get("public_ip_address") == parts.hostname for e in self.otc.eips.values()):
                raise requests.ConnectionError(f"{parts.hostname}: connection refused (the EIP is bound to no server)")
            return None
        if parts.path != "/status.json":
            return 404, {}, "not found"
        dashboard = master.get("dashboard", {})
        served = self.serve_certificate or dashboard.get("tls_certificate")
        anchor = getattr(request, "req_kwargs", {}).get("verify")
        if not isinstance(anchor, str) or served is None or Path(anchor).read_text() != served:
            raise requests.exceptions.SSLError("certificate verify failed: self-signed certificate")
        auth = str(request.headers.get("Authorization", ""))
        self.requests_seen.append({"url": str(request.url), "auth": bool(auth)})
        if "password_hash" not in dashboard:
            return 403, {}, "dashboard locked"
        if not auth.startswith("Basic ") or not _matches(auth[6:], dashboard.get("user", "admin"),
                                                          dashboard["password_hash"]):
            return 401, {"WWW-Authenticate": 'Basic realm="cluster"'}, "401 Authorization Required"
        headers = {"Content-Type": "application/json", "Date": email.utils.formatdate(usegmt=True)}
        return 200, headers, json.dumps(self.document(master["cluster"]))

    def document(self, cluster: str) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - self.rendered_ago))
        members = []
        for server in self.otc.servers.values():
            data = server.data
            if data["status"] != "ACTIVE":
                continue
            role = "agent" if data.get("as_group") else "master"
            state, reason = self.states.get(data["ip"], ("ready", ""))
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - self.rendered_ago
                                                                    - self.in_state.get(data["ip"], 0.0)))
            member = {"uuid": data["id"], "role": role, "ip": data["ip"], "hostname": data["name"],
                      "state": state, "reason": reason, "services": {}, "since": since}
            if data["ip"] in self.capacities:
                member["capacity"] = self.capacities[data["ip"]]
            if data["ip"] in self.loads:
                member["load"] = self.loads[data["ip"]]
            if data["ip"] in self.drains:
                member["drain"] = self.drains[data["ip"]]
            members.append(member)
        members.sort(key=lambda m: (m["role"] != "master", m["ip"]))
        ready = [m for m in members if m["state"] == "ready"]
        counts = {"members": len(members), "ready": len(ready)}
        for role in ("master", "agent"):
            counts[f"{role}s"] = sum(1 for m in members if m["role"] == role)
            counts[f"{role}s_ready"] = sum(1 for m in ready if m["role"] == role)
        # ``totals`` as the master sums them (plan/cluster_status.py: bootstrap_agent.capacity.totals)
        return {"schema": 1, "cluster": cluster, "rendered_at": now, "counts": counts, "totals": totals(members),
                "members": members}

    def _master_at(self, address: str) -> dict[str, Any] | None:
        """The user-data of the master the EIP ``address`` is bound to."""
        for eip in self.otc.eips.values():
            if eip.data.get("public_ip_address") != address or not eip.data.get("port_id"):
                continue
            server_id = self.otc.ports.get(eip.data["port_id"])
            server = self.otc.servers.get(server_id or "")
            if server is not None:
                document: dict[str, Any] = self.otc.user_data.get(server.data["name"], {})
                return document
        return None


def _matches(encoded: str, user: str, password_hash: str) -> bool:
    try:
        given_user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    scheme = password_hash.split("$")[1] if password_hash.startswith("$") else ""
    if given_user != user or scheme not in ("6", "5", "apr1"):
        return False
    salt = password_hash.split("$")[2]
    result = subprocess.run(["openssl", "passwd", f"-{scheme}", "-salt", salt, "-stdin"], input=password,
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip() == password_hash
