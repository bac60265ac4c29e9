"""A real standalone ZooKeeper (Debian's 3.8) for tests, in the foreground, as the agent runs it.

The JVM command comes from ``bootstrap_agent.services.zookeeper_cmd.java_command``; this helper writes a
``zoo.cfg`` and a console-only ``log4j.properties`` into a work dir and runs it either on a free loopback
port of the host or on a given address inside a ``TestNode``. Readiness is ``ruok`` → ``imok``, and the
``conf`` answer must name our own ``dataDir``: a free port picked a moment ago could have been taken by
someone else's server, and its ``imok`` must not count as ours.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap_agent.services.zookeeper_cmd import java_command

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


class ZooKeeperServer:
    """One standalone server; ``hosts`` is the kazoo connection string."""

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
        self.node = node
        self.address = address
        self._auto_port = port is None
        self.port = port or 0
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ba-zk-"))
        self.conf_dir = self.workdir / "conf"
        self.data_dir = self.workdir / "data"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j.properties").write_text(_LOG4J)
        self.config_path = self.conf_dir / "zoo.cfg"
        self.log_path = self.workdir / "zookeeper.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"ZooKeeperServer({self.address}:{self.port}, node={self.node!r})"

    @property
    def hosts(self) -> str:
        """``address:port`` (e.g. ``127.0.0.1:40123``) for ``KazooClient(hosts=...)``."""
        return f"{self.address}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self) -> None:
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

    def four_letter(self, word: str, timeout: float = 2.0) -> str:
        """A four-letter command, sent from where the server lives (inside the node when there is one)."""
        if self.node is not None:
            return self.node.call(four_letter_word, self.address, self.port, word, timeout)
        return four_letter_word(self.address, self.port, word, timeout)

    def _is_ours(self) -> bool:
        try:
            if self.four_letter("ruok").strip() != "imok":
                return False
            return str(self.data_dir) in self.four_letter("conf")
        except OSError:
            return False

    def start(self, timeout: float = 20.0) -> ZooKeeperServer:
        """Start and wait until it answers ``imok``; a picked port that turns out taken is picked again."""
        if self.running:
            return self
        attempts = 3 if self._auto_port and not self.port else 1
        for attempt in range(attempts):
            if self._auto_port and (attempt > 0 or not self.port):
                node = self.node
                self.port = node.free_port(self.address) if node is not None else free_port(self.address)
            try:
                return self._start_once(timeout)
            except _ExitedEarly:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> ZooKeeperServer:
        self._write_config()
        argv = java_command(str(self.config_path), heap=self.heap, conf_dir=str(self.conf_dir))
        with open(self.log_path, "ab") as log:
            if self.node is not None:
                self.proc = self.node.popen(argv, stdout=log, stderr=log)
            else:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise _ExitedEarly(f"{self} exited with {code}:\n{self.log_tail()}")
            if self._is_ours():
                return self
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(f"{self} not ready (ruok) within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (the JVM exits with 143), then SIGKILL; the data dir stays for ``start()`` again."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def restart(self, timeout: float = 20.0) -> ZooKeeperServer:
        """Stop, start on the same port with the same data (clients reconnect or their sessions expire)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


class _ExitedEarly(RuntimeError):
    """The JVM died before it answered: usually the port was taken after we picked it."""
