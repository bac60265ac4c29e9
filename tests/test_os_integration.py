"""Issue 11, point 12: the node as a Debian 12 system, with the real parts wherever they run here.

* Zeppelin under its unit's ``ProtectSystem=strict``: the stand-in refuses, with Zeppelin's (Jetty's) message,
  the default WAR temp dir below ZEPPELIN_HOME, as the real server does; the rendered file points Zeppelin at
  the unit's own writable folders (real systemd, booted node image).
* sshd's host keys: Debian's ``ssh.service`` runs ``sshd -t`` before any appended ExecStartPre=; the image's
  drop-in makes the keys first (real openssh-server, booted twice without host keys).
* ZooKeeper's myid outlives a package upgrade: Debian's package ships ``/var/lib/zookeeper/myid`` (a symlink);
  dpkg puts it back, and ZooKeeper must still start with the agent's id (real ZooKeeper, real dpkg list).
* apt waits for a held dpkg lock with the script's options (real apt, a private status folder).
* the clock: the agent reads it as systemd does (compared with ``timedatectl`` in a booted node image).
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.clock import MAX_ERROR_US, NOT_SYNCHRONIZED, SYNCHRONIZED, clock_state
from bootstrap_agent.desired import DesiredService
from bootstrap_agent.node_paths import ZEPPELIN_ENV, ZOO_MYID
from bootstrap_agent.services.envfile import parse_environment_file
from bootstrap_agent.services.process import ProcessManager
from bootstrap_agent.state import State
from tests.support import container as ct
from tests.support.container import Container
from tests.support.node import MASTER_IP, Node, user_data
from tests.support.waiting import wait_for
from tests.test_plan_services import master_plan

PROJECT_DIR = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT_DIR / "image" / "install-node.sh"
SSH_DROPIN = PROJECT_DIR / "systemd" / "ssh.service.d" / "bootstrap-agent-hostkeys.conf"
#: What install-node.sh wrote before issue 11 (an appended ExecStartPre=, after Debian's `sshd -t`).
OLD_SSH_DROPIN = "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n"
#: The variables issue 11 added to /etc/default/zeppelin; without them Zeppelin writes below /opt/zeppelin.
NEW_ZEPPELIN_VARIABLES = ("ZEPPELIN_WAR_TEMPDIR", "ZEPPELIN_CONFIG_FS_DIR", "ZEPPELIN_INTERPRETER_LOCALREPO")
VENV_PYTHON = "/opt/bootstrap-agent/venv/bin/python"


def zeppelin_env_file() -> str:
    """/etc/default/zeppelin exactly as the agent renders it for a master with Zeppelin on."""
    rendered = {f.path: f.content.decode() for f in master_plan(zeppelin=True).files}
    return rendered[ZEPPELIN_ENV]


def without(text: str, names: tuple[str, ...]) -> str:
    prefixes = tuple(f"{name}=" for name in names)
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(prefixes))


def run_zeppelin_standin(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_DIR), "ZEPPELIN_ADDR": "127.0.0.1",
            "ZEPPELIN_PORT": "1", "ZEPPELIN_SERVER_CONTEXT_PATH": "/zeppelin"}
    return subprocess.run([sys.executable, "-m", "standins.tools", "zeppelin"], env={**base, **env},
                          capture_output=True, text=True, timeout=30, check=False)


# -- Zeppelin ---------------------------------------------------------------------------------------------------
def test_rendered_zeppelin_file_points_every_write_at_the_units_folders() -> None:
    env = parse_environment_file(zeppelin_env_file())
    assert env["ZEPPELIN_WAR_TEMPDIR"] == "/var/cache/zeppelin/webapps"  # CacheDirectory=zeppelin
    assert env["ZEPPELIN_CONFIG_FS_DIR"] == "/var/lib/zeppelin/conf"  # StateDirectory=zeppelin: interpreter.json
    assert env["ZEPPELIN_INTERPRETER_LOCALREPO"] == "/var/cache/zeppelin/local-repo"
    unit = (PROJECT_DIR / "systemd" / "zeppelin.service").read_text()
    assert "\nCacheDirectory=zeppelin\n" in unit and "\nStateDirectory=zeppelin\n" in unit


@pytest.mark.parametrize(("variable", "message"), [
    ("ZEPPELIN_WAR_TEMPDIR", "zeppelin: java.lang.IllegalStateException: Unable to create temp dir "
                             "/dev/null/webapps/zeppelin"),
    ("ZEPPELIN_CONFIG_FS_DIR", "zeppelin: java.nio.file.FileSystemException: /dev/null/webapps: Not a directory"),
])
def test_zeppelin_standin_refuses_folders_it_cannot_write(tmp_path: Path, variable: str, message: str) -> None:
    env = {"ZEPPELIN_WAR_TEMPDIR": str(tmp_path / "webapps"), "ZEPPELIN_CONFIG_FS_DIR": str(tmp_path / "conf"),
           variable: "/dev/null/webapps"}
    result = run_zeppelin_standin(env)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == message, result.stderr


@pytest.fixture(scope="module")
def booted_image(node_image: Any) -> Iterator[Container]:
    """The node image booted without network and without the agent (its units are started by hand)."""
    masked = ("bootstrap-agent.service", "systemd-networkd-wait-online.service")  # no network: nothing to wait for
    node = Container(node_image.path, boot_args=[f"systemd.mask={unit}" for unit in masked], boot_timeout=90)
    try:
        node.start()
        yield node
    finally:
        node.stop()


def unit_journal(node: Container, unit: str) -> str:
    return node.exec(["journalctl", "--no-pager", "-o", "cat", "-u", f"{unit}.service"],
                     capture_output=True, text=True, timeout=30).stdout


def test_zeppelin_under_its_sandbox_refuses_the_old_rendering_and_runs_with_the_new(
    booted_image: Container,
) -> None:
    """Real systemd, the image's zeppelin.service + stand-in drop-in, running as user zeppelin: the file as
    rendered before issue 11 leaves the WAR temp dir at /opt/zeppelin/webapps (read-only) and the unit fails with
    Jetty's message; today's rendering starts and listens."""
    node = booted_image
    rendered = zeppelin_env_file()
    old = without(rendered, NEW_ZEPPELIN_VARIABLES)
    assert old != rendered
    node.write_file("/etc/default/zeppelin", old)
    node.systemctl("start", "zeppelin.service")
    refusal = "zeppelin: java.lang.IllegalStateException: Unable to create temp dir /opt/zeppelin/webapps/zeppelin"
    wait_for("the refusal in the journal", lambda: refusal in unit_journal(node, "zeppelin"), timeout=20)
    node.systemctl("stop", "zeppelin.service")
    node.systemctl("reset-failed", "zeppelin.service")

    node.write_file("/etc/default/zeppelin", rendered)
    node.systemctl("start", "zeppelin.service", check=True)
    listening = ["ss", "-Hltn", "sport = :8080"]
    wait_for("zeppelin on 127.0.0.1:8080",
             lambda: "127.0.0.1:8080" in node.exec(listening, capture_output=True, text=True).stdout, timeout=30)
    owner = node.exec(["stat", "-c", "%U", "/var/lib/zeppelin/conf", "/var/cache/zeppelin/webapps/zeppelin"],
                      capture_output=True, text=True).stdout.split()
    assert owner == ["zeppelin", "zeppelin"], owner
    node.systemctl("stop", "zeppelin.service")


def test_the_image_syncs_time_and_the_agent_reads_the_clock_as_systemd_does(booted_image: Container) -> None:
    node = booted_image
    assert node.systemctl("is-enabled", "systemd-timesyncd.service").stdout.strip() == "enabled"
    # ... and skips containers by itself (ConditionVirtualization=!container): the host keeps the clock here.
    show = node.systemctl("show", "--property=ConditionResult", "systemd-timesyncd.service").stdout.strip()
    assert show == "ConditionResult=no", show
    systemd = node.exec(["timedatectl", "show", "--property=NTPSynchronized", "--value"],
                        capture_output=True, text=True, timeout=30)
    assert systemd.returncode == 0, systemd.stderr
    ours = node.exec([VENV_PYTHON, "-c", "from bootstrap_agent.clock import clock_state; print(clock_state())"],
                     capture_output=True, text=True, timeout=30)
    expected = SYNCHRONIZED if systemd.stdout.strip() == "yes" else NOT_SYNCHRONIZED
    assert ours.stdout.strip() == expected, (systemd.stdout, ours.stdout, ours.stderr)
    # The ssh drop-in waits for an ssh.service this image does not have, and systemd says nothing about it.
    complaints = node.exec(["journalctl", "--no-pager", "-b", "0", "-o", "cat", "_PID=1", "-p", "warning"],
                           capture_output=True, text=True).stdout
    assert not [line for line in complaints.splitlines() if "ssh" in line or "timesyncd" in line], complaints


def test_clock_rule_is_systemds() -> None:
    assert clock_state(0) == clock_state(MAX_ERROR_US - 1) == SYNCHRONIZED
    assert clock_state(MAX_ERROR_US) == NOT_SYNCHRONIZED
    assert clock_state() in (SYNCHRONIZED, NOT_SYNCHRONIZED)  # this kernel answers


# -- ssh host keys ----------------------------------------------------------------------------------------------
def test_ssh_makes_its_host_keys_before_debians_check(tmp_path: Path) -> None:
    """openssh-server as Debian installs it, booted without host keys: with the old drop-in `sshd -t` fails first
    and ssh-keygen never runs; with the image's drop-in sshd comes up with fresh keys."""
    reason = ct.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    rootfs = ct.build_test_rootfs(("openssh-server",))
    dropin = "/etc/systemd/system/ssh.service.d/bootstrap-agent-hostkeys.conf"
    with Container(rootfs, persistent=True, boot_timeout=90) as node:
        assert node.systemctl("is-active", "ssh.service").stdout.strip() == "active"  # keys from the package
        for text, works in ((OLD_SSH_DROPIN, False), (SSH_DROPIN.read_text(), True)):
            node.exec(["mkdir", "-p", os.path.dirname(dropin)], check=True)
            node.write_file(dropin, text)
            node.exec(["sh", "-c", "rm -f /etc/ssh/ssh_host_*"], check=True)
            node.reboot(timeout=60)
            keys = node.exec(["sh", "-c", "ls /etc/ssh/ssh_host_*_key"], capture_output=True, text=True).stdout
            if works:
                wait_for("ssh active", lambda: node.systemctl("is-active", "ssh.service").stdout.strip() == "active",
                         timeout=20)
                assert "ssh_host_ed25519_key" in keys, keys
            else:
                wait_for("ssh failed", lambda: node.systemctl("is-failed", "ssh.service").stdout.strip() == "failed",
                         timeout=30)
                assert keys == ""
                assert "no hostkeys available" in unit_journal(node, "ssh")


# -- ZooKeeper's myid --------------------------------------------------------------------------------------------
def package_symlinks(package: str, below: str) -> dict[str, str]:
    """The symlinks a Debian package ships below ``below`` (as installed on this machine): path -> target."""
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=30, check=True).stdout
    return {p: os.readlink(p) for p in listed.splitlines() if p.startswith(below) and os.path.islink(p)}


def test_zookeeper_keeps_its_myid_when_the_package_is_upgraded(make_node: Callable[..., Node]) -> None:
    """dpkg restores the files of a package at every upgrade; Debian's zookeeper ships /var/lib/zookeeper/myid
    (a symlink to its example conffile). Re-enact that over a configured master, then start ZooKeeper as systemd
    would at boot (before the agent runs again): it must come up with the agent's id."""
    shipped = package_symlinks("zookeeper", "/var/lib/zookeeper/")
    assert "/var/lib/zookeeper/myid" in shipped, shipped  # what this test is about: still so in Debian 12
    assert ZOO_MYID not in shipped and not ZOO_MYID.startswith(tuple(f"{p}/" for p in shipped))
    # Three masters: a lone server runs standalone and never reads myid.
    node = make_node("master", user_data("master", masters=[MASTER_IP, "10.99.0.11", "10.99.0.12"]))
    run = node.once()
    assert run.returncode == 0, run.stderr
    status = State(node.layout).status() or {}
    assert status["clock"] == clock_state()  # the node reports its clock (never a reason to be unready)
    assert bool(run.named("clock_not_synchronized")) == (status["clock"] == NOT_SYNCHRONIZED)
    shown = subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "status", "--root", str(node.root)],
                           capture_output=True, text=True, timeout=30)
    assert ("clock: not synchronized" in shown.stdout) == (status["clock"] == NOT_SYNCHRONIZED), shown.stdout
    manager = ProcessManager(node.layout)
    manager.stop("zookeeper")
    for path, target in shipped.items():  # what unpacking the package does to each of its paths
        dest = node.root / path.lstrip("/")
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest)
    log = node.root / "var/log/bootstrap-agent/zookeeper.log"
    started = "Starting quorum peer, myid=1"
    before = log.read_text().count(started)
    service = DesiredService("zookeeper", (), ((MASTER_IP, 2181),))
    node.ns.call(lambda: manager.start(service))

    def outcome() -> str | None:
        text = log.read_text()
        if text.count(started) > before:
            return "started"
        return "exited" if not manager.is_active("zookeeper") else None
    assert wait_for("ZooKeeper started or gone", outcome, timeout=30) == "started", log.read_text()[-2000:]
    time.sleep(1)
    assert manager.is_active("zookeeper"), log.read_text()[-2000:]
    assert (node.root / ZOO_MYID.lstrip("/")).read_text() == "1\n"


# -- apt and the dpkg lock ---------------------------------------------------------------------------------------
def script_apt_options() -> list[str]:
    match = re.search(r"^readonly APT_OPTS=\((.*)\)$", SCRIPT.read_text(), re.MULTILINE)
    assert match, "install-node.sh defines APT_OPTS"
    return shlex.split(match.group(1))


def test_every_apt_call_of_the_script_waits_for_the_dpkg_lock() -> None:
    calls = [line for line in SCRIPT.read_text().splitlines()
             if re.search(r"\bapt-get (update|install)\b", line) and not line.lstrip().startswith("#")]
    assert len(calls) >= 3 and all('"${APT_OPTS[@]}"' in line for line in calls), calls
    assert "stop_apt_daily" in SCRIPT.read_text().split("install_packages() {", 1)[1].split("\n}\n", 1)[0]


def test_apt_with_the_scripts_options_waits_for_a_held_lock_and_without_them_fails(tmp_path: Path) -> None:
    """Real apt-get (``check``: takes the dpkg frontend lock, changes nothing) on a private copy of dpkg's
    status, while this test holds the lock as apt-daily would."""
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get")
    admin = tmp_path / "dpkg"
    admin.mkdir()
    shutil.copy("/var/lib/dpkg/status", admin / "status")
    (tmp_path / "cache" / "archives" / "partial").mkdir(parents=True)
    private = ["-o", f"Dir::State::status={admin / 'status'}", "-o", f"Dir::Cache={tmp_path / 'cache'}"]
    lock = (admin / "lock-frontend").open("w")
    fcntl.lockf(lock, fcntl.LOCK_EX)
    try:
        bare = subprocess.run(["apt-get", *private, "check"], capture_output=True, text=True, timeout=60)
        assert bare.returncode == 100 and "Could not get lock" in bare.stderr, bare
        threading.Timer(2.0, fcntl.lockf, (lock, fcntl.LOCK_UN)).start()
        started = time.monotonic()
        waited = subprocess.run(["apt-get", *private, *script_apt_options(), "check"], capture_output=True, text=True,
                                timeout=120)
        assert waited.returncode == 0, waited
        assert time.monotonic() - started >= 1.5
    finally:
        lock.close()
