"""One instance of the local cloud: a systemd-nspawn container, its disk, its cgroups and its supervisor.

An instance outlives ``provision-min`` (like a cloud server outlives the console), so each runs under a small
supervisor process of its own (``provision_min.local.supervise``, detached in its own session): it boots the
container again when the instance reboots itself (systemd-nspawn exits with 133 then, as
``systemd-nspawn@.service`` handles with ``RestartForceExitStatus=133``), and on SIGTERM powers it off
cleanly and removes its cgroups. The instance's disk is an overlay on the read-only node image, kept in the
node's folder, so a reboot keeps what the node wrote (nginx's metadata cache, the agent's last good copy).

Each container runs in cgroups of its own (the recipe: else their units collide), created by the
supervisor and named ``bal-<machine>``; whatever is left in them at the end is killed and they are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provision_min.errors import ProvisionError
from provision_min.local.layout import Names

CGROUP_ROOT = Path("/sys/fs/cgroup")
SUPERVISOR_MODULE = "provision_min.local.supervise"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_REBOOT = 133  #: systemd-nspawn's exit status when the container asked for a reboot

# The cgroup layout a container boots with (systemd-nspawn(1), $SYSTEMD_NSPAWN_UNIFIED_HIERARCHY in systemd's
# docs/ENVIRONMENT.md): "legacy" is cgroup v1 only, with the name=systemd hierarchy that Mesos agents need
# (systemd tracks processes there, so executors moved to mesos_executors.slice outlive the agent) and every
# controller as a v1 hierarchy (read-only inside: nspawn delegates no v1 controller); "unified" is cgroup v2
# only (Debian 12's default boot); "hybrid" is nspawn's choice on a hybrid host like this one.
CGROUP_LAYOUTS = ("legacy", "hybrid", "unified")
NODE_CGROUP_LAYOUT = "legacy"  #: what the image asks of an OTC kernel (image/install-node.sh): the same here


def nspawn_environment(layout: str) -> dict[str, str]:
    """The variables that make systemd-nspawn boot ``layout``."""
    if layout not in CGROUP_LAYOUTS:
        raise ValueError(f"cgroup layout {layout!r}: one of {', '.join(CGROUP_LAYOUTS)}")
    return {"legacy": {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "0"}, "hybrid": {},
            "unified": {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}}[layout]


class MachineError(ProvisionError):
    """An instance could not be started, controlled or removed."""


@dataclass(frozen=True)
class MachineSpec:
    """What the supervisor needs to boot an instance; written to ``<node dir>/spec.json``."""

    name: str
    image: str
    uuid: str
    bridge: str
    node_dir: str
    stop_timeout: float = 30.0
    cgroup_layout: str = NODE_CGROUP_LAYOUT

    @property
    def folder(self) -> Path:
        return Path(self.node_dir)

    @property
    def network_file(self) -> Path:
        return self.folder / "10-host0.network"

    @property
    def merged(self) -> Path:
        return self.folder / "root"

    @property
    def status_file(self) -> Path:
        return self.folder / "supervisor.json"

    @property
    def log_file(self) -> Path:
        return self.folder / "console.log"

    @property
    def cgroups(self) -> list[Path]:
        return cgroup_folders(Names.cgroup(self.name))

    def save(self) -> Path:
        path = self.folder / "spec.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> MachineSpec:
        return cls(**json.loads(path.read_text()))

    def nspawn_argv(self) -> list[str]:
        return [
            "systemd-nspawn", "-D", str(self.merged), "--boot", "--register=no", "--keep-unit",
            "-M", self.name, f"--hostname={self.name}", f"--uuid={self.uuid}", "--console=passive",
            "--resolv-conf=off", f"--network-bridge={self.bridge}",
            f"--bind-ro={self.network_file}:/etc/systemd/network/10-host0.network",
        ]


# -- cgroups ---------------------------------------------------------------------------------------------------
def cgroup_folders(name: str) -> list[Path]:
    """The container's cgroup folders: in the ``systemd`` and ``unified`` trees of a hybrid host, else (pure
    cgroup v2) below the root."""
    if (CGROUP_ROOT / "cgroup.controllers").is_file():
        return [CGROUP_ROOT / name]
    return [CGROUP_ROOT / h / name for h in ("systemd", "unified") if (CGROUP_ROOT / h / "cgroup.procs").is_file()]


def cgroup_pids(folder: Path) -> list[int]:
    """Every process in ``folder`` and the cgroups below it."""
    pids: list[int] = []
    for dirpath, _dirs, files in os.walk(folder):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                pids += [int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()]
    return pids


def remove_cgroup(folder: Path, timeout: float = 5.0) -> None:
    """``rmdir`` ``folder`` depth first, SIGKILLing any process still in it."""
    deadline = time.monotonic() + timeout
    while folder.is_dir():
        pids = cgroup_pids(folder)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        errors = []
        for d in sorted((Path(d) for d, _s, _f in os.walk(folder)), key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append(f"{d}: {exc.strerror}")
        if folder.is_dir() and time.monotonic() >= deadline:
            raise MachineError(f"cannot remove cgroup {folder}: {'; '.join(errors)}; pids {pids}")
        if folder.is_dir():
            time.sleep(0.05)


# -- the disk ----------------------------------------------------------------------------------------------------
def mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


def mount_disk(spec: MachineSpec) -> None:
    """The instance's disk: an overlay of its own upper layer on the read-only node image."""
    if mounted(spec.merged):
        return
    for sub in ("upper", "work"):
        (spec.folder / "disk" / sub).mkdir(parents=True, exist_ok=True)
    spec.merged.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={spec.image},upperdir={spec.folder / 'disk/upper'},workdir={spec.folder / 'disk/work'}"
    result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(spec.merged)],
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise MachineError(f"{spec.name}: mounting its disk failed: {result.stderr.strip()}")


def unmount_disk(merged: Path) -> None:
    if mounted(merged):
        result = subprocess.run(["umount", str(merged)], capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(merged)], capture_output=True, timeout=30, check=False)


# -- the supervisor, from the outside -----------------------------------------------------------------------------
def read_status(folder: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        status = json.loads((folder / "supervisor.json").read_text())
        if isinstance(status, dict):
            return status
    return {}


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def supervisor_pid(folder: Path) -> int | None:
    """The live supervisor of the instance in ``folder``, found by its command line (not by a recorded pid:
    pids are reused, and a supervisor may not have written its status yet when ``provision-min`` died)."""
    wanted = str(folder / "spec.json")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if len(argv) > 3 and argv[2] == SUPERVISOR_MODULE and argv[3] == wanted and alive(int(entry.name)):
                return int(entry.name)
    return None


def memory_rss(name: str) -> int:
    """Resident memory of every process of the instance (its cgroup), in bytes: an upper bound of what it
    costs this machine, since pages shared with other instances (the image's files) count once per instance."""
    import psutil

    total = 0
    for cg in cgroup_folders(Names.cgroup(name))[:1]:
        for pid in set(cgroup_pids(cg)):
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
    return total


def systemd_pid(folder: Path) -> int | None:
    """The instance's systemd (PID 1 inside), as seen from this machine; None when it is not running."""
    nspawn = read_status(folder).get("nspawn_pid")
    if not isinstance(nspawn, int):
        return None
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
    return None


def start(spec: MachineSpec) -> int:
    """Start the instance's supervisor, detached; returns its pid (the boot goes on in the background)."""
    spec.folder.mkdir(parents=True, exist_ok=True)
    spec_path = spec.save()
    with spec.log_file.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(spec_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True, cwd="/",
            env={"PATH": os.environ.get("PATH", CONTAINER_PATH), "LC_ALL": "C.UTF-8",
                 **{k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "VIRTUAL_ENV")}},
        )
    return proc.pid


def stop_unit(folder: Path, unit: str, timeout: float = 60.0) -> bool:
    """``systemctl stop <unit>`` inside the running instance: the unit stops as it does on a restart, not as on a
    shutdown (``down`` so keeps the agent's daemon from draining a node that is deleted with its whole cluster).
    False when the instance does not run or the stop did not succeed (its poweroff then goes on as usual)."""
    pid = systemd_pid(folder)
    if pid is None:
        return False
    try:
        done = subprocess.run(["nsenter", "-t", str(pid), "-a", "systemctl", "stop", unit], capture_output=True,
                              timeout=timeout, env={"PATH": CONTAINER_PATH}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def stop(name: str, folder: Path, timeout: float = 45.0) -> None:
    """Power the instance off cleanly (SIGTERM to its supervisor) and remove it from this machine.

    Also when its supervisor is gone (``provision-min`` or the supervisor was killed): then systemd-nspawn
    is stopped directly from its cgroup. Afterwards nothing of the instance remains: no process, cgroup,
    mount or folder.
    """
    pid = supervisor_pid(folder)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:  # that one process: no scan of /proc every 50 ms
            time.sleep(0.05)
    cgroups = cgroup_folders(Names.cgroup(name))
    nspawn = [p for cg in cgroups for p in cgroup_pids(cg) if comm(p) == "systemd-nspawn"]
    for p in set(nspawn):  # an orphan: a clean poweroff first
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in nspawn) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid is not None and alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for cg in reversed(cgroups):
        remove_cgroup(cg)
    unmount_disk(folder / "root")
    if mounted(folder / "root"):
        raise MachineError(f"{name}: its disk {folder / 'root'} is still mounted")
    remove_folder(folder)


def remove_folder(folder: Path) -> None:
    """``rm -rf`` that never crosses into a mount (a busy overlay must not take the image with it)."""
    if not folder.exists():
        return
    result = subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], capture_output=True, text=True,
                            timeout=300, check=False)
    if result.returncode != 0:
        raise MachineError(f"cannot remove {folder}: {result.stderr.strip()}")


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, not a zombie: a supervisor that exited stays a zombie of its parent until it is reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
