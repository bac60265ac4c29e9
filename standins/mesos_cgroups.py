"""What a Mesos agent demands of the node's systemd and cgroup layout at start, for the Mesos stand-in.

Two checks, run by ``standins.mesos`` after the flags are valid (see STARTUP-RULES.md, "Mesos"):

* ``check_systemd``: the agent's own start-up (apache/mesos 1.11.0 and 1.4.3 ``src/slave/main.cpp``, "Initialize
  systemd if it exists", and ``src/linux/systemd.cpp`` ``systemd::initialize``). With ``--systemd_enable_support``
  (default true) on a machine whose ``/sbin/init`` is systemd, the agent needs the runtime directory, creates and
  starts ``mesos_executors.slice`` (the same file, ``daemon-reload`` and ``systemctl start`` as Mesos), and then
  requires the slice in the cgroup v1 ``name=systemd`` hierarchy at ``<cgroups_hierarchy>/systemd``: that is where
  it moves executors so they outlive the agent. On a unified (cgroup v2 only) boot that hierarchy does not exist
  and the real agent exits with "Failed to initialize systemd: ...". Same wording in both versions, except the
  missing-slice case (1.4.3 says "does not exist").
* ``check_kill_mode``: not a check of Mesos itself. Executors survive an agent restart only when systemd does not
  kill them with the agent: either the unit kills the main process alone (``KillMode=process``, as Mesos' packaging
  unit ``support/packaging/common/mesos-slave.service`` at 1.11.0 has it), or Mesos moved them out of the unit's
  cgroup in the hierarchy systemd tracks processes with, which it only does in the v1 ``systemd`` hierarchy
  (``systemd::mesos::extendLifetime``, MESOS-3352). Under a hybrid or unified layout systemd tracks on cgroup v2,
  so ``KillMode=mixed``/``control-group`` SIGKILL every executor and task at each restart; the stand-in refuses
  that unit, naming the consequence.

Both run only where they apply: no systemd as init (the process manager's tests) means nothing to check, as for
the real agent, which is then run with ``--systemd_enable_support=false`` when systemd is installed but not
running (see ``bootstrap_agent/services/process.py``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

EXECUTORS_SLICE = "mesos_executors.slice"
SLICE_UNIT = "[Unit]\nDescription=Mesos Executors Slice\n"  # what systemd::initialize writes
DEFAULT_RUNTIME_DIRECTORY = "/run/systemd/system"
DEFAULT_CGROUPS_HIERARCHY = "/sys/fs/cgroup"
KILLING_MODES = frozenset({"control-group", "mixed"})
PACKAGING_UNIT = "apache/mesos 1.11.0 support/packaging/common/mesos-slave.service"

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class StartupError(RuntimeError):
    """What the real agent (or, for the unit, systemd) would do wrong at start; the message is the one line."""


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)


def parse_bool(flag: str, text: str) -> bool:
    """stout's ``flags::parse<bool>`` (3rdparty/stout/include/stout/flags/parse.hpp): true/false, 1/0."""
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise StartupError(
        f"Failed to load flag '{flag}': Failed to load value '{text}': Expecting a boolean (e.g., true or false)")


@dataclass(frozen=True)
class Mount:
    target: str
    fstype: str
    options: frozenset[str]


def read_mounts(path: str = "/proc/self/mounts") -> list[Mount]:
    """The mount table, as Mesos reads it (``fs::MountTable::read("/proc/mounts")``); octal escapes decoded."""
    mounts = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            target = parts[1].encode().decode("unicode_escape")
            mounts.append(Mount(target, parts[2], frozenset(parts[3].split(","))))
    return mounts


def _realpath(path: str) -> str:
    return os.path.realpath(path)


def is_v1_hierarchy(path: str, mounts: list[Mount]) -> bool:
    """``cgroups::mounted(hierarchy)``: the path exists and some ``cgroup`` (v1) mount has that canonical path."""
    if not os.path.exists(path):
        return False
    wanted = _realpath(path)
    return any(m.fstype == "cgroup" and _realpath(m.target) == wanted for m in mounts)


def systemd_tracks_on_v2(cgroups_hierarchy: str, mounts: list[Mount]) -> bool:
    """Unified (cgroup2 at the root) or hybrid (cgroup2 at ``unified/``): systemd follows processes on v2."""
    root = _realpath(cgroups_hierarchy)
    v2 = {_realpath(m.target) for m in mounts if m.fstype == "cgroup2"}
    return root in v2 or os.path.join(root, "unified") in v2


def systemd_exists(init: str = "/sbin/init", run: Runner = _run) -> bool:
    """``systemd::exists()``: ``/sbin/init`` resolves to a program whose ``--version`` says ``systemd <N>``."""
    target = _realpath(init)
    if not os.path.exists(target):
        return False
    try:
        result = run([target, "--version"])
    except (OSError, subprocess.TimeoutExpired):
        return False
    tokens = result.stdout.split()
    return result.returncode == 0 and len(tokens) >= 2 and tokens[0] == "systemd" and tokens[1].isdigit()


def _start_executors_slice(runtime_directory: str, run: Runner) -> None:
    """Create (only if missing: operators may override it) and start the slice, as Mesos does."""
    unit = Path(runtime_directory) / EXECUTORS_SLICE
    if not unit.exists():
        try:
            unit.write_text(SLICE_UNIT)
        except OSError as exc:
            raise StartupError(
                f"Failed to initialize systemd: Failed to create systemd slice '{EXECUTORS_SLICE}': "
                f"Failed to write systemd slice `{unit}`: {exc.strerror}") from None
        reload = run(["systemctl", "daemon-reload"])
        if reload.returncode != 0:
            raise StartupError(
                f"Failed to initialize systemd: Failed to create systemd slice '{EXECUTORS_SLICE}': "
                f"Failed to create systemd slice `{unit}`: Failed to reload systemd daemon: "
                f"{reload.stderr.strip()}")
    start = run(["systemctl", "start", EXECUTORS_SLICE])
    if start.returncode != 0:
        raise StartupError(
            f"Failed to initialize systemd: Failed to start '{EXECUTORS_SLICE}': "
            f"Failed to start systemd slice `{EXECUTORS_SLICE}`: {start.stderr.strip()}")


def check_systemd(
    version: str, flags: Mapping[str, str], *, init: str = "/sbin/init", mounts: list[Mount] | None = None,
    run: Runner = _run,
) -> bool:
    """Refuse what ``systemd::initialize`` refuses; True when systemd support is in effect."""
    enabled = parse_bool("systemd_enable_support", flags.get("systemd_enable_support", "true"))
    if not enabled or not systemd_exists(init, run):
        return False
    runtime_directory = flags.get("systemd_runtime_directory", DEFAULT_RUNTIME_DIRECTORY)
    if not os.path.exists(runtime_directory):
        raise StartupError(
            f"Failed to initialize systemd: Failed to locate systemd runtime directory: {runtime_directory}")
    _start_executors_slice(runtime_directory, run)
    hierarchy = os.path.join(flags.get("cgroups_hierarchy", DEFAULT_CGROUPS_HIERARCHY), "systemd")
    table = read_mounts() if mounts is None else mounts
    prefix = "Failed to initialize systemd: Failed to locate systemd cgroups hierarchy: "
    if not is_v1_hierarchy(hierarchy, table):
        raise StartupError(f"{prefix}'{hierarchy}' is not a valid hierarchy")
    if not os.path.isdir(os.path.join(hierarchy, EXECUTORS_SLICE)):
        missing = "does not exist" if version == "1.4" else f"'{EXECUTORS_SLICE}' is not a valid cgroup"
        raise StartupError(prefix + missing)
    return True


def own_unit(proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """The systemd service this process runs in (``name=systemd`` or the v2 line), or None outside one."""
    for line in Path(proc_cgroup).read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if controllers in ("name=systemd", ""):
            for part in reversed(path.split("/")):
                if part.endswith(".service"):
                    return part
    return None


def unit_properties(unit: str, run: Runner = _run) -> dict[str, str]:
    result = run(["systemctl", "show", "-p", "KillMode", "-p", "Delegate", unit])
    if result.returncode != 0:
        return {}
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def check_kill_mode(
    flags: Mapping[str, str], systemd_support: bool, *, mounts: list[Mount] | None = None,
    proc_cgroup: str = "/proc/self/cgroup", run: Runner = _run,
) -> dict[str, str]:
    """Refuse a unit that would kill the executors whenever the agent stops; the unit's settings, for the log."""
    if not os.path.isdir(DEFAULT_RUNTIME_DIRECTORY):  # sd_booted(): no systemd running, no unit
        return {}
    unit = own_unit(proc_cgroup)
    if unit is None:
        return {}
    props = unit_properties(unit, run)
    kill_mode = props.get("KillMode", "")
    if kill_mode not in KILLING_MODES:
        return props
    table = read_mounts() if mounts is None else mounts
    on_v2 = systemd_tracks_on_v2(flags.get("cgroups_hierarchy", DEFAULT_CGROUPS_HIERARCHY), table)
    if not on_v2 and systemd_support:
        return props  # executors are moved to mesos_executors.slice, out of the unit's (v1) cgroup
    why = ("systemd tracks processes on cgroup v2 here, where Mesos does not move executors out of the unit"
           if on_v2 else "--systemd_enable_support=false leaves executors in the unit's cgroup")
    raise StartupError(
        f"{unit} has KillMode={kill_mode}: every stop or restart of the agent would kill all its executors and "
        f"tasks ({why}); use KillMode=process as {PACKAGING_UNIT} does")
