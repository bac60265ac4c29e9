"""The node's nginx metadata cache, run for real in the foreground inside a ``TestNode``.

The ``server`` text comes from ``bootstrap_agent.metadata_cache.render_metadata_cache_conf`` (the same text
the machine image bakes into ``/etc/nginx/conf.d/``); this helper only wraps it into a full ``nginx.conf``
whose pid, logs, temp folders and cache live under a work dir, so nothing touches the host's nginx. The
cache folder survives ``stop()``/``start()``/``restart()``, which is what makes STALE after a restart work.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap_agent.metadata_cache import USER_DATA_LOCAL_PATH, render_metadata_cache_conf

from .managed import ManagedProcess
from .netns import HttpResponse
from .waiting import NotReached, wait_for

if TYPE_CHECKING:
    from .metadata_server import MetadataServer
    from .netns import TestNode

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render_nginx_conf(workdir: Path, upstream: str, *, listen: str = "127.0.0.1:80", zone: str = "ud") -> str:
    """A complete foreground ``nginx.conf`` around the metadata cache text, everything below ``workdir``."""
    temp = "\n".join(f"    {kind}_temp_path {workdir}/temp/{kind};" for kind in _TEMP_PATHS)
    server = render_metadata_cache_conf(upstream, cache_dir=str(workdir / "cache"), zone=zone, listen=listen)
    indented = "".join(f"    {line}" if line.strip() else line for line in server.splitlines(keepends=True))
    return (
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        # Workers default to 'nobody', who cannot enter a 0700 pytest tmp dir to write the cache.
        "user root;\n"
        f"pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/logs/error.log info;\n"
        "\n"
        "events {\n"
        "    worker_connections 64;\n"
        "}\n"
        "\n"
        "http {\n"
        f"    access_log {workdir}/logs/access.log;\n"
        f"{temp}\n"
        "\n"
        f"{indented}"
        "}\n"
    )


class NginxCache(ManagedProcess):
    """nginx as the metadata cache on ``listen`` (127.0.0.1:80) inside ``node``, in front of ``upstream``."""

    def __init__(
        self,
        node: TestNode,
        upstream: str | MetadataServer,
        *,
        workdir: str | os.PathLike[str] | None = None,
        listen: str = "127.0.0.1:80",
    ) -> None:
        super().__init__(node, None if workdir is None else Path(workdir), prefix="ba-nginx-",
                         log_name="logs/stdio.log")
        self.netns = node
        self.upstream = upstream if isinstance(upstream, str) else upstream.upstream
        self.listen = listen
        for sub in ("conf", "logs", "cache", *(f"temp/{kind}" for kind in _TEMP_PATHS)):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.conf_path = self.workdir / "conf" / "nginx.conf"
        self.conf_path.write_text(render_nginx_conf(self.workdir, self.upstream, listen=listen))
        self.stdio_path = self.log_path

    def __repr__(self) -> str:
        return f"NginxCache({self.listen} → {self.upstream}, node={self.node!r})"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """The user-data URL the agent uses (``http://localhost/user-data`` means this, inside the node)."""
        port = "" if self.port == 80 else f":{self.port}"
        return f"http://{self.host}{port}{USER_DATA_LOCAL_PATH}"

    @property
    def cache_dir(self) -> Path:
        return self.workdir / "cache"

    def argv(self) -> list[str]:
        error_log = str(self.workdir / "logs" / "error.log")
        return ["nginx", "-p", str(self.workdir), "-c", str(self.conf_path), "-e", error_log]

    def ready(self) -> bool:
        return self.netns.port_open(self.host, self.port)

    def after_stop(self) -> None:
        """SIGTERM is nginx's fast shutdown (the master waits for its workers); still, an old worker holding
        the port would answer the next start's readiness probe, so wait (bounded) until nothing holds it."""
        with contextlib.suppress(NotReached):
            wait_for(f"{self}: the port released", lambda: not (self.netns.pids() and self._holds_port()),
                     self.stop_timeout, self.poll_interval)

    def _holds_port(self) -> bool:
        try:
            return self.netns.port_open(self.host, self.port)
        except Exception:  # the node is gone: nothing holds anything
            return False

    def get(self, timeout: float = 5.0) -> HttpResponse:
        """GET the user-data through the cache, from inside the node."""
        return self.netns.http_get(self.url, timeout)

    def log_text(self) -> str:
        """nginx's error log, then what it wrote to stdout/stderr."""
        return self.error_log()

    def error_log(self) -> str:
        path = self.workdir / "logs" / "error.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if self.stdio_path.exists():
            text += self.stdio_path.read_text(errors="replace")
        return text
