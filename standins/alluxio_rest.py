"""HTTP plumbing the Alluxio stand-in's data model shares: a handler that also takes POST/PUT/DELETE, JSON calls
between the stand-in processes, finding the primary master, and Alluxio's duration sizes.

Real Alluxio's processes talk gRPC (2.9) or Thrift (1.8); the stand-ins talk JSON over HTTP on the web ports
instead, under ``/standin/v1/...`` (the master's web port is served only by the primary, as the real one's
gRPC, so a worker or client that finds it has found the primary). What a user sees — the proxy's REST API, the
CLI's words, the worker's ``/api/v1/worker/info`` — is the real one; only this wire is the stand-in's own.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from standins.common import Response, RouteHandler, json_response

BodyRoute = Callable[[str, str, Mapping[str, str], bytes], Response | None]
"""``(method, path, query, body)`` → an answer, or ``None`` for 404."""

DEFAULT_MASTER_WEB = 19999
CALL_TIMEOUT = 10.0


class StandinCallError(RuntimeError):
    """Another stand-in process did not answer (``unreachable``), or answered with an error (its message)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class RestHandler(RouteHandler):
    """The stand-ins' GET/HEAD handler, plus the methods the proxy's REST API and the internal wire use."""

    def do_POST(self) -> None:
        self._body_call("POST")

    def do_PUT(self) -> None:
        self._body_call("PUT")

    def do_DELETE(self) -> None:
        self._body_call("DELETE")

    def _body_call(self, method: str) -> None:
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        route: BodyRoute | None = getattr(self.server, "body_route", None)
        response = route(method, unquote(target.path), dict(parse_qsl(target.query)), body) if route else None
        if response is None:
            response = Response(404, b"", "text/plain")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)


def error_response(code: str, message: str) -> Response:
    """``RestUtils.createErrorResponse`` (v2.9.3 ``core/server/common/.../RestUtils.java``): HTTP 500 with the
    gRPC status code's name and the exception's message."""
    return json_response({"statusCode": code, "message": message}, status=500)


def call(url: str, payload: Any = None, *, data: bytes | None = None, method: str = "POST",
         timeout: float = CALL_TIMEOUT) -> Any:
    """One JSON call to another stand-in; raw ``data`` is sent as octet-stream and raw bytes come back when the
    answer is not JSON."""
    body = data if data is not None else (json.dumps(payload).encode() if payload is not None else b"")
    kind = "application/octet-stream" if data is not None else "application/json"
    request = urllib.request.Request(url, data=body if method != "GET" else None, method=method,
                                     headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw: bytes = answer.read()
            is_json = answer.headers.get("Content-Type", "").startswith("application/json")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            message = text or str(exc)
        raise StandinCallError(message, unreachable=exc.code == 503) from None
    except OSError as exc:
        raise StandinCallError(f"{url}: {getattr(exc, 'reason', exc)}", unreachable=True) from None
    return json.loads(raw) if is_json and raw else raw


def master_web_addresses(properties: Mapping[str, str]) -> list[str]:
    """Where a primary master's web port may be: ``alluxio.master.hostname``, else every host of
    ``alluxio.master.rpc.addresses`` (2.9 HA), each with ``alluxio.master.web.port``."""
    port = int(properties.get("alluxio.master.web.port", str(DEFAULT_MASTER_WEB)).strip() or DEFAULT_MASTER_WEB)
    hosts = [properties.get("alluxio.master.hostname", "").strip()]
    listed = properties.get("alluxio.master.rpc.addresses", "").strip()
    if listed:
        hosts = [item.rsplit(":", 1)[0] for item in listed.split(",")]
    return [f"http://{host}:{port}" for host in hosts if host]


def call_master(properties: Mapping[str, str], path: str, payload: Any = None, timeout: float = CALL_TIMEOUT) -> Any:
    """A call to the primary master: the first address whose web port answers (a standby's closes at once)."""
    last = "no master address configured"
    for base in master_web_addresses(properties):
        try:
            return call(base + path, payload if payload is not None else {}, timeout=timeout)
        except StandinCallError as exc:
            if not exc.unreachable:  # the primary answered: its error is the answer
                raise
            last = str(exc)
    raise StandinCallError(f"Failed to connect to the primary master: {last}", unreachable=True)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
_DURATION_UNITS = {"": 1, "ms": 1, "millisecond": 1, "s": 1000, "sec": 1000, "second": 1000, "m": 60000,
                   "min": 60000, "minute": 60000, "h": 3600000, "hr": 3600000, "hour": 3600000, "d": 86400000,
                   "day": 86400000}


def parse_duration_ms(text: str) -> int:
    """Milliseconds for an Alluxio duration (``FormatUtils.parseTimeSize``: ``500``, ``10s``, ``5min``)."""
    match = _DURATION_RE.match(text.lower())
    unit = match.group(2) if match else ""
    if unit not in _DURATION_UNITS and unit.endswith("s"):  # plurals: 5mins, 10seconds
        unit = unit[:-1]
    if match is None or unit not in _DURATION_UNITS:
        raise ValueError(f"cannot parse {text!r} as a duration")
    return int(float(match.group(1)) * _DURATION_UNITS[unit])
