"""``provision-min image build`` against the stateful OTC fake (documented payloads; tests/support/fake_otc.py and
fake_otc_images.py) and moto's S3 server on loopback (OBS): clouds.yaml credentials, a temporary network
created and removed (also when the build fails), the refusal without real sources, the image id printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import responses
from botocore.config import Config

from bootstrap_agent import logs
from provision_min import cli
from provision_min.wait import Poller
from tests.support import fake_otc
from tests.support.fake_otc_images import FakeOtcImages, run_build_script
from tests.support.moto_s3 import moto_server
from tests.support.provision_env import FakeClock, Result, forbid_network

BUCKET = "eo-image-builds"
OBS_KEY, OBS_SECRET = "AKIDBUILDER0001", "builder-obs-secret-key-0001"


@pytest.fixture
def obs() -> Iterator[str]:
    with moto_server() as endpoint:  # authentication off: moto cannot check presigned URLs
        client(endpoint).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-de"})
        yield endpoint


def client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="eu-de", aws_access_key_id=OBS_KEY,
                        aws_secret_access_key=OBS_SECRET, config=Config(signature_version="s3v4"))


class Desk:
    """A workstation: clouds.yaml with the login, OBS keys in the environment, a prebuilt wheel and wheelhouse."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        forbid_network(monkeypatch)
        self.capsys = capsys
        clouds = root / "clouds.yaml"
        clouds.write_text(json.dumps({"clouds": {"otc": {"region_name": "eu-de", "auth": {
            "auth_url": "https://iam.eu-de.otc.t-systems.com/v3", "username": fake_otc.USER,
            "password": fake_otc.PASSWORD, "user_domain_name": fake_otc.DOMAIN, "project_name": "eu-de"}}}}))
        self.env = {"HOME": str(root), "XDG_CACHE_HOME": str(root / "cache"), "PATH": "/usr/bin:/bin",
                    "OS_CLIENT_CONFIG_FILE": str(clouds), "OBS_ACCESS_KEY_ID": OBS_KEY,
                    "OBS_SECRET_ACCESS_KEY": OBS_SECRET}
        self.wheel = root / "bootstrap_agent-0.1.0-py3-none-any.whl"
        self.wheel.write_bytes(b"PK-not-really-a-wheel")
        self.wheelhouse = root / "wheelhouse"
        self.wheelhouse.mkdir()
        (self.wheelhouse / "kazoo-2.10.0-py2.py3-none-any.whl").write_bytes(b"PK")
        self.alluxio = root / "alluxio-2.9.4-bin.tar.gz"
        self.alluxio.write_bytes(b"not really alluxio")
        self.real = ["--mesos-deb", "https://packages.example.org/mesos_1.11.0-1_amd64.deb",
                     "--alluxio-tarball", str(self.alluxio),
                     "--alluxio-java", "https://packages.example.org/OpenJDK11U-jre_x64_linux.tar.gz",
                     "--pyspark-wheel", "https://packages.example.org/pyspark-3.5.9-py2.py3-none-any.whl"]

    def run(self, *argv: str) -> Result:
        clock = FakeClock()
        self.capsys.readouterr()
        logs.configure()
        code = cli.main(["image", "build", "--cloud", "otc", "--name", "eo-node-2024", "--bucket", BUCKET,
                         "--key-name", "eo-build", "--wheelhouse", str(self.wheelhouse),
                         "--agent-wheel", str(self.wheel), *argv],
                        env=self.env, poller=Poller(sleep=clock.sleep, clock=clock.time))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def desk(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Desk:
    return Desk(tmp_path, capsys, monkeypatch)


def fake(obs: str, report: str = "ok") -> tuple[FakeOtcImages, list[list[str]]]:
    bundles: list[list[str]] = []
    otc = FakeOtcImages(obs_endpoint=obs, on_script=lambda script: bundles.append(run_build_script(script, report)))
    return otc, bundles


def network_calls(otc: FakeOtcImages) -> list[tuple[str, str]]:
    return [(c.method, c.path.split("/")[1]) for c in otc.calls if c.service == "vpc" and c.method != "GET"]


def assert_no_secret(result: Result) -> None:
    for secret in (fake_otc.PASSWORD, OBS_SECRET):
        assert secret not in result.out + result.err


def test_image_build_makes_its_own_network_and_prints_the_image_id(obs: str, desk: Desk) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, bundles = fake(obs)
        otc.install(mock)
        result = desk.run(*desk.real)
    assert result.code == 0, result.err
    assert otc.violations == []
    image_id = next(iter(otc.images))
    assert result.lines == [f"image eo-node-2024 is {image_id}: put 'image_id: {image_id}' into the cluster file"]
    # the temporary network: created before the ECS, deleted after it, nothing left
    assert network_calls(otc) == [("POST", "vpcs"), ("POST", "subnets"), ("POST", "security-groups"),
                                  ("DELETE", "security-groups"), ("DELETE", "vpcs"), ("DELETE", "vpcs")]
    assert otc.empty(), otc.resources()
    created = next(c.body["server"] for c in otc.calls if c.method == "POST" and c.path == "/cloudservers")
    vpc = next(c for c in otc.calls if c.method == "POST" and c.path == "/vpcs")
    assert created["vpcid"].startswith("vpc-") and vpc.body == {"vpc": {"name": created["name"],
                                                                        "cidr": "192.168.0.0/16"}}
    rules = [c for c in otc.calls if c.path == "/security-group-rules"]
    assert rules == [], "only the security group's default egress rules"
    # real sources: URLs as they are, a local file through the build bucket
    script = next(iter(otc.scripts.values()))
    assert "STANDINS=no" in script and "MESOS_DEB=https://packages.example.org/mesos" in script
    assert "ALLUXIO_TARBALL='http://127.0.0.1" in script and "/sources/alluxio-2.9.4-bin.tar.gz" in script
    assert "PYSPARK_WHEEL=https://packages.example.org/pyspark" in script and str(desk.alluxio) not in script
    assert {"image/install-node.sh", "systemd/bootstrap-agent.service"} <= set(bundles[0])
    assert not any(name.startswith("standins") for name in bundles[0]), "no stand-ins in a real image"
    assert client(obs).list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert_no_secret(result)


def test_image_build_json_names_the_image(obs: str, desk: Desk) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, _ = fake(obs)
        otc.install(mock)
        result = desk.run(*desk.real, "--json")
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    assert answer["image_id"] in otc.images and answer["name"] == "eo-node-2024" and answer["standins"] is False
    assert answer["left_behind"] == []


def test_a_failed_build_removes_the_ecs_and_its_network(obs: str, desk: Desk) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, _ = fake(obs, report="failed (exit 1)")
        otc.install(mock)
        result = desk.run(*desk.real)
    assert result.code == 1 and result.out == ""
    assert "install-node.sh failed on the build ECS" in result.err
    assert ("DELETE", "vpcs") in network_calls(otc) and otc.empty(), otc.resources()
    assert otc.images == {} and otc.violations == []
    assert_no_secret(result)


def test_a_failure_while_the_network_is_made_removes_what_was_made(obs: str, desk: Desk) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, _ = fake(obs)
        otc.install(mock)
        otc.fail("POST", r"^/security-groups$", status=500, message="injected failure")
        result = desk.run(*desk.real)
    assert result.code == 1
    assert otc.empty(), otc.resources()
    assert not any(c.path == "/cloudservers" for c in otc.calls), "no ECS without its network"


def test_a_given_network_is_used_and_kept(obs: str, desk: Desk) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, _ = fake(obs)
        otc.install(mock)
        result = desk.run(*desk.real, "--vpc-id", "vpc-1")
    assert result.code == 2 and "--vpc-id, --subnet-id and --security-group-id go together" in result.error_line()
    assert otc.calls == []


@pytest.mark.parametrize(("drop", "named"), [
    ("--mesos-deb", "--mesos-deb"), ("--alluxio-java", "--alluxio-java"),
    ("--pyspark-wheel", "--pyspark-wheel or --spark-tarball"), ("--alluxio-tarball", "--alluxio-tarball"),
])
def test_without_real_sources_the_build_is_refused_before_any_call(obs: str, desk: Desk, drop: str,
                                                                   named: str) -> None:
    argv = list(desk.real)
    index = argv.index(drop)
    del argv[index:index + 2]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, _ = fake(obs)
        otc.install(mock)
        result = desk.run(*argv)
    assert result.code == 2 and result.out == ""
    line = result.error_line()
    assert line.startswith(f"provision-min: image build: missing {named}:") and "--standins" in line
    assert otc.calls == [], "nothing was created"


def test_standins_only_when_asked_and_with_a_warning(obs: str, desk: Desk) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc, bundles = fake(obs)
        otc.install(mock)
        result = desk.run("--standins")
    assert result.code == 0, result.err
    assert "warning: --standins" in result.err and "TEST image with stand-ins" in result.out
    script = next(iter(otc.scripts.values()))
    assert "STANDINS=yes" in script and 'STANDINS_SOURCE="$work/standins"' in script
    assert "standins/pyproject.toml" in bundles[0]
    mixed = desk.run("--standins", "--mesos-deb", "https://packages.example.org/mesos.deb")
    assert mixed.code == 2 and "--standins replaces Mesos and Alluxio: drop --mesos-deb" in mixed.error_line()


def test_python_m_image_otc_is_the_same_command(obs: str, desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    from image.__main__ import main

    assert main(["otc", "--name", "x", "--bucket", BUCKET]) == 2
    assert "image: image build: missing --mesos-deb" in capsys.readouterr().err
