"""``provision-min image build`` from an installed wheel, not from this checkout: the project's wheel (``pip wheel
--no-deps``) installed offline into a fresh venv, then the command's help, its refusal and a whole OTC build
against the fake (tests/support/fake_otc_images.py) run by the venv's Python, with ``image`` imported from the
venv. It proves that install-node.sh and the units come with the distribution (package data) and that the agent's
wheel is made from the installed distribution's own files.

The venv's dependencies come from a wheelhouse made offline of this machine's installed distributions
(``image.packaged.repack``, the same code that repacks the agent).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from packaging.requirements import Requirement

from image.packaged import repack
from tests.support.moto_s3 import moto_server

PROJECT_DIR = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "bootstrap_agent", "provision_min", "image", "systemd")


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=cwd)


def _requirements(name: str, seen: set[str]) -> None:
    """``name`` and what it needs on this Python, recursively (markers evaluated, extras left out)."""
    key = name.lower().replace("_", "-")
    if key in seen:
        return
    seen.add(key)
    for line in importlib.metadata.requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            _requirements(requirement.name, seen)


@dataclass
class Installed:
    root: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin/python")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("installed")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:  # a copy: pip wheel leaves build/ and egg-info beside the sources
        path = PROJECT_DIR / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                  "--wheel-dir", str(root / "dist"), str(src)])
    assert built.returncode == 0, built.stderr
    wheel = next((root / "dist").glob("bootstrap_agent-*.whl"))
    wheelhouse = root / "wheelhouse"
    needed: set[str] = set()
    for name in ("bootstrap-agent", "responses"):  # responses: the fake OTC API in the venv
        _requirements(name, needed)
    for name in sorted(needed - {"bootstrap-agent"}):
        repack(name, wheelhouse)
    venv = root / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    install = _run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--find-links", str(wheelhouse), str(wheel), "responses"])
    assert install.returncode == 0, install.stderr
    yield Installed(root, venv)


def test_the_installed_wheel_carries_the_build_files(installed: Installed) -> None:
    found = _run([installed.python, "-c", "import image.packaged as p; print(p.INSTALL_SCRIPT, p.UNITS, "
                  "p.is_checkout())"], cwd=installed.root)
    script, units, checkout = found.stdout.split()
    assert script.startswith(str(installed.venv)) and Path(script).is_file()
    assert not Path(units).is_symlink() and (Path(units) / "standins/mesos-master.service.d/standin.conf").is_file()
    assert sorted(p.name for p in Path(units).glob("*.service")) == sorted(
        p.name for p in (PROJECT_DIR / "systemd").glob("*.service"))
    assert checkout == "False"


def test_the_installed_command_helps_and_refuses_without_real_sources(installed: Installed) -> None:
    command = str(installed.venv / "bin/provision-min")
    helped = _run([command, "image", "build", "--help"], cwd=installed.root)
    assert helped.returncode == 0 and "--standins" in helped.stdout and "--pyspark-wheel" in helped.stdout
    refused = _run([command, "image", "build", "--name", "n", "--bucket", "b"], cwd=installed.root)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("provision-min: image build: missing --mesos-deb, --alluxio-tarball, "
                                     "--alluxio-java, --pyspark-wheel or --spark-tarball:")


DRIVER = """
import json, sys
from pathlib import Path
sys.path.insert(0, {support!r})
import responses
import image
from provision_min import cli
from provision_min.wait import Poller
from tests.support.fake_otc_images import FakeOtcImages, run_build_script

root = Path({root!r})
wheels = []

def play(script):
    import re, urllib.request
    url = next(u for u in re.findall(r"'(https?://[^']+)'", script) if ".whl" in u)
    wheels.append(urllib.request.urlopen(url, timeout=10).read())
    bundles.append(run_build_script(script))

bundles = []
now = [0.0]
with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
    otc = FakeOtcImages(obs_endpoint={obs!r}, on_script=play)
    otc.install(mock)
    code = cli.main({argv!r}, env={env!r},
                    poller=Poller(sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]))
(root / "agent.whl").write_bytes(wheels[0] if wheels else b"")
(root / "result.json").write_text(json.dumps({{"code": code, "image": image.__file__, "bundles": bundles,
    "violations": otc.violations, "empty": otc.empty(), "images": list(otc.images)}}))
"""


def test_the_installed_command_builds_an_image_against_the_fake(installed: Installed, tmp_path: Path) -> None:
    support = tmp_path / "support"
    (support / "tests").mkdir(parents=True)  # the fakes alone: this checkout must not be importable in the venv
    shutil.copy2(PROJECT_DIR / "tests/__init__.py", support / "tests")
    shutil.copytree(PROJECT_DIR / "tests/support", support / "tests/support",
                    ignore=shutil.ignore_patterns("__pycache__"))
    from tests.support import fake_otc

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"otc": {"region_name": "eu-de", "auth": {
        "auth_url": "https://iam.eu-de.otc.t-systems.com/v3", "username": fake_otc.USER,
        "password": fake_otc.PASSWORD, "user_domain_name": fake_otc.DOMAIN, "project_name": "eu-de"}}}}))
    env = {"HOME": str(tmp_path), "OS_CLIENT_CONFIG_FILE": str(clouds), "OBS_ACCESS_KEY_ID": "AKID0001",
           "OBS_SECRET_ACCESS_KEY": "obs-secret-0001"}
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "wheelhouse/kazoo-2.10.0-py2.py3-none-any.whl").write_bytes(b"PK")
    real = ["--mesos-deb", "https://packages.example.org/mesos_1.11.0-1_amd64.deb",
            "--alluxio-tarball", "https://packages.example.org/alluxio-2.9.4-bin.tar.gz",
            "--alluxio-java", "https://packages.example.org/OpenJDK11U-jre_x64_linux.tar.gz",
            "--pyspark-wheel", "https://packages.example.org/pyspark-3.5.9-py2.py3-none-any.whl"]
    argv = ["image", "build", "--cloud", "otc", "--name", "eo-node", "--bucket", "builds", "--key-name", "k",
            "--wheelhouse", str(tmp_path / "wheelhouse"), "--json", *real]
    with moto_server() as obs:
        boto3.client("s3", endpoint_url=obs, region_name="eu-de", aws_access_key_id="AKID0001",
                     aws_secret_access_key="obs-secret-0001").create_bucket(
            Bucket="builds", CreateBucketConfiguration={"LocationConstraint": "eu-de"})
        driver = DRIVER.format(support=str(support), root=str(tmp_path), obs=obs, argv=argv, env=env)
        ran = _run([installed.python, "-c", textwrap.dedent(driver)], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["image"].startswith(str(installed.venv)), "image imported from the installed wheel"
    assert result["code"] == 0, ran.stderr
    assert json.loads(ran.stdout)["image_id"] == result["images"][0]
    assert result["violations"] == [] and result["empty"], "the temporary network and the ECS are gone"
    bundle = set(result["bundles"][0])
    assert {"image/install-node.sh", "systemd/bootstrap-agent.service", "systemd/mesos-agent.service",
            "systemd/standins/mesos-master.service.d/standin.conf"} <= bundle
    # the agent's wheel, made again from the venv's installed files: a wheel pip installs, without the builders
    agent = tmp_path / "bootstrap_agent-0.1.0-py3-none-any.whl"
    (tmp_path / "agent.whl").rename(agent)
    with zipfile.ZipFile(agent) as wheel:
        names = wheel.namelist()
    assert "bootstrap_agent/templates/nginx-dashboard.conf.j2" in names and names[-1].endswith(".dist-info/RECORD")
    assert not any(n.startswith(("image/", "__pycache__")) or n.endswith(".pyc") for n in names)
    target = tmp_path / "node"
    unpacked = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                     str(target), str(agent)])
    assert unpacked.returncode == 0, unpacked.stderr
    assert (target / "bootstrap_agent/data/names").is_dir() and (target / "provision_min/cli.py").is_file()


def test_the_installed_command_refuses_standins_it_does_not_have(installed: Installed) -> None:
    """The stand-ins are a distribution of their own: without it installed, --standins is refused in one line."""
    refused = _run([str(installed.venv / "bin/provision-min"), "image", "build", "--name", "n", "--bucket", "b",
                    "--standins"], cwd=installed.root)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines()[-1] == ("provision-min: image build: --standins: bootstrap-agent-standins "
                                               "is not installed (pip install it, or run from its source tree)")
