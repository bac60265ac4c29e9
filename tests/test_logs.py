"""The secret registry behind every log line: current secrets only, safe to use from any thread."""

from __future__ import annotations

import threading

from bootstrap_agent import logs


def test_a_source_replaces_its_own_secrets_only() -> None:
    logs.register_secrets("user-data-secret-1", source="test-user-data")
    logs.register_secrets("agency-key-hour-1", source="test-agency")
    logs.register_secrets("agency-key-hour-2", source="test-agency")  # the hourly rotation
    assert logs.mask("a agency-key-hour-2 b") == "a *** b"
    assert logs.mask("user-data-secret-1") == "***"  # another source's value stays masked
    assert "agency-key-hour-1" not in logs.registered()  # no longer this node's secret


def test_rotation_does_not_grow_the_registry() -> None:
    logs.register_secrets(source="test-agency")
    before = len(logs.registered())
    for hour in range(5000):
        logs.register_secrets(f"AK{hour:08d}", f"SK{hour:08d}", f"TOKEN{hour:08d}", source="test-agency")
    assert len(logs.registered()) == before + 3
    logs.register_secrets(source="test-agency")
    assert len(logs.registered()) == before


def test_masking_while_another_thread_registers_never_fails() -> None:
    """The ZooKeeper worker's handler logs while the main loop registers the next agency keys."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def rotate() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            logs.register_secrets(*(f"rot-{n}-{i}" for i in range(20)), source="test-rotating")

    def log_lines() -> None:
        try:
            for _ in range(3000):
                logs.mask({"message": "nothing secret here " * 5, "list": ["a", "b"]})
        except BaseException as exc:
            errors.append(exc)

    rotator = threading.Thread(target=rotate)
    readers = [threading.Thread(target=log_lines) for _ in range(3)]
    rotator.start()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    stop.set()
    rotator.join(10)
    logs.register_secrets(source="test-rotating")
    assert not errors, errors
