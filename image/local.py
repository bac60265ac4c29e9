"""The ``local`` builder: a node image as a directory tree, for systemd-nspawn containers (the local cloud).

Two cached layers under ``/var/cache/bootstrap-agent/images/``, each named by the sha256 of its recipe:

* ``base-<digest>``: ``debootstrap --variant=minbase`` of Debian 12, the local cloud's platform fixes (what a
  cloud's own Debian image brings: systemd-networkd, a static resolver, no ``/etc/hostname``), and the
  install script's ``--phase packages`` (apt in the chroot, from the host's mirror). Its recipe is the
  debootstrap line, the fixes and the package list, so it is rebuilt only when those change (~2 min).
* ``node-<digest>``: a copy of the base on which ``install-node.sh`` runs completely in the chroot: the agent
  from a wheel of this source tree, its dependencies from a wheelhouse downloaded on the host with
  ``pip download`` (the chroot installs offline), units, nginx, identity removed. Its recipe adds the digest
  of the install script and units, of the agent's sources (and, with stand-ins, of ``standins/``), the
  dependency list and the options (~20 s).

Builds happen in a temporary folder beside the cache entry, are renamed into place when complete, and run
under a file lock: concurrent sessions never build the same layer twice nor see half a tree. An unchanged
recipe is never rebuilt. A cache entry is read-only by convention: containers use it through an overlay.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from image.debcheck import check_deb
from image.recipe import (
    ALLUXIO_JAVA_WHEEL,
    IMAGE_WHEELS,
    INSTALL_SCRIPT,
    NODE_PYTHON,
    PROJECT_DIR,
    UNITS_DIR,
    BuildError,
    NodeOptions,
    _run,
    build_standins_wheel,
    build_wheel,
    dependencies,
    download_wheelhouse,
    package_list,
    recipe_files_digest,
    source_digest,
    standins_digest,
)
from image.rootfs import chroot_mounts, locked, mounts_below, pid_alive, remove_tree, touch

CACHE_ROOT_ENV = "BOOTSTRAP_AGENT_IMAGE_CACHE"  #: another cache folder (e.g. to measure a cold build)
CACHE_ROOT = Path(os.environ.get(CACHE_ROOT_ENV) or "/var/cache/bootstrap-agent/images")
SUITE = "bookworm"
INCLUDE = ("systemd", "systemd-sysv", "dbus", "iproute2", "libnss-myhostname", "python3")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STAGE = "root/.bootstrap-agent-build"  # below the rootfs, while the install script runs
#: The real Spark 3.5 of the local image (its agents' shuffle service, install-node.sh PYSPARK_WHEEL): PyPI's
#: pyspark is an sdist only (318 MB: Spark's jars and bin/), so its wheel is built on the host (~20 s, pure
#: Python) into the wheelhouse, beside the binary wheels ``pip download`` fetched.
PYSPARK = "pyspark==3.5.9"
PYSPARK_WHEEL = "pyspark-3.5.*-py2.py3-none-any.whl"
_BUILD_RE = re.compile(r"^\.build-(?:base|node|wheelhouse)-[0-9a-f]+-(\d+)$")

# The local cloud's platform layer, run on the host with $ROOTFS set: what an OTC Debian image gets from its
# cloud (network configuration, resolver, hostname) is done here for containers. Part of the base recipe.
PLATFORM_FIXUPS = r"""
set -eu
# systemd-nspawn --hostname= names each container; /etc/hostname would override it.
rm -f "$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOTFS/etc/hosts"
# No route out of the local cloud: a static resolver that fails fast; the own name comes from nss-myhostname.
rm -f "$ROOTFS/etc/resolv.conf"
printf '# local cloud: no DNS\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > "$ROOTFS/etc/resolv.conf"
grep -q '^hosts:.*myhostname' "$ROOTFS/etc/nsswitch.conf"
# Each container gets a networkd file for host0 (address, gateway, the route to the metadata service).
chroot "$ROOTFS" systemctl enable --quiet systemd-networkd.service
"""


@dataclass
class LocalImage:
    path: Path  #: the rootfs of the node image (read-only: boot it with an overlay)
    digest: str
    built: bool  #: False when it came from the cache
    seconds: dict[str, float] = field(default_factory=dict)  #: per step, for the steps that ran

    @property
    def recipe_path(self) -> Path:
        return self.path.parent / f"{self.path.name}.recipe"


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses for bookworm (deb822 ``.sources`` or one-line ``.list``)."""
    files = [sources_dir / "sources.list"]
    listdir = sources_dir / "sources.list.d"
    if listdir.is_dir():
        files += sorted(p for p in listdir.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for paragraph in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in paragraph.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if (
                    "deb" in fields.get("types", "").split()
                    and SUITE in fields.get("suites", "").split()
                    and fields.get("enabled", "yes").lower() != "no"
                    and fields.get("uris")
                ):
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    raise BuildError(f"no 'deb' source for {SUITE} in {sources_dir}/sources.list*: cannot debootstrap")


# -- recipes -------------------------------------------------------------------------------------------------
def base_recipe(options: NodeOptions, project_dir: Path = PROJECT_DIR) -> str:
    lines = [
        f"debootstrap --variant=minbase --include={','.join(INCLUDE)} {SUITE}",
        PLATFORM_FIXUPS.strip(),
        f"install-node.sh --phase packages: {' '.join(package_list(options, project_dir))}",
    ]
    if not options.standins:  # the downloads are part of the packages phase
        lines.append(f"mesos {options.mesos_deb}, alluxio {options.alluxio_tarball}")
    return "\n".join(lines) + "\n"


def node_recipe(options: NodeOptions, base_digest: str, project_dir: Path = PROJECT_DIR) -> str:
    env = " ".join(f"{k}={v}" for k, v in sorted(options.env().items()))
    standins = f"stand-in sources {standins_digest(project_dir)}\n" if options.standins else ""
    return (
        f"base {base_digest}\n"
        f"install script and units {recipe_files_digest(project_dir)}\n"
        f"agent sources {source_digest(project_dir)}\n"
        f"{standins}"
        f"dependencies (python {NODE_PYTHON}) {' '.join([*dependencies(project_dir), *IMAGE_WHEELS, PYSPARK])}\n"
        f"options {env}\n"
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stage(rootfs: Path, project_dir: Path) -> Path:
    """Copy the install script and the units into the rootfs, in the project's layout."""
    stage = rootfs / STAGE
    remove_tree(stage)
    (stage / INSTALL_SCRIPT).parent.mkdir(parents=True)
    shutil.copy2(project_dir / INSTALL_SCRIPT, stage / INSTALL_SCRIPT)
    shutil.copytree(project_dir / UNITS_DIR, stage / UNITS_DIR)
    return stage


def run_install_script(rootfs: Path, options: NodeOptions, log: Path, *, phase: str, network: bool,
                       extra_env: dict[str, str] | None = None, project_dir: Path = PROJECT_DIR) -> None:
    """``install-node.sh`` in the chroot, with a clean environment: only the documented variables.

    The script and units must be staged (``_stage``); a Mesos .deb or Alluxio tarball given as a local path
    is copied in beside them (the chroot cannot see the host's files), URLs are fetched by the script.
    """
    stage = Path("/") / STAGE
    env = {"PATH": CHROOT_PATH, "HOME": "/root", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
           "UNITS_DIR": str(stage / UNITS_DIR), **options.env(), **(extra_env or {})}
    for name in ("MESOS_DEB", "ALLUXIO_TARBALL", "ALLUXIO_JAVA"):
        source = options.env().get(name, "")  # the user's (host) paths; extra_env's are inside already
        if source and not re.match(r"^https?://", source):
            downloads = rootfs / STAGE / "downloads"
            downloads.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, downloads / Path(source).name)
            env[name] = str(stage / "downloads" / Path(source).name)
    argv = ["chroot", str(rootfs), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in sorted(env.items())),
            "bash", str(stage / INSTALL_SCRIPT), "--phase", phase]
    with chroot_mounts(rootfs, network=network):
        _run(argv, f"install-node.sh --phase {phase} (in the chroot)", log, 1800)


# -- the builder ---------------------------------------------------------------------------------------------
class LocalBuilder:
    def __init__(self, options: NodeOptions | None = None, *, cache_root: Path = CACHE_ROOT,
                 project_dir: Path = PROJECT_DIR, lock_timeout: float = 1800.0) -> None:
        self.options = options or NodeOptions()
        self.cache_root = cache_root
        self.project_dir = project_dir
        self.lock_timeout = lock_timeout

    def check_mesos_deb(self) -> None:
        """A Mesos .deb given as a path must install on Debian 12, checked before anything is built (a URL is
        checked by install-node.sh in the base, before it installs anything)."""
        deb = self.options.mesos_deb
        if not self.options.standins and deb and not re.match(r"^https?://", deb):
            check_deb(Path(deb))

    def digests(self) -> tuple[str, str]:
        base = _digest(base_recipe(self.options, self.project_dir))
        node = _digest(node_recipe(self.options, base, self.project_dir))
        return base, node

    def cached(self) -> Path | None:
        """The node image for the current recipe, if it is built already."""
        _base, node = self.digests()
        path = self.cache_root / f"node-{node}"
        return path if path.is_dir() else None

    def build(self) -> LocalImage:
        """The node image for the current recipe: from the cache, or built (base layer too when missing)."""
        started = time.monotonic()
        self.check_mesos_deb()
        base_text = base_recipe(self.options, self.project_dir)
        base_digest = _digest(base_text)
        node_text = node_recipe(self.options, base_digest, self.project_dir)
        node_digest = _digest(node_text)
        final = self.cache_root / f"node-{node_digest}"
        if final.is_dir():
            touch(final)
            return LocalImage(final, node_digest, built=False, seconds={"lookup": time.monotonic() - started})
        seconds: dict[str, float] = {}
        with locked(self.cache_root / ".lock", self.lock_timeout):
            if final.is_dir():  # another session built it while we waited
                touch(final)
                return LocalImage(final, node_digest, built=False, seconds={"lookup": time.monotonic() - started})
            self._remove_stale_builds()
            base = self.cache_root / f"base-{base_digest}"
            if not base.is_dir():
                step = time.monotonic()
                self._build_base(base, base_text)
                seconds["base"] = time.monotonic() - step
            touch(base)
            step = time.monotonic()
            wheelhouse = self._wheelhouse()
            seconds["wheelhouse"] = time.monotonic() - step
            step = time.monotonic()
            self._build_node(base, final, node_text, wheelhouse, seconds)
            seconds["node"] = time.monotonic() - step
            self.prune()
        seconds["total"] = time.monotonic() - started
        return LocalImage(final, node_digest, built=True, seconds=seconds)

    # -- layers ---------------------------------------------------------------------------------------------
    def _build_base(self, final: Path, recipe: str) -> None:
        tmp = self.cache_root / f".build-{final.name}-{os.getpid()}"
        log = self.cache_root / f"{final.name}.log"
        log.write_text(f"# building {final.name} from:\n{recipe}")
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        try:
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(tmp),
                  debian_mirror()], "debootstrap", log, 1200)
            if mounts_below(tmp):  # debootstrap unmounts what it mounted; make sure
                raise BuildError(f"debootstrap left mounts below {tmp}: {mounts_below(tmp)}")
            _run(["sh", "-c", PLATFORM_FIXUPS], "platform fixes", log, 120,
                 env={"PATH": CHROOT_PATH, "ROOTFS": str(tmp)})
            _stage(tmp, self.project_dir)
            run_install_script(tmp, self.options, log, phase="packages", network=True,
                               project_dir=self.project_dir)
            remove_tree(tmp / STAGE)
            (self.cache_root / f"{final.name}.recipe").write_text(recipe)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise

    def _wheelhouse(self) -> Path:
        deps = [*dependencies(self.project_dir), *IMAGE_WHEELS]
        key = _digest(f"python {NODE_PYTHON} {os.uname().machine}\n" + "\n".join([*deps, PYSPARK]))
        final = self.cache_root / f"wheelhouse-{key}"
        if final.is_dir():
            touch(final)
            return final
        tmp = self.cache_root / f".build-wheelhouse-{key}-{os.getpid()}"
        log = self.cache_root / f"{final.name}.log"
        log.write_text("# pip download of: " + " ".join(deps) + "\n")
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        try:
            download_wheelhouse(deps, tmp, log)
            _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "--wheel-dir",
                  str(tmp), PYSPARK], f"pip wheel {PYSPARK}", log, 900)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise
        return final

    def _build_node(self, base: Path, final: Path, recipe: str, wheelhouse: Path, seconds: dict[str, float]) -> None:
        tmp = self.cache_root / f".build-{final.name}-{os.getpid()}"
        log = self.cache_root / f"{final.name}.log"
        log.write_text(f"# building {final.name} from:\n{recipe}")
        remove_tree(tmp)
        try:
            step = time.monotonic()
            _run(["cp", "-a", "--", str(base), str(tmp)], "copy of the base layer", log, 600)
            seconds["copy"] = time.monotonic() - step
            self.install_node(tmp, wheelhouse, log, seconds)
            (self.cache_root / f"{final.name}.recipe").write_text(recipe)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise

    def install_node(self, rootfs: Path, wheelhouse: Path, log: Path, seconds: dict[str, float] | None = None) -> None:
        """Run the whole install script in ``rootfs`` (a copy of a base layer): the agent from a wheel of this
        source tree, offline from ``wheelhouse``. The staging folder is removed afterwards."""
        seconds = {} if seconds is None else seconds
        step = time.monotonic()
        stage = _stage(rootfs, self.project_dir)
        wheel = build_wheel(stage / "dist", self.project_dir, log, wheelhouse)
        shutil.copytree(wheelhouse, stage / "wheelhouse")
        inside = Path("/") / STAGE
        extra_env = {"AGENT_SOURCE": str(inside / "dist" / wheel.name), "WHEELHOUSE": str(inside / "wheelhouse")}
        if self.options.standins:  # a distribution of their own, installed only into the stand-in image
            standins = build_standins_wheel(stage / "dist", self.project_dir, log, wheelhouse)
            extra_env["STANDINS_SOURCE"] = str(inside / "dist" / standins.name)
        seconds["wheel"] = time.monotonic() - step
        step = time.monotonic()
        java = sorted(wheelhouse.glob(ALLUXIO_JAVA_WHEEL))
        if java and not self.options.alluxio_java:  # the Alluxio units' Java 11, from the wheelhouse (offline)
            extra_env["ALLUXIO_JAVA"] = str(inside / "wheelhouse" / java[-1].name)
        spark = sorted(wheelhouse.glob(PYSPARK_WHEEL))
        if spark:  # the real Spark for the agents' shuffle service (/opt/spark)
            extra_env["PYSPARK_WHEEL"] = str(inside / "wheelhouse" / spark[-1].name)
        try:
            run_install_script(rootfs, self.options, log, phase="all", network=False, project_dir=self.project_dir,
                               extra_env=extra_env)
        finally:
            remove_tree(rootfs / STAGE)
        seconds["install"] = time.monotonic() - step

    def base_path(self) -> Path:
        """Where the base layer of the current recipe is (or will be) cached."""
        return self.cache_root / f"base-{self.digests()[0]}"

    def wheelhouse(self) -> Path:
        """The cached wheelhouse of the agent's dependencies (downloaded when missing)."""
        with locked(self.cache_root / ".lock", self.lock_timeout):
            return self._wheelhouse()

    # -- housekeeping -----------------------------------------------------------------------------------------
    def _remove_stale_builds(self) -> None:
        if not self.cache_root.is_dir():
            return
        for entry in self.cache_root.iterdir():
            match = _BUILD_RE.fullmatch(entry.name)
            if match and not pid_alive(int(match.group(1))):
                remove_tree(entry)

    def prune(self, keep: int = 3, min_idle: float = 3600.0) -> list[Path]:
        """Remove layers beyond the ``keep`` most recently used of each kind, if idle for ``min_idle`` s.

        "Used" is the folder's mtime, touched by every ``build()`` that returns it: a layer a concurrent
        session has just booted is never removed under it.
        """
        removed: list[Path] = []
        now = time.time()
        for kind in ("base", "node", "wheelhouse", "bench"):
            entries = sorted((p for p in self.cache_root.glob(f"{kind}-*") if p.is_dir()),
                             key=lambda p: p.stat().st_mtime, reverse=True)
            for entry in entries[keep:]:
                if now - entry.stat().st_mtime >= min_idle:
                    remove_tree(entry)
                    for suffix in (".log", ".recipe"):
                        entry.with_name(entry.name + suffix).unlink(missing_ok=True)
                    removed.append(entry)
        return removed


def unavailable_reason() -> str | None:
    """Why the local builder cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "the local image builder needs root (debootstrap, chroot)"
    missing = [tool for tool in ("debootstrap", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install debootstrap)"
    return None


def build_local(options: NodeOptions | None = None, **kw: object) -> LocalImage:
    """Shorthand: ``LocalBuilder(options, **kw).build()``."""
    return LocalBuilder(options, **kw).build()  # type: ignore[arg-type]


__all__: Sequence[str] = ("CACHE_ROOT", "LocalBuilder", "LocalImage", "build_local")
