"""The Alluxio stand-in master's namespace and block map: which files exist, how persisted, and which worker
holds which block — what is at stake when a worker leaves.

Modelled on Alluxio's masters (cited in ``bootstrap_agent/data/names/STARTUP-RULES.md``, rows A8–A12):

* a file id is ``(container << 24) | 0xFFFFFF`` and its blocks ``(container << 24) | i``
  (``BlockId``/``IdUtils``); persistence states ``NOT_PERSISTED``, ``TO_BE_PERSISTED``, ``PERSISTED``, ``LOST``
  (``PersistenceState``);
* workers register with their blocks and heartbeat; one silent for ``alluxio.master.worker.timeout`` (default
  ``5min``) is lost and its block locations go (``DefaultBlockMaster.LostWorkerDetectionHeartbeatExecutor``);
  a file that is not persisted and has no block left is then ``LOST`` (``LostFileDetector``);
* a new block goes to the worker on the writer's host, else the one with most free bytes
  (``LocalFirstPolicy``);
* ``scheduleAsyncPersistence`` marks ``TO_BE_PERSISTED``; who writes the UFS differs by version (see
  ``alluxio_master_api``).

Held in memory only: the stand-in has no journal of its namespace (a master restart forgets it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

NOT_PERSISTED, TO_BE_PERSISTED, PERSISTED, LOST = "NOT_PERSISTED", "TO_BE_PERSISTED", "PERSISTED", "LOST"
WRITE_TYPES = ("MUST_CACHE", "CACHE_THROUGH", "THROUGH", "ASYNC_THROUGH")


class FsError(Exception):
    """An Alluxio exception: its gRPC status code name and its message, as the proxy and CLI show them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def does_not_exist(path: str) -> FsError:
    return FsError("NOT_FOUND", f'Path "{path}" does not exist.')  # ExceptionMessage.PATH_DOES_NOT_EXIST


@dataclass
class Worker:
    id: int
    host: str
    web: str  # http://host:port of its web port (the stand-in's block wire)
    capacity: int
    used: int = 0
    blocks: set[int] = field(default_factory=set)
    last_heartbeat: float = field(default_factory=time.monotonic)
    persist_queue: list[int] = field(default_factory=list)  # 1.8: file ids to persist at the next heartbeat


@dataclass
class Inode:
    id: int
    path: str
    folder: bool
    created_ms: int
    length: int = 0
    completed: bool = False
    persistence: str = NOT_PERSISTED
    blocks: list[int] = field(default_factory=list)


def normalize(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise FsError("INVALID_ARGUMENT", f"Path {path} is invalid.")
    return "/" + "/".join(parts)


class Namespace:
    """Thread-safe: the web server answers each request in its own thread."""

    def __init__(self, worker_timeout_s: float) -> None:
        self.lock = threading.RLock()
        self.inodes: dict[str, Inode] = {"/": Inode(0, "/", True, int(time.time() * 1000), completed=True,
                                                    persistence=PERSISTED)}
        self.workers: dict[int, Worker] = {}
        self.worker_timeout_s = worker_timeout_s
        self._next_container = 1
        self._next_worker = 1
        self.block_lengths: dict[int, int] = {}
        self.deleted: set[int] = set()  # blocks of deleted files: workers free them at their next heartbeat

    # --- workers --------------------------------------------------------------------------------------------

    def register(self, host: str, web: str, capacity: int, blocks: dict[int, int]) -> tuple[int, list[int]]:
        """A worker (re)joins with the blocks on its tier; blocks of files deleted here are for it to drop.
        Blocks this master does not know are kept (a new primary of the stand-in starts without the files:
        its namespace is not journaled) but count in its used bytes."""
        with self.lock:
            for old in [w for w in self.workers.values() if w.web == web]:
                del self.workers[old.id]
            worker = Worker(self._next_worker, host, web, capacity)
            self._next_worker += 1
            known = {b for inode in self.inodes.values() for b in inode.blocks}
            worker.blocks = {b for b in blocks if b in known}
            worker.used = sum(blocks.values())
            self.block_lengths.update({b: blocks[b] for b in worker.blocks})
            self.workers[worker.id] = worker
            return worker.id, sorted(self.deleted.intersection(blocks))

    def heartbeat(self, worker_id: int, blocks: dict[int, int], persisted: list[int]) -> dict[str, Any]:
        """The worker reports what its tier holds now (a block whose file vanished from the folder is gone);
        blocks of deleted files come back as ``free``."""
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None:
                return {"register": True}  # forgotten (lost, or a new master): register again
            worker.last_heartbeat = time.monotonic()
            known = {b for inode in self.inodes.values() for b in inode.blocks}
            worker.blocks = {b for b in blocks if b in known}
            worker.used = sum(blocks.values())
            free = sorted(self.deleted.intersection(blocks))
            for file_id in persisted:
                inode = self._by_id(file_id)
                if inode is not None and inode.persistence == TO_BE_PERSISTED:
                    inode.persistence = PERSISTED
            queue, worker.persist_queue = worker.persist_queue, []
            jobs = [{"id": i.id, "path": i.path, "blocks": i.blocks} for i in map(self._by_id, queue) if i]
            return {"persist": jobs, "free": free}

    def detect_lost(self) -> list[str]:
        """Drop workers silent past the timeout; mark files left with no block and no UFS copy LOST."""
        with self.lock:
            now = time.monotonic()
            gone = [w for w in self.workers.values() if now - w.last_heartbeat > self.worker_timeout_s]
            for worker in gone:
                del self.workers[worker.id]
            held = {b for w in self.workers.values() for b in w.blocks}
            lost = []
            for inode in self.inodes.values():
                if (not inode.folder and inode.completed and inode.blocks and inode.persistence != PERSISTED
                        and inode.persistence != LOST and not held.intersection(inode.blocks)):
                    inode.persistence = LOST
                    lost.append(inode.path)
            return [w.host for w in gone] + lost

    def pick_worker(self, client_host: str) -> Worker:
        """``LocalFirstPolicy``: the worker on the client's host, else the one with the most free bytes."""
        with self.lock:
            workers = list(self.workers.values())
            if not workers:
                raise FsError("UNAVAILABLE", "No Alluxio worker available")
            local = [w for w in workers if w.host == client_host]
            return local[0] if local else max(workers, key=lambda w: w.capacity - w.used)

    def locations(self, block: int) -> list[Worker]:
        return [w for w in self.workers.values() if block in w.blocks]

    # --- files ----------------------------------------------------------------------------------------------

    def _by_id(self, file_id: int) -> Inode | None:
        return next((i for i in self.inodes.values() if i.id == file_id), None)

    def get(self, path: str) -> Inode:
        inode = self.inodes.get(normalize(path))
        if inode is None:
            raise does_not_exist(normalize(path))
        return inode

    def create(self, path: str, folder: bool, recursive: bool) -> Inode:
        """``InodeTree.createPath``: missing parents are made only with ``recursive``."""
        with self.lock:
            path = normalize(path)
            if path in self.inodes:
                if folder:
                    raise FsError("ALREADY_EXISTS", f"{path} already exists")
                raise FsError("ALREADY_EXISTS", f"{path} already exists. If you want to overwrite the file, "
                              "you need to specify the overwrite option.")
            parent = path.rsplit("/", 1)[0] or "/"
            if parent not in self.inodes and not recursive:
                parts = path.split("/")
                index = next(i for i in range(1, len(parts)) if "/".join(parts[:i + 1]) not in self.inodes)
                raise FsError("NOT_FOUND", f"File {path} creation failed. Component {index}({parts[index]}) "
                              "does not exist")
            if parent not in self.inodes:
                self.create(parent, True, True)
            elif not self.inodes[parent].folder:
                raise FsError("INVALID_ARGUMENT", f"Path {path} is invalid.")
            container = self._next_container
            self._next_container += 1
            inode = Inode((container << 24) | 0xFFFFFF, path, folder, int(time.time() * 1000), completed=folder)
            self.inodes[path] = inode
            return inode

    def new_block(self, inode: Inode) -> int:
        with self.lock:
            block = (inode.id & ~0xFFFFFF) | len(inode.blocks)
            inode.blocks.append(block)
            return block

    def commit_block(self, worker_id: int, block: int, length: int) -> None:
        with self.lock:
            worker = self.workers.get(worker_id)
            if worker is None:
                raise FsError("NOT_FOUND", f"Worker {worker_id} is not registered")
            worker.blocks.add(block)
            self.block_lengths[block] = length

    def complete(self, path: str, length: int, persisted: bool) -> Inode:
        with self.lock:
            inode = self.get(path)
            inode.length, inode.completed = length, True
            if persisted:
                inode.persistence = PERSISTED
            return inode

    def children(self, path: str, recursive: bool) -> list[Inode]:
        with self.lock:
            inode = self.get(path)
            if not inode.folder:
                return [inode]
            prefix = inode.path.rstrip("/") + "/"
            found = [i for p, i in self.inodes.items() if p.startswith(prefix) and p != inode.path]
            if not recursive:
                found = [i for i in found if "/" not in i.path[len(prefix):]]
            return sorted(found, key=lambda i: i.path)

    def delete(self, path: str, recursive: bool) -> list[Inode]:
        with self.lock:
            inode = self.get(path)
            below = self.children(path, True) if inode.folder else []
            if below and not recursive:
                raise FsError("FAILED_PRECONDITION", f"Cannot delete non-empty directory {inode.path} because "
                              "recursive is set to false")
            removed = [inode, *below]
            for item in removed:
                self.inodes.pop(item.path, None)
                self.deleted.update(item.blocks)
                for worker in self.workers.values():
                    worker.blocks.difference_update(item.blocks)
            return removed

    def in_alluxio_percentage(self, inode: Inode) -> int:
        if inode.folder or not inode.blocks:
            return 100 if inode.folder or inode.length == 0 else 0
        held = {b for w in self.workers.values() for b in w.blocks}
        cached = sum(self.block_lengths.get(b, 0) for b in inode.blocks if b in held)
        return int(100 * cached / inode.length) if inode.length else 100

    def status(self, inode: Inode) -> dict[str, Any]:
        """``FileInfo`` as the REST API serializes it (the fields our callers read)."""
        with self.lock:
            return {
                "fileId": inode.id, "name": inode.path.rsplit("/", 1)[-1], "path": inode.path,
                "length": inode.length, "folder": inode.folder, "completed": inode.completed,
                "persisted": inode.persistence == PERSISTED, "persistenceState": inode.persistence,
                "blockIds": list(inode.blocks), "inAlluxioPercentage": self.in_alluxio_percentage(inode),
                "lastModificationTimeMs": inode.created_ms, "creationTimeMs": inode.created_ms,
                "mode": 0o755 if inode.folder else 0o644,
                "fileBlockInfos": [{"blockInfo": {"blockId": b, "length": self.block_lengths.get(b, 0),
                                                  "locations": [{"workerId": w.id, "workerAddress": {"host": w.host},
                                                                 "tierAlias": "MEM"} for w in self.locations(b)]}}
                                   for b in inode.blocks],
            }
