"""A real standalone ZooKeeper (Debian's 3.8) for tests, in the foreground, as the agent runs it.

The JVM command comes from ``bootstrap_agent.services.zookeeper_cmd.java_command``; this helper writes a
``zoo.cfg`` and a console-only ``log4j.properties`` into a work dir and runs it either on a free loopback
port of the host or on a given address inside a ``TestNode``. Readiness is ``ruok`` → ``imok``, and the
``conf`` answer must name our own ``dataDir``: a free port picked a moment ago could have been taken by
someone else's server, and its ``imok`` must not count as ours.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

from bootstrap_agent.services.zookeeper_cmd import java_command

from .managed import ExitedEarly, ManagedProcess
from .netns import free_port

if TYPE_CHECKING:
    from .netns import TestNode

_LOG4J = """\
log4j.rootLogger=${zookeeper.root.logger}
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Threshold=INFO
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
"""


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter command (``ruok``, ``srvr``, ``mntr``, ``conf``) and return the answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        sock.shutdown(socket.SHUT_WR)
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperServer(ManagedProcess):
    """One standalone server; ``hosts`` is the kazoo connection string."""

    start_timeout = 20.0
    stop_timeout = 10.0  # SIGTERM: the JVM exits with 143
    poll_interval = 0.1

    def __init__(
        self,
        node: TestNode | None = None,
        *,
        address: str = "127.0.0.1",
        port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        heap: str = "256m",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(node, None if workdir is None else Path(workdir), prefix="ba-zk-", log_name="zookeeper.log")
        self.address = address
        self._auto_port = port is None
        self.port = port or 0
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.conf_dir = self.workdir / "conf"
        self.data_dir = self.workdir / "data"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j.properties").write_text(_LOG4J)
        self.config_path = self.conf_dir / "zoo.cfg"

    def __repr__(self) -> str:
        return f"ZooKeeperServer({self.address}:{self.port}, node={self.node!r})"

    @property
    def hosts(self) -> str:
        """``address:port`` (e.g. ``127.0.0.1:40123``) for ``KazooClient(hosts=...)``."""
        return f"{self.address}:{self.port}"

    def prepare(self) -> None:
        lines = {
            "tickTime": "2000",
            "initLimit": "10",
            "syncLimit": "5",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": self.address,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "ruok,srvr,mntr,conf",
            **self.extra_config,
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def argv(self) -> list[str]:
        return java_command(str(self.config_path), heap=self.heap, conf_dir=str(self.conf_dir))

    def four_letter(self, word: str, timeout: float = 2.0) -> str:
        """A four-letter command, sent from where the server lives (inside the node when there is one)."""
        if self.node is not None:
            return self.node.call(four_letter_word, self.address, self.port, word, timeout)
        return four_letter_word(self.address, self.port, word, timeout)

    def ready(self) -> bool:
        """``imok``, from a server whose ``conf`` names our data dir (not someone else's on a reused port)."""
        try:
            if self.four_letter("ruok").strip() != "imok":
                return False
            return str(self.data_dir) in self.four_letter("conf")
        except OSError:
            return False

    def start(self, timeout: float | None = None) -> Self:
        """Start and wait until it answers ``imok``; a picked port that turns out taken is picked again.

        The data dir stays across ``stop()``/``start()``, so a restart keeps the tree (clients reconnect or their
        sessions expire)."""
        if self.running:
            return self
        attempts = 3 if self._auto_port and not self.port else 1
        for attempt in range(attempts):
            if self._auto_port and (attempt > 0 or not self.port):
                node = self.node
                self.port = node.free_port(self.address) if node is not None else free_port(self.address)
            try:
                return super().start(timeout)
            except ExitedEarly:  # usually the port was taken after we picked it
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")
