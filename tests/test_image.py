"""The node image: the install script (``image/install-node.sh``) and the ``local`` builder (``image/local.py``).

The built image is looked at as a tree (no container): which units are enabled, that no instance identity is
left, that nginx carries the agent's own metadata cache text, that the agent runs from its venv, and that
``systemd-analyze verify`` is silent on the units *as installed*, with the real programs of the image. The
boot itself is tests/test_boot.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

import image.local as local
from bootstrap_agent import __version__
from bootstrap_agent.metadata_cache import render_metadata_cache_conf
from image.recipe import NODE_PYTHON, NodeOptions, package_list, source_digest
from image.rootfs import tree_size

PROJECT_DIR = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT_DIR / "image" / "install-node.sh"
OURS = ("bootstrap-agent", "zookeeper", "mesos-master", "mesos-agent", "alluxio-master", "alluxio-worker",
        "alluxio-proxy")
MANAGED = OURS[1:]


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The install script with only ``env`` (plus PATH). Only ever with inputs it refuses, or --print-packages:
    this machine is a Debian 12 root too, and the script must never run for real on it."""
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env})


# -- the script ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", sorted((PROJECT_DIR / "image").glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse_and_are_strict(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    code = [line for line in script.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert code[0] == "set -euo pipefail", f"{script.name}: the first command must be 'set -euo pipefail'"
    assert os.access(script, os.X_OK), f"{script.name} must be executable"


@pytest.mark.parametrize(("env", "message"), [
    ({"STANDINS": "no"}, "MESOS_DEB is empty"),
    ({"STANDINS": "no", "MESOS_DEB": "/x.deb"}, "ALLUXIO_TARBALL is empty"),
    ({"STANDINS": "maybe"}, "STANDINS must be yes or no"),
    ({"STANDINS": "yes", "MESOS_VERSION": "1.5"}, "MESOS_VERSION must be 1.4 or 1.11"),
    ({"STANDINS": "yes", "ALLUXIO_VERSION": "2.0"}, "ALLUXIO_VERSION must be 1.8 or 2.9"),
    ({"STANDINS": "yes", "NTP_SERVERS": "ntp.example\n[Time]"}, "NTP_SERVERS must be host names or addresses"),
    ({"STANDINS": "yes"}, "AGENT_SOURCE is empty"),
    ({"STANDINS": "yes", "AGENT_SOURCE": "/nonexistent/agent.whl"}, "does not exist"),
    ({"STANDINS": "yes", "AGENT_SOURCE": str(SCRIPT), "ALLUXIO_JAVA": "/j.tar.gz"}, "STANDINS_SOURCE is empty"),
    ({"STANDINS": "yes", "AGENT_SOURCE": str(SCRIPT), "ALLUXIO_JAVA": "/j.tar.gz", "STANDINS_SOURCE": "/none/s.whl"},
     "STANDINS_SOURCE /none/s.whl does not exist"),
])
def test_install_script_refuses_bad_inputs_before_touching_anything(env: dict[str, str], message: str) -> None:
    result = run_script(**env)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "installing" not in result.stderr


def test_install_script_usage() -> None:
    assert run_script("--frobnicate").returncode == 2
    assert run_script("--phase", "everything", STANDINS="yes").returncode == 1
    usage = run_script("--help")
    assert usage.returncode == 0 and "STANDINS" in usage.stdout and "AGENT_SOURCE" in usage.stdout


def test_packages() -> None:
    standins = package_list(NodeOptions())
    assert {"nginx", "python3-venv", "openjdk-17-jre-headless", "zookeeper"} <= set(standins)
    assert "curl" not in standins, "no downloads, no curl"
    real = package_list(NodeOptions(standins=False, mesos_deb="https://example.invalid/mesos.deb",
                                    alluxio_tarball="/srv/alluxio.tar.gz"))
    assert "curl" in real
    assert {"docker.io", "apparmor"} <= set(real), "docker.io's containers need apparmor_parser on AppArmor kernels"
    assert "apparmor" not in standins and "systemd-timesyncd" in standins and "systemd-timesyncd" in real
    assert "nftables" in standins and "nftables" in real  # bootstrap-agent-conceal.service loads its rules


# -- recipes and the cache ---------------------------------------------------------------------------------------
def test_recipe_digests_follow_content(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "bootstrap_agent", "provision_min", "image", "systemd", "standins"):
        src = PROJECT_DIR / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, copy / name)
    builder = local.LocalBuilder(project_dir=copy, cache_root=tmp_path / "cache")
    base, node = builder.digests()
    assert builder.digests() == (base, node), "stable"
    assert source_digest(copy) == source_digest(PROJECT_DIR)
    (copy / "bootstrap_agent" / "__pycache__").mkdir(exist_ok=True)
    (copy / "bootstrap_agent" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert builder.digests() == (base, node), "byte code is not a source"
    (copy / "bootstrap_agent" / "sizes.py").write_text((copy / "bootstrap_agent" / "sizes.py").read_text() + "\n")
    assert builder.digests()[0] == base and builder.digests()[1] != node, "agent change: node layer only"
    _, node2 = builder.digests()
    (copy / "systemd" / "zookeeper.service").write_text((copy / "systemd" / "zookeeper.service").read_text() + "\n")
    assert builder.digests()[0] == base and builder.digests()[1] != node2, "unit change: node layer only"
    _, node3 = builder.digests()
    (copy / "standins" / "common.py").write_text((copy / "standins" / "common.py").read_text() + "\n")
    assert builder.digests()[0] == base and builder.digests()[1] != node3, "stand-in change: node layer only"
    other = local.LocalBuilder(NodeOptions(mesos_version="1.4"), project_dir=copy, cache_root=tmp_path / "cache")
    assert other.digests()[0] == base and other.digests()[1] != builder.digests()[1], "option: node layer only"


def test_an_unchanged_recipe_comes_from_the_cache(node_image: Any) -> None:
    current = local.LocalBuilder().build()  # the same as node_image, unless the tree changed since (live edits)
    started = time.monotonic()
    again = local.LocalBuilder().build()
    took = time.monotonic() - started
    assert again.path == current.path and not again.built
    assert took < 5, f"a cached build took {took:.1f} s"
    assert source_digest() in again.recipe_path.read_text()
    size = tree_size(node_image.path)
    how = "built" if node_image.built else "cached"
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in node_image.seconds.items())
    print(f"\nIMAGE {node_image.path.name}: {how} ({steps}); cached lookup {took:.2f} s; size {size / 2**20:.0f} MiB")


# -- the built image -------------------------------------------------------------------------------------------
def is_enabled(root: Path, unit: str) -> str:
    result = subprocess.run(["systemctl", f"--root={root}", "is-enabled", f"{unit}.service"],
                            capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.strip()


def verify_in(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", f"{unit}.service"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_only_nginx_and_the_agent_are_enabled(node_image: Any) -> None:
    root = node_image.path
    assert is_enabled(root, "nginx") == "enabled"
    assert is_enabled(root, "bootstrap-agent") == "enabled"
    assert is_enabled(root, "bootstrap-agent-conceal") == "enabled"  # the metadata concealment, every boot
    assert (root / "etc/bootstrap-agent/conceal.nft").is_file()
    for unit in MANAGED:
        assert is_enabled(root, unit) == "disabled", unit


@pytest.mark.parametrize("unit", OURS)
def test_units_as_installed_pass_verify_with_the_image_programs(node_image: Any, unit: str) -> None:
    result = verify_in(node_image.path, unit)
    assert (result.returncode, result.stderr.strip()) == (0, ""), result


def test_no_instance_identity_is_left(node_image: Any) -> None:
    root = node_image.path
    assert (root / "etc/machine-id").read_bytes() == b""
    assert os.readlink(root / "var/lib/dbus/machine-id") == "/etc/machine-id"
    assert not list((root / "etc").glob("ssh/ssh_host_*"))
    assert not (root / "var/lib/systemd/random-seed").exists()
    for path in ("var/lib/bootstrap-agent", "var/cache/nginx/metadata", "var/lib/zookeeper/data",
                 "etc/default/mesos-master", "etc/default/mesos-agent", "opt/alluxio/conf/alluxio-site.properties",
                 "etc/nginx/conf.d/bootstrap-agent-dashboard.conf", "root/.bootstrap-agent-build"):
        assert not (root / path).exists(), path


def test_nginx_carries_the_agents_metadata_cache(node_image: Any) -> None:
    root = node_image.path
    conf = root / "etc/nginx/conf.d/bootstrap-agent-metadata-cache.conf"
    assert conf.read_text() == render_metadata_cache_conf()
    assert "listen 127.0.0.1:80;" in conf.read_text()
    assert not (root / "etc/nginx/sites-enabled/default").exists(), "Debian's default site listens on *:80"
    assert (root / "var/cache/nginx").is_dir()


def test_the_agent_runs_from_its_venv_with_the_standins(node_image: Any) -> None:
    root = node_image.path
    example = (PROJECT_DIR / "bootstrap_agent" / "examples" / "master.json").read_bytes()
    result = subprocess.run(["chroot", str(root), "/usr/local/bin/bootstrap-agent", "validate", "-"], input=example,
                            capture_output=True, timeout=60, check=False, env={"PATH": local.CHROOT_PATH})
    assert result.returncode == 0, result.stderr
    manifest = dict(line.split("=", 1) for line in (root / "etc/bootstrap-agent-image").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    assert manifest["AGENT_VERSION"] == __version__ and manifest["STANDINS"] == "yes"
    versions = (root / "etc/default/bootstrap-agent-standins").read_text()
    assert "BOOTSTRAP_AGENT_MESOS_VERSION=1.11\n" in versions and "BOOTSTRAP_AGENT_ALLUXIO_VERSION=2.9\n" in versions
    assert not [line for line in versions.splitlines() if line.startswith("MESOS_")], "a stand-in would refuse it"
    for unit in MANAGED[1:]:
        dropin = root / f"etc/systemd/system/{unit}.service.d/standin.conf"
        assert dropin.is_file() is unit.startswith("mesos"), unit
    # Alluxio: no drop-in; the units' real lines run a stand-in installation on the units' own Java 11.
    assert "standins.alluxio" in (root / "opt/alluxio/libexec/standin-java").read_text()
    assert (root / "opt/alluxio/bin/launch-process").is_file() and manifest["ALLUXIO_JAVA"].startswith("11.")
    assert (venv_site_packages(root) / "standins" / "mesos.py").is_file(), "the stand-ins' own distribution"


def venv_site_packages(root: Path) -> Path:
    return root / "opt/bootstrap-agent/venv/lib" / f"python{NODE_PYTHON}" / "site-packages"


# -- the switch: real Mesos and Alluxio from a package and a tarball ------------------------------------------
def fake_deb(tmp: Path, package: str, version: str, what: str, files: dict[str, str],
             depends: str | None = None) -> Path:
    """A package with the name and paths of a real one (``files``: path -> content; ``bin``/``sbin`` ones
    executable; ``depends``: its Depends field), built with dpkg-deb: what the image does with the real package,
    without downloading it."""
    tree = tmp / f"{package}-deb"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: test <test@example.invalid>\n"
        + (f"Depends: {depends}\n" if depends else "")
        + f"Description: stand-in package with the paths of {what}\n")
    for path, content in files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        if "bin/" in path:
            target.chmod(0o755)
    deb = tmp / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=60)
    return deb


def fake_mesos_deb(tmp: Path) -> Path:
    sleeper = "#!/bin/sh\nexec sleep infinity\n"
    return fake_deb(tmp, "mesos", "1.11.0-0test", "the Mesos package",
                    {"/usr/sbin/mesos-master": sleeper, "/usr/sbin/mesos-agent": sleeper})


def fake_docker_deb(tmp: Path) -> Path:
    """Debian's docker.io as far as the image cares: the package name, dockerd and its unit. (The cached base
    layer is the stand-ins' one, without docker.io, and the node phase installs offline.)"""
    unit = ("[Unit]\nDescription=Docker Application Container Engine\n\n[Service]\nExecStart=/usr/sbin/dockerd\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
    return fake_deb(tmp, "docker.io", "20.10.24-0test", "Debian's docker.io", {
        "/usr/sbin/dockerd": "#!/bin/sh\nexec sleep infinity\n", "/lib/systemd/system/docker.service": unit})


def fake_apparmor_deb(tmp: Path) -> Path:
    """Debian's apparmor as far as the package check cares (the real one is installed with docker.io)."""
    return fake_deb(tmp, "apparmor", "3.0.8-3-0test", "Debian's apparmor",
                    {"/usr/sbin/apparmor_parser": "#!/bin/sh\nexit 0\n"})


#: What cloud-init leaves on a build ECS started with a key pair (image/otc.py --key-name): the default user's
#: key, and root's with cloud-init's "login as the default user" prefix (disable_root).
BUILD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildKeyPairOfTheImageBuilder0000000000000 build@otc"
ROOT_KEY_LINE = ('no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo \'Please login as the '
                 'user \\"debian\\" rather than the user \\"root\\".\';echo;sleep 10;exit 142" ' + BUILD_KEY)


def plant_build_key(root: Path) -> list[Path]:
    planted = [root / "root/.ssh/authorized_keys", root / "home/debian/.ssh/authorized_keys"]
    for path, line in zip(planted, (ROOT_KEY_LINE, BUILD_KEY), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(line + "\n")
    return planted


def fake_alluxio_tarball(tmp: Path) -> Path:
    tarball = tmp / "alluxio-2.9.0-bin.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("bin/launch-process", "bin/alluxio-mount.sh"):
            path = tmp / "alluxio-2.9.0" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\nexit 0\n")
            path.chmod(0o755)
        (tmp / "alluxio-2.9.0" / "conf").mkdir()
        tar.add(tmp / "alluxio-2.9.0", arcname="alluxio-2.9.0")
    return tarball


def test_without_standins_the_image_installs_mesos_and_alluxio_from_the_given_files(
    node_image: Any, tmp_path: Path
) -> None:
    """The documented switch the other way: STANDINS=no with a Mesos .deb and an Alluxio tarball (fakes with
    the real paths) on a copy of the cached base layer; the units then run the real programs."""
    options = NodeOptions(standins=False, mesos_deb=str(fake_mesos_deb(tmp_path)),
                          alluxio_tarball=str(fake_alluxio_tarball(tmp_path)))
    standin_builder = local.LocalBuilder()
    base = standin_builder.base_path()
    assert base.is_dir(), "the node_image fixture built it"
    root = local.CACHE_ROOT / f".build-node-{'0' * 16}-{os.getpid()}"  # a build folder: cleaned if we crash
    try:
        subprocess.run(["cp", "-a", "--", str(base), str(root)], check=True, timeout=600)
        shutil.copy(fake_docker_deb(tmp_path), root / "tmp" / "docker.io.deb")
        shutil.copy(fake_apparmor_deb(tmp_path), root / "tmp" / "apparmor.deb")
        subprocess.run(["chroot", str(root), "dpkg", "-i", "/tmp/docker.io.deb", "/tmp/apparmor.deb"], check=True,
                       capture_output=True, timeout=120)
        planted = plant_build_key(root)  # as on an OTC build ECS made with --key-name
        builder = local.LocalBuilder(options)
        log = tmp_path / "install.log"
        builder.install_node(root, standin_builder.wheelhouse(), log)
        assert "install-node: done" in log.read_text()
        assert not [p for p in planted if p.exists()], "the build's key pair must not reach the instances"
        assert (root / "usr/sbin/mesos-master").is_file() and (root / "opt/alluxio/bin/launch-process").is_file()
        assert not list((root / "etc/systemd/system").glob("*.service.d/standin.conf"))
        assert not (root / "etc/default/bootstrap-agent-standins").exists()
        site = venv_site_packages(root)
        assert (site / "bootstrap_agent").is_dir(), site
        assert not (site / "standins").exists() and not (site / "bootstrap_agent" / "standins").exists()
        assert not list(site.glob("bootstrap_agent_standins-*")), "the stand-ins are not the product"
        assert (root / "etc/systemd/system/docker.service.d/bootstrap-agent.conf").is_file()
        assert not (root / "etc/systemd/system/docker.service").exists()  # Debian's unit, not the stand-in
        for unit in OURS:
            result = verify_in(root, unit)
            assert (result.returncode, result.stderr.strip()) == (0, ""), result
        assert is_enabled(root, "mesos-master") == "disabled"
        status = json.dumps(subprocess.run(["chroot", str(root), "dpkg-query", "-W", "mesos"], capture_output=True,
                                           text=True, timeout=30, check=False).stdout)
        assert "1.11.0-0test" in status
    finally:
        local.remove_tree(root)


def test_prune_keeps_the_recent_and_the_recently_used_layers(tmp_path: Path) -> None:
    builder = local.LocalBuilder(cache_root=tmp_path)
    now = time.time()
    for n, age in enumerate([10, 20, 30, 7200, 9000]):  # seconds since last use
        for kind in ("node", "base"):
            entry = tmp_path / f"{kind}-{n:016x}"
            entry.mkdir()
            (tmp_path / f"{entry.name}.log").write_text("log")
            os.utime(entry, (now - age, now - age))
    removed = builder.prune(keep=2, min_idle=3600)
    assert sorted(p.name for p in removed) == sorted(f"{k}-{n:016x}" for k in ("node", "base") for n in (3, 4))
    assert not (tmp_path / f"node-{3:016x}.log").exists()
    assert (tmp_path / f"node-{2:016x}").is_dir(), "idle for 30 s only: may be in use by a running container"
