"""The Alluxio stand-in worker's block store: blocks as files in its tier-0 folder, registered with the
primary master, reported at every heartbeat, persisted to the UFS when 1.8's master says so.

As the real worker (v2.9.3 / v1.8.2, ``TieredBlockStore``; cited in STARTUP-RULES.md A8–A12): blocks live under
``<alluxio.worker.tieredstore.level0.dirs.path>/<alluxio.worker.data.folder>`` (default ``alluxioworker``), one
file per block id, so they survive exactly as long as that folder does (a tmpfs gone with the machine, a
restart of the worker on the same folder: the blocks are registered again). The worker registers with the
primary master, heartbeats every ``alluxio.worker.block.heartbeat.interval`` (default 1 s) with what its tier
holds, and frees blocks of deleted files. Its capacity is the tier's quota (``...level0.dirs.quota``, else the
ramdisk/memory size). ``GET /api/v1/worker/info`` answers ``capacity: {total, used}`` (``AlluxioWorkerInfo``,
``AlluxioWorkerRestServiceHandler.GET_INFO``); 1.8 also ``GET /api/v1/worker/used_bytes``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from standins.alluxio_rest import StandinCallError, call_master, parse_duration_ms
from standins.alluxio_ufs import UfsError, ufs_from
from standins.common import Response, json_response, log_event

DEFAULT_CAPACITY = 1 << 30  # alluxio.worker.ramdisk.size / memory.size default: 1GB
DEFAULT_DATA_FOLDER = "alluxioworker"


class BlockStore:
    def __init__(self, version: str, properties: Mapping[str, str], capacity: int, web: str,
                 stop: threading.Event, base_info: Mapping[str, Any]) -> None:
        self.base_info = dict(base_info)
        self.version = version
        self.properties = properties
        self.capacity = capacity
        self.host = properties.get("alluxio.worker.hostname", "").strip() or "localhost"
        self.web = web
        tier = properties.get("alluxio.worker.tieredstore.level0.dirs.path", "/mnt/ramdisk").split(",")[0].strip()
        folder = properties.get("alluxio.worker.data.folder", DEFAULT_DATA_FOLDER).strip().strip("/")
        self.folder = Path(tier) / (folder or DEFAULT_DATA_FOLDER)
        self.interval = parse_duration_ms(properties.get("alluxio.worker.block.heartbeat.interval", "1sec")) / 1000
        self.worker_id: int | None = None
        self.lock = threading.Lock()
        self._persisted: list[int] = []
        self._stop = stop
        threading.Thread(target=self._heartbeats, daemon=True, name="worker-heartbeats").start()

    # --- the tier -------------------------------------------------------------------------------------------

    def blocks(self) -> dict[int, int]:
        found: dict[int, int] = {}
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        found[int(entry.name)] = entry.stat().st_size
        return found

    def used(self) -> int:
        return sum(self.blocks().values())

    def read(self, block: int) -> bytes | None:
        try:
            return (self.folder / str(block)).read_bytes()
        except OSError:
            return None

    def write(self, block: int, data: bytes) -> Response:
        with self.lock:
            if self.worker_id is None:
                return json_response({"statusCode": "UNAVAILABLE", "message": "worker not registered"}, 500)
            if self.used() + len(data) > self.capacity:
                return json_response({"statusCode": "RESOURCE_EXHAUSTED", "message": (
                    f"Failed to allocate {len(data)} bytes for block {block} on worker {self.host}")}, 500)
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{block}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.folder / str(block))
            try:
                call_master(self.properties, "/standin/v1/fs/commit",
                            {"workerId": self.worker_id, "blockId": block, "length": len(data)})
            except StandinCallError as exc:
                (self.folder / str(block)).unlink(missing_ok=True)
                return json_response({"statusCode": "UNAVAILABLE", "message": str(exc)}, 500)
        return json_response(len(data))

    # --- web ------------------------------------------------------------------------------------------------

    def get_route(self, path: str, query: Mapping[str, str]) -> Response | None:
        if path == "/api/v1/worker/info":
            return json_response(self.info())
        if path == "/api/v1/worker/used_bytes" and self.version == "1.8":
            return json_response(self.used())
        if path.startswith("/standin/v1/blocks/") and path.rsplit("/", 1)[-1].isdigit():
            data = self.read(int(path.rsplit("/", 1)[-1]))
            if data is None:
                return json_response({"statusCode": "NOT_FOUND", "message": "block not found"}, 404)
            return Response(200, data, "application/octet-stream")
        return None

    def body_route(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Response | None:
        if method == "PUT" and path.startswith("/standin/v1/blocks/") and path.rsplit("/", 1)[-1].isdigit():
            return self.write(int(path.rsplit("/", 1)[-1]), body)
        return None

    def info(self) -> dict[str, Any]:
        used = self.used()
        return self.base_info | {"capacity": {"total": self.capacity, "used": used},
                                 "tierCapacity": {"MEM": {"total": self.capacity, "used": used}},
                                 "tierPaths": {"MEM": [str(self.folder.parent)]}}

    # --- the master -----------------------------------------------------------------------------------------

    def _heartbeats(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            try:
                self._beat()
                failing = False
            except StandinCallError as exc:
                if not failing:  # once per outage, not once a second
                    log_event("alluxio_worker_heartbeat_failed", error=str(exc))
                failing = True

    def _beat(self) -> None:
        with self.lock:
            blocks = self.blocks()
            if self.worker_id is None:
                answer = call_master(self.properties, "/standin/v1/worker/register", {
                    "host": self.host, "web": self.web, "capacity": self.capacity,
                    "blocks": {str(k): v for k, v in blocks.items()}})
                self.worker_id = int(answer["workerId"])
                self._free(answer.get("orphans", []))
                return
            persisted, self._persisted = self._persisted, []
            answer = call_master(self.properties, "/standin/v1/worker/heartbeat", {
                "workerId": self.worker_id, "blocks": {str(k): v for k, v in blocks.items()}, "persisted": persisted})
            if answer.get("register"):
                self.worker_id = None
                return
            self._free(answer.get("free", []))
        for job in answer.get("persist", []):  # 1.8: CommandType.Persist
            self._persist(job)

    def _free(self, blocks: list[int]) -> None:
        for block in blocks:
            (self.folder / str(block)).unlink(missing_ok=True)

    def _persist(self, job: dict[str, Any]) -> None:
        """1.8's ``FileDataManager``: the file's blocks from this tier, one object to the UFS."""
        parts = [self.read(int(b)) for b in job["blocks"]]
        ufs = ufs_from(self.version, self.properties)
        try:
            if ufs is None or any(p is None for p in parts):
                raise UfsError("the root UFS is not s3a:// or a block is gone")
            ufs.put(str(job["path"]), b"".join(p for p in parts if p is not None))
        except UfsError as exc:
            log_event("alluxio_persist_failed", path=job["path"], error=str(exc))
            return
        log_event("alluxio_file_persisted", path=job["path"])
        with self.lock:
            self._persisted.append(int(job["id"]))
