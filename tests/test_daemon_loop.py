"""The daemon's loop itself, in-process: which passes carry the tick (the backstop re-fetch)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import structlog

from bootstrap_agent.daemon import Daemon, DaemonOptions
from bootstrap_agent.inputs import Options
from bootstrap_agent.status import Outcome


class RecordingDaemon(Daemon):
    """The real loop, with each pass recorded instead of configuring a node (no user-data server here)."""

    def __init__(self, options: DaemonOptions) -> None:
        super().__init__(options, structlog.get_logger("test"))
        self.passes: list[set[str]] = []

    def reconcile(self, kinds: set[str], events: int) -> Outcome | None:
        self.passes.append(set(kinds))
        return None


def test_the_tick_is_not_starved_by_a_steady_stream_of_events(tmp_path: Path) -> None:
    """Watch events every 20 ms for 1.5 s, tick 0.3 s: the periodic re-fetch still happens about every 0.3 s."""
    daemon = RecordingDaemon(DaemonOptions(once=Options(root=str(tmp_path), service_manager="process"),
                                           tick=0.3, debounce_min=0.05, debounce_max=0.1))
    stop = threading.Event()

    def events() -> None:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            daemon.enqueue("config", "changed")
            time.sleep(0.02)
        daemon.enqueue("stop", "test")
        stop.set()

    feeder = threading.Thread(target=events)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    feeder.start()
    try:
        assert daemon.run() == 0  # installs the daemon's handlers in this process: put pytest's back after
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    feeder.join(5)
    ticks = [kinds for kinds in daemon.passes if "tick" in kinds]
    assert len(daemon.passes) >= 8, daemon.passes  # the events did arrive in many passes
    assert 3 <= len(ticks) <= 7, daemon.passes
