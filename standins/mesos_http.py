"""HTTP for the Mesos stand-in beyond GET: POST calls with headers and bodies, and streamed answers.

The shared server (``standins.common``) answers GET/HEAD from fixed routes. The Mesos master also takes POSTed
JSON (the maintenance endpoints, the v1 operator API ``/api/v1``) and keeps a scheduler's ``SUBSCRIBE`` answer
open as a chunked RecordIO stream (apache/mesos 1.11.0 ``docs/scheduler-http-api.md``, "RecordIO response
format"; ``src/master/http.cpp`` ``Master::Http::scheduler`` answers ``OK`` with ``Response::PIPE``). This module
adds both: an ``ApiRoute`` sees every request first (method, path, query, headers, body) and may answer with a
``Response``, a ``Stream``, or ``None`` to leave a GET to the plain routes. HTTP/1.1 with keep-alive, as
libprocess speaks it, so chunked streams are well-formed.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from standins.common import EXIT_RUNTIME, Response, RoutedHTTPServer, RouteHandler, fail

_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` with the parser's one-line reason otherwise."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"body is not UTF-8: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(exc.msg) from None


@dataclass
class Stream:
    """An open answer: chunks queued by any thread, written by the request's thread until ``close``."""

    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    on_close: Callable[[], None] | None = None
    _queue: queue.Queue[bytes | None] = field(default_factory=queue.Queue)
    _closed: threading.Event = field(default_factory=threading.Event)

    def send(self, data: bytes) -> bool:
        if self._closed.is_set():
            return False
        self._queue.put(data)
        return True

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(None)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


ApiRoute = Callable[[Request], "Response | Stream | None"]


def json_text(status: int, message: str) -> Response:
    """Errors as libprocess sends them: the message as the body, ``text/plain``."""
    return Response(status, message.encode(), "text/plain; charset=utf-8")


class ApiHTTPServer(RoutedHTTPServer):
    api_route: ApiRoute | None = None


class _ApiHTTPServer6(ApiHTTPServer):
    address_family = socket.AF_INET6


class _ApiHandler(RouteHandler):
    server: ApiHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_POST(self) -> None:
        self._dispatch(send_body=True)

    def do_PUT(self) -> None:
        self._dispatch(send_body=True)

    def do_DELETE(self) -> None:
        self._dispatch(send_body=True)

    def _dispatch(self, *, send_body: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._write(json_text(413, "Request body too large"), send_body)
            return
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        request = Request(self.command, unquote(target.path), dict(parse_qsl(target.query)),
                          {k.lower(): v for k, v in self.headers.items()}, body)
        api = self.server.api_route
        answer = api(request) if api is not None else None
        if answer is None:
            if self.command in ("GET", "HEAD"):
                self._answer(send_body=send_body)
            else:
                self._write(Response(404, b"", "text/plain"), send_body)
        elif isinstance(answer, Stream):
            self._stream(answer)
        else:
            self._write(answer, send_body)

    def _write(self, response: Response, send_body: bool) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def _stream(self, stream: Stream) -> None:
        self.send_response(200)
        for name, value in stream.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                chunk = stream._queue.get()
                if chunk is None:
                    self.wfile.write(b"0\r\n\r\n")
                    break
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
        except OSError:
            pass  # the subscriber went away: the master treats it as disconnected
        finally:
            stream.close()
            self.close_connection = True
            if stream.on_close is not None:
                stream.on_close()


def api_server(program: str, host: str, port: int) -> ApiHTTPServer:
    cls = _ApiHTTPServer6 if ":" in host else ApiHTTPServer
    try:
        return cls((host, port), _ApiHandler)
    except OSError as exc:
        fail(program, f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_RUNTIME)
