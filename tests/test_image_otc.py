"""The ``otc`` image builder against a fake OTC API (``responses``) and moto's S3 server on loopback (OBS).

The fake answers with the payloads of the OTC API reference (opentelekomcloud-docs repositories):
* IAM ``POST /v3/auth/tokens`` (201, ``X-Subject-Token``, ``token.project.id``) — shared/reference/otc-api.md
* ECS ``POST /v1/{project_id}/cloudservers`` → ``{"job_id", "serverIds"}`` (elastic-cloud-server,
  apis_recommended/lifecycle_management/creating_ecss.rst)
* ECS ``GET /v1/{project_id}/jobs/{job_id}`` → ``status`` INIT/RUNNING/SUCCESS/FAIL, ``entities.sub_jobs[].entities
  .server_id`` (job_status_management/querying_job_execution_status.rst)
* ECS ``POST /v1/{project_id}/cloudservers/action`` ``{"os-stop": {"type", "servers": [{"id"}]}}`` → ``job_id``
  (batch_operations/stopping_ecss_in_a_batch.rst); ``GET /v1/{project_id}/cloudservers/{id}`` → ``server.status``
  SHUTOFF (lifecycle_management/querying_details_about_an_ecs.rst)
* ECS ``POST /v1/{project_id}/cloudservers/delete`` ``{"servers", "delete_publicip", "delete_volume"}`` → ``job_id``
  (lifecycle_management/deleting_ecss.rst)
* IMS ``POST /v2/cloudimages/action`` ``{"name", "description", "instance_id"}`` → ``{"job_id"}``
  (image-management-service, ims_apis/image/creating_an_image.rst); ``GET /v1/{project_id}/jobs/{job_id}`` →
  ``job_type`` imsCreateImageByInstance, ``entities.image_id`` (image_jobs/querying_the_status_of_an_asynchronous_job
  .rst); ``GET /v2/cloudimages?...`` → ``images[]`` (ims_apis/image/querying_images.rst); ``DELETE /v2/images/{id}``
  → 204 (native_openstack_apis/.../deleting_an_image_native_openstack_api.rst)

The build ECS itself is played by the test: when the fake ECS API creates it, the test decodes its user-data,
fetches the bundle and the wheel through the presigned URLs (from moto, for real) and uploads the report
through the presigned PUT URL, as cloud-init running that user-data would.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import responses
from botocore.config import Config

from bootstrap_agent import logs
from image.otc import OtcCredentials, OtcImageBuilder, OtcImageSettings
from image.recipe import BuildError, NodeOptions
from tests.support.moto_s3 import moto_server

PROJECT_DIR = Path(__file__).resolve().parents[1]
PID = "0123456789abcdef0123456789abcdef"
IAM = "https://iam.eu-de.otc.t-systems.com"
ECS = "https://ecs.eu-de.otc.t-systems.com"
IMS = "https://ims.eu-de.otc.t-systems.com"
TOKEN = "MIIF-fake-token-value"
SERVER_ID = "118258c5-0c6a-4e73-8b51-8d1ea3272e1b"
IMAGE_ID = "3f7185de-b59a-4bb8-aa1d-7a513528b0e9"
DEBIAN12 = "6ae1b4c0-1b1c-4a3e-8a63-7b2c3b1d2e12"
BUCKET = "eo-image-builds"


class FakeOtc:
    """A stateful fake of the documented calls; ``calls`` lists (method, path) in order."""

    def __init__(self, mock: responses.RequestsMock, s3: S3Server, *, report: str = "ok",
                 ecs_job: str = "SUCCESS", ims_job: str = "SUCCESS", ims_leaves_image: bool = False,
                 instance_runs: bool = True) -> None:
        self.s3 = s3
        self.report = report
        self.ecs_job, self.ims_job = ecs_job, ims_job
        self.ims_leaves_image = ims_leaves_image
        self.instance_runs = instance_runs
        self.calls: list[tuple[str, str]] = []
        self.bodies: dict[str, Any] = {}
        self.jobs: dict[str, list[dict[str, Any]]] = {}
        self.server_status = "ACTIVE"
        self.images: list[dict[str, Any]] = []
        self.bundle_names: list[str] = []
        self.wheel: bytes = b""
        self.user_data = ""
        self.key_name: str | None = None
        json_ct = "application/json"
        for method, pattern, handler in [
            ("POST", rf"{IAM}/v3/auth/tokens", self.token),
            ("GET", rf"{IMS}/v2/cloudimages(\?.*)?", self.list_images),
            ("POST", rf"{ECS}/v1/{PID}/cloudservers", self.create_server),
            ("POST", rf"{ECS}/v1/{PID}/cloudservers/action", self.server_action),
            ("POST", rf"{ECS}/v1/{PID}/cloudservers/delete", self.delete_server),
            ("GET", rf"{ECS}/v1/{PID}/cloudservers/[0-9a-f-]+", self.show_server),
            ("GET", rf"({ECS}|{IMS})/v1/{PID}/jobs/[0-9a-z]+", self.job),
            ("POST", rf"{IMS}/v2/cloudimages/action", self.create_image),
            ("DELETE", rf"{IMS}/v2/images/[0-9a-f-]+", self.delete_image),
        ]:
            mock.add_callback(method, re.compile(pattern + "$"), callback=self._wrap(handler), content_type=json_ct)

    def _wrap(self, handler: Any) -> Any:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            path = request.path_url.split("?")[0]
            self.calls.append((request.method, path))
            if request.method != "POST" or "auth/tokens" not in path:
                assert request.headers.get("X-Auth-Token") == TOKEN, f"{request.method} {path}: no token"
            body = json.loads(request.body) if request.body else None
            self.bodies[f"{request.method} {path}"] = body
            status, headers, answer = handler(request, body)
            return status, headers, json.dumps(answer) if answer is not None else ""
        return callback

    def _job(self, kind: str, final: str, entities: dict[str, Any], job_type: str) -> str:
        job_id = f"ff8080814dbd65d7014dbe0d84db{len(self.jobs):04d}"
        running = {"job_id": job_id, "job_type": job_type, "status": "RUNNING", "entities": {},
                   "begin_time": "2024-11-06T06:19:43.195Z", "end_time": None, "error_code": None, "fail_reason": None}
        done = {**running, "status": final, "entities": entities, "end_time": "2024-11-06T06:23:25.158Z"}
        if final == "FAIL":
            done.update(error_code="Ecs.0000" if kind == "ecs" else "IMG.0001", fail_reason=f"{job_type} failed")
        self.jobs[job_id] = [{**running, "status": "INIT"}, running, done]
        return job_id

    # -- the handlers ---------------------------------------------------------------------------------------
    def token(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        assert body["auth"]["identity"]["methods"] == ["password"]
        user = body["auth"]["identity"]["password"]["user"]
        assert user == {"name": "builder", "password": "pw-secret", "domain": {"name": "OTC-EU-DE-000000"}}
        assert body["auth"]["scope"] == {"project": {"name": "eu-de"}}
        answer = {"token": {"expires_at": "2030-01-01T00:00:00.000000Z", "project": {"id": PID, "name": "eu-de"},
                            "catalog": []}}
        return 201, {"X-Subject-Token": TOKEN}, answer

    def list_images(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        query = dict(p.split("=", 1) for p in request.url.split("?", 1)[1].split("&")) if "?" in request.url else {}
        if query.get("__imagetype") == "gold":
            base = {"schema": "/v2/schemas/image", "__imagetype": "gold", "visibility": "public", "status": "active",
                    "__os_type": "Linux", "protected": True, "min_disk": 4, "min_ram": 0, "disk_format": "zvhd2"}
            images = [
                {**base, "id": "0328c25e-c840-4496-81ac-c4e01b214b1f", "name": "Standard_Debian_11_latest",
                 "__platform": "Debian", "__os_version": "Debian GNU/Linux 11.0.0 64bit",
                 "created_at": "2024-05-01T10:00:00Z"},
                {**base, "id": DEBIAN12, "name": "Standard_Debian_12_latest", "__platform": "Debian",
                 "__os_version": "Debian GNU/Linux 12.0.0 64bit", "created_at": "2024-06-01T10:00:00Z"},
            ]
            return 200, {}, {"images": images}
        assert query.get("owner") == PID and "name" in query
        return 200, {}, {"images": [i for i in self.images if i["name"] == query["name"].replace("+", " ")]}

    def create_server(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        server = body["server"]
        for key in ("availability_zone", "name", "imageRef", "flavorRef", "root_volume", "vpcid", "nics", "user_data"):
            assert key in server, key
        assert server["imageRef"] == DEBIAN12 and server["count"] == 1
        assert server["nics"] == [{"subnet_id": "subnet-1"}] and server["security_groups"] == [{"id": "sg-1"}]
        assert server["root_volume"]["volumetype"] == "SSD"
        self.user_data = base64.b64decode(server["user_data"]).decode()
        assert len(self.user_data.encode()) <= 32 * 1024
        self.key_name = server.get("key_name")
        if self.instance_runs:
            self.run_instance()
        job = self._job("ecs", self.ecs_job, {"sub_jobs_total": 1, "sub_jobs": [
            {"status": self.ecs_job, "job_type": "createSingleServer", "entities": {"server_id": SERVER_ID}}]},
            "createServer")
        return 200, {}, {"job_id": job, "serverIds": [SERVER_ID]}

    def run_instance(self) -> None:
        """What cloud-init does with the user-data on the build ECS: fetch, (install), report."""
        assert self.user_data.startswith("#!/bin/bash\n")
        urls = re.findall(r"'(https?://[^']+)'", self.user_data)
        bundle_url = next(u for u in urls if "bundle.tar.gz" in u)
        wheel_url = next(u for u in urls if ".whl" in u)
        report_url = next(u for u in urls if "report.log" in u)
        with urllib.request.urlopen(bundle_url, timeout=10) as answer:  # loopback: moto
            bundle = answer.read()
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            self.bundle_names = tar.getnames()
            script = tar.extractfile("image/install-node.sh")
            assert script is not None
            assert script.read() == (PROJECT_DIR / "image/install-node.sh").read_bytes()
        with urllib.request.urlopen(wheel_url, timeout=10) as answer:
            self.wheel = answer.read()
        log = f"install-node: done\nRESULT {self.report}\n".encode()
        # as curl --upload-file: no form content type (which moto's web server would parse away)
        request = urllib.request.Request(report_url, data=log, method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def server_action(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        assert body == {"os-stop": {"type": "SOFT", "servers": [{"id": SERVER_ID}]}}
        self.server_status = "SHUTOFF"
        return 200, {}, {"job_id": self._job("ecs", "SUCCESS", {}, "stopServer")}

    def show_server(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"server": {"id": SERVER_ID, "name": "build", "status": self.server_status}}

    def delete_server(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        assert body == {"servers": [{"id": SERVER_ID}], "delete_publicip": True, "delete_volume": True}
        return 200, {}, {"job_id": self._job("ecs", "SUCCESS", {}, "deleteServer")}

    def create_image(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        assert body == {"name": "eo-node-2024", "description": "bootstrap-agent node image", "instance_id": SERVER_ID}
        if self.ims_job == "SUCCESS" or self.ims_leaves_image:
            self.images.append({"id": IMAGE_ID, "name": body["name"], "status": "active" if self.ims_job ==
                                "SUCCESS" else "saving"})
        entities = {"image_name": body["name"], "image_id": IMAGE_ID} if self.ims_job == "SUCCESS" else {}
        return 200, {}, {"job_id": self._job("ims", self.ims_job, entities, "imsCreateImageByInstance")}

    def delete_image(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        image_id = request.path_url.rsplit("/", 1)[1]
        self.images = [i for i in self.images if i["id"] != image_id]
        return 204, {}, None

    def job(self, request: Any, body: Any) -> tuple[int, dict[str, str], Any]:
        states = self.jobs[request.path_url.rsplit("/", 1)[1]]
        return 200, {}, (states.pop(0) if len(states) > 1 else states[0])


@dataclass
class S3Server:
    """moto's S3 server on loopback, signatures not checked (moto cannot check presigned URLs)."""

    endpoint: str
    access_key: str = "AKIDBUILDER0001"
    secret_key: str = "builder-obs-secret-key-0001"

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="eu-de", aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=Config(signature_version="s3v4", retries={"max_attempts": 1}))


@pytest.fixture(autouse=True)
def json_logs() -> None:
    """The builder logs through provision-min's JSON logs: to this test's stderr, not an earlier test's."""
    logs.configure()


@pytest.fixture
def s3() -> Iterator[S3Server]:
    with moto_server() as endpoint:  # authentication stays off: moto cannot check presigned URLs
        s3 = S3Server(endpoint)
        s3.client().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-de"})
        yield s3


def make_builder(s3: S3Server, tmp_path: Path, **settings: Any) -> OtcImageBuilder:
    wheel = tmp_path / "bootstrap_agent-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK-not-really-a-wheel")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "kazoo-2.10.0-py2.py3-none-any.whl").write_bytes(b"PK")
    config = OtcImageSettings(name="eo-node-2024", vpc_id="vpc-1", subnet_id="subnet-1", security_group_id="sg-1",
                              bucket=BUCKET, obs_endpoint=s3.endpoint, poll_interval=5.0, **settings)
    credentials = OtcCredentials.from_env({"OS_USERNAME": "builder", "OS_PASSWORD": "pw-secret",
                                           "OS_USER_DOMAIN_NAME": "OTC-EU-DE-000000",
                                           "OBS_ACCESS_KEY_ID": s3.access_key, "OBS_SECRET_ACCESS_KEY": s3.secret_key})
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return OtcImageBuilder(config, credentials, NodeOptions(), agent_wheel=wheel, wheelhouse=wheelhouse,
                           s3=s3.client(), sleep=sleep, clock=lambda: clock[0])


def left_in_bucket(s3: S3Server) -> list[str]:
    return [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_the_build_runs_the_install_script_on_an_ecs_and_makes_a_private_image(s3: S3Server, tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc = FakeOtc(mock, s3)
        builder = make_builder(s3, tmp_path)
        image = builder.build()
    assert image.image_id == IMAGE_ID and image.server_id == SERVER_ID
    assert [c for c in otc.calls if c[0] != "GET" or "/jobs/" not in c[1]] == [
        ("POST", "/v3/auth/tokens"),
        ("GET", "/v2/cloudimages"),  # the public Debian 12 image
        ("GET", "/v2/cloudimages"),  # images of that name before the build
        ("POST", f"/v1/{PID}/cloudservers"),
        ("POST", f"/v1/{PID}/cloudservers/action"),
        ("GET", f"/v1/{PID}/cloudservers/{SERVER_ID}"),
        ("POST", "/v2/cloudimages/action"),
        ("POST", f"/v1/{PID}/cloudservers/delete"),
    ]
    # The ECS got the wheel through its presigned URL and the script, units and wheelhouse in the bundle.
    assert otc.wheel == b"PK-not-really-a-wheel"
    assert {"image/install-node.sh", "systemd/bootstrap-agent.service", "wheelhouse",
            "systemd/standins/mesos-master.service.d/standin.conf"} <= set(otc.bundle_names)
    assert "STANDINS=yes" in otc.user_data and "AGENT_SOURCE=" in otc.user_data
    assert "pw-secret" not in otc.user_data and s3.secret_key not in otc.user_data, "no credential on the ECS"
    assert left_in_bucket(s3) == [], "the build's OBS objects are removed"
    assert image.seconds["total"] > 0


def test_a_build_key_pair_reaches_the_build_ecs_only(s3: S3Server, tmp_path: Path) -> None:
    """--key-name: cloud-init installs the key on the build ECS; the install script the ECS runs (the bundle's,
    byte for byte this tree's) removes every authorized_keys before the image is made (proven on a real install
    in tests/test_image.py::test_without_standins_the_image_installs_mesos_and_alluxio_from_the_given_files)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc = FakeOtc(mock, s3)
        make_builder(s3, tmp_path, key_name="eo-build").build()
    assert otc.key_name == "eo-build"
    removal = re.search(r"^remove_identity\(\) \{$(.*?)^\}$", (PROJECT_DIR / "image/install-node.sh").read_text(),
                        re.MULTILINE | re.DOTALL)
    assert removal and "/root/.ssh/authorized_keys" in removal.group(1)
    assert "/home/*/.ssh/authorized_keys" in removal.group(1)


def test_a_failing_install_script_deletes_the_ecs_and_makes_no_image(s3: S3Server, tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc = FakeOtc(mock, s3, report="failed (exit 1)")
        with pytest.raises(BuildError, match=r"install-node.sh failed on the build ECS:(.|\n)*RESULT failed"):
            make_builder(s3, tmp_path).build()
    assert ("POST", f"/v1/{PID}/cloudservers/delete") in otc.calls
    assert ("POST", "/v2/cloudimages/action") not in otc.calls
    assert left_in_bucket(s3) == []


def test_a_failed_image_job_deletes_the_ecs_and_the_half_made_image(s3: S3Server, tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc = FakeOtc(mock, s3, ims_job="FAIL", ims_leaves_image=True)
        with pytest.raises(BuildError, match=r"creating the private image: job .* failed: imsCreateImageByInstance"):
            make_builder(s3, tmp_path).build()
    assert ("POST", f"/v1/{PID}/cloudservers/delete") in otc.calls
    assert ("DELETE", f"/v2/images/{IMAGE_ID}") in otc.calls
    assert otc.images == [] and left_in_bucket(s3) == []


def test_a_failed_ecs_job_still_deletes_the_server(s3: S3Server, tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc = FakeOtc(mock, s3, ecs_job="FAIL", instance_runs=False)
        with pytest.raises(BuildError, match=r"creating the build ECS: job .* failed"):
            make_builder(s3, tmp_path).build()
    assert ("POST", f"/v1/{PID}/cloudservers/delete") in otc.calls
    assert ("POST", "/v2/cloudimages/action") not in otc.calls and left_in_bucket(s3) == []


def test_an_ecs_that_never_reports_times_out_and_is_deleted(s3: S3Server, tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        otc = FakeOtc(mock, s3, instance_runs=False)
        builder = make_builder(s3, tmp_path, build_timeout=120.0)
        with pytest.raises(BuildError, match="did not report within 120 s"):
            builder.build()
    assert ("POST", f"/v1/{PID}/cloudservers/delete") in otc.calls
    assert ("POST", f"/v1/{PID}/cloudservers/action") not in otc.calls and left_in_bucket(s3) == []


def test_credentials_come_from_the_environment() -> None:
    env = {"OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_DOMAIN_NAME": "d", "OBS_ACCESS_KEY_ID": "ak",
           "OBS_SECRET_ACCESS_KEY": "sk"}
    creds = OtcCredentials.from_env(env)
    auth = creds.auth  # project: the region's default project, named like the region (eu-de)
    assert (auth.username, auth.user_domain, creds.obs_access_key, auth.project) == ("u", ("name", "d"), "ak",
                                                                                     ("name", "eu-de"))
    assert "password=" not in repr(creds) and "obs_secret_key=" not in repr(creds)
    with pytest.raises(BuildError, match="OS_PASSWORD"):
        OtcCredentials.from_env({k: v for k, v in env.items() if k != "OS_PASSWORD"})


def test_credentials_come_from_clouds_yaml_like_every_command(tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"otc": {"region_name": "eu-de", "auth": {
        "auth_url": "https://iam.eu-de.otc.t-systems.com:443/v3", "username": "builder", "password": "pw-secret",
        "user_domain_name": "OTC-EU-DE-000000", "project_name": "eu-de_build"}}}}))  # JSON is YAML
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "HOME": str(tmp_path), "OBS_ACCESS_KEY_ID": "ak",
           "OBS_SECRET_ACCESS_KEY": "sk"}

    creds = OtcCredentials.from_env(env, cloud="otc")

    assert creds.auth.auth_url == "https://iam.eu-de.otc.t-systems.com/v3"
    assert (creds.auth.username, creds.auth.project) == ("builder", ("name", "eu-de_build"))
    assert creds.auth.source == f"{clouds} (cloud otc)"
    with pytest.raises(BuildError, match="no cloud named 'other'"):
        OtcCredentials.from_env(env, cloud="other")
