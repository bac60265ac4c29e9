"""The local cloud's metadata service: OpenStack's metadata API, answering each node by its source address.

OTC's metadata service tells an instance its own user-data and ``meta_data.json`` by who asks; the local
cloud runs one server for every node, in a network namespace of its own that holds 169.254.169.254, and
keeps one folder per node address. Run as ``python3 -m provision_min.local.metadata_service --bind IP
--port N --dir D`` (stdlib only: it must start fast and depend on nothing):

* ``GET /openstack/latest/user_data``      → file ``D/<client ip>/user_data``, else ``D/user_data`` (404)
* ``GET /openstack/latest/meta_data.json`` → ``meta_data.json``, the same way
* ``GET /openstack/latest/securitykey``    → ``securitykey`` (an agency's temporary keys), the same way
* a file ``fail_status`` holding e.g. ``503`` makes every answer that status (the 5xx path, for tests).
* a file ``headers.json`` (a JSON object) adds its headers to every answer, e.g. ``Cache-Control: no-store``
  as a metadata service may send (the nginx cache on the node must keep its copy all the same).

Files are read on every request, so answers change by (atomically) replacing files. One JSON line per
request goes to stderr; with ``--port 0`` the first line says which port was bound. SIGTERM → exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ROUTES: dict[str, tuple[str, str]] = {
    "/openstack/latest/user_data": ("user_data", "application/octet-stream"),
    "/openstack/latest/meta_data.json": ("meta_data.json", "application/json"),
    "/openstack/latest/securitykey": ("securitykey", "application/json"),
}
FAIL_FILE = "fail_status"
HEADERS_FILE = "headers.json"


def _log(stream: IO[str], **fields: Any) -> None:
    fields.setdefault("ts", round(time.time(), 3))
    stream.write(json.dumps(fields, sort_keys=True) + "\n")
    stream.flush()


class _Handler(BaseHTTPRequestHandler):
    server_version = "ba-metadata/1"
    data_dir: Path = Path(".")

    def _pick(self, filename: str) -> Path | None:
        client_file = self.data_dir / self.client_address[0] / filename
        if client_file.is_file():
            return client_file
        default = self.data_dir / filename
        return default if default.is_file() else None

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        status, body, ctype, source = 404, b"not found\n", "text/plain", None
        fail = self._pick(FAIL_FILE)
        route = ROUTES.get(path)
        try:
            if fail is not None:
                status, body, source = int(fail.read_text().strip()), b"failing on purpose\n", str(fail)
            elif route is not None:
                found = self._pick(route[0])
                if found is not None:
                    status, body, ctype, source = 200, found.read_bytes(), route[1], str(found)
        except (OSError, ValueError) as exc:  # a file replaced mid-read, or a bad fail_status
            status, body, ctype = 500, f"{exc}\n".encode(), "text/plain"
        self.send_response(status)
        for name, value in self._extra_headers().items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        _log(sys.stderr, event="request", client=self.client_address[0], method="GET", path=path,
             status=status, bytes=len(body), file=source)

    def _extra_headers(self) -> dict[str, str]:
        found = self._pick(HEADERS_FILE)
        if found is None:
            return {}
        try:
            headers = json.loads(found.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(headers, dict):
            return {}
        return {str(k): str(v) for k, v in headers.items() if "\n" not in f"{k}{v}"}

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log: requests are logged as JSON in ``do_GET``."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)

    handler = type("Handler", (_Handler,), {"data_dir": args.dir.resolve()})
    httpd = ThreadingHTTPServer((args.bind, args.port), handler)
    httpd.daemon_threads = True

    def stop(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on the serving thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _log(sys.stderr, event="listening", bind=args.bind, port=httpd.server_address[1], dir=str(args.dir))
    try:
        httpd.serve_forever(poll_interval=0.1)
    finally:
        httpd.server_close()
    _log(sys.stderr, event="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
