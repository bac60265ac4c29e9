"""The Alluxio stand-in proxy's REST API: ``/api/v1/paths/<path>/<op>`` and ``/api/v1/streams/<id>/<op>``.

The real paths, methods and bodies (``core/server/proxy/.../PathsRestServiceHandler.java`` and
``StreamsRestServiceHandler.java``, v2.9.3 and v1.8.2; cited in STARTUP-RULES.md A8): every operation is a
POST with the options as a JSON body (``{"writeType": "MUST_CACHE"}``, ``{"recursive": true}``); ``create-file``
and ``open-file`` answer a stream id (a JSON integer), ``streams/<id>/write`` takes the bytes and answers how
many, ``read`` answers the bytes, ``close`` finishes the file. An error is HTTP 500 with
``{"statusCode": "<gRPC code>", "message": "<Alluxio's words>"}`` (``RestUtils.createErrorResponse``).

A file's blocks go to the worker the master picks for this proxy's host (``LocalFirstPolicy``: the proxy's own
worker when it has one); the write type decides the rest (``WriteType``): ``MUST_CACHE`` only the worker,
``CACHE_THROUGH`` worker and UFS before close returns, ``THROUGH`` only the UFS, ``ASYNC_THROUGH`` the worker and
a persist scheduled at close. The stand-in keeps a stream's bytes until ``close`` (the real one streams them).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from standins.alluxio_namespace import WRITE_TYPES
from standins.alluxio_rest import StandinCallError, call, call_master, error_response
from standins.alluxio_ufs import UfsError, ufs_from
from standins.common import Response, json_response

DEFAULT_WRITE_TYPE = {"2.9": "ASYNC_THROUGH", "1.8": "MUST_CACHE"}  # alluxio.user.file.writetype.default
DEFAULT_BLOCK_SIZE = 64 << 20  # alluxio.user.block.size.bytes.default


@dataclass
class Stream:
    path: str
    write_type: str | None  # None: a read stream
    data: bytearray = field(default_factory=bytearray)
    read_done: bool = False


class ProxyApi:
    def __init__(self, version: str, properties: Mapping[str, str], block_size: int) -> None:
        self.version = version
        self.properties = properties
        self.block_size = block_size or DEFAULT_BLOCK_SIZE
        self.host = (properties.get("alluxio.user.hostname", "").strip()
                     or properties.get("alluxio.worker.hostname", "").strip() or socket.gethostname())
        self.default_write_type = properties.get("alluxio.user.file.writetype.default",
                                                 DEFAULT_WRITE_TYPE[version]).strip()
        self.streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def route(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Response | None:
        if method != "POST":
            return None
        try:
            if path.startswith("/api/v1/paths/"):
                target, _, op = path.removeprefix("/api/v1/paths").rstrip("/").rpartition("/")
                return self._paths(target or "/", op, body)
            if path.startswith("/api/v1/streams/"):
                stream_id, _, op = path.removeprefix("/api/v1/streams/").rstrip("/").partition("/")
                return self._streams(stream_id, op, body)
        except StandinCallError as exc:
            message = str(exc)
            code = "NOT_FOUND" if "does not exist" in message else "UNKNOWN"
            return error_response("ALREADY_EXISTS" if "already exists" in message else code, message)
        except UfsError as exc:
            return error_response("UNAVAILABLE", str(exc))
        return None

    def _options(self, body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        options = json.loads(body)
        if not isinstance(options, dict):
            raise ValueError("options must be a JSON object")
        return options

    def _paths(self, path: str, op: str, body: bytes) -> Response | None:
        try:
            options = self._options(body)
        except ValueError as exc:
            return Response(400, f"Can not deserialize the options: {exc}".encode(), "text/plain")
        # 2.9 merges the body into createFileDefaults (recursive false; BaseFileSystem.createFile); 1.8's
        # CreateFileOptions/CreateDirectoryOptions default to recursive.
        recursive = bool(options.get("recursive", self.version == "1.8"))
        if op == "create-file":
            write_type = str(options.get("writeType", self.default_write_type))
            if write_type not in WRITE_TYPES:
                # Jackson's refusal of an unknown enum constant (the body is a CreateFilePOptions).
                return Response(400, (f"Cannot deserialize value of type `alluxio.grpc.WritePType` from String "
                                      f'"{write_type}": not one of the values accepted for Enum class: '
                                      f"[{', '.join(WRITE_TYPES)}]").encode(), "text/plain")
            call_master(self.properties, "/standin/v1/fs/create", {"path": path, "recursive": recursive})
            return json_response(self._new_stream(Stream(path, write_type)))
        if op == "create-directory":
            call_master(self.properties, "/standin/v1/fs/create", {"path": path, "folder": True,
                                                                   "recursive": recursive})
            return json_response(None)
        if op == "get-status":
            return json_response(call_master(self.properties, "/standin/v1/fs/status", {"path": path}))
        if op == "list-status":
            return json_response(call_master(self.properties, "/standin/v1/fs/list",
                                             {"path": path, "recursive": bool(options.get("recursive"))}))
        if op == "exists":
            try:
                call_master(self.properties, "/standin/v1/fs/status", {"path": path})
            except StandinCallError:
                return json_response(False)
            return json_response(True)
        if op == "delete":
            call_master(self.properties, "/standin/v1/fs/delete",
                        {"path": path, "recursive": bool(options.get("recursive"))})
            return json_response(None)
        if op == "open-file":
            call_master(self.properties, "/standin/v1/fs/status", {"path": path})
            return json_response(self._new_stream(Stream(path, None)))
        return None

    def _new_stream(self, stream: Stream) -> int:
        with self._lock:
            stream_id = next(self._ids)
            self.streams[stream_id] = stream
            return stream_id

    def _streams(self, text: str, op: str, body: bytes) -> Response | None:
        stream = self.streams.get(int(text)) if text.isdigit() else None
        if op not in ("write", "read", "close"):
            return None
        if stream is None:
            return error_response("INVALID_ARGUMENT", "stream does not exist")
        if op == "write":
            if stream.write_type is None:
                return error_response("INVALID_ARGUMENT", "stream does not exist")
            stream.data += body
            return json_response(len(body))
        if op == "read":
            if stream.write_type is not None:
                return error_response("INVALID_ARGUMENT", "stream does not exist")
            return Response(200, self._read(stream.path), "application/octet-stream")
        with self._lock:
            self.streams.pop(int(text), None)
        if stream.write_type is not None:
            self._finish(stream)
        return json_response(None)

    def _finish(self, stream: Stream) -> None:
        data, kind = bytes(stream.data), stream.write_type
        if kind != "THROUGH":
            for offset in range(0, len(data), self.block_size) if data else ():
                chunk = data[offset:offset + self.block_size]
                target = call_master(self.properties, "/standin/v1/fs/block",
                                     {"path": stream.path, "clientHost": self.host})
                call(f"{target['workerWeb']}/standin/v1/blocks/{target['blockId']}", data=chunk, method="PUT")
        through = kind in ("THROUGH", "CACHE_THROUGH")
        if through:
            ufs = ufs_from(self.version, self.properties)
            if ufs is None:
                raise UfsError("the root UFS is not an s3a:// address")
            ufs.put(stream.path, data)
        call_master(self.properties, "/standin/v1/fs/complete", {
            "path": stream.path, "length": len(data), "persisted": through, "asyncPersist": kind == "ASYNC_THROUGH"})

    def _read(self, path: str) -> bytes:
        """From the workers holding the blocks, else (a block gone, or never cached) from the UFS."""
        status = call_master(self.properties, "/standin/v1/fs/status", {"path": path})
        parts = [self._cached(info["blockInfo"]) for info in status["fileBlockInfos"]]
        if status["fileBlockInfos"] and all(p is not None for p in parts):
            return b"".join(p for p in parts if p is not None)
        if status["persisted"]:
            ufs = ufs_from(self.version, self.properties)
            if ufs is not None:
                return ufs.get(path)
        if not status["length"]:
            return b""
        missing = next(i["blockInfo"]["blockId"] for i, p in zip(status["fileBlockInfos"], parts, strict=True)
                       if p is None)
        raise StandinCallError(f"Block {missing} is unavailable in both Alluxio and UFS.")

    def _cached(self, block: Mapping[str, Any]) -> bytes | None:
        holders = {location["workerId"] for location in block["locations"]}
        for worker in call_master(self.properties, "/standin/v1/fs/workers"):
            if worker["id"] in holders:
                try:
                    data: bytes = call(f"{worker['web']}/standin/v1/blocks/{block['blockId']}", method="GET")
                    return data
                except StandinCallError:
                    continue
        return None
