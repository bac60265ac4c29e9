"""What the Mesos and Alluxio stand-ins share: refusing input, logging, listening, stopping.

The stand-ins exist so that tests and the local cloud can run the real unit files, configuration files and
health checks without the real daemons. They must therefore fail the way the real daemons fail (non-zero exit,
one line on stderr, nothing listening) and stop the way a supervised daemon stops (SIGTERM → exit 0 quickly),
and they must start fast because tests start dozens of them: hence only the standard library.
"""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

EXIT_INVALID = 2
"""Invalid configuration: the same code ``bootstrap-agent`` uses for invalid input."""
EXIT_RUNTIME = 1
"""Valid configuration that still could not run (e.g. the port is taken)."""

MASK = "***"

_SECRET_MARKERS = ("secret", "accesskey", "password", "credential", "account.key")


def is_secret_name(name: str) -> bool:
    """Decide by name alone, so a value can be hidden before anyone has looked at it."""
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def fail(program: str, message: str, code: int = EXIT_INVALID) -> NoReturn:
    """One line, then exit: supervisors and tests read the last stderr line as the reason."""
    print(f"{program}: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def log_event(event: str, **fields: Any) -> None:
    """JSON on stdout, one object a line, like the agent's own structured logs, so journald readers cope."""
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # e.g. a redirect's Location


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, sort_keys=True).encode("utf-8"))


Route = Callable[[], Response]
RequestRoute = Callable[[str, Mapping[str, str]], Response | None]
"""Sees the path and query first (redirects, JSONP); ``None`` leaves the request to the plain routes."""


def _address_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class RoutedHTTPServer(ThreadingHTTPServer):
    """Routes are set after binding, because some answers name the address actually bound."""

    daemon_threads = True
    routes: Mapping[str, Route] = {}
    request_route: RequestRoute | None = None
    body_route: Callable[[str, str, Mapping[str, str], bytes], Response | None] | None = None
    """POST/PUT/DELETE, for servers whose handler takes them (``standins.alluxio_rest.RestHandler``)."""


class _RoutedHTTPServer6(RoutedHTTPServer):
    address_family = socket.AF_INET6


class _RouteHandler(BaseHTTPRequestHandler):
    server: RoutedHTTPServer
    server_version = "standin"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        # Clients may or may not percent-encode "/slave(1)/state"; both must reach the same route.
        target = urlsplit(self.path)
        path = unquote(target.path)
        response = None
        request_route: RequestRoute | None = getattr(self.server, "request_route", None)  # not on every server
        if request_route is not None:
            response = request_route(path, dict(parse_qsl(target.query)))
        if response is None:
            route = self.server.routes.get(path)
            response = route() if route is not None else Response(404, b"", "text/plain")
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: stdout carries only the structured start line, and stderr only failures."""


RouteHandler = _RouteHandler  # for servers of other kinds (dockerd's unix socket)


class _TCPListener(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _TCPListener6(_TCPListener):
    address_family = socket.AF_INET6


class _CloseAtOnce(socketserver.BaseRequestHandler):
    """RPC and data ports only have to accept connections: probes check reachability, not protocol."""

    def handle(self) -> None:
        return None


def http_server(program: str, host: str, port: int) -> RoutedHTTPServer:
    cls = _RoutedHTTPServer6 if _address_family(host) == socket.AF_INET6 else RoutedHTTPServer
    server = _bind(program, host, port, lambda: cls((host, port), _RouteHandler))
    assert isinstance(server, RoutedHTTPServer)
    return server


def tcp_listener(program: str, host: str, port: int) -> socketserver.TCPServer:
    cls = _TCPListener6 if _address_family(host) == socket.AF_INET6 else _TCPListener
    return _bind(program, host, port, lambda: cls((host, port), _CloseAtOnce))


def _bind(program: str, host: str, port: int, make: Callable[[], socketserver.TCPServer]) -> socketserver.TCPServer:
    try:
        return make()
    except OSError as exc:
        fail(program, f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_RUNTIME)


def listen_address(server: socketserver.TCPServer) -> str:
    host, port = (str(part) for part in server.server_address[:2])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def install_stop_handlers() -> threading.Event:
    """Install first thing, so a SIGTERM that arrives during validation still ends in a clean exit."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def serve(servers: Iterable[socketserver.TCPServer], stop: threading.Event) -> int:
    """Serve until SIGTERM/SIGINT; return the exit code.

    Each server loop runs in a thread with a short poll interval, and the main thread only waits, so a signal
    is handled at once and shutdown takes one poll interval rather than the default half second per server.
    """
    running = list(servers)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in running]
    for thread in threads:
        thread.start()
    while not stop.wait(0.2):
        pass
    for server in running:
        server.shutdown()
        server.server_close()
    return 0
