"""systemd's notify protocol (``Type=notify``): READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.

Twenty lines of socket code do not justify a dependency. Without ``NOTIFY_SOCKET`` (a shell, the process
manager, tests) every call is a no-op, so the daemon never has to ask whether it runs under systemd.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self.address = address or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2  # ping twice per period, as sd_watchdog_enabled advises

    def notify(self, *lines: str) -> None:
        if not self.address:
            return
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        # OSError: systemd went away (shutdown), nothing to tell.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto(payload, self.address)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")
