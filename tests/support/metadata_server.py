"""Runs the local cloud's metadata service (``provision_min.local.metadata_service``) for tests.

``MetadataServer`` starts it as a process, in a ``TestNode`` namespace or on the host's loopback, and writes
its answers (user-data, ``meta_data.json``, the agency's security key, a forced failure status) as files,
atomically, so a request never sees half a file. ``requests()`` reads back what the server logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision_min.local.metadata_service import FAIL_FILE, HEADERS_FILE

from .managed import ManagedProcess

if TYPE_CHECKING:
    from tests.support.netns import TestNode


# ---------------------------------------------------------------------------------------------------------
# The test helper
# ---------------------------------------------------------------------------------------------------------
class MetadataServer(ManagedProcess):
    """Runs this script as a process, in a ``TestNode`` (or on the host's loopback when ``node`` is None).

    ``port=0`` picks a free port on the first ``start()``; later starts reuse it, so an nginx configured
    with ``upstream`` keeps pointing at the server across ``stop()``/``start()``.
    """

    poll_interval = 0.02

    def __init__(
        self,
        node: TestNode | None = None,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(node, None if workdir is None else Path(workdir), prefix="ba-metadata-",
                         log_name="metadata-server.log")
        self.bind = bind
        self.port = port
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"MetadataServer({self.bind}:{self.port}, node={self.node!r})"

    # -- addresses ------------------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """An address to reach the server at (``0.0.0.0`` binds are reached on 127.0.0.1)."""
        return "127.0.0.1" if self.bind == "0.0.0.0" else self.bind

    @property
    def upstream(self) -> str:
        """``host:port``, as nginx's ``proxy_pass`` wants it."""
        if not self.port:
            raise RuntimeError(f"{self} has no port yet: start() it first")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. for ``--metadata-url``."""
        return f"http://{self.upstream}"

    # -- lifecycle ------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "provision_min.local.metadata_service", "--bind", self.bind,
                "--port", str(self.port), "--dir", str(self.data_dir)]

    def ready(self) -> bool:
        """This start's ``listening`` line in the log; it names the port (the one picked when ``port=0``)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            for line in log.read().splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("event") == "listening":
                        self.port = int(event["port"])
                        return True
        return False

    # -- content --------------------------------------------------------------------------------------------
    def _write(self, filename: str, data: bytes | None, client_ip: str | None) -> None:
        folder = self.data_dir / client_ip if client_ip else self.data_dir
        target = folder / filename
        if data is None:
            target.unlink(missing_ok=True)
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{filename}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def set_user_data(self, data: bytes | str | None, *, client_ip: str | None = None) -> None:
        """Set (None: remove → 404) the user-data, for every client or for the one at ``client_ip``."""
        self._write("user_data", data.encode() if isinstance(data, str) else data, client_ip)

    def set_meta_data(self, data: Mapping[str, Any] | None, *, client_ip: str | None = None) -> None:
        """Set (None: remove → 404) ``meta_data.json``."""
        self._write("meta_data.json", None if data is None else json.dumps(data).encode(), client_ip)

    def set_security_key(self, access: str | None, secret: str = "", token: str = "",
                         expires_at: str = "2030-01-01T00:00:00.000000Z") -> None:
        """The agency's temporary credentials, as OTC's ``/openstack/latest/securitykey`` answers (None: 404)."""
        body = {"credential": {"access": access, "secret": secret, "securitytoken": token, "expires_at": expires_at}}
        self._write("securitykey", None if access is None else json.dumps(body).encode(), None)

    def set_fail_status(self, status: int | None, *, client_ip: str | None = None) -> None:
        """Answer every request with ``status`` (e.g. 503) until called with None."""
        self._write(FAIL_FILE, None if status is None else f"{status}\n".encode(), client_ip)

    def set_headers(self, headers: Mapping[str, str] | None, *, client_ip: str | None = None) -> None:
        """Add ``headers`` to every answer (e.g. ``Cache-Control: no-store``) until called with None."""
        self._write(HEADERS_FILE, None if headers is None else json.dumps(dict(headers)).encode(), client_ip)

    # -- what happened --------------------------------------------------------------------------------------
    def requests(self) -> list[dict[str, Any]]:
        """The logged requests, oldest first (JSON objects with client, path, status, bytes, file)."""
        out: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "request":
                    out.append(event)
        return out

