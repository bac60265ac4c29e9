"""The Alluxio stand-in master's side of the stand-in wire (``/standin/v1/...`` on its web port, see
``alluxio_rest``), its lost-worker detection and who persists a file.

Who writes the UFS when a file is to be persisted (``scheduleAsyncPersistence``):

* **2.9** (v2.9.3 ``DefaultFileSystemMaster.PersistenceScheduler.handleReady``): the master submits a
  ``PersistConfig`` job to the **job master** (``JobMasterClient.run``), whose job worker copies the file. When
  no job master answers, the submit throws, the master logs ``Unexpected exception encountered when scheduling
  the persist job`` and drops the request: the file stays ``TO_BE_PERSISTED``. The stand-in checks that
  something accepts connections on ``alluxio.job.master.hostname`` (default the master's) :
  ``alluxio.job.master.rpc.port`` (20001); if so it does the job worker's copy itself (blocks from a worker
  that holds them, then the object to S3), else it logs that line and drops the request.
* **1.8** (v1.8.2 ``DefaultAsyncPersistHandler``): the file goes to the worker that holds **all** its blocks, at
  its next heartbeat (``workerHeartbeat`` → ``CommandType.Persist``); the worker writes the UFS and reports it
  persisted at the heartbeat after. No such worker: ``Not all the blocks of file ... stored on the same
  worker`` / ``... does not exist on any worker`` in the log, request dropped.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from typing import Any

from standins.alluxio_ha import ROLE
from standins.alluxio_namespace import PERSISTED, TO_BE_PERSISTED, FsError, Namespace
from standins.alluxio_rest import StandinCallError, call, error_response, parse_duration_ms
from standins.alluxio_ufs import UfsError, ufs_from
from standins.common import Response, json_response, log_event

DEFAULT_WORKER_TIMEOUT = "5min"
DEFAULT_JOB_MASTER_RPC_PORT = 20001
SCHEDULER_INTERVAL = 0.2


class MasterApi:
    def __init__(self, version: str, properties: Mapping[str, str], stop: threading.Event) -> None:
        self.version = version
        self.properties = properties
        timeout = properties.get("alluxio.master.worker.timeout",
                                 properties.get("alluxio.master.worker.timeout.ms", DEFAULT_WORKER_TIMEOUT))
        self.ns = Namespace(parse_duration_ms(timeout) / 1000)
        self._requests: list[int] = []  # 2.9: file ids whose persist job is to be submitted
        self._stop = stop
        threading.Thread(target=self._background, daemon=True, name="master-heartbeats").start()

    # --- the wire -------------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Response | None:
        if method != "POST" or not path.startswith("/standin/v1/"):
            return None
        if not ROLE.primary:  # a standby serving web (alluxio.standby.master.web.enabled) is not the primary
            return Response(503, b"standby master", "text/plain")
        handler = getattr(self, "_" + path.removeprefix("/standin/v1/").replace("/", "_"), None)
        if handler is None:
            return None
        try:
            payload = json.loads(body or b"{}")
            return json_response(handler(payload))
        except FsError as exc:
            return error_response(exc.code, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return error_response("INVALID_ARGUMENT", f"bad request: {exc}")

    def _worker_register(self, p: dict[str, Any]) -> Any:
        worker_id, orphans = self.ns.register(p["host"], p["web"], int(p["capacity"]),
                                              {int(k): int(v) for k, v in p["blocks"].items()})
        log_event("alluxio_worker_registered", host=p["host"], worker_id=worker_id, blocks=len(p["blocks"]))
        return {"workerId": worker_id, "orphans": orphans}

    def _worker_heartbeat(self, p: dict[str, Any]) -> Any:
        return self.ns.heartbeat(int(p["workerId"]), {int(k): int(v) for k, v in p["blocks"].items()},
                                 [int(i) for i in p.get("persisted", [])])

    def _fs_create(self, p: dict[str, Any]) -> Any:
        return self.ns.status(self.ns.create(p["path"], bool(p.get("folder")), bool(p.get("recursive"))))

    def _fs_block(self, p: dict[str, Any]) -> Any:
        inode = self.ns.get(p["path"])
        worker = self.ns.pick_worker(str(p.get("clientHost", "")))
        return {"blockId": self.ns.new_block(inode), "workerId": worker.id, "workerWeb": worker.web}

    def _fs_commit(self, p: dict[str, Any]) -> Any:
        self.ns.commit_block(int(p["workerId"]), int(p["blockId"]), int(p["length"]))
        return {}

    def _fs_complete(self, p: dict[str, Any]) -> Any:
        inode = self.ns.complete(p["path"], int(p["length"]), bool(p.get("persisted")))
        if p.get("asyncPersist"):  # ASYNC_THROUGH: the client schedules the persist at close
            self._schedule(inode.path)
        return self.ns.status(inode)

    def _fs_status(self, p: dict[str, Any]) -> Any:
        return self.ns.status(self.ns.get(p["path"]))

    def _fs_list(self, p: dict[str, Any]) -> Any:
        return [self.ns.status(i) for i in self.ns.children(p["path"], bool(p.get("recursive")))]

    def _fs_delete(self, p: dict[str, Any]) -> Any:
        removed = self.ns.delete(p["path"], bool(p.get("recursive")))
        ufs = ufs_from(self.version, self.properties)
        for inode in removed:
            if ufs is not None and not inode.folder and inode.persistence == PERSISTED:
                try:
                    ufs.delete(inode.path)
                except UfsError as exc:
                    log_event("alluxio_ufs_delete_failed", path=inode.path, error=str(exc))
        return {}

    def _fs_persist(self, p: dict[str, Any]) -> Any:
        self._schedule(p["path"])
        return self.ns.status(self.ns.get(p["path"]))

    def _fs_workers(self, p: dict[str, Any]) -> Any:
        with self.ns.lock:
            return [{"id": w.id, "host": w.host, "capacity": w.capacity, "used": w.used, "web": w.web,
                     "blocks": len(w.blocks)} for w in self.ns.workers.values()]

    # --- persisting -----------------------------------------------------------------------------------------

    def _schedule(self, path: str) -> None:
        with self.ns.lock:
            inode = self.ns.get(path)
            if not inode.completed:
                raise FsError("INVALID_ARGUMENT", f"Cannot persist an incomplete Alluxio file: {inode.path}")
            if inode.folder or inode.persistence == PERSISTED:
                return
            inode.persistence = TO_BE_PERSISTED
            if self.version != "1.8":
                self._requests.append(inode.id)
                return
            holders = [w for w in self.ns.workers.values() if set(inode.blocks) <= w.blocks]
            if not holders:
                log_event("alluxio_persist_unschedulable", path=inode.path,
                          message=f"Not all the blocks of file {inode.path} stored on the same worker")
                return
            holders[0].persist_queue.append(inode.id)

    def _job_master_answers(self) -> bool:
        """Whether a job master accepts on ``alluxio.job.master.rpc.addresses``, else on
        ``alluxio.job.master.hostname`` (default the master's) : ``alluxio.job.master.rpc.port``."""
        listed = self.properties.get("alluxio.job.master.rpc.addresses", "").strip()
        host = (self.properties.get("alluxio.job.master.hostname", "").strip()
                or self.properties.get("alluxio.master.hostname", "").strip() or "localhost")
        port = self.properties.get("alluxio.job.master.rpc.port", str(DEFAULT_JOB_MASTER_RPC_PORT)).strip()
        for address in listed.split(",") if listed else [f"{host}:{port}"]:
            name, _, number = address.strip().rpartition(":")
            try:
                with socket.create_connection((name, int(number)), timeout=0.5):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def _run_persist_job(self, file_id: int) -> None:
        with self.ns.lock:
            inode = next((i for i in self.ns.inodes.values() if i.id == file_id), None)
            if inode is None or inode.persistence != TO_BE_PERSISTED:
                return
            sources = [(b, [w.web for w in self.ns.locations(b)]) for b in inode.blocks]
            path = inode.path
        if not self._job_master_answers():
            log_event("alluxio_persist_job_not_scheduled", path=path, message=(
                f"Unexpected exception encountered when scheduling the persist job for file {path} "
                f"(id={file_id}) : alluxio.exception.status.UnavailableException: Failed to connect to "
                "JobMasterClient"))
            return
        ufs = ufs_from(self.version, self.properties)
        try:
            data = b"".join(_read_block(block, webs) for block, webs in sources)
            if ufs is None:
                raise UfsError("the root UFS is not an s3a:// address")
            ufs.put(path, data)
        except (UfsError, StandinCallError) as exc:
            log_event("alluxio_persist_job_failed", path=path, error=str(exc))
            return
        with self.ns.lock:
            if inode.persistence == TO_BE_PERSISTED:
                inode.persistence = PERSISTED
        log_event("alluxio_file_persisted", path=path, bytes=len(data))

    def _background(self) -> None:
        while not self._stop.wait(SCHEDULER_INTERVAL):
            for event in self.ns.detect_lost():
                log_event("alluxio_lost", what=event)
            with self.ns.lock:
                requests, self._requests = self._requests, []
            for file_id in requests:
                self._run_persist_job(file_id)


def _read_block(block: int, webs: list[str]) -> bytes:
    for web in webs:
        try:
            data: bytes = call(f"{web}/standin/v1/blocks/{block}", method="GET")
            return data
        except StandinCallError:
            continue
    raise StandinCallError(f"Block {block} is not available on any worker")
