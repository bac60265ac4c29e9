"""Puts the Alluxio stand-in's data model on a process' web port: the master's namespace and block map
(``alluxio_master_api``), the worker's block store (``alluxio_blocks``), the proxy's REST API
(``alluxio_proxy``). Kept apart from ``alluxio.py``, which validates and binds."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping

from standins.alluxio_blocks import DEFAULT_CAPACITY, BlockStore
from standins.alluxio_master_api import MasterApi
from standins.alluxio_proxy import ProxyApi
from standins.alluxio_rest import RestHandler
from standins.common import RoutedHTTPServer, listen_address


def _size(properties: Mapping[str, str], keys: tuple[str, ...], default: int) -> int:
    from standins.alluxio import parse_size  # alluxio.py imports this module

    for key in keys:
        value = properties.get(key, "").strip()
        if value and "${" not in value:
            return parse_size(value.split(",")[0])
    return default


def attach(role: str, version: str, properties: Mapping[str, str], web: RoutedHTTPServer,
           stop: threading.Event) -> None:
    handler = web.RequestHandlerClass
    if not (isinstance(handler, type) and issubclass(handler, RestHandler)):  # alluxio_ha's WebHandler is one
        web.RequestHandlerClass = RestHandler
    if role == "master":
        web.body_route = MasterApi(version, properties, stop).route
    elif role == "worker":
        memory = "alluxio.worker.memory.size" if version == "1.8" else "alluxio.worker.ramdisk.size"
        capacity = _size(properties, ("alluxio.worker.tieredstore.level0.dirs.quota", memory), DEFAULT_CAPACITY)
        host = properties.get("alluxio.worker.hostname", "").strip() or listen_address(web).rsplit(":", 1)[0]
        base = json.loads(web.routes["/api/v1/worker/info"]().body)
        store = BlockStore(version, properties, capacity, f"http://{host}:{web.server_address[1]}", stop, base)
        web.request_route = store.get_route
        web.body_route = store.body_route
    elif role == "proxy":
        block = _size(properties, ("alluxio.user.block.size.bytes.default",), 0)
        web.body_route = ProxyApi(version, properties, block).route
