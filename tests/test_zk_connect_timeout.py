"""A ZooKeeper server's address that answers nothing (a powered-off master: no reset) must not hold a reconnect
for a whole session timeout: the session's kazoo handler gives a TCP connect ``CONNECT_TIMEOUT`` seconds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from bootstrap_agent.cluster import ClusterStore
from bootstrap_agent.zk.session import CONNECT_TIMEOUT


@pytest.fixture
def silent_address() -> Iterator[tuple[str, int]]:
    """A loopback port whose accept queue is full: the kernel drops further SYNs, as for a vanished host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filled = []
    while True:  # fill the accept queue until a connect no longer completes
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(server.getsockname())
        except TimeoutError:
            probe.close()
            break
        filled.append(probe)
    try:
        yield server.getsockname()
    finally:
        for probe in filled:
            probe.close()
        server.close()


def test_a_silent_server_costs_a_connect_timeout_not_a_session_timeout(silent_address: tuple[str, int]) -> None:
    store = ClusterStore(f"{silent_address[0]}:{silent_address[1]}", "eo-live", "s" * 43,
                         on_event=lambda kind, detail: None, session_timeout=10.0)
    handler = store.session.client.handler
    started = time.monotonic()
    with pytest.raises(OSError):  # kazoo asks with the session timeout, as its reconnect loop does
        handler.create_connection(address=silent_address, timeout=10.0)
    waited = time.monotonic() - started
    assert CONNECT_TIMEOUT - 0.5 < waited < CONNECT_TIMEOUT + 1.5, waited
