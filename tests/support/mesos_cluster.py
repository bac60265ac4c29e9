"""Mesos stand-in clusters for tests: masters and agents as real processes on distinct loopback addresses.

``MesosStandins`` starts ``python -m standins.mesos`` masters (with ``--zk`` on the given real ZooKeeper) and agents
(``--master=zk://...``), each on its own 127.0.0.x address and a free port, and stops the agents with SIGTERM
and then ends the tasks they leave running (sandboxes below the cluster's folder). ``call``/``get_json`` talk to
them without following redirects; ``processes_with`` finds a task's real process by its unique sleep duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .waiting import wait_for

if TYPE_CHECKING:
    from tests.test_standins import Standins

    from .zookeeper import ZooKeeperServer

NS = 1_000_000_000

MesosFactory = Callable[..., "MesosStandins"]


@pytest.fixture
def mesos(standins: Standins, zookeeper: ZooKeeperServer, tmp_path: Path) -> Iterator[MesosFactory]:
    """``mesos(version="1.11", **flags)``: a stand-in cluster on the test's ZooKeeper, closed after the test."""
    clusters: list[MesosStandins] = []

    def make(version: str = "1.11", **flags: str) -> MesosStandins:
        cluster = MesosStandins(standins, zookeeper, tmp_path / f"c{len(clusters)}", version, **flags)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


def call(address: str, path: str, body: Any = None, *, method: str | None = None,
         content_type: str = "application/json") -> tuple[int, bytes, dict[str, str]]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"http://{address}{path}", data, method=method or ("POST" if data else "GET"))
    if data is not None:
        request.add_header("Content-Type", content_type)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=5) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def get_json(address: str, path: str) -> Any:
    status, body, _ = call(address, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def processes_with(token: str) -> list[int]:
    """Pids whose command line contains ``token`` (the tasks' unique sleep durations)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if token in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found


class MesosStandins:
    """Masters and agents of one test cluster; agents are stopped with SIGTERM first (it kills their tasks)."""

    def __init__(self, standins: Standins, zookeeper: ZooKeeperServer, tmp_path: Path, version: str = "1.11",
                 **master_flags: str) -> None:
        self.standins, self.tmp_path, self.version = standins, tmp_path, version
        self.zk = f"zk://{zookeeper.hosts}/mesos-{tmp_path.name}"
        self.master_flags = master_flags
        self.masters: dict[str, subprocess.Popen[str]] = {}
        self.agents: dict[str, subprocess.Popen[str]] = {}
        self.tokens: list[str] = []

    def master(self, ip: str) -> str:
        port = _free_port(ip)
        env = {"MESOS_IP": ip, "MESOS_PORT": str(port), "MESOS_HOSTNAME": ip, "MESOS_ZK": self.zk,
               "MESOS_QUORUM": "1", "MESOS_WORK_DIR": str(self.tmp_path / f"master-{ip}")}
        env.update({f"MESOS_{k.upper()}": v for k, v in self.master_flags.items()})
        from tests.test_standins import start_mesos

        proc = start_mesos(self.standins, "master", self.version, env)
        wait_listening_on(proc, ip, port)
        self.masters[f"{ip}:{port}"] = proc
        return f"{ip}:{port}"

    def agent(self, ip: str, hostname: str, resources: str = "cpus:2;mem:1024", port: int | None = None,
              work_dir: str = "") -> str:
        """An agent at ``ip``; ``port`` for the same agent started again (a node's next boot), ``work_dir`` (a
        suffix) for another agent on the same host (the agent's id is kept in its work dir)."""
        port = port or _free_port(ip)
        env = {"MESOS_IP": ip, "MESOS_PORT": str(port), "MESOS_HOSTNAME": hostname, "MESOS_MASTER": self.zk,
               "MESOS_WORK_DIR": str(self.tmp_path / f"agent-{hostname}{work_dir}"), "MESOS_RESOURCES": resources}
        from tests.test_standins import start_mesos

        proc = start_mesos(self.standins, "agent", self.version, env)
        wait_listening_on(proc, ip, port)
        self.agents[f"{ip}:{port}"] = proc
        return f"{ip}:{port}"

    def leader(self) -> str:
        def find() -> str | None:
            for address in self.masters:
                if self.masters[address].poll() is None and call(address, "/metrics/snapshot")[0] == 200 and \
                        get_json(address, "/metrics/snapshot")["master/elected"] == 1.0:
                    return address
            return None

        found: str = wait_for("a leading master", find, timeout=15)
        return found

    def slaves(self) -> list[dict[str, Any]]:
        slaves: list[dict[str, Any]] = get_json(self.leader(), "/master/slaves")["slaves"]
        return slaves

    def wait_agents(self, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = wait_for(f"{count} registered agents",
                                               lambda: s if len(s := self.slaves()) == count else None, timeout=15)
        return found

    def token(self, seconds: int) -> str:
        """A unique sleep duration of about ``seconds``, so the task's real process can be found in /proc."""
        value = f"{seconds}.{len(self.tokens):02d}{os.getpid() % 1000:03d}{int(time.time() * 1000) % 1000:03d}"
        self.tokens.append(value)
        return value

    def close(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.agents.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)
        # Tasks outlive their agent (as executors do): end every process still working in this cluster's folders.
        for pid in processes_in(self.tmp_path):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def processes_in(folder: Path) -> list[int]:
    """Pids whose working directory is below ``folder`` (the agents' task sandboxes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.append(int(entry.name))
    return found


def wait_listening_on(proc: subprocess.Popen[str], ip: str, port: int) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"stand-in exited with {proc.returncode}\nstdout: {out}\nstderr: {err}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((ip, port)) == 0

    wait_for(f"{ip}:{port} listening", listening, timeout=15)


def window(hostname: str, ip: str, start_ns: int, duration_s: int = 3600) -> dict[str, Any]:
    return {"windows": [{"machine_ids": [{"hostname": hostname, "ip": ip}],
                         "unavailability": {"start": {"nanoseconds": start_ns},
                                            "duration": {"nanoseconds": duration_s * NS}}}]}




def _free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])
