"""``SystemdManager`` against real systemd: PID 1 of a systemd-nspawn container (see ``tests/support/container.py``).

The manager runs *inside* the container, in this very Python (bound in read-only), exactly as the agent runs
on a node: ``systemctl`` is the container's, the PIDs it reports are the container's, and
``listening_ports`` reads the container's ``/proc``. Each call is one ``python -c`` in the container that
prints the result (or the ``ServiceError`` message) as JSON; a ``ServiceError`` is raised again here.

The units are real unit files in the container's ``/etc/systemd/system``: an HTTP server (Python's
``http.server`` on a loopback port, ``Restart=on-failure``), and units that fail. Every test uses units of
its own, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.services.base import ServiceError
from tests.support.container import Container, cgroup_pids
from tests.support.waiting import wait_for

PROJECT_DIR = Path(__file__).resolve().parents[1]
UNIT_DIR = "/etc/systemd/system"
WANTS = f"{UNIT_DIR}/multi-user.target.wants"

# Runs inside the container: evaluates one expression with the manager at hand, prints {"value"} or {"error"}.
_DRIVER = r"""
import json, sys, time
from bootstrap_agent.desired import DesiredService
from bootstrap_agent.services.base import ServiceError, listening_ports
from bootstrap_agent.services.systemd import SystemdManager

m = SystemdManager()

def svc(unit, reload=False):
    return DesiredService(unit=unit, inputs=(), ports=(), reload=reload)

def ports_of(unit, port, timeout=10.0):
    # listening_ports(main_pid) once it holds `port` (a server binds a moment after exec), or the last answer
    deadline = time.monotonic() + timeout
    while True:
        pid = m.main_pid(unit)
        ports = listening_ports(pid) if pid else None
        if (ports and port in ports) or time.monotonic() > deadline:
            return {"pid": pid, "ports": sorted(ports) if ports is not None else None}
        time.sleep(0.05)

try:
    value = eval(sys.argv[1])
except ServiceError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"value": sorted(value) if isinstance(value, set) else value}))
"""


class InContainer:
    """The manager inside the container: ``mgr("m.start(svc('x'))")`` → its value, or ``ServiceError``."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def __call__(self, expr: str) -> Any:
        result = self.container.python(
            ["-c", _DRIVER, expr], pythonpath=[PROJECT_DIR], capture_output=True, text=True, timeout=150
        )
        assert result.returncode == 0, f"{expr}: exit {result.returncode}\n{result.stderr}"
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        if "error" in answer:
            raise ServiceError(answer["error"])
        return answer["value"]

    # -- observations with plain tools, not through the manager ---------------------------------------------
    def sh(self, script: str) -> str:
        result = self.container.exec(["sh", "-c", script], capture_output=True, text=True)
        return str(result.stdout.strip())

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.container.systemctl("show", f"--property={','.join(props)}", f"{unit}.service").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def cmdline(self, pid: int) -> list[str]:
        return self.sh(f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()

    def write_unit(self, unit: str, text: str) -> None:
        self.container.write_file(f"{UNIT_DIR}/{unit}.service", text)


def echo_unit(port: int, description: str = "bootstrap-agent test: HTTP echo server", reload_cmd: bool = True) -> str:
    # Type=exec: `systemctl start` returns once the server's binary runs, its port follows a moment later.
    reload_line = "ExecReload=/bin/sh -c 'echo \"$MAINPID\" >> /run/%N.reloads'\n" if reload_cmd else ""
    return (
        f"[Unit]\nDescription={description}\n\n"
        "[Service]\nType=exec\n"
        f"ExecStart=/usr/bin/python3 -m http.server {port} --bind 127.0.0.1 --directory /tmp\n"
        f"{reload_line}"
        "Restart=on-failure\nRestartSec=200ms\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


@pytest.fixture(scope="module")
def mgr(systemd_container: Container) -> InContainer:
    return InContainer(systemd_container)


def test_container_runs_systemd_as_pid1_in_cgroups_of_its_own(systemd_container: Container) -> None:
    assert systemd_container.boot_state == "running", systemd_container.systemctl("--failed").stdout
    assert systemd_container.exec(["cat", "/proc/1/comm"], capture_output=True, text=True).stdout == "systemd\n"
    assert systemd_container.proc is not None and systemd_container.pid is not None
    for cgroup in systemd_container.cgroups:  # name=systemd (v1) and cgroup2: both hold nspawn and systemd
        assert {systemd_container.proc.pid, systemd_container.pid} <= set(cgroup_pids(cgroup))


def test_daemon_reload_makes_new_and_changed_units_known(mgr: InContainer) -> None:
    """systemd loads a unit it never saw from disk on demand; a *loaded* unit's changed file needs the reload."""
    mgr.write_unit("ba-reload", echo_unit(8090, description="version one"))
    mgr("m.daemon_reload()")
    assert mgr.show("ba-reload", "LoadState", "Description") == {"LoadState": "loaded", "Description": "version one"}
    mgr("m.start(svc('ba-reload'))")  # running: stays loaded, with the unit file as it was read

    mgr.write_unit("ba-reload", echo_unit(8090, description="version two"))
    assert mgr.show("ba-reload", "NeedDaemonReload", "Description") == {
        "NeedDaemonReload": "yes",
        "Description": "version one",
    }
    mgr("m.daemon_reload()")
    assert mgr.show("ba-reload", "NeedDaemonReload", "Description") == {
        "NeedDaemonReload": "no",
        "Description": "version two",
    }
    mgr("m.stop('ba-reload')")


def test_enable_start_restart_stop_disable(mgr: InContainer) -> None:
    port = 8081
    mgr.write_unit("ba-echo", echo_unit(port))
    mgr("m.daemon_reload()")
    link = f"{WANTS}/ba-echo.service"

    mgr("m.enable(svc('ba-echo'))")
    assert mgr.sh(f"readlink {link}") == f"{UNIT_DIR}/ba-echo.service"
    assert mgr.container.systemctl("is-enabled", "ba-echo.service").stdout.strip() == "enabled"
    assert mgr("m.is_active('ba-echo')") is False
    assert mgr("m.main_pid('ba-echo')") is None

    mgr("m.start(svc('ba-echo'))")
    assert mgr("m.is_active('ba-echo')") is True
    first = mgr(f"ports_of('ba-echo', {port})")
    assert first["pid"] == int(mgr.show("ba-echo", "MainPID")["MainPID"])
    assert mgr.cmdline(first["pid"])[-6:] == ["http.server", str(port), "--bind", "127.0.0.1", "--directory", "/tmp"]
    assert port in first["ports"]

    mgr("m.restart(svc('ba-echo'))")
    second = mgr(f"ports_of('ba-echo', {port})")
    assert second["pid"] not in (None, first["pid"])
    assert port in second["ports"]
    assert mgr.sh(f"test -e /proc/{first['pid']} && echo alive || echo gone") == "gone"

    # Restart=on-failure: a killed server comes back, and main_pid follows it.
    mgr.sh(f"kill -9 {second['pid']}")
    respawned = wait_for(
        "respawn after SIGKILL",
        lambda: (
            (r := mgr(f"ports_of('ba-echo', {port}, timeout=2)"))["pid"] not in (None, second["pid"])
            and port in (r["ports"] or [])
            and r
        ),
    )
    assert mgr("m.is_active('ba-echo')") is True
    assert mgr.show("ba-echo", "NRestarts")["NRestarts"] == "1"

    mgr("m.stop('ba-echo')")
    assert mgr("m.is_active('ba-echo')") is False
    assert mgr("m.main_pid('ba-echo')") is None
    assert mgr.sh(f"test -e /proc/{respawned['pid']} && echo alive || echo gone") == "gone"
    assert mgr(f"listening_ports({respawned['pid']})") is None
    assert mgr("m.failure_reason('ba-echo')").startswith("inactive/dead (result: success)")

    mgr("m.disable('ba-echo')")
    assert mgr.sh(f"test -e {link} && echo present || echo absent") == "absent"
    assert mgr.container.systemctl("is-enabled", "ba-echo.service").stdout.strip() == "disabled"


def test_reload_reloads_a_unit_that_can_and_restarts_one_that_cannot(mgr: InContainer) -> None:
    mgr.write_unit("ba-reloadable", echo_unit(8082))
    mgr.write_unit("ba-plain", echo_unit(8083, reload_cmd=False))
    mgr("m.daemon_reload()")

    # Not running yet: reload-or-restart starts it.
    mgr("m.reload(svc('ba-reloadable', reload=True))")
    before = mgr("ports_of('ba-reloadable', 8082)")
    assert 8082 in before["ports"]
    mgr("m.reload(svc('ba-reloadable', reload=True))")
    after = mgr("ports_of('ba-reloadable', 8082)")
    assert after["pid"] == before["pid"]  # reloaded in place: ExecReload ran, the server kept running
    assert mgr.container.read_file("/run/ba-reloadable.reloads").split() == [str(before["pid"])]

    mgr("m.start(svc('ba-plain'))")
    plain = mgr("ports_of('ba-plain', 8083)")
    mgr("m.reload(svc('ba-plain', reload=True))")  # no ExecReload: reload-or-restart restarts
    replaced = mgr("ports_of('ba-plain', 8083)")
    assert replaced["pid"] not in (None, plain["pid"])
    assert 8083 in replaced["ports"]

    mgr("m.stop('ba-reloadable')")
    mgr("m.stop('ba-plain')")


def test_broken_unit_start_fails_with_systemctls_reason(mgr: InContainer) -> None:
    # Type=notify (as the agent's own unit): `systemctl start` waits for READY=1, which never comes.
    mgr.write_unit(
        "ba-broken",
        "[Unit]\nDescription=bootstrap-agent test: exits 1\n\n"
        "[Service]\nType=notify\nExecStart=/bin/sh -c 'echo cannot start >&2; exit 1'\n",
    )
    mgr("m.daemon_reload()")
    with pytest.raises(ServiceError) as caught:
        mgr("m.start(svc('ba-broken'))")
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "systemctl start ba-broken.service: "
        "Job for ba-broken.service failed because the control process exited with error code."
    )
    assert mgr("m.is_active('ba-broken')") is False
    assert mgr("m.main_pid('ba-broken')") is None
    reason = mgr("m.failure_reason('ba-broken')")
    assert reason.startswith("failed/failed (result: exit-code)") and "cannot start" in reason, reason
    assert "cannot start" in mgr.container.journal("ba-broken.service")


def test_unit_that_dies_after_start_is_reported_failed(mgr: InContainer) -> None:
    # Type=exec: start succeeds as soon as the program runs; its exit 1 shows up as failed afterwards.
    mgr.write_unit(
        "ba-dies",
        "[Unit]\nDescription=bootstrap-agent test: dies after start\n\n"
        "[Service]\nType=exec\nExecStart=/bin/sh -c 'sleep 0.3; exit 1'\n",
    )
    mgr("m.daemon_reload()")
    mgr("m.start(svc('ba-dies'))")
    wait_for("ba-dies failed", lambda: mgr.show("ba-dies", "ActiveState")["ActiveState"] == "failed")
    assert mgr("m.is_active('ba-dies')") is False
    assert mgr("m.failure_reason('ba-dies')").startswith("failed/failed (result: exit-code)")


def test_unit_in_a_crash_loop_is_not_active(mgr: InContainer) -> None:
    mgr.write_unit(
        "ba-loops",
        "[Unit]\nDescription=bootstrap-agent test: crashes and is restarted\n\n"
        "[Service]\nType=exec\nExecStart=/bin/sh -c 'echo giving up >&2; sleep 0.5; exit 3'\n"
        "Restart=always\nRestartSec=30\n",
    )
    mgr("m.daemon_reload()")
    mgr("m.start(svc('ba-loops'))")
    wait_for("ba-loops waits to restart", lambda: mgr.show("ba-loops", "SubState")["SubState"] == "auto-restart", 30)
    assert mgr("m.is_active('ba-loops')") is False  # between two crashes it is not "on its way up"
    # journald may take a moment under load: the reason names the program's own last words once it has them
    reason = wait_for("the unit's last words", lambda: (lambda r: r if "giving up" in r else "")(
        mgr("m.failure_reason('ba-loops')")), 30)
    assert reason.startswith("activating/auto-restart (result: exit-code)")
    mgr("m.stop('ba-loops')")


def test_unknown_unit_errors_carry_systemctls_words(mgr: InContainer) -> None:
    for call, command, words in [
        (
            "m.start(svc('ba-nope'))",
            "start ba-nope.service",
            "Failed to start ba-nope.service: Unit ba-nope.service not found.",
        ),
        (
            "m.restart(svc('ba-nope'))",
            "restart ba-nope.service",
            "Failed to restart ba-nope.service: Unit ba-nope.service not found.",
        ),
        (
            "m.stop('ba-nope')",
            "stop ba-nope.service",
            "Failed to stop ba-nope.service: Unit ba-nope.service not loaded.",
        ),
        (
            "m.enable(svc('ba-nope'))",
            "enable --quiet --no-reload ba-nope.service",
            "Failed to enable unit: Unit file ba-nope.service does not exist.",
        ),
        (
            "m.disable('ba-nope')",
            "disable --quiet ba-nope.service",
            "Failed to disable unit: Unit file ba-nope.service does not exist.",
        ),
    ]:
        with pytest.raises(ServiceError) as caught:
            mgr(call)
        assert str(caught.value) == f"systemctl {command}: {words}"
    assert mgr("m.is_active('ba-nope')") is False
    assert mgr("m.main_pid('ba-nope')") is None


def test_error_is_systemctls_reason_not_its_changed_on_disk_warning(mgr: InContainer) -> None:
    """A unit file changed without daemon-reload makes systemctl print a warning *before* the error."""
    unit = "ba-stale"
    text = "[Service]\nType=exec\nExecStart=/bin/sleep 1000\nExecReload=/bin/false\n"
    mgr.write_unit(unit, text)
    mgr("m.daemon_reload()")
    mgr(f"m.start(svc('{unit}'))")
    mgr.write_unit(unit, text.replace("1000", "1001"))  # no daemon-reload
    raw = mgr.container.systemctl("reload-or-restart", f"{unit}.service")
    assert raw.returncode != 0 and raw.stderr.startswith("Warning: "), raw.stderr  # what systemctl does
    with pytest.raises(ServiceError) as caught:
        mgr(f"m.reload(svc('{unit}', reload=True))")
    assert str(caught.value) == f"systemctl reload-or-restart {unit}.service: Job for {unit}.service failed."
    mgr(f"m.stop('{unit}')")


def test_manager_runs_in_the_containers_namespaces(mgr: InContainer, systemd_container: Container) -> None:
    """The PIDs the manager reports are the container's: PID 1 there is the container's systemd."""
    assert mgr("__import__('psutil').Process(1).name()") == "systemd"
    assert mgr("__import__('socket').gethostname()") == systemd_container.name
    assert re.fullmatch(r"[0-9a-f]{32}", mgr.container.read_file("/etc/machine-id").strip())
    assert mgr.container.read_file("/etc/machine-id").strip() == systemd_container.uuid.hex
    assert shlex.split(mgr.sh("ip -o link show | awk '{print $2}'")) == ["lo:"]
