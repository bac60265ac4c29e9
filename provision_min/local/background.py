"""The local cloud's background services (the metadata service, the AS service): started detached with their
output in a log, named in the state file at once, and waited for until they log ``listening``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from provision_min.errors import ProvisionError


def start_and_wait(argv: Sequence[str], log_path: Path, what: str, timeout: float,
                   started: Callable[[int], None]) -> None:
    """Run ``argv`` detached (its own session, cwd ``/``), call ``started(pid)`` before waiting (the caller
    records the pid, so ``down`` finds a service that never came up), then wait for its ``listening`` line in
    the part of the log it wrote; the log's tail in the error when it exits or times out first."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True, cwd="/")
    started(proc.pid)
    deadline = time.monotonic() + timeout
    while True:
        with log_path.open("rb") as log:
            log.seek(offset)
            if b'"event": "listening"' in log.read():
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise ProvisionError(f"the {what} did not start (log {log_path}):\n{tail}")
        time.sleep(0.05)
