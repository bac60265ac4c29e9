"""The drain's memory in ``/var/lib/bootstrap-agent/drain.json``: written atomically after every step, so an
agent restarted mid-drain (a crash, an upgrade) resumes where it was instead of starting over or forgetting
that it was leaving. The folder is the instance's (``state.py``): a new instance never inherits a drain."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

from bootstrap_agent.drain.machine import DrainRecord
from bootstrap_agent.install import write_atomic
from bootstrap_agent.layout import Layout
from bootstrap_agent.state import State

DRAIN_FILE = "drain.json"
KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
RUN_BOOT_ID = "/run/bootstrap-agent/boot_id"  # /run is a tmpfs: every boot starts without it


def current_boot_id(layout: Layout | None = None) -> str:
    """This boot's id, kept in ``/run`` by the first daemon of the boot and read by every later one (a daemon
    restart or upgrade is the same boot). Not the kernel's ``boot_id`` as the daemon sees it: systemd-nspawn
    gives each container boot its own by a mount over ``/proc/sys/kernel/random/boot_id``, but the daemon's
    sandbox (``ProtectKernelTunables=yes``) mounts ``/proc/sys`` again without it, so every boot of a local-cloud
    node read the host's id, a finished shutdown drain never ended with its boot and the node never joined
    again. ``/run`` starts empty at every boot of a VM or a container alike. The kernel's id is the fallback
    where ``/run`` cannot be written."""
    path = Path((layout or Layout()).path(RUN_BOOT_ID))
    try:
        known = path.read_text().strip()
        if known:
            return known
    except OSError:
        pass
    fresh = str(uuid.uuid4())
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_atomic(path, fresh.encode() + b"\n", 0o644)
        return fresh
    except OSError:
        try:
            return KERNEL_BOOT_ID.read_text().strip()
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
        self.layout = state.layout  # where this node's /run is (its boot id)

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
