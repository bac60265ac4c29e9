"""The unit files in ``systemd/``: ``systemd-analyze verify`` has nothing to say, and they run what the agent expects.

``verify`` runs against a throw-away root (``--root``) holding systemd's own units (this machine's), our units
and drop-ins in ``/etc/systemd/system`` and an executable stand-in file at every ``Exec*=`` path: so it checks
every key, value, dependency and path of our files without the image (the image test runs it again on the
built image, with the real programs). It exits 0 on an unknown key and only warns, so stderr must be empty.

The commands are compared with the process manager's (``bootstrap_agent/services/process.py``): a unit must run
the same program with the same arguments and environment files, so ``--service-manager systemd`` and
``process`` behave alike.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ALLUXIO_ENV, ALLUXIO_SITE, MESOS_AGENT_ENV, MESOS_MASTER_ENV
from bootstrap_agent.services.base import ServiceError
from bootstrap_agent.services.commands import PRODUCT_COMMANDS, process_commands
from bootstrap_agent.services.process import ProcessManager
from bootstrap_agent.services.zookeeper_cmd import ZooKeeperNotInstalled, java_command

PROJECT_DIR = Path(__file__).resolve().parents[1]
UNITS = PROJECT_DIR / "systemd"
STANDINS = UNITS / "standins"
MANAGED = ("zookeeper", "mesos-master", "mesos-agent", "alluxio-master", "alluxio-worker", "alluxio-proxy",
           "alluxio-job-master", "alluxio-job-worker")
TOOLS = ("spark-shuffle", "zeppelin", "jenkins")  # issue 7: our units whose stand-ins need no version
VENV_PYTHON = "/opt/bootstrap-agent/venv/bin/python"
STANDIN_VERSIONS = {"BOOTSTRAP_AGENT_MESOS_VERSION": "1.11", "BOOTSTRAP_AGENT_ALLUXIO_VERSION": "2.9"}
SYSTEM_UNITS = Path("/usr/lib/systemd/system")

Entries = list[tuple[str, str, str]]


def parse_unit(text: str) -> Entries:
    """(section, key, value) in file order; repeated keys stay repeated (an empty value resets a list)."""
    entries: Entries = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def effective(unit: str, standin: bool = False) -> Entries:
    """The unit's entries, with its stand-in drop-in applied when ``standin``."""
    entries = parse_unit((UNITS / f"{unit}.service").read_text())
    dropin = STANDINS / f"{unit}.service.d" / "standin.conf"
    if standin and dropin.exists():
        entries += parse_unit(dropin.read_text())
    return entries


def values(entries: Entries, key: str, section: str = "Service") -> list[str]:
    """A list setting as systemd sees it: every assignment appends, an empty one clears."""
    result: list[str] = []
    for sec, k, v in entries:
        if sec == section and k == key:
            if v == "":
                result = []
            else:
                result += [v]
    return result


def value(entries: Entries, key: str, section: str = "Service") -> str | None:
    found = values(entries, key, section)
    return found[-1] if found else None


def words(entries: Entries, key: str, section: str = "Unit") -> set[str]:
    return {w for v in values(entries, key, section) for w in v.split()}


def exec_paths() -> set[str]:
    paths = set()
    for path in [*UNITS.glob("*.service"), *STANDINS.rglob("*.conf"), *STANDINS.glob("*.service"),
                 *UNITS.glob("*.service.d/*.conf")]:
        for section, key, val in parse_unit(path.read_text()):
            if section == "Service" and key.startswith("Exec") and val:
                paths.add(val.lstrip("-@+!:").split()[0])
    return paths


# -- systemd-analyze verify ---------------------------------------------------------------------------------
def verify_root(tmp: Path, standins: bool) -> Path:
    root = tmp / ("root-standins" if standins else "root-real")
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    dest = root / "etc/systemd/system"
    dest.mkdir(parents=True)
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, dest)
    for dropin in UNITS.glob("*.service.d"):  # for units of Debian packages (docker.io's docker.service)
        shutil.copytree(dropin, dest / dropin.name)
    if standins:
        for unit in STANDINS.glob("*.service"):  # whole stand-in units (dockerd)
            shutil.copy(unit, dest)
        for dropin in STANDINS.glob("*.service.d"):
            shutil.copytree(dropin, dest / dropin.name, dirs_exist_ok=True)
    for program in exec_paths():
        stub = root / program.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", f"{unit}.service"],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        pytest.fail("systemd-analyze and systemd's own units are needed (Debian: the systemd package)")
    tmp = tmp_path_factory.mktemp("units")
    return {standins: verify_root(tmp, standins) for standins in (False, True)}


@pytest.mark.parametrize("standins", [False, True], ids=["real", "standins"])
@pytest.mark.parametrize("unit", ["bootstrap-agent", *MANAGED, *TOOLS])
def test_systemd_analyze_verify_is_silent(roots: dict[bool, Path], unit: str, standins: bool) -> None:
    result = verify(roots[standins], unit)
    assert (result.returncode, result.stderr.strip(), result.stdout.strip()) == (0, "", ""), result


def test_verify_would_catch_a_bad_key_a_missing_program_and_a_missing_dependency(
    roots: dict[bool, Path], tmp_path: Path
) -> None:
    """The check above is not vacuous: each kind of mistake shows up on stderr."""
    root = verify_root(tmp_path, standins=True)
    unit = root / "etc/systemd/system/zookeeper.service"
    original = unit.read_text()
    unit.write_text(original.replace("Restart=on-failure", "Restart=on-failure\nRestartSteps=bogus\nFrobnicate=1"))
    assert "Unknown key" in verify(root, "zookeeper").stderr
    unit.write_text(original.replace("/usr/bin/java", "/usr/bin/no-such-java"))
    result = verify(root, "zookeeper")
    assert result.returncode != 0 and "no-such-java" in result.stderr
    unit.write_text(original.replace("[Unit]", "[Unit]\nRequires=no-such.service"))
    assert verify(root, "zookeeper").returncode != 0


# -- what the units run -------------------------------------------------------------------------------------
def _unit_argv(unit: str, standin: bool) -> list[str]:
    starts = values(effective(unit, standin), "ExecStart")
    assert len(starts) == 1, f"{unit}: one ExecStart, got {starts}"
    argv = starts[0].split()
    for name, version in STANDIN_VERSIONS.items():
        argv = [version if w == f"${{{name}}}" else w for w in argv]
    return argv


# The Alluxio units have no stand-in drop-in: the image's stand-in /opt/alluxio runs their real ExecStart= lines
# (tests/test_alluxio_startup.py runs them).
@pytest.mark.parametrize("unit", [u for u in MANAGED if u.startswith("mesos")])
def test_standin_units_run_what_the_process_manager_runs(unit: str) -> None:
    version = "1.11" if unit.startswith("mesos") else "2.9"
    manager = ProcessManager(Layout("/"), process_commands())
    expected, env_files = manager.command(DesiredService(unit, (), (), version))
    argv = _unit_argv(unit, standin=True)
    assert argv[0] == VENV_PYTHON
    if unit == "mesos-agent":  # no systemd under the process manager: it alone turns systemd support off
        assert expected[-1] == "--systemd_enable_support=false"
        expected = expected[:-1]
    assert argv[1:] == expected[1:], f"{unit}: {argv} vs the process manager's {expected}"
    files = values(effective(unit, standin=True), "EnvironmentFile")
    assert files[0] == "/etc/default/bootstrap-agent-standins", files
    assert files[1:] == env_files, f"{unit}: EnvironmentFile {files[1:]} vs {env_files}"
    assert values(effective(unit, standin=True), "ExecStartPre") == []


def test_zookeeper_unit_runs_zookeeper_cmd_command_line() -> None:
    try:
        expected = java_command("/etc/zookeeper/conf/zoo.cfg")
    except ZooKeeperNotInstalled as exc:
        pytest.fail(f"{exc} (CI installs it: .ci/setup)")
    argv = _unit_argv("zookeeper", standin=False)
    assert argv[0] == "/usr/bin/java" and Path(expected[0]).resolve() == Path("/usr/bin/java").resolve()
    assert argv[1:] == expected[1:]
    # The rendered inputs are asserted, so a start without them fails loudly instead of running the example.
    assert values(effective("zookeeper"), "AssertPathExists", "Unit") == [
        "/etc/zookeeper/conf/zoo.cfg", "/var/lib/zookeeper/data/myid"]


@pytest.mark.parametrize(("unit", "program", "env_file"), [
    ("mesos-master", "/usr/sbin/mesos-master", MESOS_MASTER_ENV),
    ("mesos-agent", "/usr/sbin/mesos-agent", MESOS_AGENT_ENV),
    ("alluxio-master", "/opt/alluxio/bin/launch-process", ALLUXIO_ENV),
    ("alluxio-worker", "/opt/alluxio/bin/launch-process", ALLUXIO_ENV),
    ("alluxio-proxy", "/opt/alluxio/bin/launch-process", ALLUXIO_ENV),
    ("alluxio-job-master", "/opt/alluxio/bin/launch-process", ALLUXIO_ENV),
    ("alluxio-job-worker", "/opt/alluxio/bin/launch-process", ALLUXIO_ENV),
])
def test_real_units_read_the_rendered_files(unit: str, program: str, env_file: str) -> None:
    entries = effective(unit)
    assert _unit_argv(unit, standin=False)[0] == program
    assert values(entries, "EnvironmentFile") == [env_file]
    if unit.startswith("alluxio"):
        assert values(entries, "AssertPathExists", "Unit") == [ALLUXIO_SITE]
        assert value(entries, "User") is None, "the properties hold the S3 keys (0600 root): run as root"


# -- how the units behave -----------------------------------------------------------------------------------
def test_bootstrap_agent_unit() -> None:
    entries = effective("bootstrap-agent")
    assert value(entries, "Type") == "notify"
    assert value(entries, "NotifyAccess") == "main"
    assert {"network-online.target", "nginx.service"} <= words(entries, "After")
    assert {"network-online.target", "nginx.service"} <= words(entries, "Wants")
    assert value(entries, "Restart") == "on-failure"
    assert re.fullmatch(r"\d+s", value(entries, "WatchdogSec") or ""), "WatchdogSec in seconds"
    assert value(entries, "KillMode") == "mixed", "SIGTERM to the daemon alone: it leaves the cluster itself"
    start = values(entries, "ExecStart")
    assert start == ["/opt/bootstrap-agent/venv/bin/bootstrap-agent run --service-manager systemd "
                     "$BOOTSTRAP_AGENT_ARGS"]
    assert words(entries, "WantedBy", "Install") == {"multi-user.target"}


@pytest.mark.parametrize("unit", MANAGED)
def test_managed_units_restart_order_and_stop_after_the_agent_left(unit: str) -> None:
    entries = effective(unit)
    assert value(entries, "Restart") == "on-failure"
    assert value(entries, "RestartSec")
    assert value(entries, "StartLimitIntervalSec", "Unit") == "0", "a master must come back, however often"
    # Ordered before the agent: at shutdown the agent leaves the cluster while its services still run.
    assert "bootstrap-agent.service" in words(entries, "Before")
    assert "network-online.target" in words(entries, "After") & words(entries, "Wants")
    # Enabled by the agent (systemctl enable), not by the image.
    assert words(entries, "WantedBy", "Install") == {"multi-user.target"}
    if unit == "mesos-master":
        assert "zookeeper.service" in words(entries, "After")
    if unit == "alluxio-proxy":
        assert {"alluxio-master.service", "alluxio-worker.service"} <= words(entries, "After")


@pytest.mark.parametrize("unit", ["zookeeper", "mesos-master", "alluxio-master", "alluxio-proxy"])
def test_services_that_need_nothing_of_the_host_are_sandboxed(unit: str) -> None:
    entries = effective(unit)
    for key, expected in [("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                          ("PrivateDevices", "yes"), ("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", None)]:
        if expected is None:
            assert values(entries, key) == [], f"{unit}: {key}= must be empty (no capabilities)"
        else:
            assert value(entries, key) == expected, f"{unit}: {key}"
    assert values(entries, "StateDirectory"), f"{unit}: writes only its StateDirectory"


def test_mesos_agent_unit_is_shaped_like_mesos_packaging_unit() -> None:
    """issue 11 point 2: executors outlive the agent (KillMode=process, apache/mesos 1.11.0
    support/packaging/common/mesos-slave.service), systemd leaves its cgroups alone (Delegate), and nothing that
    every task would inherit: no private mount namespace (ProtectKernelModules), no device policy (ProtectClock),
    no personality lock. The stand-in drop-in changes only the command."""
    for standin in (False, True):
        entries = effective("mesos-agent", standin)
        assert value(entries, "KillMode") == "process"
        assert value(entries, "Delegate") == "yes"
        for key in ("ProtectKernelModules", "ProtectClock", "LockPersonality", "ProtectSystem", "ProtectHome",
                    "PrivateTmp", "PrivateDevices", "PrivateMounts", "NoNewPrivileges", "DevicePolicy",
                    "DeviceAllow", "SystemCallFilter", "CapabilityBoundingSet", "MountFlags"):
            assert values(entries, key) == [], f"mesos-agent: {key}= is inherited by every task"
    dropin = parse_unit((STANDINS / "mesos-agent.service.d" / "standin.conf").read_text())
    assert {key for _section, key, _value in dropin} == {"EnvironmentFile", "ExecStart"}


def test_mesos_agent_unit_as_systemd_loads_it(roots: dict[bool, Path]) -> None:
    """The same, as systemd itself reads the file (drop-in applied), not as our parser does."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={roots[True]}", "--json=short",
         "mesos-agent.service"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    # "set" means "the safe setting is in effect": here each one must be off, on purpose.
    for key in ("ProtectKernelModules=", "ProtectClock=", "LockPersonality=", "PrivateDevices=", "PrivateMounts="):
        assert checks[key]["set"] is False, checks[key]
    assert checks["Delegate="]["description"] == "Service maintains its own delegated control group subtree"


def test_systemd_analyze_security_scores(roots: dict[bool, Path]) -> None:
    """The exposure of each unit (lower is better), printed for the record; the sandboxed ones stay low."""
    scores = {}
    for unit in ["bootstrap-agent", *MANAGED]:
        result = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={roots[True]}",
                                 f"{unit}.service"], capture_output=True, text=True, timeout=60, check=False)
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout[-500:] + result.stderr
        scores[unit] = float(match.group(1))
    print("\nUNITS systemd-analyze security: " + ", ".join(f"{u} {s}" for u, s in scores.items()))
    for unit in ("zookeeper", "mesos-master", "alluxio-master", "alluxio-proxy"):
        assert scores[unit] <= 4.0, scores


# -- issue 7: docker, spark-shuffle, zeppelin, jenkins, and the rendered mount units ----------------------------
def test_docker_standin_unit_with_the_real_drop_in_verifies(roots: dict[bool, Path]) -> None:
    """docker.service itself comes from Debian's docker.io on real images; with stand-ins it is ours, and the
    drop-in (ordering after its RAM disk and before the Mesos agent) applies to either."""
    result = verify(roots[True], "docker")
    assert (result.returncode, result.stderr.strip(), result.stdout.strip()) == (0, "", ""), result
    dropin = parse_unit((UNITS / "docker.service.d" / "bootstrap-agent.conf").read_text())
    assert values(dropin, "RequiresMountsFor", "Unit") == ["/var/lib/docker"]
    assert {"mesos-agent.service", "bootstrap-agent.service"} <= words(dropin, "Before")


@pytest.mark.parametrize("unit", ["zeppelin", "jenkins", "docker"])  # spark-shuffle: tests/test_spark.py
def test_new_standins_run_what_the_process_manager_runs(unit: str) -> None:
    manager = ProcessManager(Layout("/"), process_commands())
    expected, env_files = manager.command(DesiredService(unit, (), ()))
    entries = parse_unit((STANDINS / f"{unit}.service").read_text()) if unit == "docker" else effective(unit, True)
    starts = values(entries, "ExecStart")
    assert len(starts) == 1 and starts[0].split()[0] == VENV_PYTHON
    assert starts[0].split()[1:] == expected[1:]
    assert values(entries, "EnvironmentFile") == env_files


def test_the_process_manager_runs_the_product_itself_and_the_rest_from_the_installed_standins() -> None:
    """The product's own command table holds only what it runs for real; every other unit of a node comes from
    the stand-ins' distribution through its entry point, which is what ``--service-manager process`` gets."""
    from standins.commands import table

    assert set(PRODUCT_COMMANDS) == {"zookeeper", "nginx"}
    installed = process_commands()
    assert set(installed) == set(PRODUCT_COMMANDS) | set(table()), "pip install -e ./standins (see .ci/setup)"
    assert {*MANAGED, *TOOLS, "docker", "nginx", "alluxio-journal-format"} <= set(installed)
    with pytest.raises(ServiceError, match="does not know how to run"):
        ProcessManager(Layout("/")).command(DesiredService("mesos-master", (), (), "1.11"))


def test_folders_that_may_be_ram_disks_order_their_users_after_the_mount() -> None:
    from bootstrap_agent.node_paths import ALLUXIO_TIER0, MESOS_WORK_DIR

    assert values(effective("mesos-agent"), "RequiresMountsFor", "Unit") == [MESOS_WORK_DIR]
    assert values(effective("alluxio-worker"), "RequiresMountsFor", "Unit") == [ALLUXIO_TIER0]
    assert values(effective("alluxio-worker"), "ExecStartPre") == [], "the mount unit makes the RAM disk"
    assert values(effective("spark-shuffle"), "RequiresMountsFor", "Unit") == [MESOS_WORK_DIR]
    assert "docker.service" in words(effective("mesos-agent"), "After")


@pytest.mark.parametrize("unit", ["zeppelin", "jenkins"])
def test_tools_run_as_their_own_user_sandboxed(unit: str) -> None:
    entries = effective(unit)
    assert value(entries, "User") == unit and value(entries, "Group") == unit
    assert value(entries, "ProtectSystem") == "strict" and value(entries, "NoNewPrivileges") == "yes"
    assert values(entries, "CapabilityBoundingSet") == []
    assert values(entries, "EnvironmentFile") == [f"/etc/default/{unit}"]
    assert words(entries, "WantedBy", "Install") == {"multi-user.target"}


def test_rendered_mount_units_verify_and_a_misnamed_one_does_not(tmp_path: Path) -> None:
    """The mount units the plan renders pass ``systemd-analyze verify``; the same text under a name that does
    not match ``Where=`` is refused, so the check can see a naming mistake."""
    from bootstrap_agent.facts import Facts
    from bootstrap_agent.plan import plan
    from bootstrap_agent.schema import validate

    data = {"schema": 1, "cluster": "c1", "role": "agent", "masters": ["10.1.0.10"], "secret": "x" * 20,
            "mesos": {"containerizers": ["docker", "mesos"], "work_dir_ramdisk": "2GB", "docker_ramdisk": "auto"},
            "alluxio": {"root_ufs": "s3://bucket/x"},
            "credentials": {"source": "keys", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "secretkey123"}}
    node = Facts(ip="10.1.0.20", hostname="a1", cpus=4, memory=32 << 30, instance_uuid="u1")
    p = plan(validate(data), node)
    root = verify_root(tmp_path, standins=True)
    mounts = [f for f in p.files if f.path.endswith(".mount")]
    assert len(mounts) == 3
    for f in mounts:
        (root / f.path.lstrip("/")).write_bytes(f.content)
    for f in mounts:
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", f.path.rsplit("/", 1)[1]],
                                capture_output=True, text=True, timeout=60, check=False)
        assert (result.returncode, result.stderr.strip()) == (0, ""), (f.path, result)
    wrong = root / "etc/systemd/system/var-lib-elsewhere.mount"
    wrong.write_bytes(mounts[0].content)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", wrong.name],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "Where=" in result.stderr, result
