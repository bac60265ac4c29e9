"""Real systemd as PID 1 in ``systemd-nspawn`` containers, for tests (see the local-cloud recipe).

Two parts:

* ``build_test_rootfs(extra_packages=()) -> Path``: a Debian bookworm rootfs made with ``debootstrap
  --variant=minbase`` plus the recipe's one-time fixes, cached under
  ``/var/cache/bootstrap-agent/test-rootfs/<sha256 of the recipe text>``. It is built into a temporary folder
  beside the cache entry and renamed into place (atomic), under a file lock, so two pytest sessions never
  build at once and nobody sees a half-built tree; an unchanged recipe is never rebuilt. The rootfs is used
  read-only by every container (``--volatile=overlay``): never change a cache entry in place, change the
  recipe (or ``extra_packages``) instead, which gives a new hash.
* ``Container(rootfs, bind_ro=...)``: one booted container (context manager). It runs in cgroups of its own
  (``/sys/fs/cgroup/{systemd,unified}/<name>``, as the recipe says: else the containers' units collide),
  with ``--private-network`` (only ``lo``), and is controlled with ``nsenter -t <its systemd> -a ...``
  because there is no host D-Bus (``machinectl``/``systemd-run -M`` do not work here).
  ``stop()`` (also on exceptions, and at interpreter exit as a last resort) powers it off cleanly with
  SIGTERM to ``systemd-nspawn``, SIGKILLs what is left after a bounded wait, and removes the cgroup folders.

Bridged containers (the local cloud): ``TestNetwork`` is a bridge in the host's network namespace that carries
no address at all (the host takes no part in the test network), a ``gateway`` namespace holding the
subnet's gateway address (no forwarding: nothing leaves) and a ``metadata`` namespace holding
169.254.169.254 (plus one address of the subnet), each attached to the bridge by a veth.
``Container(..., network=net, ip=...)`` boots with ``--network-bridge`` and a networkd file of its own
(``Address=``, ``Gateway=``, ``LinkLocalAddressing=no`` and the on-link route to 169.254.169.254), so the
metadata service answers at the address a cloud uses, and 169.254.169.254 is never on a host interface.
``persistent=True`` boots from an overlay whose upper layer outlives a ``reboot()`` (``--volatile=overlay``
would forget everything at each boot); it is removed with the container.

``python_binds()`` lists what to ``--bind-ro`` so that ``sys.executable`` (this interpreter, with all its
packages) runs inside the container at the same path; ``PYTHONPATH`` must name the (bound) project folder.

Containers are named ``ba-test-<pid of the creating process>-<n>``, bridges ``ba-br-<pid>-<n>``;
``cleanup_stale()`` removes the containers, cgroups, overlays, bridges and half-built rootfs folders of runs
whose process is gone, and leaves live runs alone.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import ipaddress
import itertools
import os
import re
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from provision_min.local import machine, network
from tests.support import netns
from tests.support.managed import terminate

CACHE_ROOT = Path("/var/cache/bootstrap-agent/test-rootfs")
SUITE = "bookworm"
INCLUDE = ("systemd", "systemd-sysv", "dbus", "iproute2", "libnss-myhostname", "python3")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_HIERARCHIES = ("systemd", "unified")  # name=systemd (v1) and the cgroup2 tree of this hybrid host
NAME_PREFIX = "ba-test-"
_NAME_RE = re.compile(r"^ba-test-(\d+)-(\d+)$")
_BUILD_RE = re.compile(r"^\.build-[0-9a-f]+-(\d+)$")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The one-time fixes, run on the host with $ROOTFS set, after debootstrap. Part of the recipe text (hashed).
FIXUPS = r"""
set -eu
# One machine id per container: empty here, systemd fills it from --uuid at boot.
: > "$ROOTFS/etc/machine-id"
mkdir -p "$ROOTFS/var/lib/dbus"
ln -sfn /etc/machine-id "$ROOTFS/var/lib/dbus/machine-id"
# /etc/hostname would override --hostname.
rm -f "$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOTFS/etc/hosts"
# Static, and no name server: containers have no route out; the own name comes from nss-myhostname.
rm -f "$ROOTFS/etc/resolv.conf"
printf '# static (test rootfs): no DNS in test containers\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
    > "$ROOTFS/etc/resolv.conf"
grep -q '^hosts:.*myhostname' "$ROOTFS/etc/nsswitch.conf"
chroot "$ROOTFS" systemctl enable --quiet systemd-networkd.service
"""


class ContainerError(RuntimeError):
    """A rootfs could not be built, or a container could not boot or be controlled."""


# -- the rootfs --------------------------------------------------------------------------------------------
def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (the image builder's reading of /etc/apt)."""
    from image.local import BuildError
    from image.local import debian_mirror as configured

    try:
        return configured()
    except BuildError as exc:
        raise ContainerError(str(exc)) from None


def recipe_text(extra_packages: Sequence[str] = ()) -> str:
    """Everything that defines the rootfs; its hash names the cache entry."""
    lines = [
        f"debootstrap --variant=minbase --include={','.join(INCLUDE)} {SUITE}",
        FIXUPS.strip(),
    ]
    if extra_packages:
        lines.append("chroot apt-get install --no-install-recommends " + " ".join(sorted(extra_packages)))
    return "\n".join(lines) + "\n"


def _mounts_below(path: Path) -> list[str]:
    from image.rootfs import mounts_below

    return mounts_below(path)


def _remove_tree(path: Path) -> None:
    """The image builder's unmount-then-remove, with this module's error."""
    from image.recipe import BuildError
    from image.rootfs import remove_tree

    try:
        remove_tree(path)
    except BuildError as exc:
        raise ContainerError(str(exc)) from None


def _run_logged(argv: Sequence[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired:
            raise ContainerError(f"{argv[0]}: no result within {timeout:.0f} s (log: {log})") from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ContainerError(f"{shlex.join(argv)}: exit {proc.returncode} (log: {log}):\n" + "\n".join(tail))


def _chroot_install(rootfs: Path, packages: Sequence[str], log: Path) -> None:
    """``apt-get install`` in the chroot: no service starts (policy-rc.d), proc mounted only meanwhile."""
    policy = rootfs / "usr/sbin/policy-rc.d"
    resolv = rootfs / "etc/resolv.conf"
    static_resolv = resolv.read_bytes()
    policy.write_text("#!/bin/sh\n# test rootfs build: start no services\nexit 101\n")
    policy.chmod(0o755)
    shutil.copyfile("/etc/resolv.conf", resolv)  # the host's resolver, for apt, during the install only
    proc = rootfs / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True, capture_output=True, timeout=30)
    try:
        env = {"PATH": CONTAINER_PATH, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
        _run_logged(["chroot", str(rootfs), "apt-get", "update", "-o", "Acquire::Retries=3"], log, 600, env)
        _run_logged(
            [
                "chroot",
                str(rootfs),
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "-o",
                "Acquire::Retries=3",
                *packages,
            ],
            log,
            1200,
            env,
        )
        _run_logged(["chroot", str(rootfs), "apt-get", "clean"], log, 120, env)
    finally:
        subprocess.run(["umount", str(proc)], capture_output=True, timeout=30, check=False)
        if _mounts_below(proc):
            subprocess.run(["umount", "-l", str(proc)], capture_output=True, timeout=30, check=False)
        policy.unlink(missing_ok=True)
        resolv.write_bytes(static_resolv)


def _build(target: Path, extra_packages: Sequence[str], log: Path) -> None:
    _run_logged(
        ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(target), debian_mirror()],
        log,
        1200,
    )
    if _mounts_below(target):  # debootstrap unmounts its proc etc. on exit; make sure
        raise ContainerError(f"debootstrap left mounts below {target}: {_mounts_below(target)}")
    _run_logged(["sh", "-c", FIXUPS], log, 120, env={"PATH": CONTAINER_PATH, "ROOTFS": str(target)})
    if extra_packages:
        _chroot_install(target, sorted(extra_packages), log)


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """The image builder's build lock, with this module's error."""
    from image.recipe import BuildError
    from image.rootfs import locked

    try:
        with locked(path, timeout):
            yield
    except BuildError as exc:
        raise ContainerError(str(exc)) from None


def build_test_rootfs(extra_packages: Sequence[str] = (), *, lock_timeout: float = 1800.0) -> Path:
    """The cached test rootfs for this recipe; built (debootstrap, ~1 min, ~300 MB) only when missing."""
    recipe = recipe_text(extra_packages)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    final = CACHE_ROOT / digest
    if final.is_dir():
        return final
    with _locked(CACHE_ROOT / ".lock", lock_timeout):
        if final.is_dir():  # built by another session while we waited
            return final
        _remove_stale_builds()
        tmp = CACHE_ROOT / f".build-{digest}-{os.getpid()}"
        log = CACHE_ROOT / f"{digest}.log"
        log.write_text(f"# building the test rootfs {digest} from:\n{recipe}")
        _remove_tree(tmp)
        tmp.mkdir(parents=True)
        try:
            _build(tmp, extra_packages, log)
            (CACHE_ROOT / f"{digest}.recipe").write_text(recipe)
            os.rename(tmp, final)
        except BaseException:
            _remove_tree(tmp)
            raise
    return final


def _remove_stale_builds() -> list[Path]:
    removed = []
    if CACHE_ROOT.is_dir():
        for entry in CACHE_ROOT.iterdir():
            match = _BUILD_RE.fullmatch(entry.name)
            if match and not _pid_alive(int(match.group(1))):
                _remove_tree(entry)
                removed.append(entry)
    return removed


# -- running the host's Python inside ----------------------------------------------------------------------
_SYSTEM_PREFIXES = {"/", "/usr", "/usr/local"}


def python_binds() -> list[str]:
    """Folders to ``--bind-ro`` at the same path so ``sys.executable`` with its packages runs inside.

    A pyenv/venv/conda interpreter lives in a prefix of its own: bind that (and the base prefix of a venv).
    Debian's own ``/usr/bin/python3`` is also in the container (same release, same version); then only the
    host's site-packages folders are bound over the container's.
    """
    binds: list[str] = []
    for prefix in dict.fromkeys(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)):
        if prefix not in _SYSTEM_PREFIXES:
            binds.append(prefix)
    if len(binds) < len({sys.prefix, sys.base_prefix}):
        for folder in site.getsitepackages():
            real = os.path.realpath(folder)
            if os.path.isdir(real) and not any(real.startswith(b + "/") for b in binds):
                binds.append(real)
    return binds


# -- containers --------------------------------------------------------------------------------------------
_pid_alive = netns.pid_alive


cgroup_pids = machine.cgroup_pids  # the local cloud's own: one reading of cgroups for tests and product


def _remove_cgroup(folder: Path, timeout: float = 5.0) -> None:
    """``rmdir`` the cgroup ``folder`` depth first; its processes must be gone (SIGKILLed if not)."""
    try:
        machine.remove_cgroup(folder, timeout)
    except machine.MachineError as exc:
        raise ContainerError(str(exc)) from None


_counter = itertools.count(1)
_live: set[Container] = set()

# -- the test network: a bridge with no host address, a gateway namespace, a metadata namespace ---------------
METADATA_IP = "169.254.169.254"
BRIDGE_PREFIX = "ba-br-"
_BRIDGE_RE = re.compile(r"^ba-br-(\d+)-(\d+)$")
_VETH_RE = re.compile(r"^ba-v(\d+)-(\d+)$")
_net_counter = itertools.count(1)
_live_networks: set[TestNetwork] = set()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return network.ip(*args, check=check)
    except network.NetworkError as exc:
        raise ContainerError(str(exc)) from None


host_ipv4_networks = network.host_ipv4_networks


class TestNetwork:
    """A subnet for bridged containers that the host takes no part in; ``start()``/``close()`` or ``with``.

    * ``bridge``: ``ba-br-<pid>-<n>`` in the host's namespace, without any address (not even IPv6
      link-local): containers join it with ``--network-bridge``; it forwards frames between its ports only.
    * ``gateway`` (a ``TestNode``): the subnet's first address, the containers' default gateway. A new
      namespace does not forward, so nothing the containers send leaves the test network. Tests reach the
      containers from here (``net.gateway.call(...)``).
    * ``metadata`` (a ``TestNode``): 169.254.169.254/32 and the subnet's last address; run the metadata
      service here, bound to 169.254.169.254:80. Containers reach it through an on-link route (ARP on the
      bridge is answered by this namespace), as on OTC.

    ``close()`` deletes both namespaces (their veths go with them) and the bridge, also after a failure;
    ``cleanup_stale()`` removes those of crashed runs.
    """

    __test__ = False

    def __init__(self, subnet: str = "10.231.5.0/24") -> None:
        self.subnet = ipaddress.IPv4Network(subnet)
        hosts = list(self.subnet.hosts())
        if len(hosts) < 4:
            raise ValueError(f"{subnet}: too small")
        self.gateway_ip = str(hosts[0])
        self.metadata_subnet_ip = str(hosts[-1])
        self.bridge = f"{BRIDGE_PREFIX}{os.getpid()}-{next(_net_counter)}"
        self.gateway: netns.TestNode | None = None
        self.metadata: netns.TestNode | None = None
        self._veths: list[str] = []  # host ends, bridged
        self._bridge_created = False
        self._closed = False

    def __repr__(self) -> str:
        return f"TestNetwork({self.bridge}, {self.subnet})"

    def start(self) -> TestNetwork:
        if self._bridge_created:
            return self
        if self._closed:
            raise ContainerError(f"{self} was closed")
        clash = [str(i) for i in host_ipv4_networks() if i.network.overlaps(self.subnet)]
        if clash:
            raise ContainerError(f"{self.subnet} overlaps addresses of this host ({', '.join(clash)}): pick another")
        _live_networks.add(self)
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._bridge_created = True
            _ip("link", "set", self.bridge, "addrgenmode", "none")  # no IPv6 link-local address either
            _ip("link", "set", self.bridge, "up")
            prefix = self.subnet.prefixlen
            self.gateway = netns.TestNode().start()
            self._attach(self.gateway, [f"{self.gateway_ip}/{prefix}"])
            self.metadata = netns.TestNode().start()
            self._attach(self.metadata, [f"{self.metadata_subnet_ip}/{prefix}", f"{METADATA_IP}/32"])
        except BaseException:
            self.close()
            raise
        return self

    def _attach(self, node: netns.TestNode, addresses: Sequence[str]) -> None:
        """A veth from the bridge into ``node``'s namespace (``eth0`` there) carrying ``addresses``."""
        host_end = f"ba-v{os.getpid()}-{next(_net_counter)}"
        _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", node.name)
        self._veths.append(host_end)
        _ip("link", "set", host_end, "addrgenmode", "none")
        _ip("link", "set", host_end, "master", self.bridge)
        _ip("link", "set", host_end, "up")
        for address in addresses:
            _ip("-n", node.name, "addr", "add", address, "dev", "eth0")
        _ip("-n", node.name, "link", "set", "eth0", "up")

    def check_address(self, ip: str) -> None:
        address = ipaddress.IPv4Address(ip)
        if address not in self.subnet or ip in (self.gateway_ip, self.metadata_subnet_ip):
            raise ValueError(f"{ip}: not a free container address of {self.subnet}")

    def networkd_text(self, ip: str) -> str:
        """The container's ``/etc/systemd/network/10-host0.network``."""
        return (
            "# test network: written by tests/support/container.py\n"
            "[Match]\nName=host0\n\n"
            f"[Network]\nAddress={ip}/{self.subnet.prefixlen}\nGateway={self.gateway_ip}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n\n"
            f"# the metadata service: on-link, answered by the metadata namespace on the bridge\n"
            f"[Route]\nDestination={METADATA_IP}/32\n"
        )

    def links(self) -> list[str]:
        """Host interfaces attached to the bridge (the veths of the namespaces and of the containers)."""
        out = _ip("-o", "link", "show", "master", self.bridge, check=False).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]

    def close(self) -> None:
        """Delete the namespaces (and with them their veths), then the bridge; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        # The veths first (deleting one end deletes both): a namespace is freed asynchronously, so its veth
        # could otherwise outlive close() for a moment.
        for link in self._veths:
            result = _ip("link", "del", link, check=False)
            if result.returncode != 0 and _link_exists(link):
                errors.append(ContainerError(f"ip link del {link}: {result.stderr.strip()}"))
        for node in (self.metadata, self.gateway):
            if node is not None:
                try:
                    node.close()
                except BaseException as exc:
                    errors.append(exc)
        if self._bridge_created:
            result = _ip("link", "del", self.bridge, check=False)
            if result.returncode != 0 and _link_exists(self.bridge):
                errors.append(ContainerError(f"ip link del {self.bridge}: {result.stderr.strip()}"))
        _live_networks.discard(self)
        if errors:
            raise errors[0]

    def __enter__(self) -> TestNetwork:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def _links_named(pattern: re.Pattern[str]) -> list[tuple[str, int]]:
    out = _ip("-o", "link", "show", check=False).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        match = pattern.fullmatch(name)
        if match:
            found.append((name, int(match.group(1))))
    return found



class Container:
    """One ``systemd-nspawn --boot`` container from a read-only ``rootfs``; ``start()``/``stop()`` or ``with``.

    ``bind_ro`` items are ``"PATH"`` (same path inside) or ``"SRC:DST"``, as for ``--bind-ro=``.
    With ``network`` (a started ``TestNetwork``) and ``ip`` it is attached to that network's bridge;
    otherwise it has ``--private-network`` (only ``lo``). ``persistent=True``: its changes survive
    ``reboot()`` (an overlay of its own instead of ``--volatile=overlay``).
    """

    def __init__(
        self,
        rootfs: str | os.PathLike[str],
        *,
        bind_ro: Sequence[str | os.PathLike[str]] = (),
        name: str | None = None,
        boot_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        network: TestNetwork | None = None,
        ip: str | None = None,
        persistent: bool = False,
        machine_uuid: uuid.UUID | None = None,
        boot_args: Sequence[str] = (),
        cgroup_layout: str = "hybrid",
    ) -> None:
        self.rootfs = Path(rootfs)
        #: ``machine.CGROUP_LAYOUTS``: "hybrid" (systemd-nspawn's default on this host), "legacy" (as the local
        #: cloud's nodes boot), "unified" (Debian 12's default boot)
        self.nspawn_env = machine.nspawn_environment(cgroup_layout)
        self.cgroup_layout = cgroup_layout
        self.name = name or f"{NAME_PREFIX}{os.getpid()}-{next(_counter)}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.name):
            raise ValueError(f"bad container name {self.name!r}")
        if (network is None) != (ip is None):
            raise ValueError("network and ip go together")
        self.network = network
        self.ip = ip
        self.persistent = persistent
        self.boot_args = list(boot_args)  #: for the container's systemd, e.g. ``systemd.mask=UNIT``
        self.bind_ro = [os.fspath(b) for b in bind_ro]
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.uuid = machine_uuid or uuid.uuid4()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  #: the container's systemd (PID 1 inside), as seen from the host
        self.boot_seconds: float | None = None
        self.boot_state: str | None = None  #: ``systemctl is-system-running`` after boot
        self.started_at: float | None = None  #: ``time.monotonic()`` when systemd-nspawn was started (last boot)
        self.boots = 0
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.log_path = self._workdir / "nspawn.log"
        self._stopped = False
        self._created_cgroups: list[Path] = []
        self._overlay_mounted = False
        if network is not None and ip is not None:
            network.check_address(ip)
            self.network_file = self._workdir / "10-host0.network"
            self.network_file.write_text(network.networkd_text(ip))

    def __repr__(self) -> str:
        return f"Container({self.name}, pid={self.pid})"

    @property
    def cgroups(self) -> list[Path]:
        return [CGROUP_ROOT / h / self.name for h in CGROUP_HIERARCHIES]

    @property
    def root_dir(self) -> Path:
        """What systemd-nspawn boots: the rootfs itself, or the persistent overlay on top of it."""
        return self._workdir / "overlay" / "merged" if self.persistent else self.rootfs

    @property
    def upper_dir(self) -> Path:
        """With ``persistent``: every change the container made to its rootfs (the overlay's upper layer)."""
        return self._workdir / "overlay" / "upper"

    def nspawn_argv(self) -> list[str]:
        argv = [
            "systemd-nspawn",
            "-D",
            str(self.root_dir),
            "--boot",
            "--register=no",
            "--keep-unit",
            "-M",
            self.name,
            f"--hostname={self.name}",
            f"--uuid={self.uuid}",
            "--console=passive",
            "--resolv-conf=off",
        ]
        if not self.persistent:
            argv.append("--volatile=overlay")
        if self.network is not None:
            argv += [f"--network-bridge={self.network.bridge}",
                     f"--bind-ro={self.network_file}:/etc/systemd/network/10-host0.network"]
        else:
            argv.append("--private-network")
        argv += [f"--bind-ro={b}" for b in self.bind_ro]
        return argv + self.boot_args

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> Container:
        if self.proc is not None:
            return self
        if self._stopped:
            raise ContainerError(f"{self} was stopped")
        _live.add(self)
        try:
            if self.persistent:
                self._mount_overlay()
            self._boot()
        except BaseException:
            self.stop()
            raise
        return self

    def _mount_overlay(self) -> None:
        top = self._workdir / "overlay"
        for sub in ("upper", "work", "merged"):
            (top / sub).mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={self.rootfs},upperdir={top / 'upper'},workdir={top / 'work'}"
        result = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(top / "merged")],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise ContainerError(f"{self.name}: overlay mount failed: {result.stderr.strip()}")
        self._overlay_mounted = True

    def _boot(self) -> None:
        """Start systemd-nspawn in the container's own cgroups and wait until systemd finished booting."""
        started = time.monotonic()
        self.started_at = started
        for cg in self.cgroups:
            cg.mkdir()
            if cg not in self._created_cgroups:
                self._created_cgroups.append(cg)
        # The shell moves itself into the container's own cgroups, then becomes systemd-nspawn.
        script = "".join(f'echo $$ > "{cg}/cgroup.procs" && ' for cg in self.cgroups) + 'exec "$@"'
        with self.log_path.open("ab") as log:
            log.write(f"--- boot {self.boots + 1}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                ["sh", "-c", script, "sh", *self.nspawn_argv()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a ^C to pytest reaches pytest, which then stops us cleanly
                env={"PATH": os.environ.get("PATH", CONTAINER_PATH), "LC_ALL": "C.UTF-8", **self.nspawn_env},
            )
        self.boots += 1
        self.pid = self._find_systemd(started + self.boot_timeout)
        self.boot_state = self._wait_booted(started + self.boot_timeout)
        self.boot_seconds = time.monotonic() - started

    def _wait_exit(self, timeout: float) -> int:
        """Wait for systemd-nspawn to end (SIGKILL after ``timeout``); remove the cgroups; its exit code."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            code = self.proc.wait(timeout=10)
        for cg in reversed(self._created_cgroups):
            _remove_cgroup(cg)
        self.pid = None
        return code

    def reboot(self, timeout: float | None = None) -> float:
        """``systemctl reboot`` inside, then boot again (same name, uuid, network and, when persistent, the
        same disk). Returns the seconds from the reboot request until the new boot finished."""
        if self.proc is None or self._stopped:
            raise ContainerError(f"{self} is not running")
        started = time.monotonic()
        self.exec(["systemctl", "reboot"], capture_output=True, timeout=30)
        code = self._wait_exit(timeout or self.stop_timeout)
        if code not in (0, 133):  # 133: the container asked for a reboot
            raise self._fail(f"systemd-nspawn exited with {code} on reboot, not 133")
        try:
            self._boot()
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def poweroff_seconds(self) -> float:
        """Power off cleanly (SIGTERM to systemd-nspawn), like ``stop()``; the seconds it took."""
        started = time.monotonic()
        self.stop()
        return time.monotonic() - started

    def _fail(self, what: str) -> ContainerError:
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        tail = "\n".join(log.splitlines()[-20:])
        return ContainerError(f"{self.name}: {what}\n--- systemd-nspawn output:\n{tail}")

    def _find_systemd(self, deadline: float) -> int:
        """PID of the container's systemd: the child of systemd-nspawn named ``systemd``."""
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise self._fail(f"systemd-nspawn exited with {self.proc.returncode} during boot")
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                for child in children:
                    with contextlib.suppress(OSError):
                        if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                            return int(child)
            if time.monotonic() >= deadline:
                raise self._fail(f"no systemd below systemd-nspawn within {self.boot_timeout} s")
            time.sleep(0.02)

    def _wait_booted(self, deadline: float) -> str:
        """Poll ``is-system-running`` until boot is over (``running``; ``degraded`` is accepted, recorded)."""
        state = ""
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise self._fail(f"systemd-nspawn exited with {self.proc.returncode} during boot")
            left = deadline - time.monotonic()
            if left <= 0:
                failed = self.exec(["systemctl", "--failed", "--no-legend"], capture_output=True, text=True, timeout=10)
                jobs = self.exec(["systemctl", "list-jobs", "--no-legend"], capture_output=True, text=True, timeout=10)
                raise self._fail(
                    f"boot not done within {self.boot_timeout} s (state {state!r}); "
                    f"failed: {failed.stdout.strip()!r}; jobs: {jobs.stdout.strip()!r}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = self.exec(
                    ["systemctl", "is-system-running", "--wait"],
                    capture_output=True,
                    text=True,
                    timeout=max(0.5, min(left, 10.0)),
                )
                state = result.stdout.strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.05)

    def stop(self) -> None:
        """Clean poweroff (SIGTERM to systemd-nspawn), bounded; SIGKILL what is left; remove the cgroups (and
        the persistent overlay)."""
        if self._stopped:
            return
        self._stopped = True
        errors: list[BaseException] = []
        try:
            if self.proc is not None:
                terminate(self.proc, self.stop_timeout)
        except BaseException as exc:
            errors.append(exc)
        for cg in reversed(self._created_cgroups):
            try:
                _remove_cgroup(cg)
            except BaseException as exc:
                errors.append(exc)
        try:
            _remove_tree(self._workdir)  # unmounts the overlay first, if there is one
        except BaseException as exc:
            errors.append(exc)
        self._overlay_mounted = False
        _live.discard(self)
        if errors:
            raise errors[0]

    close = stop

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- running things inside ------------------------------------------------------------------------------
    def exec_argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        if self.pid is None or self._stopped:
            raise ContainerError(f"{self} is not running")
        return ["nsenter", "-t", str(self.pid), "-a", *(os.fspath(a) for a in argv)]

    def exec(self, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the container (all its namespaces, its root, cwd ``/``).

        Defaults: ``timeout`` 60 s, stdin from /dev/null (unless ``input`` is given) and a clean environment
        (the host's ``PATH``, ``PYTHON*`` or proxies mean nothing inside); pass ``env`` to choose.
        """
        kw.setdefault("timeout", 60)
        if "input" not in kw:
            kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("env", {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/root"})
        return subprocess.run(self.exec_argv(argv), **kw)

    def python(
        self, args: Sequence[str], *, pythonpath: Sequence[str | os.PathLike[str]] = (), **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run this very interpreter (``sys.executable``) inside; it must be bound in (``python_binds()``).

        ``pythonpath`` folders (bound in too) go to ``PYTHONPATH``; no ``.pyc`` is written (the binds are
        read-only). Other ``kw`` as for ``exec``.
        """
        env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/root", "PYTHONDONTWRITEBYTECODE": "1"}
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(os.fspath(p) for p in pythonpath)
        env.update(kw.pop("env", {}))
        return self.exec([sys.executable, *args], env=env, **kw)

    def write_file(self, path: str, text: str | bytes, mode: int = 0o644) -> None:
        """Write ``path`` inside the container atomically (temp file + rename), creating parent folders."""
        data = text.encode() if isinstance(text, str) else text
        script = (
            'set -e; mkdir -p "$(dirname "$1")"; t="$1.ba-tmp.$$"; umask 077; cat > "$t"; '
            'chmod "$2" "$t"; mv -f "$t" "$1"'
        )
        result = self.exec(["sh", "-c", script, "sh", path, f"{mode:o}"], input=data, capture_output=True)
        if result.returncode != 0:
            raise ContainerError(f"write {path} in {self.name}: {result.stderr.decode(errors='replace').strip()}")

    def read_file(self, path: str) -> str:
        result = self.exec(["cat", path], capture_output=True, text=True)
        if result.returncode != 0:
            raise ContainerError(f"read {path} in {self.name}: {result.stderr.strip()}")
        return str(result.stdout)

    def systemctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = self.exec(
            ["systemctl", *args], capture_output=True, text=True, check=check
        )
        return result

    def journal(self, unit: str, lines: int = 50) -> str:
        result = self.exec(["journalctl", "--no-pager", "-n", str(lines), "-u", unit], capture_output=True, text=True)
        return str(result.stdout)


def unavailable_reason() -> str | None:
    """Why containers cannot run here (not root, a tool or the cgroup hierarchies missing), or None."""
    if os.geteuid() != 0:
        return "systemd-nspawn containers need root"
    missing = [tool for tool in ("systemd-nspawn", "debootstrap", "nsenter", "chroot") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install systemd-container debootstrap)"
    for hierarchy in CGROUP_HIERARCHIES:
        if not (CGROUP_ROOT / hierarchy / "cgroup.procs").is_file():
            return f"no cgroup hierarchy at {CGROUP_ROOT / hierarchy}"
    return None


def cleanup_stale() -> list[str]:
    """Stop and remove ``ba-test-<pid>-<n>`` containers (and cgroups) whose creating process is gone.

    Also removes their nspawn logs and overlays in the temp folder, the bridges and veths of their test
    networks, and half-built rootfs folders of dead builds.
    """
    removed: list[str] = []
    names: set[str] = set()
    for hierarchy in CGROUP_HIERARCHIES:
        folder = CGROUP_ROOT / hierarchy
        if folder.is_dir():
            names.update(p.name for p in folder.iterdir() if p.is_dir() and _NAME_RE.fullmatch(p.name))
    for name in sorted(names):
        match = _NAME_RE.fullmatch(name)
        assert match is not None
        if int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        cgroups = [CGROUP_ROOT / h / name for h in CGROUP_HIERARCHIES]
        # A clean poweroff first (SIGTERM to systemd-nspawn), then whatever is left is killed.
        pids = set().union(*(cgroup_pids(cg) for cg in cgroups))
        nspawn = [p for p in pids if _comm(p) == "systemd-nspawn"]
        for pid in nspawn:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_pid_alive(p) for p in nspawn) and time.monotonic() < deadline:
            time.sleep(0.1)
        for cg in reversed(cgroups):
            _remove_cgroup(cg)
        removed.append(name)
    for workdir in Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}*-*-*"):  # nspawn logs, overlays of dead runs
        match = re.match(r"^ba-test-(\d+)-\d+-", workdir.name)
        if match and workdir.is_dir() and not _pid_alive(int(match.group(1))):
            _remove_tree(workdir)  # unmounts a persistent container's overlay first
    for pattern in (_VETH_RE, _BRIDGE_RE):  # test networks of dead runs (their namespaces: netns.cleanup_stale)
        for link, pid in _links_named(pattern):
            if pid != os.getpid() and not _pid_alive(pid):
                _ip("link", "del", link, check=False)
                removed.append(link)
    if CACHE_ROOT.is_dir():
        with contextlib.suppress(ContainerError), _locked(CACHE_ROOT / ".lock", 0.0):  # busy: a build runs
            removed += [p.name for p in _remove_stale_builds()]
    return removed


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@atexit.register
def _stop_leftovers() -> None:
    """Last resort (e.g. KeyboardInterrupt past the fixtures): no container outlives the process."""
    for container in list(_live):
        with contextlib.suppress(Exception):
            container.stop()
    for net in list(_live_networks):
        with contextlib.suppress(Exception):
            net.close()
