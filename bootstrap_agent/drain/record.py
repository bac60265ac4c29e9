"""The drain's memory in ``/var/lib/bootstrap-agent/drain.json``: written atomically after every step, so an
agent restarted mid-drain (a crash, an upgrade) resumes where it was instead of starting over or forgetting
that it was leaving. The folder is the instance's (``state.py``): a new instance never inherits a drain."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from bootstrap_agent.drain.machine import DrainRecord
from bootstrap_agent.install import write_atomic
from bootstrap_agent.state import State

DRAIN_FILE = "drain.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # new at every boot (systemd-nspawn gives each boot its own)


def current_boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def outlived(record: DrainRecord, boot_id: str) -> bool:
    """A shutdown drain belongs to the boot that was stopping: when the same instance boots again (a reboot, a
    poweroff and a later start), it is over and the node joins again. A lifecycle drain is not: the group is
    removing the instance, whatever boots in between."""
    return record.reason == "shutdown" and bool(boot_id) and bool(record.boot_id) and record.boot_id != boot_id


class DrainStore:
    def __init__(self, state: State) -> None:
        self.path = Path(state.dir) / DRAIN_FILE

    def load(self, log: Any = None) -> DrainRecord | None:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            if log is not None:
                log.error("drain_record_unreadable", path=str(self.path), error=str(exc))
            return None
        try:
            return DrainRecord.from_dict(data if isinstance(data, dict) else {})
        except ValueError as exc:
            if log is not None:
                log.error("drain_record_unreadable", path=str(self.path), error=str(exc))
            return None

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def save(self, record: DrainRecord) -> None:
        body = json.dumps(record.to_dict(), sort_keys=True).encode()
        with contextlib.suppress(FileNotFoundError):
            if self.path.read_bytes() == body:
                return
        write_atomic(self.path, body, 0o600)  # holds the lifecycle action key
