"""The test framework client (``tests/support/mesos_framework.py``) when its master vanishes: a powered-off
master sends no FIN, so the stream's reader blocks for ever; SUBSCRIBE again must not wait for it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.mesos_framework import MesosFramework


@pytest.fixture
def silent_master() -> Iterator[int]:
    """Answers one SUBSCRIBE with a chunked RecordIO stream (as the stand-in does), then goes silent, open."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        held.append(conn)
        body = json.dumps({"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "f-1"}}}).encode()
        record = str(len(body)).encode() + b"\n" + body
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMesos-Stream-Id: s-1\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(record):x}\r\n".encode() + record + b"\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        for conn in held:
            conn.close()
        server.close()


def test_dropping_the_stream_of_a_vanished_master_does_not_hang(silent_master: int) -> None:
    framework = MesosFramework(f"127.0.0.1:{silent_master}", timeout=5)
    assert framework.subscribe(timeout=5) == "f-1"
    time.sleep(0.2)  # the reader thread now blocks reading the next record
    done = threading.Event()

    def drop() -> None:
        framework._drop_connection()  # what subscribe() does first, to SUBSCRIBE again elsewhere
        done.set()

    threading.Thread(target=drop, daemon=True).start()
    assert done.wait(5), "dropping the stream waited for a master that will never answer"
    assert not framework.connected.is_set()
