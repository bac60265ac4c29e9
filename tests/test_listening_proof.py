"""``services.base.listening_ports`` remembers what it proved: a unit's process that still holds the very socket
it was found listening on is not scanned again (one readlink instead of psutil's scan of every fd and of the
kernel's TCP table, on every pass of every unit: issue 17), and anything that changed is scanned again.

Real sockets of a real child process; psutil is only wrapped to count its scans."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from bootstrap_agent.services import base
from tests.support.waiting import wait_for

_SERVER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        s.close(); print("closed", flush=True)
"""


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        yield process, int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    real = psutil.Process.net_connections

    def counting(self: psutil.Process, kind: str = "inet") -> list[object]:
        counted.append(self.pid)
        return list(real(self, kind=kind))

    monkeypatch.setattr(psutil.Process, "net_connections", counting)
    return counted


def test_a_proven_port_is_not_scanned_again_until_its_socket_goes(server: tuple[subprocess.Popen[str], int],
                                                                  scans: list[int]) -> None:
    process, port = server
    assert base.listening_ports(process.pid, {port}) == {port}
    assert scans == [process.pid]
    for _ in range(3):  # the same process, the same socket: no scan
        assert base.listening_ports(process.pid, {port}) == {port}
    assert scans == [process.pid]
    # Another port is not covered by the proof: scanned (and not held).
    assert port + 1 not in (base.listening_ports(process.pid, {port, port + 1}) or set())
    assert len(scans) >= 2
    # The socket closes: the proof no longer stands, the port is reported missing at once.
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("close\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "closed"
    assert port not in (base.listening_ports(process.pid, {port}) or set())


def test_a_restarted_process_is_scanned_again(scans: list[int]) -> None:
    first = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None
        port = int(first.stdout.readline())
        assert base.listening_ports(first.pid, {port}) == {port}
    finally:
        first.kill()
        first.wait()
    wait_for("the process gone", lambda: base.listening_ports(first.pid, {port}) is None, timeout=10)
