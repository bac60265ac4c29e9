"""Spark on the nodes (issue 11, points 6, 10, 11): the rendered client configuration, the shuffle unit, the
Spark stand-in's start-up rules, and the real ``MesosExternalShuffleService`` from PyPI's pyspark.

Each stand-in rule is shown to bite twice: today's (before issue 11) unit or rendering is refused with the
rule's message, and the fixed one is accepted. The stand-in runs as the process manager and the stand-in image
run it: the unit's own ``ExecStart=`` words after ``/opt/spark/bin/spark-class``, with the rendered files. The
last test runs the real service (pyspark's ``bin/spark-class`` with the unit's class and the rendered files).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.install import install
from bootstrap_agent.layout import Layout
from bootstrap_agent.names import listed
from bootstrap_agent.node_paths import SPARK_SHUFFLE_ENV
from bootstrap_agent.plan import plan
from bootstrap_agent.schema import validate
from bootstrap_agent.services.commands import process_commands
from bootstrap_agent.services.envfile import parse_environment_file
from bootstrap_agent.services.process import ProcessManager
from bootstrap_agent.spark import (
    GENERIC_SHUFFLE_CLASS,
    SHUFFLE_CLASS,
    SPARK_AWS_CREDENTIALS,
    SPARK_DEFAULTS,
    SPARK_ENV_SH,
    SPARK_KEYS_FILE,
    check_keys,
    known_key,
)
from standins.properties import parse_properties
from standins.spark import REGISTER_DRIVER, private_tmp
from tests.support.waiting import wait_for
from tests.test_plan import AGENCY_KEYS, facts, user_data
from tests.test_units import effective, value, values

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
S3_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
STANDIN = [sys.executable, "-m", "standins.tools", "spark-class"]
# Before issue 11: the generic class, PrivateTmp=yes, the port as a -D option, no spark-defaults.conf.
TODAYS_ENV = {"SPARK_LOCAL_IP": LOOPBACK, "SPARK_DAEMON_MEMORY": "512m",
              "SPARK_SHUFFLE_OPTS": "-Dspark.shuffle.service.port=7337"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def rendered_agent(root: Path, port: int, **extra: object) -> dict[str, str]:
    """Render and install an agent's files below ``root`` (as ``once`` would); the shuffle service's env."""
    data = user_data("agent", spark={"shuffle_port": port}, **extra)
    desired = plan(validate(data), facts(ip=LOOPBACK), layout=Layout(str(root)))
    result = install(desired.files, Layout(str(root)))
    assert not result.failed, result.failed
    return parse_environment_file((root / SPARK_SHUFFLE_ENV.lstrip("/")).read_text())


def run_unit_start_pre(root: Path) -> None:
    """The unit's ExecStartPre= for real, with its node paths below ``root``: it makes the shared local dir."""
    for line in values(effective("spark-shuffle"), "ExecStartPre"):
        argv = [str(root / w.lstrip("/")) if w.startswith("/var/") else w for w in line.split()]
        subprocess.run(argv, check=True, timeout=30)


def unit_args() -> list[str]:
    """The shuffle unit's ExecStart after the program: what it asks spark-class to run."""
    (start,) = values(effective("spark-shuffle"), "ExecStart")
    program, *args = start.split()
    assert program == "/opt/spark/bin/spark-class"
    return args


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def wait_listening(proc: subprocess.Popen[str], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        if listening(port):
            return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on {port} after {timeout} s")


def refused(args: list[str], env: dict[str, str], *argv_prefix: str) -> str:
    result = subprocess.run([*argv_prefix, *STANDIN, *args], env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0, result
    return result.stderr.strip().splitlines()[-1]


# -- the key list and the rendering -----------------------------------------------------------------------------
def test_the_key_list_is_spark_3_5s_own_and_says_where_it_came_from() -> None:
    header = [line for line in (REPO / "bootstrap_agent/data/names" / SPARK_KEYS_FILE).read_text().splitlines()
              if line.startswith("#")]
    assert any("ConfigEntry.knownConfigs" in line for line in header)
    assert any("pyspark 3.5.9" in line for line in header)
    keys = listed(SPARK_KEYS_FILE)
    assert len(keys) > 1000 and {"spark.shuffle.service.enabled", "spark.mesos.executor.home", "spark.local.dir",
                                  "spark.shuffle.io.maxRetries", "spark.master"} <= keys
    assert known_key("spark.hadoop.fs.s3a.endpoint") and known_key("spark.executorEnv.X")
    assert not known_key("spark.hadoop.") and not known_key("spark.shuffle.service.enable")


def test_every_node_gets_spark_defaults_with_known_keys_and_no_secret() -> None:
    for role in ("master", "agent"):
        p = plan(validate(user_data(role)), facts(ip="10.20.0.10" if role == "master" else "10.20.0.50"))
        props = parse_properties(p.file(SPARK_DEFAULTS).content.decode())
        assert props["spark.master"] == "mesos://zk://10.20.0.10:2181/mesos"
        assert props["spark.mesos.executor.home"] == "/opt/spark"
        assert props["spark.local.dir"] == "/var/lib/mesos/spark"  # below the Mesos work dir, shared
        assert props["spark.shuffle.service.enabled"] == "true" and props["spark.shuffle.service.port"] == "7337"
        assert props["spark.executor.extraClassPath"] == props["spark.driver.extraClassPath"] == "/opt/alluxio/client/*"
        assert props["spark.hadoop.fs.s3a.endpoint"] == "https://obs.eu-de.otc.t-systems.com"
        assert props["spark.hadoop.fs.s3a.endpoint.region"] == "eu-de"
        assert props["spark.hadoop.fs.s3a.path.style.access"] == "false"  # virtual-hosted, like Alluxio's
        assert props["spark.executorEnv.AWS_CREDENTIAL_PROFILES_FILE"] == SPARK_AWS_CREDENTIALS
        assert all(known_key(k) for k in props)
        for path in (SPARK_DEFAULTS, SPARK_ENV_SH):
            assert p.file(path).mode == 0o644 and S3_SECRET not in p.file(path).content.decode()
        keys = p.file(SPARK_AWS_CREDENTIALS)
        assert keys.mode == 0o600 and keys.secret and S3_SECRET in keys.content.decode()
        assert f"export AWS_CREDENTIAL_PROFILES_FILE={SPARK_AWS_CREDENTIALS}" in p.file(SPARK_ENV_SH).content.decode()


def test_agency_keys_with_their_token_and_no_keys_no_s3_settings() -> None:
    data = user_data("agent")
    data["credentials"] = {"source": "agency"}
    p = plan(validate(data), facts(keys=AGENCY_KEYS))
    text = p.file(SPARK_AWS_CREDENTIALS).content.decode()
    assert f"aws_session_token = {AGENCY_KEYS.token}" in text and AGENCY_KEYS.secret in text
    shuffle = next(s for s in p.services if s.unit == "spark-shuffle")
    assert SPARK_AWS_CREDENTIALS not in shuffle.inputs, "a key rotation restarts nothing"
    bare = plan(validate(user_data("agent", alluxio=None, spark={"shuffle_service": False})), facts())
    props = parse_properties(bare.file(SPARK_DEFAULTS).content.decode())
    assert props["spark.shuffle.service.enabled"] == "false" and "spark.shuffle.service.port" not in props
    assert not [k for k in props if "s3a" in k or "extraClassPath" in k]
    assert SPARK_AWS_CREDENTIALS not in [f.path for f in bare.files]


def test_an_unknown_key_is_refused_at_render_time() -> None:
    with pytest.raises(InvalidInput, match=r"unknown Spark 3.5 property spark.shuffle.service.enable$"):
        check_keys({"spark.shuffle.service.enable": "true", "spark.master": "x"}, "spark-defaults.conf")


# -- the unit ----------------------------------------------------------------------------------------------------
def test_unit_runs_the_mesos_shuffle_service_without_private_tmp_as_the_process_manager_does() -> None:
    entries = effective("spark-shuffle")
    assert unit_args() == [SHUFFLE_CLASS]
    assert value(entries, "PrivateTmp") is None
    assert values(entries, "ExecStartPre") == ["/usr/bin/install -d -m 1777 /var/lib/mesos/spark"]
    assert values(entries, "EnvironmentFile") == [SPARK_SHUFFLE_ENV]
    assert not (REPO / "systemd/standins/spark-shuffle.service.d").exists(), "the unit's own line runs, always"
    manager = ProcessManager(Layout("/"), process_commands())
    argv, env_files = manager.command(DesiredService("spark-shuffle", (), ()))
    assert argv[1:] == ["-m", "standins.tools", "spark-class", *unit_args()]
    assert env_files == [SPARK_SHUFFLE_ENV]


# -- the stand-in's rules: today's refused, the fixed accepted ------------------------------------------------------
def test_standin_refuses_todays_unit_the_generic_shuffle_service(tmp_path: Path) -> None:
    line = refused([GENERIC_SHUFFLE_CLASS], {**TODAYS_ENV, "SPARK_CONF_DIR": str(tmp_path)})
    assert f"Unexpected message: {REGISTER_DRIVER}@" in line and SHUFFLE_CLASS in line
    assert "Could not find or load main class org.example.Nope" in refused(["org.example.Nope"], TODAYS_ENV)


def test_standin_refuses_todays_rendering_without_a_shared_local_dir(tmp_path: Path) -> None:
    line = refused([SHUFFLE_CLASS], {**TODAYS_ENV, "SPARK_CONF_DIR": str(tmp_path)})
    assert line.startswith("spark-class: spark.local.dir is unset: executors on Mesos") and "/tmp" in line
    (tmp_path / "spark-defaults.conf").write_text("spark.local.dir /tmp\n")
    assert "spark.local.dir is /tmp:" in refused([SHUFFLE_CLASS], {**TODAYS_ENV, "SPARK_CONF_DIR": str(tmp_path)})


@pytest.mark.parametrize(("where", "typo"), [("file", "spark.shuffle.service.prot"), ("opts", "spark.shufle.io.x")])
def test_standin_refuses_unknown_spark_keys(tmp_path: Path, where: str, typo: str) -> None:
    env = rendered_agent(tmp_path, free_port())
    if where == "file":
        defaults = tmp_path / SPARK_DEFAULTS.lstrip("/")
        defaults.write_text(defaults.read_text() + f"{typo} 7000\n")
    else:
        env["SPARK_SHUFFLE_OPTS"] = f"-D{typo}=1"
    line = refused(unit_args(), env)
    assert f"unknown Spark 3.5 property {typo}" in line


def test_standin_refuses_a_private_tmp(tmp_path: Path) -> None:
    """PrivateTmp=yes for real: a mount namespace whose /var/tmp is a systemd-private folder, as systemd makes it
    (and /tmp: bound here over /var/tmp only, so that the rendered files below pytest's /tmp stay visible)."""
    if os.geteuid() != 0:
        pytest.fail("needs root (a private mount namespace); CI runs as root")
    env = rendered_agent(tmp_path / "root", free_port())
    private = tmp_path / "systemd-private-0123-spark-shuffle.service-AbCd/tmp"
    private.mkdir(parents=True)
    shell = "mount --make-rprivate / && mount --bind \"$0\" /var/tmp && exec \"$@\""
    line = refused(unit_args(), env, "unshare", "--mount", "sh", "-c", shell, str(private))
    assert "private /tmp (PrivateTmp=yes)" in line
    mountinfo = f"36 25 8:1 {private} /tmp rw,relatime shared:1 - ext4 /dev/vda rw"
    assert private_tmp(mountinfo) and not private_tmp("36 25 8:1 / /tmp rw - tmpfs tmpfs rw")


def standin_image_spark_class(tmp_path: Path) -> Path:
    """install-node.sh's ``install_spark`` as an image with ``STANDINS=yes`` and no Spark runs it, with every
    path it writes moved below ``tmp_path`` (this machine's /etc and /opt stay untouched)."""
    script = (REPO / "image/install-node.sh").read_text()
    start = script.index("install_spark() {")
    function = script[start:script.index("\n}\n", start) + 3]
    function = function.replace("/etc/", f"{tmp_path}/etc/")
    assert "/etc/" not in function.replace(f"{tmp_path}/etc/", "")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    (tmp_path / "etc/profile.d").mkdir(parents=True)  # Debian's base-files has it
    mark = next(line for line in script.splitlines() if line.startswith("readonly SPARK_STANDIN_MARK="))
    harness = "\n".join([
        "set -euo pipefail", f"VENV={venv}", "STANDINS=yes", "PYSPARK_WHEEL=", f"PYSPARK_VENV={tmp_path}/pyspark",
        f"SPARK_HOME_DIR={tmp_path}/spark", mark, "log() { :; }", "die() { echo \"$*\" >&2; exit 1; }",
        "is_url() { false; }", function, "install_spark",
    ])
    subprocess.run(["bash", "-c", harness], check=True, timeout=60, cwd=REPO)
    return tmp_path / "spark/bin/spark-class"


def test_standin_image_spark_class_hands_the_units_class_to_the_standin(tmp_path: Path) -> None:
    """On an image without Spark, the unit's own ExecStart line reaches the stand-in through the image's
    /opt/spark/bin/spark-class: today's class is refused there, the fixed one listens."""
    spark_class = standin_image_spark_class(tmp_path / "image")
    env = rendered_agent(tmp_path / "node", port := free_port())
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([str(spark_class), GENERIC_SHUFFLE_CLASS], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and f"Unexpected message: {REGISTER_DRIVER}@" in result.stderr
    with started([str(spark_class), *unit_args()], env) as proc:
        wait_listening(proc, port, 15)
    profile = (tmp_path / "image/etc/profile.d/spark.sh").read_text()
    assert "SPARK_CONF_DIR=/etc/spark/conf" in profile.replace(str(tmp_path / "image"), "")


def test_standin_accepts_the_fixed_unit_and_rendering(tmp_path: Path) -> None:
    port = free_port()
    env = rendered_agent(tmp_path, port)
    with started([*STANDIN, *unit_args()], env) as proc:
        wait_listening(proc, port, 15)


# -- the real MesosExternalShuffleService (pyspark) -----------------------------------------------------------------
def pyspark_home() -> Path:
    try:
        import pyspark  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("pyspark is missing: .ci/setup installs it (pip install -e '.[test]')")
        pytest.skip("pyspark is not installed (pip install -e '.[test]' installs it)")
    home = Path(pyspark.__file__).parent
    if not list((home / "jars").glob("spark-mesos_2.12-3.5.*.jar")):
        pytest.fail(f"{home} has no jars/spark-mesos_2.12-3.5.*.jar: not pyspark 3.5")
    return home


def test_real_mesos_shuffle_service_starts_from_the_rendered_files(tmp_path: Path) -> None:
    """~5 s: Java 17 runs pyspark's bin/spark-class with the unit's class, heap and address from the rendered
    /etc/default/spark-shuffle, the port from the rendered spark-defaults.conf (SPARK_CONF_DIR)."""
    home = pyspark_home()
    port = free_port()
    env = rendered_agent(tmp_path, port)
    run_unit_start_pre(tmp_path)
    assert (tmp_path / "var/lib/mesos/spark").stat().st_mode & 0o7777 == 0o1777
    assert env["SPARK_CONF_DIR"] == str(tmp_path / "etc/spark/conf")
    with started([str(home / "bin/spark-class"), *unit_args()], {**env, "SPARK_HOME": str(home)}) as proc:
        wait_listening(proc, port, 45)
        java = subprocess.run(["ps", "-o", "args=", "--ppid", str(proc.pid)], capture_output=True, text=True,
                              timeout=10, check=False).stdout + Path(f"/proc/{proc.pid}/cmdline").read_text()
        assert SHUFFLE_CLASS in java and "-Xmx512m" in java, java


def register_driver(port: int, app: str = "app-20261129-0001") -> tuple[int, bytes]:
    """What a Spark driver on Mesos sends every agent's shuffle service (``MesosExternalBlockStoreClient.
    registerDriverWithShuffleService``): one RPC with a ``RegisterDriver``, in Spark's wire format
    (common/network-common ``MessageEncoder``, ``RpcRequest``; network-shuffle ``BlockTransferMessage`` type 4:
    app id, heartbeat timeout). Returns the answer's message type (4 RpcResponse, 5 RpcFailure) and its rest."""
    name = app.encode()
    body = bytes([4]) + struct.pack(">i", len(name)) + name + struct.pack(">q", 120_000)
    header = bytes([3]) + struct.pack(">qi", 7, len(body))  # RpcRequest: request id, body size
    with socket.create_connection((LOOPBACK, port), timeout=20) as sock:
        sock.sendall(struct.pack(">q", 8 + len(header) + len(body)) + header + body)
        data = b""
        while len(data) < 8 or len(data) < struct.unpack(">q", data[:8])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data[8], data[9:]


@pytest.mark.parametrize("main_class", [GENERIC_SHUFFLE_CLASS, SHUFFLE_CLASS], ids=["generic", "mesos"])
def test_real_services_answer_a_mesos_drivers_registration(tmp_path: Path, main_class: str) -> None:
    """The stand-in's first rule, from the real program (~5 s each): the generic service fails the registration
    with the message the stand-in quotes; the Mesos one accepts it (and will clean up after the driver)."""
    home = pyspark_home()
    port = free_port()
    env = rendered_agent(tmp_path, port)
    run_unit_start_pre(tmp_path)  # the generic one keeps its executors' list there, and exits without it
    with started([str(home / "bin/spark-class"), main_class], {**env, "SPARK_HOME": str(home)}) as proc:
        wait_listening(proc, port, 45)
        kind, rest = register_driver(port)
    if main_class == GENERIC_SHUFFLE_CLASS:
        assert kind == 5, rest  # RpcFailure: request id, then the error text
        assert ("java.lang.UnsupportedOperationException: Unexpected message: "
                f"{REGISTER_DRIVER}@") in rest[12:].decode(errors="replace")
    else:
        assert kind == 4 and rest[:8] == struct.pack(">q", 7), rest  # RpcResponse to request 7


def test_the_key_list_matches_the_installed_spark(tmp_path: Path) -> None:
    """The list is what tools/extract_spark_names.py reads from pyspark 3.5.9's jars: its class-file
    scan (no JVM) finds nothing the list lacks; with a JDK (jdk.compiler) the whole extraction equals it."""
    from tools import extract_spark_names as extract

    home = pyspark_home()
    assert extract.spark_version(home) == "3.5.9"
    assert extract.literal_keys(home) <= listed(SPARK_KEYS_FILE)
    probe = subprocess.run(["java", "--list-modules"], capture_output=True, text=True, timeout=60, check=False)
    if "jdk.compiler" in probe.stdout:
        assert set(extract.extract(home)) == set(listed(SPARK_KEYS_FILE))


# -- the local image: the real service under the real unit and systemd ----------------------------------------------
# The same registration, run by the node's own Python inside the container (the tests package is not there).
REGISTER_IN_CONTAINER = "\n".join([
    "import socket, struct, sys",
    f"LOOPBACK = {LOOPBACK!r}",
    inspect.getsource(register_driver).replace(" -> tuple[int, bytes]", "").replace("port: int", "port")
    .replace("app: str =", "app ="),
    "kind, rest = register_driver(int(sys.argv[1]))",
    "print(kind, rest.decode(errors='replace'))",
])


def todays_unit() -> str:
    """systemd/spark-shuffle.service as it was before issue 11: the generic class, PrivateTmp, no local dir."""
    text = (REPO / "systemd/spark-shuffle.service").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("ExecStartPre=")]
    text = "\n".join(lines).replace(SHUFFLE_CLASS, GENERIC_SHUFFLE_CLASS)
    return text.replace("ProtectHome=yes\n", "ProtectHome=yes\nPrivateTmp=yes\n") + "\n"


def test_local_image_runs_the_real_mesos_shuffle_service_under_its_unit(node_image: Any) -> None:
    """issue 11 point 11, ~30 s: the image's /opt/spark is pyspark 3.5's Spark; booted with systemd, the unit of
    before issue 11 with the rendering of before runs the generic service, which fails a Mesos driver's
    registration; today's unit with today's rendering runs MesosExternalShuffleService on Debian's Java 17,
    under the unit's sandbox, and accepts it."""
    from tests.support.container import Container

    root = node_image.path
    assert list((root / "opt/pyspark").glob("lib/python3*/site-packages/pyspark/jars/spark-mesos_2.12-3.5.*.jar"))
    assert "SPARK=pyspark-3.5.9\n" in (root / "etc/bootstrap-agent-image").read_text()
    desired = plan(validate(user_data("agent")), facts(ip=LOOPBACK))
    masks = ["systemd.mask=bootstrap-agent.service", "systemd.mask=systemd-networkd-wait-online.service"]
    node = Container(root, boot_args=masks, boot_timeout=90)  # no network (loopback only), units by hand
    try:
        node.start()

        def answer() -> str:
            result = node.exec(["python3", "-c", REGISTER_IN_CONTAINER, "7337"], capture_output=True, text=True)
            return str(result.stdout) if result.returncode == 0 else ""

        def java_on_7337() -> bool:
            result = node.exec(["ss", "-Hltnp", "sport = :7337"], capture_output=True, text=True)
            return '"java"' in result.stdout

        node.write_file("/etc/systemd/system/spark-shuffle.service", todays_unit())
        node.write_file(SPARK_SHUFFLE_ENV, "".join(f'{k}="{v}"\n' for k, v in TODAYS_ENV.items()))
        node.systemctl("daemon-reload", check=True)
        node.systemctl("start", "spark-shuffle.service", check=True)
        wait_for("the generic service on 7337", java_on_7337, timeout=60)
        assert answer().startswith("5 ") and f"Unexpected message: {REGISTER_DRIVER}@" in answer()
        node.systemctl("stop", "spark-shuffle.service", check=True)

        unit = (REPO / "systemd/spark-shuffle.service").read_text()
        node.write_file("/etc/systemd/system/spark-shuffle.service", unit)
        for f in desired.files:
            if f.path in (SPARK_SHUFFLE_ENV, SPARK_DEFAULTS, SPARK_ENV_SH, SPARK_AWS_CREDENTIALS):
                node.write_file(f.path, f.content, f.mode)
        node.systemctl("daemon-reload", check=True)
        node.systemctl("start", "spark-shuffle.service", check=True)
        wait_for("MesosExternalShuffleService on 7337", java_on_7337, timeout=60)
        assert answer().startswith("4 "), node.journal("spark-shuffle.service")
        show = node.systemctl("show", "-p", "PrivateTmp", "-p", "ExecMainPID", "spark-shuffle.service").stdout
        assert "PrivateTmp=no" in show
        pid = show.split("ExecMainPID=")[1].split()[0]
        cmdline = node.read_file(f"/proc/{pid}/cmdline").replace("\0", " ")
        assert SHUFFLE_CLASS in cmdline and "-Xmx512m" in cmdline and "/etc/spark/conf" in cmdline, cmdline
        mode = node.exec(["stat", "-c", "%a", "/var/lib/mesos/spark"], capture_output=True, text=True).stdout
        assert mode == "1777\n"
    finally:
        node.stop()
