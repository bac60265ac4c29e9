"""A stateful fake of the OTC HTTP API for ``responses``, following ``shared/reference/otc-api.md``.

Only the OTC API is replaced in the provisioner's tests. This fake holds resources the way the cloud does,
answers with the documented shapes and ids (``vpc.id``, ``job_id`` + ``serverIds``, ``scaling_group_id``,
``X-Subject-Token``...), moves asynchronous resources through their documented states (VPC ``CREATING`` →
``OK``, subnet ``UNKNOWN`` → ``ACTIVE``, ECS job ``RUNNING`` → ``SUCCESS``/``FAIL``, EIP ``PENDING_CREATE``
→ ``DOWN`` → ``ACTIVE``, AS group ``PAUSED`` → ``INSERVICE`` → ``DELETING`` → gone), and refuses what the
cloud refuses (deleting a VPC that has a subnet, a security group or subnet still used by a server, an AS
configuration used by a group; a group with two security groups).

Every request body is checked against the documented *required* fields of the reference — not against
what the provisioner happens to send — and every violation is recorded in ``violations`` (the tests assert
it stays empty) besides being answered with HTTP 400. User-data is decoded and validated with the agent's
own schema code, as a node would.

Asynchronous progress is counted in polls: a resource becomes ready after ``delay`` GETs of itself, so a
client that does not poll never sees it ready, and one that polls sees the transitional state first.

Failures are injected with ``fail(...)``: before the cloud acts (``when="before"``: nothing happened) or
after (``when="after"``: it happened but the answer is an error — the lost-response case).

VPC, ECS, and AS with SMN are mixins (``fake_otc_vpc.py``, ``fake_otc_ecs.py``, ``fake_otc_as.py``); the
building blocks (``Reject``, ``Res``...) are in ``fake_otc_core.py`` and re-exported here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses

from tests.support.fake_master import FakeMasterStatus
from tests.support.fake_otc_as import FakeAutoScaling
from tests.support.fake_otc_core import PROJECT_ID, REGION, Failure, Recorded, Reject, Res, _get
from tests.support.fake_otc_ecs import FakeEcs
from tests.support.fake_otc_vpc import FakeVpc

DOMAIN = "OTC-EU-DE-00000000001000000042"
USER = "ops"
PASSWORD = "s3cret-Passw0rd!"

# name, vCPUs, RAM (MB): the example cluster file's flavors and a small one
FLAVORS = (("s3.xlarge.4", 4, 16384), ("s3.2xlarge.8", 8, 65536), ("s3.medium.1", 1, 1024),
           ("s3.large.2", 2, 4096))
ZONES = ("eu-de-01", "eu-de-02", "eu-de-03")


def flavor(name: str, vcpus: int, ram_mb: int, zones: tuple[str, ...] = ZONES) -> dict[str, Any]:
    """One entry of the documented ``flavors`` list."""
    links = [{"rel": rel, "href": f"https://ecs.{REGION}.otc.t-systems.com/{path}{PROJECT_ID}/flavors/{name}",
              "type": None} for rel, path in (("self", "v1.0/"), ("bookmark", ""))]
    return {"id": name, "name": name, "vcpus": str(vcpus), "ram": ram_mb, "disk": "0", "swap": "", "links": links,
            "OS-FLV-EXT-DATA:ephemeral": 0, "rxtx_factor": 1, "OS-FLV-DISABLED:disabled": False,
            "rxtx_quota": None, "rxtx_cap": None, "os-flavor-access:is_public": True,
            "os_extra_specs": {"ecs:performancetype": "normal", "ecs:generation": name.split(".")[0],
                               "cond:operation:status": "normal",
                               "cond:operation:az": ", ".join(f"{z}(normal)" for z in zones)}}


ERROR_STYLE = {"vpc": "flat", "ecs": "wrapped", "as": "wrapped", "iam": "wrapped", "smn": "flat"}


class FakeOtc(FakeVpc, FakeEcs, FakeAutoScaling):
    def __init__(
        self,
        *,
        delay: int = 1,
        catalog: dict[str, str] | None = None,
        bases: dict[str, str] | None = None,
        token_lifetime: dt.timedelta = dt.timedelta(hours=24),
        group_initial_status: str = "PAUSED",
    ) -> None:
        self.delay = delay
        self.token_lifetime = token_lifetime
        self.group_initial_status = group_initial_status
        self.iam_url = f"https://iam.{REGION}.otc.t-systems.com/v3"
        default_bases = {
            "vpc": f"https://vpc.{REGION}.otc.t-systems.com/v1/{PROJECT_ID}",
            "ecs": f"https://ecs.{REGION}.otc.t-systems.com/v1/{PROJECT_ID}",
            "as": f"https://as.{REGION}.otc.t-systems.com/autoscaling-api/v1/{PROJECT_ID}",
            "smn": f"https://smn.{REGION}.otc.t-systems.com/v2/{PROJECT_ID}",
        }
        self.bases = {"smn": default_bases["smn"], **bases} if bases else default_bases
        self.catalog_urls = catalog or {
            "vpc": f"https://vpc.{REGION}.otc.t-systems.com/v1/$(tenant_id)s",
            "ecs": f"https://ecs.{REGION}.otc.t-systems.com/v1/$(tenant_id)s",
            "as": f"https://as.{REGION}.otc.t-systems.com/autoscaling-api/v1/$(tenant_id)s",
            "smn": f"https://smn.{REGION}.otc.t-systems.com/v2/$(tenant_id)s",
        }
        self.calls: list[Recorded] = []
        self.violations: list[str] = []
        self.failures: list[Failure] = []
        self.tokens: dict[str, dt.datetime] = {}
        self.ids = itertools.count(1)
        self.vpcs: dict[str, Res] = {}
        self.subnets: dict[str, Res] = {}
        self.sgs: dict[str, Res] = {}
        self.servers: dict[str, Res] = {}
        self.ports: dict[str, str] = {}  # port id -> server id
        self.jobs: dict[str, Res] = {}
        self.eips: dict[str, Res] = {}
        self.configs: dict[str, Res] = {}
        self.groups: dict[str, Res] = {}
        self.user_data: dict[str, dict[str, Any]] = {}  # server or AS configuration name -> decoded user-data
        self.job_failures: list[str] = []  # fail reasons for the next ECS creation jobs
        self.topics: dict[str, dict[str, Any]] = {}  # SMN topic URN -> topic
        self.hooks: dict[str, dict[str, dict[str, Any]]] = {}  # AS group id -> hook name -> hook
        self.hanging: dict[str, dict[str, Any]] = {}  # lifecycle action key -> instance_hanging_info entry
        self.callbacks: list[dict[str, Any]] = []  # every accepted lifecycle callback body
        self.removing: dict[str, int] = {}  # instance id -> instance lists left before a REMOVING one is gone
        # run before each API call is answered: what the nodes do meanwhile (drain, call back), in tests
        self.observers: list[Callable[[Recorded], None]] = []
        self.master_status = FakeMasterStatus(self)  # what https://<eip>/status.json answers
        # The zone's flavors as ``GET /v1/{project_id}/cloudservers/flavors`` documents them (ECS API reference,
        # "Querying Details About Flavors and Extended Flavor Information": ``vcpus`` a string, ``ram`` in MB).
        self.flavors: list[dict[str, Any]] = [
            flavor(name, vcpus, ram) for name, vcpus, ram in FLAVORS
        ]

    # --- wiring -------------------------------------------------------------------------------------------

    def install(self, rsps: responses.RequestsMock) -> None:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"):
            rsps.add_callback(method, re.compile(r".*"), callback=self._handle)

    def fail(self, method: str, pattern: str, *, status: int = 500, code: str = "SYS.0500",
             message: str = "injected failure", when: str = "before", times: int = 1, skip: int = 0) -> None:
        """Make ``times`` calls of ``method`` whose service path matches ``pattern`` fail, after ``skip`` of them."""
        self.failures.append(Failure(method, re.compile(pattern), status, code, message, when, times, skip))

    def fail_next_job(self, reason: str = "Ecs.0013: insufficient capacity in the availability zone") -> None:
        self.job_failures.append(reason)

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # --- what tests look at -------------------------------------------------------------------------------

    def count(self, method: str | None = None, service: str | None = None) -> int:
        return sum(1 for c in self.calls if (method is None or c.method == method)
                   and (service is None or c.service == service))

    def methods(self) -> set[str]:
        return {c.method for c in self.calls if c.service != "iam"}

    def resources(self) -> dict[str, int]:
        """How many of each kind exist (the AS group's instance servers counted apart from the masters)."""
        masters = [s for s in self.servers.values() if not s.data.get("as_group")]
        return {
            "vpcs": len(self.vpcs), "subnets": len(self.subnets), "security_groups": len(self.sgs),
            "rules": sum(len([r for r in g.data["security_group_rules"] if r["direction"] == "ingress"])
                         for g in self.sgs.values()),
            "masters": len(masters), "instances": len(self.servers) - len(masters), "eips": len(self.eips),
            "as_configurations": len(self.configs), "as_groups": len(self.groups), "smn_topics": len(self.topics),
            "lifecycle_hooks": sum(len(hooks) for hooks in self.hooks.values()),
        }

    def empty(self) -> bool:
        return not any(self.resources().values())

    # --- dispatch -----------------------------------------------------------------------------------------

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = str(request.url)
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        raw = request.body
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        method = str(request.method)
        service, path = self._route(url.split("?")[0])
        record = Recorded(method, url, service, path, query, body)
        if service == "unknown" and (status_answer := self.master_status.answer(request)) is not None:
            return status_answer  # the first master's status document behind its EIP (fake_master.py): no API call
        self.calls.append(record)
        for observer in list(self.observers):
            observer(record)
        if service == "unknown":
            self.violations.append(f"request to a host that is not the fake OTC API: {method} {url}")
            raise requests.ConnectionError(f"no network in tests: {url}")
        status, headers, text = self._answer(request, record)
        record.status = status
        return status, headers, text

    def _route(self, url: str) -> tuple[str, str]:
        if url.startswith(self.iam_url + "/"):
            return "iam", url[len(self.iam_url):]
        for service, base in self.bases.items():
            if url.startswith(base + "/"):
                return service, url[len(base):]
        return "unknown", url

    def _answer(self, request: requests.PreparedRequest, record: Recorded) -> tuple[int, dict[str, str], str]:
        failure = self._failure(record)
        try:
            if failure is not None and failure.when == "before":
                raise Reject(failure.status, failure.code, failure.message)
            if record.service == "iam":
                result = self._iam(request, record)
            else:
                self._check_token(request)
                if record.method in ("POST", "PUT") and record.body is None:
                    raise Reject(400, "SYS.0400", f"{record.method} without a JSON body", violation=True)
                handler = getattr(self, f"_{record.service}")
                result = handler(record)
            if failure is not None:
                raise Reject(failure.status, failure.code, failure.message)
        except Reject as exc:
            if exc.violation:
                self.violations.append(f"{record.method} {record.path}: {exc.message}")
            return exc.status, {"Content-Type": "application/json"}, self._error_body(record.service, exc)
        status, payload, headers = result if len(result) == 3 else (*result, {})
        out = {"Content-Type": "application/json", **headers}
        return status, out, "" if payload is None else json.dumps(payload)

    def _failure(self, record: Recorded) -> Failure | None:
        for failure in self.failures:
            if failure.times > 0 and failure.method == record.method and failure.pattern.search(record.path):
                if failure.skip > 0:
                    failure.skip -= 1
                    continue
                failure.times -= 1
                return failure
        return None

    @staticmethod
    def _error_body(service: str, exc: Reject) -> str:
        if ERROR_STYLE.get(service) == "flat":
            return json.dumps({"code": exc.code, "message": exc.message})
        return json.dumps({"error": {"code": exc.code, "message": exc.message}})

    def _check_token(self, request: requests.PreparedRequest) -> None:
        token = request.headers.get("X-Auth-Token")
        expires = self.tokens.get(str(token))
        if expires is None or expires <= dt.datetime.now(dt.UTC):
            raise Reject(401, "APIGW.0301", "Incorrect IAM authentication information: verify aksk signature fail")

    def _require(self, record: Recorded, *paths: str) -> None:
        """The documented required fields (``a.b``, ``a[0].b``; ``x|y`` = one of them)."""
        for path in paths:
            options = path.split("|")
            if all(_get(record.body, option) in (None, "") for option in options):
                raise Reject(400, "SYS.0400", f"required field {path} missing", violation=True)

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self.ids):04d}-0000-4000-8000-000000000000"

    # --- IAM ----------------------------------------------------------------------------------------------

    def _iam(self, request: requests.PreparedRequest, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        if record.method != "POST" or record.path != "/auth/tokens":
            raise Reject(404, "404", "not found", violation=True)
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("application/json"):
            raise Reject(400, "400", f"Content-Type must be application/json;charset=utf8, got {content_type}",
                         violation=True)
        self._require(record, "auth.identity.methods", "auth.identity.password.user.name",
                      "auth.identity.password.user.password",
                      "auth.identity.password.user.domain.name|auth.identity.password.user.domain.id",
                      "auth.scope.project.name|auth.scope.project.id")
        if _get(record.body, "auth.identity.methods") != ["password"]:
            raise Reject(400, "400", "methods must be [password]", violation=True)
        user = _get(record.body, "auth.identity.password.user")
        if user.get("name") != USER or user.get("password") != PASSWORD or user.get("domain") not in (
                {"name": DOMAIN}, {"id": "domain-id-42"}):
            raise Reject(401, "401", "The username or password is wrong.")
        project = _get(record.body, "auth.scope.project")
        if project.get("name") not in (None, REGION) or project.get("id") not in (None, PROJECT_ID):
            raise Reject(401, "401", "project not found for this user")
        token = f"tok-{next(self.ids):06d}-MIIZ" + "x" * 16
        now = dt.datetime.now(dt.UTC)
        expires = now + self.token_lifetime
        self.tokens[token] = expires
        catalog = [
            {"type": service, "name": service, "id": f"cat-{service}",
             "endpoints": [{"id": f"ep-{service}", "interface": "public", "region": REGION, "region_id": REGION,
                            "url": url}]}
            for service, url in self.catalog_urls.items()
        ]
        catalog.append({"type": "compute", "name": "nova", "id": "cat-nova", "endpoints": [
            {"id": "ep-nova", "interface": "public", "region": REGION, "region_id": REGION,
             "url": f"https://ecs.{REGION}.otc.t-systems.com/v2.1/{PROJECT_ID}"}]})
        body = {"token": {
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "methods": ["password"],
            "project": {"id": PROJECT_ID, "name": REGION, "domain": {"id": "domain-id-42", "name": DOMAIN}},
            "user": {"id": "user-id-1", "name": USER, "domain": {"id": "domain-id-42", "name": DOMAIN}},
            "catalog": catalog,
        }}
        return 201, body, {"X-Subject-Token": token}

    @staticmethod
    def _find(store: dict[str, Res], key: str, code: str, message: str) -> Res:
        if key not in store:
            raise Reject(404, code, message)
        return store[key]
