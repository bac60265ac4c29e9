"""What is at stake when an Alluxio worker leaves, on the stand-ins (issue 15, point 4): real processes on
loopback (a master, two workers on 127.0.0.2 and 127.0.0.3, a proxy beside the first), moto's S3 server with
authentication on, and the stand-in installation's ``bin/alluxio`` for the CLI.

Files are written through the proxy's real REST API; the CLI's words are Alluxio's (see
``/tmp/s15/alluxio-cli.md`` and STARTUP-RULES.md A8–A12). A worker's blocks are files in its tier folder:
stopping the worker loses exactly the files that only it held and that were not persisted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from standins.alluxio_home import install
from tests.support.moto_s3 import S3Server, moto_s3
from tests.support.waiting import wait_for
from tests.test_standins import (
    Standins,
    alluxio_conf,
    alluxio_env,
    free_port,
    start_alluxio,
    stop,
    wait_listening,
)

BUCKET = "cache-bucket"
HOSTS = ("127.0.0.2", "127.0.0.3")


def post(url: str, body: bytes | None = None, json_body: Any = None) -> tuple[int, Any]:
    data = body if body is not None else json.dumps(json_body if json_body is not None else {}).encode()
    kind = "application/octet-stream" if body is not None else "application/json"
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            is_json = answer.headers.get("Content-Type", "").startswith("application/json")
            return answer.status, json.loads(raw) if is_json and raw else raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode()


class Cluster:
    def __init__(self, standins: Standins, root: Path, s3: S3Server, version: str) -> None:
        self.standins, self.root, self.s3, self.version = standins, root, s3, version
        self.master_web = free_port()
        self.common = {
            "alluxio.master.hostname": "127.0.0.1",
            ("alluxio.master.port" if version == "1.8" else "alluxio.master.rpc.port"): str(free_port()),
            "alluxio.master.web.port": str(self.master_web),
            "alluxio.master.worker.timeout": "2sec",
            "alluxio.user.block.size.bytes.default": "1KB",
            "alluxio.underfs.s3.endpoint": s3.endpoint,
            ("alluxio.underfs.address" if version == "1.8" else "alluxio.master.mount.table.root.ufs"):
                f"s3a://{BUCKET}/cache",
            ("aws.accessKeyId" if version == "1.8" else "s3a.accessKeyId"): s3.access_key,
            ("aws.secretKey" if version == "1.8" else "s3a.secretKey"): s3.secret_key,
        }
        if version != "1.8":
            self.common["alluxio.underfs.s3.endpoint.region"] = "eu-de"
            self.common["alluxio.job.master.rpc.port"] = str(free_port())
            self.common["alluxio.job.master.web.port"] = str(free_port())
        self.workers: dict[str, tuple[subprocess.Popen[str], int, Path]] = {}
        self.props: dict[str, dict[str, str]] = {}
        self.home = root / "home"
        install(self.home, version, sys.executable)
        alluxio_conf(self.home / "conf", self.common)
        master_conf = alluxio_conf(root, self.common | {
            "alluxio.master.journal.folder": str(root / "journal")}, "master.properties")
        self.master = start_alluxio(standins, "master", version, master_conf)
        wait_listening(self.master, self.master_web)

    def worker_props(self, host: str) -> dict[str, str]:
        memory = "alluxio.worker.memory.size" if self.version == "1.8" else "alluxio.worker.ramdisk.size"
        return self.common | {
            "alluxio.worker.hostname": host,
            "alluxio.worker.tieredstore.levels": "1",
            "alluxio.worker.tieredstore.level0.alias": "MEM",
            "alluxio.worker.tieredstore.level0.dirs.path": str(self.root / f"tier-{host}"),
            memory: "1MB",
            ("alluxio.worker.port" if self.version == "1.8" else "alluxio.worker.rpc.port"): str(free_port()),
            "alluxio.worker.web.port": str(free_port()),
            **({"alluxio.worker.data.port": str(free_port())} if self.version == "1.8" else {}),
        }

    def start_worker(self, host: str) -> None:
        """Started again, a worker keeps its ports and tier folder (a unit restart on the same node)."""
        props = self.props.setdefault(host, self.worker_props(host))
        conf = alluxio_conf(self.root, props, f"worker-{host}.properties")
        proc = start_alluxio(self.standins, "worker", self.version, conf)
        web = int(props["alluxio.worker.web.port"])
        wait_for(f"worker {host} listening", lambda: proc.poll() is not None or _listening(host, web), timeout=10)
        assert proc.poll() is None, proc.communicate()
        self.workers[host] = (proc, web, self.root / f"tier-{host}" / "alluxioworker")
        wait_for(f"worker {host} registered", lambda: host in self.capacity())

    def start_proxy(self, beside: str) -> str:
        port = free_port()
        props = self.worker_props(beside) | {"alluxio.proxy.web.port": str(port),
                                             "alluxio.proxy.web.bind.host": "127.0.0.1"}
        proc = start_alluxio(self.standins, "proxy", self.version, alluxio_conf(self.root, props, "proxy.properties"))
        wait_listening(proc, port)
        return f"http://127.0.0.1:{port}/api/v1"

    def start_job_master(self) -> subprocess.Popen[str]:
        conf = alluxio_conf(self.root, self.common, "job-master.properties")
        proc = self.standins.start(["standins.alluxio", "job_master", "--alluxio-version", self.version,
                                    "--conf", str(conf)], alluxio_env(conf))
        wait_listening(proc, int(self.common["alluxio.job.master.rpc.port"]))
        return proc

    def alluxio(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.home / "bin" / "alluxio"), *args], capture_output=True, text=True,
                              timeout=60, env=os.environ | dict(env or {}), check=False)

    def ls(self) -> dict[str, list[str]]:
        """``fs ls -R /`` parsed as the drain parses it: path → fields."""
        result = self.alluxio("fs", "ls", "-R", "/")
        assert result.returncode == 0, result.stdout + result.stderr
        return {fields[-1]: fields for fields in (line.split() for line in result.stdout.splitlines())}

    def states(self) -> dict[str, str]:
        return {path: fields[-5] for path, fields in self.ls().items() if fields[-2] != "DIR"}

    def capacity(self) -> str:
        return self.alluxio("fsadmin", "report", "capacity").stdout

    def worker_used(self, host: str) -> int:
        with urllib.request.urlopen(f"http://{host}:{self.workers[host][1]}/api/v1/worker/info", timeout=5) as a:
            return int(json.loads(a.read())["capacity"]["used"])

    def s3_body(self, path: str) -> bytes | None:
        try:
            body: bytes = self.s3.client().get_object(Bucket=BUCKET, Key=f"cache{path}")["Body"].read()
            return body
        except self.s3.client().exceptions.NoSuchKey:
            return None


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def write(proxy: str, path: str, data: bytes, write_type: str) -> None:
    code, stream = post(f"{proxy}/paths{path}/create-file", json_body={"writeType": write_type, "recursive": True})
    assert code == 200, stream
    assert post(f"{proxy}/streams/{stream}/write", body=data) == (200, len(data))
    code, answer = post(f"{proxy}/streams/{stream}/close")
    assert code == 200, answer


def read(proxy: str, path: str) -> bytes:
    code, stream = post(f"{proxy}/paths{path}/open-file")
    assert code == 200, stream
    code, data = post(f"{proxy}/streams/{stream}/read")
    assert code == 200, data
    post(f"{proxy}/streams/{stream}/close")
    return bytes(data)


@pytest.fixture(params=["2.9", "1.8"])
def cluster(request: pytest.FixtureRequest, standins: Standins, tmp_path: Path) -> Iterator[Cluster]:
    with moto_s3() as s3:
        s3.create_bucket(BUCKET)
        made = Cluster(standins, tmp_path, s3, request.param)
        for host in HOSTS:
            made.start_worker(host)
        yield made


A, B = b"must-cache bytes " * 100, b"cache-through bytes " * 10  # A spans two 1KB blocks


def test_writes_land_on_the_proxys_worker_and_list_shows_persistence(cluster: Cluster) -> None:
    proxy = cluster.start_proxy(HOSTS[0])
    write(proxy, "/d/a", A, "MUST_CACHE")
    write(proxy, "/d/b", B, "CACHE_THROUGH")
    write(proxy, "/d/c", b"through", "THROUGH")
    assert cluster.states() == {"/d/a": "NOT_PERSISTED", "/d/b": "PERSISTED", "/d/c": "PERSISTED"}
    fields = cluster.ls()["/d/a"]
    assert (int(fields[-6]), fields[-2]) == (len(A), "100%")
    assert cluster.ls()["/d/c"][-2] == "0%"  # THROUGH: only in the UFS
    location = cluster.alluxio("fs", "location", "/d/a").stdout.splitlines()
    assert location[0].startswith("/d/a with file id ") and location[0].endswith(" is on nodes: ")
    assert location[1:] == [HOSTS[0], HOSTS[0]]  # LocalFirstPolicy: both blocks on the proxy's own worker
    assert cluster.s3_body("/d/b") == B and cluster.s3_body("/d/c") == b"through"
    assert cluster.s3_body("/d/a") is None
    assert cluster.worker_used(HOSTS[0]) == len(A) + len(B) and cluster.worker_used(HOSTS[1]) == 0
    assert sum(p.stat().st_size for p in cluster.workers[HOSTS[0]][2].iterdir()) == len(A) + len(B)
    assert read(proxy, "/d/a") == A and read(proxy, "/d/c") == b"through"
    report = cluster.capacity()
    assert "Capacity information for all workers: " in report and f"{HOSTS[0]} " in report
    assert post(f"{proxy}/paths/d/b/delete")[0] == 200  # from Alluxio and from the UFS; its blocks are freed
    wait_for("the deleted file's blocks freed", lambda: cluster.worker_used(HOSTS[0]) == len(A), timeout=10)
    assert cluster.s3_body("/d/b") is None and "/d/b" not in cluster.states()


def test_bad_requests_are_refused_with_alluxios_words(cluster: Cluster) -> None:
    proxy = cluster.start_proxy(HOSTS[0])
    code, body = post(f"{proxy}/paths/nope/get-status")
    assert (code, body) == (500, {"statusCode": "NOT_FOUND", "message": 'Path "/nope" does not exist.'})
    write(proxy, "/x", b"1", "MUST_CACHE")
    code, body = post(f"{proxy}/paths/x/create-file", json_body={"writeType": "MUST_CACHE"})
    assert code == 500 and body["statusCode"] == "ALREADY_EXISTS"
    assert body["message"].startswith("/x already exists")
    code, body = post(f"{proxy}/paths/no/dir/create-file", json_body={"writeType": "MUST_CACHE"})
    if cluster.version == "1.8":  # 1.8's CreateFileOptions make parents; 2.9's defaults do not
        assert code == 200
    else:
        assert (code, body) == (500, {"statusCode": "NOT_FOUND",
                                      "message": "File /no/dir creation failed. Component 1(no) does not exist"})
    code, body = post(f"{proxy}/paths/y/create-file", json_body={"writeType": "SOMETIMES"})
    assert code == 400 and "SOMETIMES" in body
    assert post(f"{proxy}/streams/999/close") == (500, {"statusCode": "INVALID_ARGUMENT",
                                                        "message": "stream does not exist"})
    result = cluster.alluxio("fs", "ls", "/nope")
    assert (result.returncode, result.stdout.strip()) == (255, 'Path "/nope" does not exist.')
    result = cluster.alluxio("fs", "location", "/x", "/y")
    assert result.returncode == 255 and "Usage: location <path>" in result.stdout
    result = cluster.alluxio("fsadmin", "decommissionWorker", "--addresses", HOSTS[0])
    assert result.returncode == 255  # neither 2.9.3 nor 1.8.2 has it (it came with 2.9.4)
    assert result.stderr.splitlines()[0] == "decommissionWorker is an unknown command."


def test_persist_puts_the_bytes_in_s3(cluster: Cluster) -> None:
    proxy = cluster.start_proxy(HOSTS[0])
    write(proxy, "/d/a", A, "MUST_CACHE")
    if cluster.version == "1.8":  # the worker holding all blocks persists it; no job service in 1.8
        result = cluster.alluxio("fs", "persist", "/d")
        assert result.stdout.splitlines() == [f"persisted file /d/a with size {len(A)}"]
        assert cluster.alluxio("fs", "persist", "/d/a").stdout.strip() == "/d/a is already persisted"
    else:
        # 2.9 without a job master: the request is dropped, the file stays TO_BE_PERSISTED, exit 0.
        result = cluster.alluxio("fs", "persist", "-t", "1500", "/d")
        assert result.returncode == 0
        assert result.stdout.splitlines() == ["Found 1 files to persist.",
                                              "Timed out waiting for file to be persisted: /d/a"]
        assert cluster.states()["/d/a"] == "TO_BE_PERSISTED" and cluster.s3_body("/d/a") is None
        cluster.start_job_master()
        result = cluster.alluxio("fs", "persist", "/d")
        assert result.stdout.splitlines() == ["Found 1 files to persist.",
                                              "(1/1) Successfully persisted file: /d/a"]
    assert result.returncode == 0
    assert cluster.states()["/d/a"] == "PERSISTED"
    assert cluster.s3_body("/d/a") == A


def test_a_stopped_worker_loses_exactly_its_unpersisted_only_files(cluster: Cluster) -> None:
    near, far = cluster.start_proxy(HOSTS[0]), None
    write(near, "/keep/persisted", B, "CACHE_THROUGH")
    write(near, "/lose/one", A, "MUST_CACHE")
    write(near, "/lose/two", b"two", "MUST_CACHE")
    cluster.workers[HOSTS[0]][0].send_signal(15)  # the proxy's worker: new blocks go to the other one now
    cluster.workers[HOSTS[0]][0].communicate(timeout=10)
    wait_for("the master forgets the stopped worker", lambda: f"{HOSTS[0]} " not in cluster.capacity(), timeout=15)
    write(near, "/other/new", b"new", "MUST_CACHE")
    assert far is None and cluster.alluxio("fs", "location", "/other/new").stdout.splitlines()[1:] == [HOSTS[1]]
    states = cluster.states()
    lost = sorted(path for path, state in states.items() if state == "LOST")
    assert lost == ["/lose/one", "/lose/two"]
    assert states["/keep/persisted"] == "PERSISTED" and states["/other/new"] == "NOT_PERSISTED"
    assert read(near, "/keep/persisted") == B  # from the UFS now
    code, body = post(f"{near}/streams/{post(f'{near}/paths/lose/one/open-file')[1]}/read")
    assert code == 500 and "unavailable in both Alluxio and UFS" in body["message"]


def test_a_worker_restarted_on_its_tier_serves_its_blocks_again(cluster: Cluster) -> None:
    proxy = cluster.start_proxy(HOSTS[0])
    write(proxy, "/a", A, "MUST_CACHE")
    proc = cluster.workers[HOSTS[0]][0]
    assert stop(proc)[0] == 0
    cluster.start_worker(HOSTS[0])  # same tier folder: the blocks are registered again
    assert read(proxy, "/a") == A
    assert cluster.states()["/a"] == "NOT_PERSISTED"


def test_job_roles_exist_only_in_29(standins: Standins, tmp_path: Path) -> None:
    conf = alluxio_conf(tmp_path, {"alluxio.master.hostname": "127.0.0.1"})
    proc = standins.start(["standins.alluxio", "job_master", "--alluxio-version", "1.8", "--conf", str(conf)],
                          alluxio_env(conf))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip().endswith("Error: Could not find or load main class alluxio.master.AlluxioJobMaster")


def test_launch_process_runs_the_29_job_service(standins: Standins, tmp_path: Path) -> None:
    """The units' ``bin/launch-process job_master|job_worker`` (v2.9.3 ``bin/launch-process``) reach the stand-in,
    which holds the job master's RPC, web and journal ports and the job worker's three."""
    home = tmp_path / "home"
    install(home, "2.9", sys.executable)
    ports = {key: free_port() for key in (
        "alluxio.job.master.rpc.port", "alluxio.job.master.web.port", "alluxio.job.master.embedded.journal.port",
        "alluxio.job.worker.rpc.port", "alluxio.job.worker.data.port", "alluxio.job.worker.web.port")}
    conf = alluxio_conf(home / "conf", {"alluxio.master.hostname": "127.0.0.1",
                                        "alluxio.worker.hostname": "127.0.0.1"} | {k: str(v) for k, v in ports.items()})
    env = os.environ | alluxio_env(conf) | {"ALLUXIO_CONF_DIR": str(home / "conf")}
    procs = [subprocess.Popen([str(home / "bin" / "launch-process"), role], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for role in ("job_master", "job_worker")]
    standins.procs.extend(procs)
    for proc in procs:
        wait_listening(proc, *[p for k, p in ports.items() if ("master" in k) == (proc is procs[0])])
    assert json.loads(procs[0].stdout.readline() if procs[0].stdout else "{}")["program"] == "alluxio-job_master"
