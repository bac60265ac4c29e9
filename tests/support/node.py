"""A cloud node for tests of `bootstrap-agent once`: namespace, metadata service, nginx cache, root folder.

Each node is a network namespace holding the node's private address and 169.254.169.254 (the metadata
service, as on OTC), with nginx caching the user-data on 127.0.0.1:80 inside it, so the agent runs with its
default URLs. Services run under ``--service-manager process`` below a temporary ``--root``.
"""

from __future__ import annotations

import hashlib
import json
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.layout import Layout
from bootstrap_agent.services.process import ProcessManager

from .metadata_server import MetadataServer
from .netns import TestNode
from .nginx_cache import NginxCache

METADATA_IP = "169.254.169.254"
MASTER_IP = "10.77.0.10"
AGENT_IP = "10.77.0.21"
SECRET = "cluster-secret-0123456789"
S3_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def user_data(role: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1, "cluster": "eo-once", "role": role, "masters": [MASTER_IP], "secret": SECRET,
        "mesos": {"version": "1.11", "containerizers": ["mesos"], "attributes": {"az": "eu-de-02"}},
        "alluxio": {"version": "2.9", "root_ufs": "s3://eo-bucket/cache", "block_size": "4MB",
                    "s3_endpoint": "https://obs.eu-de.otc.t-systems.com", "worker_ramdisk": "1GB"},
        "credentials": {"source": "keys", "access_key_id": "AKIDEXAMPLE0001", "secret_access_key": S3_SECRET},
    }
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return data


def meta_data(uuid: str, name: str) -> dict[str, Any]:
    return {"uuid": uuid, "name": name, "hostname": f"{name}.novalocal", "availability_zone": "eu-de-02",
            "project_id": "0123456789abcdef", "meta": {}}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def units(self, action: str) -> list[str]:
        return [e["unit"] for e in self.named(f"unit_{action}")]


class Node:
    """One cloud node: its namespace, metadata service, nginx cache and root folder."""

    def __init__(self, node: TestNode, metadata: MetadataServer, cache: NginxCache, root: Path, role: str) -> None:
        self.ns, self.metadata, self.cache, self.root, self.role = node, metadata, cache, root, role
        self.layout = Layout(str(root))
        write_image_nginx(root)

    def once(self, *extra: str, timeout: float = 120) -> Run:
        argv = [sys.executable, "-m", "bootstrap_agent.cli", "once", "--root", str(self.root),
                "--service-manager", "process", "--start-timeout", "40", *extra]
        result = self.ns.run(argv, capture_output=True, text=True, timeout=timeout)
        events = []
        for line in result.stderr.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        run = Run(result.returncode, result.stdout, result.stderr, events)
        assert SECRET not in result.stderr + result.stdout, "the cluster secret leaked into the output"
        assert S3_SECRET not in result.stderr + result.stdout, "the S3 secret leaked into the output"
        assert "Traceback" not in result.stderr, result.stderr
        return run

    def set_user_data(self, data: dict[str, Any] | bytes) -> None:
        self.metadata.set_user_data(data if isinstance(data, bytes) else json.dumps(data).encode())
        time.sleep(2.1)  # "proxy_cache_valid 200 1s" counts whole seconds: an answer stays fresh up to 2 s

    def pids(self) -> dict[str, int]:
        run_dir = self.root / "run" / "bootstrap-agent" / "process"
        records = {p.stem: json.loads(p.read_text()) for p in run_dir.glob("*.json")}
        return {unit: r["pid"] for unit, r in records.items() if "pid" in r}  # mount records have no process

    def get(self, url: str) -> tuple[int, bytes]:
        response = self.ns.http_get(url)
        return response.status, response.body

    def snapshot(self) -> dict[str, tuple[int, int, str]]:
        """Every file the agent could touch: path -> (mtime, mode, sha256). Data that the running services
        write themselves (ZooKeeper's transaction log, service logs, pid files) is left out."""
        skip = ("var/lib/zookeeper/data/version-2", "var/log", "run", "var/lib/nginx")
        result = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            if path.is_file() and not rel.startswith(skip):
                st = path.stat()
                result[rel] = (st.st_mtime_ns, stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
        return result

    def close(self) -> None:
        ProcessManager(self.layout).stop_all()


@pytest.fixture
def make_node(
    test_node: Callable[..., TestNode], metadata_server: Callable[..., MetadataServer],
    nginx_cache: Callable[..., NginxCache], tmp_path: Path,
) -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def make(role: str, data: dict[str, Any] | None = None, uuid: str = "uuid-0001") -> Node:
        ip = MASTER_IP if role == "master" else AGENT_IP
        ns = test_node(ip, METADATA_IP)
        metadata = metadata_server(ns, bind=METADATA_IP, port=80,
                                   user_data=json.dumps(data or user_data(role)).encode(),
                                   meta_data=meta_data(uuid, f"eo-once-{role}"))
        cache = nginx_cache(ns, metadata)
        root = tmp_path / f"root-{role}-{len(nodes)}"
        root.mkdir()
        node = Node(ns, metadata, cache, root, role)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def write_image_nginx(root: Path) -> None:
    """What the image provides for the process manager's nginx (dashboards on masters): a main config that
    includes ``conf.d``, with pid, logs and temp folders below ``root``."""
    nginx = root / "etc" / "nginx"
    (nginx / "conf.d").mkdir(parents=True, exist_ok=True)
    temp = "".join(f"  {k}_temp_path {root}/var/lib/nginx/{k};\n" for k in ("client_body", "proxy", "fastcgi",
                                                                                 "uwsgi", "scgi"))
    (nginx / "nginx.conf").write_text(
        f"pid {root}/run/nginx.pid;\nerror_log {root}/var/log/nginx-error.log;\nuser root;\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n{temp}  access_log off;\n"
        f"  include {nginx}/conf.d/*.conf;\n}}\n"
    )
    for folder in ("run", "var/lib/nginx", "var/log"):
        (root / folder).mkdir(parents=True, exist_ok=True)
