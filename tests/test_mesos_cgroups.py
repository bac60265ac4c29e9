"""Issue 11 point 2: the Mesos agent stand-in refuses, as the real agent does, a node without the cgroup v1
``systemd`` hierarchy, and refuses a unit that would kill its executors; the fixed unit in the full legacy layout
(the one the image and the local cloud boot) is accepted.

Under real systemd: PID 1 of a systemd-nspawn container booted in each cgroup layout (``Container(...,
cgroup_layout=...)``, ``$SYSTEMD_NSPAWN_UNIFIED_HIERARCHY``): "unified" is Debian 12's default boot, "hybrid"
is what the local cloud booted before (nspawn's default on this host), "legacy" is what nodes boot now. The
unit is the project's ``systemd/mesos-agent.service`` with a test drop-in that runs the stand-in from this
checkout (the image's stand-in drop-in does the same from the agent's venv), and "today's" unit is the same with
the settings it had before this issue (``TODAYS_UNIT``). The stand-in runs as the unit's main process, finds
its unit from ``/proc/self/cgroup`` and asks ``systemctl show``; it creates and starts ``mesos_executors.slice``
as Mesos does. See STARTUP-RULES.md, "Mesos".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import container
from tests.support.container import Container

PROJECT_DIR = Path(__file__).resolve().parents[1]
UNIT_DIR = "/etc/systemd/system"
AGENT_PORT = 5051
ENV_FILE = (
    "MESOS_MASTER=zk://127.0.0.1:2181/mesos\nMESOS_WORK_DIR=/var/lib/mesos\nMESOS_LOG_DIR=/var/log/mesos\n"
    f"MESOS_IP=127.0.0.1\nMESOS_HOSTNAME=127.0.0.1\nMESOS_PORT={AGENT_PORT}\n"
    "MESOS_RESOURCES=cpus:1;mem:512\nMESOS_CONTAINERIZERS=mesos\n"
)
# The [Service] settings of mesos-agent.service before issue 11 (git history of systemd/mesos-agent.service).
TODAYS_UNIT = ("[Service]\nKillMode=mixed\nDelegate=no\nProtectKernelModules=yes\nProtectClock=yes\n"
               "LockPersonality=yes\n")
REFUSED_V2 = ("mesos-agent 1.11: Failed to initialize systemd: Failed to locate systemd cgroups hierarchy: "
              "'/sys/fs/cgroup/systemd' is not a valid hierarchy")
REFUSED_KILLMODE = ("mesos-agent 1.11: mesos-agent.service has KillMode=mixed: every stop or restart of the agent "
                    "would kill all its executors and tasks (systemd tracks processes on cgroup v2 here, where "
                    "Mesos does not move executors out of the unit); use KillMode=process as apache/mesos "
                    "1.11.0 support/packaging/common/mesos-slave.service does")


def standin_dropin() -> str:
    """Like systemd/standins/mesos-agent.service.d/standin.conf, with this checkout's Python and sources."""
    return (
        "[Service]\n"
        f"Environment=PYTHONPATH={PROJECT_DIR} PYTHONDONTWRITEBYTECODE=1\n"
        "ExecStart=\n"
        f"ExecStart={sys.executable} -m standins.mesos agent --mesos-version 1.11\n"
    )


def boot(layout: str) -> Iterator[Container]:
    reason = container.unavailable_reason()
    if reason:
        pytest.skip(reason)
    container.cleanup_stale()
    rootfs = container.build_test_rootfs()
    # --private-network: only lo, so network-online.target would wait for networkd's timeout; nothing here
    # needs it (the stand-in listens on 127.0.0.1).
    mask = ["systemd.mask=systemd-networkd-wait-online.service"]
    with Container(rootfs, bind_ro=[*container.python_binds(), str(PROJECT_DIR)], cgroup_layout=layout,
                   boot_args=mask) as booted:
        booted.write_file("/etc/default/mesos-agent", ENV_FILE, 0o600)
        booted.write_file(f"{UNIT_DIR}/mesos-agent.service", (PROJECT_DIR / "systemd/mesos-agent.service").read_text())
        booted.write_file(f"{UNIT_DIR}/mesos-agent.service.d/standin.conf", standin_dropin())
        yield booted


@pytest.fixture(scope="module")
def unified() -> Iterator[Container]:
    yield from boot("unified")


@pytest.fixture(scope="module")
def hybrid() -> Iterator[Container]:
    yield from boot("hybrid")


@pytest.fixture(scope="module")
def legacy() -> Iterator[Container]:
    yield from boot("legacy")


def set_unit(node: Container, today: bool) -> None:
    """The fixed unit, or today's settings on top of it (a drop-in), then a fresh start of the agent."""
    node.systemctl("stop", "mesos-agent.service")
    node.exec(["rm", "-f", f"{UNIT_DIR}/mesos-agent.service.d/today.conf"])
    if today:
        node.write_file(f"{UNIT_DIR}/mesos-agent.service.d/today.conf", TODAYS_UNIT)
    node.systemctl("daemon-reload", check=True)
    node.systemctl("reset-failed", "mesos-agent.service")
    node.exec(["journalctl", "--rotate", "--vacuum-time=1s"], capture_output=True)


def outcome(node: Container, timeout: float = 30.0) -> tuple[str, str]:
    """Start the unit; ("started", its start line) once the stand-in listens, or ("refused", its last stderr
    line) once it exited non-zero (the unit restarts it: Restart=on-failure)."""
    cursor = node.exec(["journalctl", "-n", "0", "--show-cursor", "-q"], capture_output=True, text=True).stdout
    after = cursor.strip().rsplit("cursor: ", 1)[-1] if "cursor: " in cursor else ""
    node.systemctl("start", "--no-block", "mesos-agent.service")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        argv = ["journalctl", "-u", "mesos-agent.service", "-o", "cat", "--no-pager"]
        if after:
            argv.append(f"--after-cursor={after}")
        lines = node.exec(argv, capture_output=True, text=True).stdout.splitlines()
        for line in lines:
            if line.startswith("{") and '"standin_started"' in line:
                return "started", line
            if line.startswith("mesos-agent 1.11: "):
                return "refused", line
        time.sleep(0.2)
    status = node.systemctl("status", "--no-pager", "mesos-agent.service").stdout
    raise AssertionError(f"no start line and no refusal within {timeout} s:\n{status}")


def cgroup_layout(node: Container) -> dict[str, str]:
    """Mount point → file system type below /sys/fs/cgroup, inside."""
    mounts = node.read_file("/proc/self/mounts")
    return {p[1]: p[2] for p in (line.split() for line in mounts.splitlines()) if p[1].startswith("/sys/fs/cgroup")}


# -- no systemd running (the process manager's case) -------------------------------------------------------------
def test_without_running_systemd_the_agent_needs_systemd_support_off(tmp_path: Path) -> None:
    """This host has systemd as /sbin/init but does not run it: the real agent then exits at once unless
    --systemd_enable_support=false, which is why the process manager (and only it) passes that flag."""
    if os.path.isdir("/run/systemd/system") or not os.path.realpath("/sbin/init").endswith("/systemd"):
        pytest.skip("needs /sbin/init to be systemd while systemd does not run (as on this build machine)")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_DIR), "MESOS_MASTER": "127.0.0.1:5050",
           "MESOS_WORK_DIR": str(tmp_path), "MESOS_IP": "127.0.0.1", "MESOS_PORT": "0"}
    argv = [sys.executable, "-m", "standins.mesos", "agent", "--mesos-version", "1.4"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert (result.returncode, result.stderr.strip()) == (
        1, "mesos-agent 1.4: Failed to initialize systemd: Failed to locate systemd runtime directory: "
           "/run/systemd/system")
    from bootstrap_agent.desired import DesiredService
    from bootstrap_agent.layout import Layout
    from bootstrap_agent.services.commands import process_commands
    from bootstrap_agent.services.process import ProcessManager

    manager = ProcessManager(Layout(str(tmp_path)), process_commands())
    argv, _env = manager.command(DesiredService("mesos-agent", (), (), "1.4"))
    assert argv[-1] == "--systemd_enable_support=false"
    proc = subprocess.Popen([*argv[:-1], "--port=0", argv[-1]], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "standin_started"
        assert started["systemd"] == {"support": False, "unit": {}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- under systemd, in each layout -------------------------------------------------------------------------------
def test_unified_layout_debian_12_default_is_refused_with_the_real_message(unified: Container) -> None:
    assert cgroup_layout(unified) == {"/sys/fs/cgroup": "cgroup2"}
    for today in (True, False):  # the layout alone decides: the fixed unit does not help
        set_unit(unified, today)
        assert outcome(unified) == ("refused", REFUSED_V2)
    # As real Mesos, it created and started the slice first (systemd::initialize), then looked for the hierarchy.
    assert unified.systemctl("is-active", "mesos_executors.slice").stdout.strip() == "active"
    assert unified.read_file("/run/systemd/system/mesos_executors.slice") == (
        "[Unit]\nDescription=Mesos Executors Slice\n")


def test_hybrid_layout_refuses_todays_kill_mode_and_takes_the_fixed_unit(hybrid: Container) -> None:
    layout = cgroup_layout(hybrid)
    assert layout["/sys/fs/cgroup/unified"] == "cgroup2" and layout["/sys/fs/cgroup/systemd"] == "cgroup"
    set_unit(hybrid, today=True)
    assert outcome(hybrid) == ("refused", REFUSED_KILLMODE)
    set_unit(hybrid, today=False)
    state, line = outcome(hybrid)
    assert state == "started", line
    assert json.loads(line)["systemd"] == {"support": True, "unit": {"Delegate": "yes", "KillMode": "process"}}


def test_legacy_layout_the_nodes_boot_takes_the_fixed_unit(legacy: Container) -> None:
    layout = cgroup_layout(legacy)
    assert "/sys/fs/cgroup/unified" not in layout and "/sys/fs/cgroup" not in [m for m, t in layout.items()
                                                                                if t == "cgroup2"]
    assert layout["/sys/fs/cgroup/systemd"] == "cgroup"
    for controller in ("cpu", "memory", "freezer", "devices", "pids"):  # v1 hierarchies, as the agent expects
        assert layout.get(f"/sys/fs/cgroup/{controller}") == "cgroup", (controller, layout)
    set_unit(legacy, today=False)
    state, line = outcome(legacy)
    assert state == "started", line
    assert json.loads(line)["systemd"] == {"support": True, "unit": {"Delegate": "yes", "KillMode": "process"}}
    assert legacy.exec(["test", "-d", "/sys/fs/cgroup/systemd/mesos_executors.slice"]).returncode == 0
    # systemd tracks the unit on the v1 systemd hierarchy: where Mesos moves executors out of it.
    pid = legacy.systemctl("show", "-p", "MainPID", "--value", "mesos-agent.service").stdout.strip()
    assert ":name=systemd:/system.slice/mesos-agent.service\n" in legacy.read_file(f"/proc/{pid}/cgroup")


# -- the node image, as the local cloud boots it ----------------------------------------------------------------
def rendered_agent_env(tmp: Path) -> str:
    """/etc/default/mesos-agent as ``bootstrap-agent render`` makes it for the example agent (on 127.0.0.1)."""
    facts = json.loads((PROJECT_DIR / "bootstrap_agent/examples/facts-agent.json").read_text()) | {"ip": "127.0.0.1"}
    (tmp / "facts.json").write_text(json.dumps(facts))
    subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "render", "--user-data",
                    str(PROJECT_DIR / "bootstrap_agent/examples/agent.json"), "--facts", str(tmp / "facts.json"),
                    "--out", str(tmp / "out")], check=True, capture_output=True, timeout=60)
    return (tmp / "out/etc/default/mesos-agent").read_text()


def test_node_image_agent_standin_comes_up_in_the_legacy_layout(node_image: object, tmp_path: Path) -> None:
    """The image's own mesos-agent.service and stand-in drop-in (the agent's venv), in the layout the local
    cloud boots (``machine.NODE_CGROUP_LAYOUT``), with the rendered flags: accepted, systemd support on."""
    from provision_min.local.machine import NODE_CGROUP_LAYOUT

    assert NODE_CGROUP_LAYOUT == "legacy"
    image_path = node_image.path  # type: ignore[attr-defined]
    masks = ["systemd.mask=bootstrap-agent.service", "systemd.mask=systemd-networkd-wait-online.service"]
    with Container(image_path, cgroup_layout=NODE_CGROUP_LAYOUT, boot_args=masks, boot_timeout=90) as node:
        assert node.read_file("/etc/systemd/system/mesos-agent.service") == (
            PROJECT_DIR / "systemd/mesos-agent.service").read_text()
        node.write_file("/etc/default/mesos-agent", rendered_agent_env(tmp_path), 0o600)
        state, line = outcome(node, timeout=60)
        assert state == "started", line
        started = json.loads(line)
        assert started["systemd"] == {"support": True, "unit": {"Delegate": "yes", "KillMode": "process"}}
        assert started["listen"] == [f"127.0.0.1:{AGENT_PORT}"]
        assert node.exec(["test", "-d", "/sys/fs/cgroup/systemd/mesos_executors.slice"]).returncode == 0
