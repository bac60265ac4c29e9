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

The OTC side is the provisioner's: credentials from clouds.yaml or ``OS_*`` (``provision_min.credentials``),
the cached token (``provision_min.token``), endpoints from its catalog, the REST client (``provision_min.otc``)
and the job poller (``provision_min.jobs``). Its errors leave ``build()`` as ``BuildError``.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from image.debcheck import check_deb
from image.otc_network import Network, TemporaryNetwork
from image.otc_transfer import SOURCE_FIELDS, BuildBucket, artifacts, local_sources, standins_source, user_data
from image.recipe import PROJECT_DIR, BuildError, NodeOptions
from provision_min.catalog import FALLBACK_HOST
from provision_min.credentials import CloudAuth, load_auth
from provision_min.errors import ProvisionError
from provision_min.jobs import wait_job
from provision_min.obs import s3_client
from provision_min.otc import OtcClient
from provision_min.wait import Poller, Progress

SERVICES = ("vpc", "ecs", "ims", "ims_jobs", "obs")  #: what the builder calls (``provision_min.catalog.SERVICES``)


@dataclass(frozen=True)
class OtcCredentials:
    """The IAM login, found as every command finds it (``provision_min.credentials``), and the OBS keys of the
    build bucket, from ``OBS_*`` or ``AWS_*`` (S3 keys, which clouds.yaml does not hold)."""

    auth: CloudAuth
    obs_access_key: str
    obs_secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cloud: str | None = None,
                 region: str = "eu-de") -> OtcCredentials:
        """``--cloud``/``OS_CLOUD`` in clouds.yaml, else ``OS_*``; as before clouds.yaml, ``OS_USERNAME`` without
        ``OS_AUTH_URL`` logs in at the region's IAM."""
        env = dict(os.environ if env is None else env)
        if not (cloud or env.get("OS_CLOUD") or env.get("OS_AUTH_URL")) and env.get("OS_USERNAME"):
            env["OS_AUTH_URL"] = FALLBACK_HOST.format(service="iam", region=region)
        try:
            auth = load_auth(cloud, env, region=region)
        except ProvisionError as exc:
            raise BuildError(f"{exc} (see image/README.md)") from None

        def need(*names: str) -> str:
            for name in names:
                if env.get(name):
                    return env[name]
            raise BuildError(f"set {' or '.join(names)} (see image/README.md)")

        return cls(auth, obs_access_key=need("OBS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                   obs_secret_key=need("OBS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"))


@dataclass(frozen=True)
class OtcImageSettings:
    name: str  #: of the private image
    bucket: str  #: OBS bucket for the build's objects (removed afterwards)
    #: the build ECS's network; all None: a temporary one of its own (``image.otc_network``)
    vpc_id: str | None = None
    subnet_id: str | None = None  #: the subnet's id (= its Neutron network id), as for ECS nics
    security_group_id: str | None = None
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
    obs_endpoint: str | None = None  #: default: from the token's catalog (``provision_min.catalog``)


@dataclass
class OtcImage:
    image_id: str
    name: str
    server_id: str  #: the build ECS (deleted)
    seconds: dict[str, float] = field(default_factory=dict)
    left_behind: list[str] = field(default_factory=list)  #: what could not be deleted after a good build


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
        cache_token: bool = False,
        s3: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.options = options or NodeOptions()
        self.agent_wheel = agent_wheel
        self.wheelhouse = wheelhouse
        self.project_dir = project_dir
        # cache_token: share the token with provision-min through the user's cache (the command line does)
        self.client = OtcClient.connect(credentials.auth, settings.region, os.environ if env is None else env,
                                        cache_token=cache_token,
                                        services=SERVICES, http=session)
        self._s3 = s3
        self.clock = clock
        self.poller = Poller(sleep=sleep, clock=clock, interval=settings.poll_interval,
                             max_interval=settings.poll_interval)
        self.progress = progress or (lambda line: None)
        self.build_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        # what exists and must go when the build fails
        self.bucket = BuildBucket(self.s3, settings.bucket, self.build_id, int(settings.build_timeout + 3600),
                                  self.progress)
        self.server_id: str | None = None
        self.network = TemporaryNetwork(self.client, self.poller, f"bootstrap-agent-image-build-{self.build_id}",
                                        self.progress)
        self.image_job_submitted = False
        self.images_before: set[str] = set()

    # -- the whole build ----------------------------------------------------------------------------------
    def build(self) -> OtcImage:
        seconds: dict[str, float] = {}
        started = self.clock()
        deb = self.options.mesos_deb
        if not self.options.standins and deb and not deb.startswith(("http://", "https://")):
            check_deb(Path(deb))  # before any upload or ECS; a URL is checked on the ECS before any install
        local = local_sources(self.options)
        try:
            with artifacts(self.project_dir, self.agent_wheel, self.wheelhouse, self.options.standins) as built:
                step = self.clock()
                urls = self.bucket.upload(built, local)
                seconds["upload"] = self.clock() - step
                stand_ins = standins_source(built.standins)
            presigned: dict[str, Any] = {SOURCE_FIELDS[name]: urls[name] for name in local}
            options = replace(self.options, **presigned)
            script = user_data(options, self.build_id, urls, stand_ins)
            base_image = self.settings.base_image_id or self.find_debian12()
            self.images_before = set(self._images_named(self.settings.name))
            network = self._network()
            step = self.clock()
            self.server_id = self._create_server(base_image, script, network)
            seconds["ecs"] = self.clock() - step
            step = self.clock()
            report = self.bucket.wait_report(self.poller, self.settings.build_timeout)
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
            left = self.network.delete()
        except BaseException as exc:
            error = BuildError(str(exc)) if isinstance(exc, ProvisionError) else exc
            self._cleanup(error)
            if error is exc:
                raise
            raise error from exc
        finally:
            self.bucket.delete()
        seconds["total"] = self.clock() - started
        self.progress(f"image {self.settings.name} ({image_id}) ready")
        if left:
            self.progress("left behind, delete by hand: " + "; ".join(left))
        return OtcImage(image_id, self.settings.name, server_id, seconds, left)

    def s3(self) -> Any:
        """The S3 client for OBS, made when first needed (its endpoint may come from the token's catalog)."""
        if self._s3 is None:
            endpoint = self.settings.obs_endpoint or self.client.endpoints.base("obs")
            self._s3 = s3_client(endpoint, self.settings.region, self.credentials.obs_access_key,
                                 self.credentials.obs_secret_key, attempts=3)
        return self._s3

    # -- OTC API ------------------------------------------------------------------------------------------
    def _wait_job(self, service: str, job_id: str, what: str) -> dict[str, Any]:
        """An ECS (``ecs``) or IMS (``ims_jobs``) job until SUCCESS; FAIL raises with its reason."""
        return wait_job(self.client, self.poller, service, job_id, f"{what}: job {job_id}",
                        self.settings.job_timeout)

    def find_debian12(self) -> str:
        """The newest active public Debian 12 image (IMS ``GET /v2/cloudimages``)."""
        query = {"__imagetype": "gold", "visibility": "public", "__platform": "Debian", "status": "active"}
        images = (self.client.get("ims", "/cloudimages", query) or {}).get("images", [])
        debian12 = [i for i in images if "debian" in f"{i.get('__os_version', '')} {i.get('name', '')}".lower()
                    and ("12" in str(i.get("__os_version", "")) or "_12" in str(i.get("name", "")))]
        if not debian12:
            raise BuildError("no active public Debian 12 image found in IMS: give base_image_id")
        newest = max(debian12, key=lambda i: str(i.get("created_at", "")))
        self.progress(f"base image: {newest.get('name')} ({newest['id']})")
        return str(newest["id"])

    def _images_named(self, name: str) -> list[str]:
        answer = self.client.get("ims", "/cloudimages", {"name": name, "owner": self.client.project_id}) or {}
        return [str(i["id"]) for i in answer.get("images", []) if i.get("name") == name]

    def _network(self) -> Network:
        """The given network, or a temporary one of the build's own (deleted with the build ECS)."""
        s = self.settings
        given = (s.vpc_id, s.subnet_id, s.security_group_id)
        if all(given):
            assert s.vpc_id and s.subnet_id and s.security_group_id
            return Network(s.vpc_id, s.subnet_id, s.security_group_id)
        if any(given):
            raise BuildError("give all of vpc_id, subnet_id and security_group_id, or none (a temporary network)")
        return self.network.create()

    def _create_server(self, image_ref: str, user_data: str, network: Network) -> str:
        s = self.settings
        server: dict[str, Any] = {
            "availability_zone": s.availability_zone,
            "name": f"bootstrap-agent-image-build-{self.build_id}",
            "imageRef": image_ref,
            "flavorRef": s.flavor,
            "root_volume": {"volumetype": "SSD", "size": s.root_volume_gb},
            "vpcid": network.vpc_id,
            "nics": [{"subnet_id": network.subnet_id}],
            "security_groups": [{"id": network.security_group_id}],
            "user_data": base64.b64encode(user_data.encode()).decode(),
            "metadata": {"bootstrap-agent-image-build": self.build_id},
            "count": 1,
        }
        if s.key_name:
            server["key_name"] = s.key_name
        if s.public_ip:
            server["publicip"] = {"eip": {"iptype": "5_bgp",
                                          "bandwidth": {"size": 10, "sharetype": "PER", "chargemode": "traffic"}}}
        answer = self.client.post("ecs", "/cloudservers", {"server": server})
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

    def _stop_server(self, server_id: str) -> None:
        body = {"os-stop": {"type": "SOFT", "servers": [{"id": server_id}]}}
        answer = self.client.post("ecs", "/cloudservers/action", body)
        self._wait_job("ecs", str(answer["job_id"]), "stopping the build ECS")

        def probe() -> Progress[str]:
            status = str(self.client.get("ecs", f"/cloudservers/{server_id}")["server"]["status"])
            return Progress(status == "SHUTOFF", status, status)

        self.poller.until("the build ECS to be SHUTOFF", probe, self.settings.job_timeout)
        self.progress(f"build ECS {server_id} stopped")

    def _create_image(self, server_id: str) -> str:
        body = {"name": self.settings.name, "description": self.settings.description, "instance_id": server_id}
        answer = self.client.post("ims", "/cloudimages/action", body)
        self.image_job_submitted = True
        job = self._wait_job("ims_jobs", str(answer["job_id"]), "creating the private image")
        image_id = (job.get("entities") or {}).get("image_id")
        if not image_id:
            raise BuildError(f"the IMS job {answer['job_id']} succeeded without an image_id")
        return str(image_id)

    def _delete_server(self, server_id: str) -> None:
        body = {"servers": [{"id": server_id}], "delete_publicip": True, "delete_volume": True}
        answer = self.client.post("ecs", "/cloudservers/delete", body)
        self._wait_job("ecs", str(answer["job_id"]), "deleting the build ECS")
        self.progress(f"build ECS {server_id} deleted")

    def _cleanup(self, cause: BaseException) -> None:
        """After a failure: delete the ECS (disk, EIP) and any image this build made; report what is left."""
        left: list[str] = []
        if self.server_id is not None:
            try:
                self._delete_server(self.server_id)
                self.server_id = None
            except Exception as exc:
                left.append(f"ECS {self.server_id} ({exc})")
        if self.image_job_submitted:
            try:
                for image_id in set(self._images_named(self.settings.name)) - self.images_before:
                    self.client.delete("ims", f"/images/{image_id}")
                    self.progress(f"half-made image {image_id} deleted")
            except Exception as exc:
                left.append(f"image named {self.settings.name} ({exc})")
        if self.server_id is None:  # a subnet in use by the ECS cannot go
            left += self.network.delete()
        elif self.network.vpc_id is not None:
            left.append(f"temporary network {self.network.name} (VPC {self.network.vpc_id})")
        if left:
            cause.add_note("left behind, delete by hand: " + "; ".join(left))
