"""The shared OTC fake (``fake_otc.FakeOtc``: IAM, VPC, ECS with their documented payloads and states) plus what
``provision-min image build`` calls beyond the provisioner, with the documented payloads (image/README.md's
table; opentelekomcloud-docs image-management-service and elastic-cloud-server):

* IMS ``GET /v2/cloudimages?__imagetype=gold&...`` → ``images[]`` (the public Debian images); ``?name=&owner=``
  the project's own (``ims_apis/image/querying_images.rst``); ``POST /v2/cloudimages/action`` ``{"name",
  "description", "instance_id"}`` → ``{"job_id"}``, refused unless the ECS is stopped (``creating_an_image.rst``);
  ``GET /v1/{project_id}/jobs/{job_id}`` → ``imsCreateImageByInstance`` with ``entities.image_id``;
  ``DELETE /v2/images/{id}`` → 204;
* ECS ``POST /v1/{project_id}/cloudservers/action`` ``{"os-stop": {"type", "servers": [{"id"}]}}`` → ``job_id``,
  the server ``SHUTOFF`` once the job is done (``batch_operations/stopping_ecss_in_a_batch.rst``);
* a build ECS: its user-data is a ``#!`` script, which cloud-init runs instead of handing it to the agent; the
  test plays that run (``on_script``), as the ECS would: fetch through the presigned URLs, upload the report.
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.support.fake_otc import PROJECT_ID, REGION, FakeOtc, Recorded, Reject, Res, _get

IMS = f"https://ims.{REGION}.otc.t-systems.com"
DEBIAN12 = "6ae1b4c0-1b1c-4a3e-8a63-7b2c3b1d2e12"
USER_DATA_LIMIT = 32 * 1024


class FakeOtcImages(FakeOtc):
    def __init__(self, *, obs_endpoint: str, on_script: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bases = {**self.bases, "ims": f"{IMS}/v2", "ims_jobs": f"{IMS}/v1/{PROJECT_ID}"}
        self.catalog_urls = {**self.catalog_urls, "ims": IMS, "obs": obs_endpoint}
        self.on_script = on_script
        self.scripts: dict[str, str] = {}  # server name -> its #! user-data
        self.images: dict[str, dict[str, Any]] = {}
        self.image_jobs: dict[str, Res] = {}
        self.ims_job_failure: str | None = None

    # --- a build ECS's user-data is a script ----------------------------------------------------------------
    def _decode_user_data(self, r: Recorded, path: str, owner: str) -> dict[str, Any]:
        raw = base64.b64decode(str(_get(r.body, path)))
        if not raw.startswith(b"#!"):
            return super()._decode_user_data(r, path, owner)
        if len(raw) > USER_DATA_LIMIT:
            raise Reject(400, "Ecs.0005", f"{path} is {len(raw)} bytes before base64, over 32 KB", violation=True)
        self.scripts[owner] = raw.decode()
        if self.on_script is not None:
            self.on_script(raw.decode())
        return {}

    def _ecs(self, r: Recorded) -> tuple[int, Any]:
        if (r.method, r.path) != ("POST", "/cloudservers/action"):
            return super()._ecs(r)
        self._require(r, "os-stop.type", "os-stop.servers[0].id")
        ids = [s["id"] for s in r.body["os-stop"]["servers"]]
        servers = [self._find(self.servers, sid, "Ecs.0114", f"Instance[{sid}] could not be found.") for sid in ids]
        job_id = self._new_id("job")
        job = Res({"job_id": job_id, "job_type": "stopServer", "status": "RUNNING", "entities": {"sub_jobs": []}})

        def stopped() -> None:
            for server in servers:
                server.pending = []
                server.data["status"] = "SHUTOFF"
            job.data["status"] = "SUCCESS"

        job.pending.append((self.delay, stopped))
        self.jobs[job_id] = job
        return 200, {"job_id": job_id}

    # --- IMS ------------------------------------------------------------------------------------------------
    def _ims(self, r: Recorded) -> tuple[int, Any]:
        m, p = r.method, r.path
        if (m, p) == ("GET", "/cloudimages"):
            if r.query.get("__imagetype") == "gold":
                base = {"__imagetype": "gold", "visibility": "public", "status": "active", "__os_type": "Linux",
                        "__platform": "Debian", "min_disk": 4, "disk_format": "zvhd2"}
                return 200, {"images": [
                    {**base, "id": "0328c25e-c840-4496-81ac-c4e01b214b1f", "name": "Standard_Debian_11_latest",
                     "__os_version": "Debian GNU/Linux 11.0.0 64bit", "created_at": "2024-05-01T10:00:00Z"},
                    {**base, "id": DEBIAN12, "name": "Standard_Debian_12_latest",
                     "__os_version": "Debian GNU/Linux 12.0.0 64bit", "created_at": "2024-06-01T10:00:00Z"}]}
            if r.query.get("owner") != PROJECT_ID:
                raise Reject(400, "IMG.0001", "the builder lists its own images by name and owner", violation=True)
            return 200, {"images": [i for i in self.images.values() if i["name"] == r.query.get("name")]}
        if (m, p) == ("POST", "/cloudimages/action"):
            self._require(r, "name", "instance_id")
            server = self._find(self.servers, r.body["instance_id"], "IMG.0010", "the ECS does not exist")
            if server.data["status"] != "SHUTOFF":
                raise Reject(400, "IMG.0011", "the ECS must be stopped to create an image from it")
            image_id = self._new_id("image")
            job_id = self._new_id("imsjob")
            job = Res({"job_id": job_id, "job_type": "imsCreateImageByInstance", "status": "RUNNING",
                       "entities": {}, "fail_reason": None})
            self.images[image_id] = {"id": image_id, "name": r.body["name"], "status": "saving"}
            reason = self.ims_job_failure

            def done() -> None:
                if reason is None:
                    self.images[image_id]["status"] = "active"
                    job.data.update(status="SUCCESS", entities={"image_id": image_id, "image_name": r.body["name"]})
                else:
                    job.data.update(status="FAIL", fail_reason=reason)

            job.pending.append((self.delay, done))
            self.image_jobs[job_id] = job
            return 200, {"job_id": job_id}
        if m == "DELETE" and (match := re.fullmatch(r"/images/([^/]+)", p)):
            if self.images.pop(match[1], None) is None:
                raise Reject(404, "IMG.0404", "the image does not exist")
            return 204, None
        raise Reject(404, "IMG.0000", f"no such API: {m} {p}", violation=True)

    def _ims_jobs(self, r: Recorded) -> tuple[int, Any]:
        if r.method == "GET" and (match := re.fullmatch(r"/jobs/([^/]+)", r.path)):
            job = self._find(self.image_jobs, match[1], "IMG.0404", "the job does not exist")
            job.poll()
            return 200, job.data
        raise Reject(404, "IMG.0000", f"no such API: {r.method} {r.path}", violation=True)


def run_build_script(script: str, report: str = "ok") -> list[str]:
    """What cloud-init does with a build ECS's user-data: fetch the bundle and the wheel through their presigned
    URLs (moto, on loopback), and upload the install log through the presigned PUT URL; the bundle's names."""
    urls = re.findall(r"'(https?://[^']+)'", script)
    bundle_url = next(u for u in urls if "bundle.tar.gz" in u)
    wheel_url = next(u for u in urls if ".whl" in u and "/sources/" not in u)
    report_url = next(u for u in urls if "report.log" in u)
    with urllib.request.urlopen(bundle_url, timeout=10) as answer:
        bundle = answer.read()
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        names = tar.getnames()
    with urllib.request.urlopen(wheel_url, timeout=10) as answer:
        answer.read()
    log = f"install-node: done\nRESULT {report}\n".encode()
    request = urllib.request.Request(report_url, data=log, method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    return names
