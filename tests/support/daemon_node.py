"""Nodes running `bootstrap-agent run` side by side in one test network.

All nodes share one network namespace (the test's "subnet"): each has its own private address on its ``lo``
and pins it with ``--ip``, its own metadata server on 127.0.0.1:<port>, and its own ``--root``. The master's
ZooKeeper listens on every address of the namespace, so agents reach it at the master's address as on a real
subnet. Agents carry no Alluxio section here: Alluxio's proxy binds a fixed port on all addresses.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.layout import Layout
from bootstrap_agent.services.process import ProcessManager

from .managed import ManagedProcess
from .metadata_server import MetadataServer
from .netns import TestNode
from .node import write_image_nginx
from .waiting import NotReached, wait_for

SECRET = "daemon-test-secret-0123456789"
MASTER_IP = "10.88.0.10"
DASHBOARD_AUTH = ("admin", "secretpw")
DASHBOARD_HASH = "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"  # openssl passwd -apr1 -salt 3vT8N4I8 secretpw


def cluster_user_data(role: str, *, alluxio: bool = False, **mesos: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1, "cluster": "eo-live", "role": role, "masters": [MASTER_IP], "secret": SECRET,
        "mesos": {"version": "1.11", "containerizers": ["mesos"], **mesos},
        "dashboard": {"password_hash": DASHBOARD_HASH},
    }
    if alluxio:
        data["alluxio"] = {"version": "2.9", "root_ufs": "s3://eo-bucket/cache", "worker_ramdisk": "1GB"}
        data["credentials"] = {"source": "keys", "access_key_id": "AKIDEXAMPLE0001",
                               "secret_access_key": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"}
    return data


class DaemonNode(ManagedProcess):
    """``bootstrap-agent run`` for one node of the test network; its log is ``<root>.log`` beside its root."""

    stop_timeout = 15.0

    def __init__(self, net: TestNode, metadata: MetadataServer, root: Path, ip: str, role: str, uuid: str) -> None:
        super().__init__(net, root.parent, prefix="", log_name=f"{root.name}.log")
        self.net, self.metadata, self.root, self.ip, self.role, self.uuid = net, metadata, root, ip, role, uuid
        self._extra: tuple[str, ...] = ()
        self._tick = 5.0
        if role == "master":
            write_image_nginx(root)

    def start(self, *extra: str, tick: float = 5.0) -> DaemonNode:  # type: ignore[override]
        """Launch the daemon without waiting: a test waits for what it wants to see (``wait_for``)."""
        self._extra, self._tick = extra, tick
        self.launch()
        return self

    def argv(self) -> list[str]:
        url = self.metadata.url
        return [sys.executable, "-m", "bootstrap_agent.cli", "run", "--root", str(self.root),
                "--service-manager", "process", "--ip", self.ip, "--metadata-url", url,
                "--user-data-url", f"{url}/openstack/latest/user_data", "--tick", str(self._tick),
                "--debounce-min", "0.1", "--debounce-max", "0.5", "--zk-session-timeout", "4",
                "--start-timeout", "30", *self._extra]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        if self.log_path.exists():
            for line in self.log_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and (name is None or event.get("event") == name):
                        out.append(event)
        return out

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        """``waiting.wait_for``, but failing at once when the daemon died, and with the daemon's log."""

        def alive_check() -> Any:
            result = check()
            if not result and self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.role} {self.ip} exited {self.proc.returncode} waiting for {what}:\n"
                                     + self.log_tail())
            return result

        try:
            return wait_for(f"{self.role} {self.ip}: {what}", alive_check, timeout)
        except NotReached as exc:
            raise NotReached(f"{exc}\n{self.log_tail()}") from None

    def status(self) -> dict[str, Any]:
        path = self.root / "var/lib/bootstrap-agent/status.json"
        with contextlib.suppress(FileNotFoundError, ValueError):
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        return {}

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def close(self) -> None:
        super().close()
        ProcessManager(Layout(str(self.root))).stop_all()



AGENT_IPS = ["10.88.0.21", "10.88.0.22", "10.88.0.23"]


def new_daemon_node(net: TestNode, metadata_server: Callable[..., MetadataServer], tmp_path: Path, role: str,
                    ip: str, data: dict[str, Any] | None = None, uuid: str | None = None) -> DaemonNode:
    """A daemon node of the live cluster (not started): its own metadata server answering its user-data and
    ``meta_data.json``, and its own root folder."""
    uuid = uuid or f"uuid-{role}-{ip.rsplit('.', 1)[1]}"
    metadata = metadata_server(net, bind="127.0.0.1", port=0,
                               user_data=json.dumps(data or cluster_user_data(role)).encode(),
                               meta_data={"uuid": uuid, "name": f"eo-live-{role}-{ip.rsplit('.', 1)[1]}",
                                          "availability_zone": "eu-de-01"})
    root = tmp_path / f"root-{role}-{ip}"
    root.mkdir()
    return DaemonNode(net, metadata, root, ip, role, uuid)


@pytest.fixture
def cluster(test_node: Callable[..., TestNode], metadata_server: Callable[..., MetadataServer],
            tmp_path: Path) -> Iterator[Callable[..., DaemonNode]]:
    net = test_node(MASTER_IP, *AGENT_IPS)
    nodes: list[DaemonNode] = []

    def make(role: str, ip: str, data: dict[str, Any] | None = None, uuid: str | None = None) -> DaemonNode:
        node = new_daemon_node(net, metadata_server, tmp_path, role, ip, data, uuid)
        nodes.append(node)
        return node

    make.net = net  # type: ignore[attr-defined]
    yield make
    for node in reversed(nodes):
        node.close()
