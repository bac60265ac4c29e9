"""The agent's own memory in ``/var/lib/bootstrap-agent``: what it last knew to be good.

Keyed on the instance uuid: an instance made from an image of a used node sees a different uuid, forgets
everything the old instance knew and first-boots again (cloud-init #2174 replayed per-instance work after
an image rebundle; we refuse to).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap_agent.install import write_atomic
from bootstrap_agent.layout import Layout

STATE_DIR = "/var/lib/bootstrap-agent"
KEEP_ON_FIRST_BOOT = ("www",)
FIRST_START_PENDING = "first-start-pending"  # rendered content lives here too; plan() owns it, not the state


@dataclass
class StoredUserData:
    instance_uuid: str
    body: bytes
    source: str
    saved_at: float


class State:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.dir = Path(layout.path(STATE_DIR))

    # identity ---------------------------------------------------------------------------------------------
    def instance_uuid(self) -> str | None:
        try:
            return (self.dir / "instance-id").read_text("utf-8").strip() or None
        except FileNotFoundError:
            return None

    def is_first_boot(self, uuid: str) -> bool:
        return self.instance_uuid() != uuid

    def begin_instance(self, uuid: str) -> None:
        """Forget whatever another instance (or none) left here, then remember who we are."""
        if self.dir.exists():
            for entry in self.dir.iterdir():
                if entry.name in KEEP_ON_FIRST_BOOT:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        write_atomic(self.dir / "instance-id", f"{uuid}\n".encode(), 0o644)
        # Work that must happen exactly once per instance and only at its first boot (the Alluxio journal
        # format): pending from here until done. A state folder without this file (an agent upgraded in place)
        # never formats anything.
        write_atomic(self.dir / FIRST_START_PENDING, f"{time.time()}\n".encode(), 0o644)

    def first_start_pending(self, name: str) -> bool:
        return (self.dir / FIRST_START_PENDING).exists() and not (self.dir / f"first-start-done-{name}").exists()

    def first_start_done(self, name: str) -> None:
        write_atomic(self.dir / f"first-start-done-{name}", f"{time.time()}\n".encode(), 0o644)

    # user-data and metadata -------------------------------------------------------------------------------
    def load_user_data(self) -> StoredUserData | None:
        data = self._read_json("user-data.json")
        if not data:
            return None
        try:
            return StoredUserData(
                data["instance_uuid"], data["user_data"].encode("utf-8"), data["source"], float(data["saved_at"])
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def save_user_data(self, uuid: str, body: bytes, source: str) -> bool:
        """Keep the last good copy (mode 0600: it holds the cluster secret). True when it changed."""
        current = self.load_user_data()
        if current and current.instance_uuid == uuid and current.body == body:
            return False
        record = {"instance_uuid": uuid, "source": source, "saved_at": time.time(), "user_data": body.decode()}
        write_atomic(self.dir / "user-data.json", json.dumps(record).encode(), 0o600)
        return True

    def load_meta_data(self) -> dict[str, Any] | None:
        data = self._read_json("meta_data.json")
        return data if isinstance(data, dict) else None

    def save_meta_data(self, meta: dict[str, Any]) -> None:
        if self.load_meta_data() != meta:
            write_atomic(self.dir / "meta_data.json", json.dumps(meta, sort_keys=True).encode(), 0o644)

    # units ------------------------------------------------------------------------------------------------
    def units(self) -> dict[str, dict[str, str]]:
        """unit -> {"digest": inputs digest it was last (re)started with}."""
        data = self._read_json("units.json")
        return data if isinstance(data, dict) else {}

    def save_units(self, units: dict[str, dict[str, str]]) -> None:
        if units != self.units():
            write_atomic(self.dir / "units.json", json.dumps(units, sort_keys=True).encode(), 0o644)

    # status -----------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any] | None:
        data = self._read_json("status.json")
        return data if isinstance(data, dict) else None

    def save_status(self, status: dict[str, Any]) -> None:
        previous = self.status() or {}
        comparable = {k: v for k, v in previous.items() if k not in ("updated",)}
        if comparable != {k: v for k, v in status.items() if k != "updated"}:
            write_atomic(self.dir / "status.json", json.dumps(status, sort_keys=True).encode(), 0o644)

    def _read_json(self, name: str) -> Any:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return json.loads((self.dir / name).read_text("utf-8"))
        return None
