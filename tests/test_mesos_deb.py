"""Issue 11 point 5: a Mesos .deb that Debian 12 cannot install is refused before anything is built.

Mesosphere-style packages depend on ``libcurl3`` (and other libraries of Debian 8/9), which bookworm does not
have. Two checks, both with a real ``dpkg-deb``-built package (``tests.test_image.fake_deb``) and real apt:

* the builders' host-side check (``image/debcheck.py``, called by ``LocalBuilder.build`` and
  ``OtcImageBuilder.build`` first): one line naming what is missing, and not one file in the image cache;
* ``install-node.sh``'s own check, its first step with STANDINS=no, run by the real script in a chroot: a
  scratch overlay on the cached Debian 12 test rootfs (``tests/support/container.py``), without network (its
  resolver is 127.0.0.1; apt uses the package lists debootstrap left), so it shows that nothing is installed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import image.local as local
from image.debcheck import check_deb, parse_depends
from image.recipe import BuildError, NodeOptions
from tests.support import container
from tests.test_image import fake_deb, fake_mesos_deb

PROJECT_DIR = Path(__file__).resolve().parents[1]
# The shape of Mesosphere's mesos_1.x .debs for Debian 9 / Ubuntu 16.04: libcurl3 is gone since Debian 10.
MESOSPHERE_DEPENDS = "java-runtime-headless, libcurl3, libsvn1, libsasl2-modules"
# What a Mesos built on Debian 12 depends on (see image/README.md, "Mesos on Debian 12").
BOOKWORM_DEPENDS = "java-runtime-headless, libcurl4 (>= 7.16.2), libsvn1 (>= 1.14), libsasl2-modules, libc6, zlib1g"


def mesos_deb(tmp: Path, depends: str) -> Path:
    sleeper = "#!/bin/sh\nexec sleep infinity\n"
    return fake_deb(tmp, "mesos", "1.11.0-2.0.1", "the Mesos package",
                    {"/usr/sbin/mesos-master": sleeper, "/usr/sbin/mesos-agent": sleeper}, depends=depends)


def test_depends_are_read_as_dpkg_does() -> None:
    groups = parse_depends("libcurl3 | libcurl3-nss, libsvn1 (>= 1.8), libc6:any [amd64]")
    assert [[str(r) for r in g] for g in groups] == [["libcurl3", "libcurl3-nss"], ["libsvn1 (>= 1.8)"], ["libc6"]]
    with pytest.raises(BuildError, match="cannot read the dependency"):
        parse_depends("libfoo (>= )")


def test_the_builder_refuses_a_libcurl3_deb_in_one_line_and_builds_nothing(tmp_path: Path) -> None:
    deb = mesos_deb(tmp_path, MESOSPHERE_DEPENDS)
    cache = tmp_path / "cache"
    builder = local.LocalBuilder(NodeOptions(standins=False, mesos_deb=str(deb),
                                             alluxio_tarball=str(tmp_path / "alluxio.tar.gz")), cache_root=cache)
    with pytest.raises(BuildError) as refused:
        builder.build()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"MESOS_DEB {deb.name}: mesos cannot be installed on Debian 12 (bookworm)"), message
    assert "lacks: libcurl3 (" in message or message.split("lacks: ")[1].startswith("libcurl3")
    assert "libsvn1" not in message and "java-runtime-headless" not in message, "those Debian 12 has"
    assert not cache.exists() or not any(cache.iterdir()), "nothing built, nothing cached"


def test_the_builder_accepts_a_deb_whose_dependencies_debian_12_has(tmp_path: Path) -> None:
    check_deb(mesos_deb(tmp_path, BOOKWORM_DEPENDS))  # no error
    check_deb(fake_mesos_deb(tmp_path / "plain"))  # none at all: the fake the image test installs
    with pytest.raises(BuildError, match=r"libsvn1 \(>= 9\) \(Debian 12 has libsvn1 1\.14"):
        check_deb(mesos_deb(tmp_path / "v", "libsvn1 (>= 9)"))  # a version bookworm does not reach


# -- install-node.sh's own check, in a Debian 12 chroot ----------------------------------------------------------
@pytest.fixture
def scratch_root(tmp_path: Path) -> Iterator[Path]:
    """A writable overlay on the cached test rootfs (never changed itself); unmounted and removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("chroot and overlay mounts need root")
    lower = container.build_test_rootfs()
    top = tmp_path / "overlay"
    for sub in ("upper", "work", "merged"):
        (top / sub).mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={top / 'upper'},workdir={top / 'work'}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(top / "merged")], check=True,
                   capture_output=True, timeout=30)
    try:
        yield top / "merged"
    finally:
        local.remove_tree(top)  # unmounts first


def run_script(root: Path, deb: Path, tmp: Path, *, only: str | None) -> subprocess.CompletedProcess[str]:
    """install-node.sh (STANDINS=no, --phase packages) in the chroot, as the local builder runs it; with
    ``only`` just that function of it (the script sourced without its last line, ``main``)."""
    stage = local._stage(root, PROJECT_DIR)
    downloads = stage / "downloads"
    downloads.mkdir()
    (downloads / deb.name).write_bytes(deb.read_bytes())
    script = "/" + str((stage / local.INSTALL_SCRIPT).relative_to(root))
    env = {"PATH": local.CHROOT_PATH, "HOME": "/root", "LC_ALL": "C.UTF-8", "STANDINS": "no",
           "MESOS_DEB": f"/{local.STAGE}/downloads/{deb.name}", "ALLUXIO_TARBALL": "/nonexistent.tar.gz"}
    if only:
        command = ["bash", "-c", f'source <(sed "$ d" {script}) --phase packages && work=$(mktemp -d) && {only}']
    else:
        command = ["bash", script, "--phase", "packages"]
    argv = ["chroot", str(root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]
    with local.chroot_mounts(root, network=False):
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def test_install_script_refuses_a_libcurl3_deb_before_installing_anything(scratch_root: Path, tmp_path: Path) -> None:
    status = (scratch_root / "var/lib/dpkg/status").read_bytes()
    result = run_script(scratch_root, mesos_deb(tmp_path, MESOSPHERE_DEPENDS), tmp_path, only=None)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("install-node: error: MESOS_DEB mesos_1.11.0-2.0.1_all.deb cannot be installed on "
                           "Debian 12 (bookworm): unmet libcurl3 but it is not installable"), result.stderr
    assert (scratch_root / "var/lib/dpkg/status").read_bytes() == status, "not one package installed"
    assert not (scratch_root / "usr/sbin/nginx").exists()


def test_install_script_accepts_a_deb_whose_dependencies_the_base_has(scratch_root: Path, tmp_path: Path) -> None:
    # The test rootfs has python3 and systemd; the fake depends on them and on a virtual package it provides.
    deb = mesos_deb(tmp_path, "python3 (>= 3.11), systemd | sysvinit-core, libc6, default-dbus-system-bus")
    result = run_script(scratch_root, deb, tmp_path, only="check_mesos_deb")
    assert result.returncode == 0, result.stderr
    assert f"MESOS_DEB {deb.name}: its dependencies install on this base" in result.stderr


def test_install_script_boots_otc_nodes_cgroup_v1_only_where_grub_is(scratch_root: Path, tmp_path: Path) -> None:
    """Issue 11 point 2, the OTC image's side: a grub drop-in that Debian's update-grub reads (it sources
    /etc/default/grub.d/*.cfg after /etc/default/grub) adds the full legacy layout to the kernel command line;
    without grub (the local image: containers), nothing is written."""
    deb = mesos_deb(tmp_path, "libc6")
    dropin = scratch_root / "etc/default/grub.d/90-bootstrap-agent-cgroup-v1.cfg"
    result = run_script(scratch_root, deb, tmp_path, only="configure_cgroup_boot")
    assert result.returncode == 0, result.stderr
    assert not dropin.exists() and "no grub here" in result.stderr
    (scratch_root / "boot/grub").mkdir(parents=True)
    stub = scratch_root / "usr/sbin/update-grub"  # what grub-mkconfig does with the settings, nothing else
    stub.write_text('#!/bin/sh\nGRUB_CMDLINE_LINUX="console=ttyS0"\n'
                    'for x in /etc/default/grub.d/*.cfg; do . "$x"; done\n'
                    'echo "$GRUB_CMDLINE_LINUX" > /boot/grub/cmdline\n')
    stub.chmod(0o755)
    result = run_script(scratch_root, deb, tmp_path, only="configure_cgroup_boot")
    assert result.returncode == 0, result.stderr
    assert (scratch_root / "boot/grub/cmdline").read_text() == (
        "console=ttyS0 systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1\n")
