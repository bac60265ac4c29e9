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
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import responses

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import MAX_USER_DATA_BYTES, parse_user_data
from tests.support.fake_master import FakeMasterStatus

REGION = "eu-de"
PROJECT_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
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


ERROR_STYLE = {"vpc": "flat", "ecs": "wrapped", "as": "wrapped", "iam": "wrapped"}


class Reject(Exception):
    """Answer the current request with an error (and maybe record a contract violation)."""

    def __init__(self, status: int, code: str, message: str, violation: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.violation = status, code, message, violation


@dataclass
class Recorded:
    method: str
    url: str
    service: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    code: str
    message: str
    when: str  # "before" | "after"
    times: int = 1
    skip: int = 0


@dataclass
class Res:
    """A resource with a status that moves on as it is polled."""

    data: dict[str, Any]
    pending: list[tuple[int, Callable[[], None]]] = field(default_factory=list)  # (polls left, action)

    def poll(self) -> None:
        if self.pending:
            left, action = self.pending[0]
            if left <= 0:
                self.pending.pop(0)
                action()
            else:
                self.pending[0] = (left - 1, action)


def _get(body: Any, path: str) -> Any:
    node = body
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or len(node) <= index:
                return None
            node = node[index]
        else:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
    return node


class FakeOtc:
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
        }
        self.bases = bases or default_bases
        self.catalog_urls = catalog or {
            "vpc": f"https://vpc.{REGION}.otc.t-systems.com/v1/$(tenant_id)s",
            "ecs": f"https://ecs.{REGION}.otc.t-systems.com/v1/$(tenant_id)s",
            "as": f"https://as.{REGION}.otc.t-systems.com/autoscaling-api/v1/$(tenant_id)s",
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
            "as_configurations": len(self.configs), "as_groups": len(self.groups),
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

    # --- VPC service --------------------------------------------------------------------------------------

    def _vpc(self, r: Recorded) -> tuple[int, Any]:
        m, p = r.method, r.path
        if (m, p) == ("GET", "/vpcs"):
            return 200, {"vpcs": [v.data for v in self.vpcs.values()]}
        if (m, p) == ("POST", "/vpcs"):
            self._require(r, "vpc.name", "vpc.cidr")
            self._cidr(r, "vpc.cidr")
            vid = self._new_id("vpc")
            res = Res({"id": vid, "name": r.body["vpc"]["name"], "cidr": r.body["vpc"]["cidr"], "status": "CREATING",
                       "routes": [], "enable_shared_snat": False})
            res.pending.append((self.delay, lambda: res.data.update(status="OK")))
            self.vpcs[vid] = res
            return 200, {"vpc": dict(res.data)}
        if match := re.fullmatch(r"/vpcs/([^/]+)", p):
            vpc = self._find(self.vpcs, match[1], "VPC.0202", "the vpc does not exist")
            if m == "GET":
                vpc.poll()
                return 200, {"vpc": vpc.data}
            if m == "DELETE":
                if any(s.data["vpc_id"] == match[1] for s in self.subnets.values()):
                    raise Reject(409, "VPC.0106", "the VPC still has subnets")
                del self.vpcs[match[1]]
                return 204, None
        if (m, p) == ("GET", "/subnets"):
            items = [s.data for s in self.subnets.values()
                     if "vpc_id" not in r.query or s.data["vpc_id"] == r.query["vpc_id"]]
            return 200, {"subnets": items}
        if (m, p) == ("POST", "/subnets"):
            self._require(r, "subnet.name", "subnet.cidr", "subnet.gateway_ip", "subnet.vpc_id", "subnet.primary_dns",
                          "subnet.secondary_dns")
            body = r.body["subnet"]
            net = self._cidr(r, "subnet.cidr")
            vpc = self._find(self.vpcs, body["vpc_id"], "VPC.0202", "the vpc does not exist")
            if not net.subnet_of(ipaddress.IPv4Network(vpc.data["cidr"])):
                raise Reject(400, "VPC.0204", "subnet cidr is not inside the VPC cidr", violation=True)
            if ipaddress.IPv4Address(body["gateway_ip"]) not in net:
                raise Reject(400, "VPC.0205", "gateway_ip is not in the subnet", violation=True)
            sid = self._new_id("subnet")
            res = Res({**body, "id": sid, "status": "UNKNOWN", "neutron_network_id": sid,
                       "neutron_subnet_id": self._new_id("nsub"), "dhcp_enable": True})
            res.pending.append((self.delay, lambda: res.data.update(status="ACTIVE")))
            self.subnets[sid] = res
            return 200, {"subnet": dict(res.data)}
        if match := re.fullmatch(r"/subnets/([^/]+)", p):
            subnet = self._find(self.subnets, match[1], "VPC.0302", "the subnet does not exist")
            if m == "GET":
                subnet.poll()
                if match[1] not in self.subnets:
                    raise Reject(404, "VPC.0302", "the subnet does not exist")
                return 200, {"subnet": subnet.data}
        if m == "DELETE" and (match := re.fullmatch(r"/vpcs/([^/]+)/subnets/([^/]+)", p)):
            subnet = self._find(self.subnets, match[2], "VPC.0302", "the subnet does not exist")
            if subnet.data["vpc_id"] != match[1]:
                raise Reject(400, "VPC.0303", "the subnet is not in this VPC", violation=True)
            users = [s.data["name"] for s in self.servers.values() if s.data["subnet_id"] == match[2]]
            if users:
                raise Reject(409, "VPC.0307", f"the subnet is in use by {', '.join(users)}")
            subnet.data["status"] = "DELETING"
            subnet.pending = [(self.delay, lambda: self.subnets.pop(match[2], None))]
            return 204, None
        if (m, p) == ("GET", "/security-groups"):
            items = [g.data for g in self.sgs.values()
                     if "vpc_id" not in r.query or g.data["vpc_id"] == r.query["vpc_id"]]
            return 200, {"security_groups": items}
        if (m, p) == ("POST", "/security-groups"):
            self._require(r, "security_group.name", "security_group.vpc_id")
            self._find(self.vpcs, r.body["security_group"]["vpc_id"], "VPC.0202", "the vpc does not exist")
            gid = self._new_id("sg")
            egress = [
                {"id": self._new_id("rule"), "security_group_id": gid, "direction": "egress", "ethertype": eth,
                 "protocol": None, "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
                 "remote_group_id": None}
                for eth in ("IPv4", "IPv6")
            ]
            data = {"id": gid, "name": r.body["security_group"]["name"], "vpc_id": r.body["security_group"]["vpc_id"],
                    "security_group_rules": egress}
            self.sgs[gid] = Res(data)
            return 200, {"security_group": json.loads(json.dumps(data))}
        if m == "DELETE" and (match := re.fullmatch(r"/security-groups/([^/]+)", p)):
            self._find(self.sgs, match[1], "VPC.0602", "the security group does not exist")
            users = [s.data["name"] for s in self.servers.values() if match[1] in s.data["sg_ids"]]
            if users:
                raise Reject(409, "VPC.0608", f"the security group is in use by {', '.join(users)}")
            del self.sgs[match[1]]
            return 204, None
        if (m, p) == ("POST", "/security-group-rules"):
            self._require(r, "security_group_rule.security_group_id", "security_group_rule.direction",
                          "security_group_rule.ethertype", "security_group_rule.protocol",
                          "security_group_rule.port_range_min", "security_group_rule.port_range_max",
                          "security_group_rule.remote_ip_prefix|security_group_rule.remote_group_id")
            rule = dict(r.body["security_group_rule"])
            group = self._find(self.sgs, rule["security_group_id"], "VPC.0602", "the security group does not exist")
            low, high = rule["port_range_min"], rule["port_range_max"]
            if type(low) is not int or type(high) is not int or not 1 <= low <= high <= 65535:
                raise Reject(400, "VPC.0603", "port_range_min/max must be 1 <= min <= max <= 65535", violation=True)
            if rule["direction"] not in ("ingress", "egress") or rule["ethertype"] not in ("IPv4", "IPv6"):
                raise Reject(400, "VPC.0604", "bad direction or ethertype", violation=True)
            if rule.get("remote_ip_prefix"):
                self._cidr(r, "security_group_rule.remote_ip_prefix")
            keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix")
            existing_rules = group.data["security_group_rules"]
            if any(all(existing.get(k) == rule.get(k) for k in keys) for existing in existing_rules):
                raise Reject(409, "VPC.0613", "the security group rule already exists", violation=True)
            rule["id"] = self._new_id("rule")
            rule.setdefault("remote_group_id", None)
            group.data["security_group_rules"].append(rule)
            return 200, {"security_group_rule": dict(rule)}
        if (m, p) == ("GET", "/publicips"):
            return 200, {"publicips": [e.data for e in self.eips.values()]}
        if (m, p) == ("POST", "/publicips"):
            self._require(r, "publicip.type", "bandwidth.name", "bandwidth.size", "bandwidth.share_type",
                          "bandwidth.charge_mode")
            eid = self._new_id("eip")
            number = len(self.eips) + 10
            res = Res({"id": eid, "status": "PENDING_CREATE", "type": r.body["publicip"]["type"],
                       "public_ip_address": f"80.158.{number // 250}.{number % 250 + 1}", "ip_version": 4,
                       "bandwidth_name": r.body["bandwidth"]["name"], "bandwidth_size": r.body["bandwidth"]["size"],
                       "bandwidth_share_type": r.body["bandwidth"]["share_type"], "port_id": None,
                       "private_ip_address": None, "tenant_id": PROJECT_ID})
            res.pending.append((self.delay, lambda: res.data.update(status="DOWN")))
            self.eips[eid] = res
            return 200, {"publicip": {k: v for k, v in res.data.items() if k != "bandwidth_name"}}
        if match := re.fullmatch(r"/publicips/([^/]+)", p):
            eip = self._find(self.eips, match[1], "VPC.0504", "the EIP does not exist")
            if m == "GET":
                eip.poll()
                return 200, {"publicip": eip.data}
            if m == "PUT":
                self._require(r, "publicip.port_id")
                port = r.body["publicip"]["port_id"]
                if port not in self.ports:
                    raise Reject(400, "VPC.0510", f"port {port} does not exist", violation=True)
                if eip.data["status"] == "PENDING_CREATE":
                    raise Reject(409, "VPC.0511", "the EIP is still being created")
                server = self.servers[self.ports[port]]
                eip.data.update(status="BINDING", port_id=port)
                eip.pending = [(self.delay, lambda: eip.data.update(status="ACTIVE",
                                                                      private_ip_address=server.data["ip"]))]
                return 200, {"publicip": dict(eip.data)}
            if m == "DELETE":
                del self.eips[match[1]]
                return 204, None
        raise Reject(404, "VPC.0000", f"no such API: {m} {p}", violation=True)

    def _cidr(self, r: Recorded, path: str) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(_get(r.body, path))
        except (ValueError, TypeError):
            raise Reject(400, "VPC.0101", f"{path} is not a CIDR", violation=True) from None

    @staticmethod
    def _find(store: dict[str, Res], key: str, code: str, message: str) -> Res:
        if key not in store:
            raise Reject(404, code, message)
        return store[key]

    # --- ECS ----------------------------------------------------------------------------------------------

    def _decode_user_data(self, r: Recorded, path: str, owner: str) -> dict[str, Any]:
        text = _get(r.body, path)
        try:
            raw = base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            raise Reject(400, "Ecs.0005", f"{path} is not base64", violation=True) from None
        if len(raw) > MAX_USER_DATA_BYTES:
            raise Reject(400, "Ecs.0005", f"{path} is {len(raw)} bytes before base64, over 32 KB", violation=True)
        try:
            parse_user_data(raw)
        except InvalidInput as exc:
            raise Reject(400, "Ecs.0005", f"{path} would be refused by the node: {exc}", violation=True) from None
        document: dict[str, Any] = json.loads(raw)
        self.user_data[owner] = document
        return document

    def _ecs(self, r: Recorded) -> tuple[int, Any]:
        m, p = r.method, r.path
        if (m, p) == ("GET", "/cloudservers/flavors"):
            zone = r.query.get("availability_zone", "")
            offered = [f for f in self.flavors if zone in f["os_extra_specs"]["cond:operation:az"]]
            return 200, {"flavors": offered}
        if (m, p) == ("GET", "/cloudservers/detail"):
            wanted = r.query.get("name", "")
            items = [self._server_view(s) for s in self.servers.values() if wanted in s.data["name"]]
            return 200, {"count": len(items), "servers": items}
        if (m, p) == ("POST", "/cloudservers"):
            self._require(r, "server.availability_zone", "server.name", "server.imageRef", "server.flavorRef",
                          "server.root_volume.volumetype", "server.vpcid", "server.nics[0].subnet_id",
                          "server.security_groups[0].id", "server.key_name", "server.user_data")
            body = r.body["server"]
            vpc = self._find(self.vpcs, body["vpcid"], "Ecs.0039", "the VPC does not exist")
            subnet = self._find(self.subnets, body["nics"][0]["subnet_id"], "Ecs.0039", "the subnet does not exist")
            if subnet.data["vpc_id"] != vpc.data["id"] or subnet.data["status"] != "ACTIVE":
                raise Reject(400, "Ecs.0039", "the subnet is not an active subnet of the VPC", violation=True)
            ip = body["nics"][0].get("ip_address")
            if ip and ipaddress.IPv4Address(ip) not in ipaddress.IPv4Network(subnet.data["cidr"]):
                raise Reject(400, "Ecs.0040", f"{ip} is not in the subnet", violation=True)
            if ip and any(s.data["ip"] == ip for s in self.servers.values()):
                raise Reject(409, "Ecs.0041", f"the IP address {ip} is already in use")
            sg_ids = [g["id"] for g in body["security_groups"]]
            for gid in sg_ids:
                self._find(self.sgs, gid, "Ecs.0042", f"security group {gid} does not exist")
            self._decode_user_data(r, "server.user_data", body["name"])
            sid = self._new_id("server")
            port = self._new_id("port")
            ip = ip or self._free_ip(subnet)
            server = Res({"id": sid, "name": body["name"], "status": "BUILD", "ip": ip,
                          "subnet_id": subnet.data["id"], "vpc_id": vpc.data["id"], "sg_ids": sg_ids, "port": port,
                          "flavor": body["flavorRef"], "key_name": body["key_name"]})
            job_id = self._new_id("job")
            reason = self.job_failures.pop(0) if self.job_failures else None
            job = Res({"job_id": job_id, "job_type": "createServer", "status": "RUNNING", "begin_time": "now",
                       "entities": {"sub_jobs": [{"status": "RUNNING", "entities": {"server_id": sid}}]}})
            if reason is None:
                # The server boots on its own (seen by polling it); the job reports success on its own too.
                self.servers[sid] = server
                self.ports[port] = sid
                server.pending.append((self.delay, lambda: server.data.update(status="ACTIVE")))

                def finish() -> None:
                    job.data["status"] = "SUCCESS"
                    job.data["entities"]["sub_jobs"][0]["status"] = "SUCCESS"

                job.pending.append((self.delay, finish))
            else:
                job.pending.append((self.delay, lambda: job.data.update(status="FAIL", fail_reason=reason)))
            self.jobs[job_id] = job
            return 200, {"job_id": job_id, "serverIds": [sid]}
        if (m, p) == ("POST", "/cloudservers/delete"):
            self._require(r, "servers[0].id", "delete_publicip", "delete_volume")
            ids = [s["id"] for s in r.body["servers"]]
            job_id = self._new_id("job")
            job = Res({"job_id": job_id, "job_type": "deleteServer", "status": "RUNNING",
                       "entities": {"sub_jobs": []}})

            def remove() -> None:
                for sid in ids:
                    self._remove_server(sid, release_eip=bool(r.body["delete_publicip"]))
                job.data["status"] = "SUCCESS"

            job.pending.append((self.delay, remove))
            self.jobs[job_id] = job
            return 200, {"job_id": job_id}
        if match := re.fullmatch(r"/jobs/([^/]+)", p):
            job = self._find(self.jobs, match[1], "Ecs.0200", "the job does not exist")
            job.poll()
            return 200, job.data
        if match := re.fullmatch(r"/cloudservers/([^/]+)", p):
            server = self._find(self.servers, match[1], "Ecs.0114", f"Instance[{match[1]}] could not be found.")
            if m == "GET":
                server.poll()
                if match[1] not in self.servers:
                    raise Reject(404, "Ecs.0114", f"Instance[{match[1]}] could not be found.")
                return 200, {"server": self._server_view(server)}
        if m == "GET" and (match := re.fullmatch(r"/cloudservers/([^/]+)/os-interface", p)):
            server = self._find(self.servers, match[1], "Ecs.0114", f"Instance[{match[1]}] could not be found.")
            data = server.data
            return 200, {"interfaceAttachments": [{
                "port_id": data["port"], "net_id": data["subnet_id"], "port_state": "ACTIVE",
                "mac_addr": "fa:16:3e:00:00:01",
                "fixed_ips": [{"subnet_id": data["subnet_id"], "ip_address": data["ip"]}],
            }]}
        raise Reject(404, "Ecs.0000", f"no such API: {m} {p}", violation=True)

    def _free_ip(self, subnet: Res) -> str:
        """An address the DHCP of the subnet would hand out: from .100 on, not taken."""
        network = ipaddress.IPv4Network(subnet.data["cidr"])
        taken = {s.data["ip"] for s in self.servers.values()}
        return next(str(ip) for ip in itertools.islice(network.hosts(), 99, None) if str(ip) not in taken)

    def _server_view(self, server: Res) -> dict[str, Any]:
        data = server.data
        return {"id": data["id"], "name": data["name"], "status": data["status"], "key_name": data["key_name"],
                "flavor": {"id": data["flavor"]},
                "addresses": {data["vpc_id"]: [{"version": "4", "addr": data["ip"], "OS-EXT-IPS:type": "fixed",
                                                "OS-EXT-IPS:port_id": data["port"]}]},
                "security_groups": [{"id": g} for g in data["sg_ids"]], "metadata": {}}

    def _remove_server(self, sid: str, *, release_eip: bool) -> None:
        server = self.servers.pop(sid, None)
        if server is None:
            return
        self.ports.pop(server.data["port"], None)
        for eid, eip in list(self.eips.items()):
            if eip.data.get("port_id") == server.data["port"]:
                if release_eip:
                    del self.eips[eid]
                else:
                    eip.data.update(status="DOWN", port_id=None, private_ip_address=None)

    # --- AS -----------------------------------------------------------------------------------------------

    def _as(self, r: Recorded) -> tuple[int, Any]:
        m, p = r.method, r.path
        if (m, p) == ("GET", "/scaling_configuration"):
            wanted = r.query.get("scaling_configuration_name", "")
            items = [c.data for c in self.configs.values() if wanted in c.data["scaling_configuration_name"]]
            return 200, {"scaling_configurations": items, "total_number": len(items), "start_number": 0, "limit": 20}
        if (m, p) == ("POST", "/scaling_configuration"):
            self._require(r, "scaling_configuration_name", "instance_config.flavorRef", "instance_config.imageRef",
                          "instance_config.disk[0].size", "instance_config.disk[0].volume_type",
                          "instance_config.disk[0].disk_type", "instance_config.key_name", "instance_config.user_data",
                          "instance_config.security_groups[0].id")
            config = r.body["instance_config"]
            if not isinstance(config.get("metadata", {}), dict):
                raise Reject(400, "AS.1004", "instance_config.metadata must be an object", violation=True)
            for group in config["security_groups"]:
                self._find(self.sgs, group["id"], "AS.1038", f"security group {group['id']} does not exist")
            name = r.body["scaling_configuration_name"]
            self._decode_user_data(r, "instance_config.user_data", name)
            cid = self._new_id("ascfg")
            self.configs[cid] = Res({"scaling_configuration_id": cid, "scaling_configuration_name": name,
                                     "instance_config": dict(config), "create_time": "now"})
            return 200, {"scaling_configuration_id": cid}
        if match := re.fullmatch(r"/scaling_configuration/([^/]+)", p):
            config = self._find(self.configs, match[1], "AS.1002", "The AS configuration does not exist.")
            if m == "GET":
                return 200, {"scaling_configuration": config.data}
            if m == "DELETE":
                if any(g.data["scaling_configuration_id"] == match[1] for g in self.groups.values()):
                    raise Reject(400, "AS.1039", "The AS configuration is being used by an AS group.")
                del self.configs[match[1]]
                return 204, None
        if (m, p) == ("GET", "/scaling_group"):
            wanted = r.query.get("scaling_group_name", "")
            items = [self._group_view(g) for g in self.groups.values() if wanted in g.data["scaling_group_name"]]
            return 200, {"scaling_groups": items, "total_number": len(items), "start_number": 0, "limit": 20}
        if (m, p) == ("POST", "/scaling_group"):
            self._require(r, "scaling_group_name", "scaling_configuration_id", "desire_instance_number",
                          "min_instance_number", "max_instance_number", "cool_down_time", "available_zones[0]",
                          "networks[0].id", "security_groups[0].id", "vpc_id", "health_periodic_audit_method",
                          "health_periodic_audit_time", "instance_terminate_policy", "delete_publicip")
            body = r.body
            if len(body["security_groups"]) > 1:
                raise Reject(400, "AS.2023", "an AS group takes at most one security group", violation=True)
            if body["health_periodic_audit_time"] not in (0, 1, 5, 15, 60, 180):
                raise Reject(400, "AS.2024", "health_periodic_audit_time must be 0, 1, 5, 15, 60 or 180",
                             violation=True)
            low, want, high = (body["min_instance_number"], body["desire_instance_number"],
                               body["max_instance_number"])
            if not low <= want <= high:
                raise Reject(400, "AS.2035", "min <= desired <= max does not hold", violation=True)
            self._find(self.configs, body["scaling_configuration_id"], "AS.1002",
                       "The AS configuration does not exist.")
            self._find(self.vpcs, body["vpc_id"], "AS.2010", "the VPC does not exist")
            self._find(self.subnets, body["networks"][0]["id"], "AS.2011", "the network does not exist")
            self._find(self.sgs, body["security_groups"][0]["id"], "AS.2012", "the security group does not exist")
            gid = self._new_id("asgrp")
            self.groups[gid] = Res({**body, "scaling_group_id": gid, "scaling_group_status": "INSERVICE"
                                    if self.group_initial_status == "INSERVICE" else "PAUSED",
                                    "instances": [], "is_scaling": False})
            if self.group_initial_status == "INSERVICE":
                self._fill_group(self.groups[gid])
            return 200, {"scaling_group_id": gid}
        if match := re.fullmatch(r"/scaling_group/([^/]+)", p):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            if m == "GET":
                group.poll()
                if match[1] not in self.groups:
                    raise Reject(404, "AS.2007", "The AS group does not exist.")
                return 200, {"scaling_group": self._group_view(group)}
            if m == "PUT":
                self._require(r, "desire_instance_number")  # the documented resize body
                if "desire_instance_number" in r.body:
                    want = r.body["desire_instance_number"]
                    if type(want) is not int or not (group.data["min_instance_number"] <= want
                                                     <= group.data["max_instance_number"]):
                        raise Reject(400, "AS.2035", "desire_instance_number is outside min..max", violation=True)
                    group.data["desire_instance_number"] = want
                    if group.data["scaling_group_status"] == "INSERVICE":
                        self._fill_group(group)
                return 200, {"scaling_group_id": match[1]}
            if m == "DELETE":
                if group.data["instances"] and r.query.get("force_delete") != "yes":
                    raise Reject(400, "AS.2048", "The AS group has instances: delete with force_delete=yes")
                group.data["scaling_group_status"] = "DELETING"
                instances = list(group.data["instances"])
                for instance in instances:
                    instance["life_cycle_state"] = "REMOVING"
                    server = self.servers.get(instance["instance_id"])
                    if server is not None:
                        sid = instance["instance_id"]
                        server.data["status"] = "DELETING"
                        server.pending = [(self.delay + 1, lambda sid=sid: self._remove_server(sid, release_eip=True))]
                group.pending = [(self.delay, lambda: self.groups.pop(match[1], None))]
                return 204, None
        if m == "POST" and (match := re.fullmatch(r"/scaling_group/([^/]+)/action", p)):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            self._require(r, "action")
            action = r.body["action"]
            if action not in ("resume", "pause"):
                raise Reject(400, "AS.2001", f"unknown action {action}", violation=True)
            if action == "resume":
                if group.data["scaling_group_status"] == "INSERVICE":
                    raise Reject(400, "AS.2034", "The AS group is already in service.")
                def start() -> None:
                    group.data["scaling_group_status"] = "INSERVICE"
                    self._fill_group(group)

                group.pending = [(self.delay - 1, start)]
            else:
                group.data["scaling_group_status"] = "PAUSED"
            return 204, None
        if m == "GET" and (match := re.fullmatch(r"/scaling_group_instance/([^/]+)/list", p)):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            start, limit = int(r.query.get("start_number", 0)), int(r.query.get("limit", 20))
            items = group.data["instances"]
            return 200, {"scaling_group_instances": items[start:start + limit], "total_number": len(items),
                         "start_number": start, "limit": limit}
        raise Reject(404, "AS.0000", f"no such API: {m} {p}", violation=True)

    def _group_view(self, group: Res) -> dict[str, Any]:
        data = group.data
        view = {k: v for k, v in data.items() if k != "instances"}
        view["current_instance_number"] = len(data["instances"])
        return view

    def _fill_group(self, group: Res) -> None:
        """Launch or remove instances until the group holds its desired number (as the service would)."""
        data = group.data
        config = self.configs[data["scaling_configuration_id"]]
        while len(data["instances"]) < data["desire_instance_number"]:
            sid = self._new_id("server")
            port = self._new_id("port")
            name = f"{config.data['scaling_configuration_name']}-{sid[7:11]}"
            subnet = self.subnets[data["networks"][0]["id"]]
            self.servers[sid] = Res({"id": sid, "name": name, "status": "ACTIVE", "ip": self._free_ip(subnet),
                                     "subnet_id": subnet.data["id"], "vpc_id": data["vpc_id"],
                                     "sg_ids": [g["id"] for g in data["security_groups"]], "port": port,
                                     "flavor": config.data["instance_config"]["flavorRef"],
                                     "key_name": config.data["instance_config"]["key_name"],
                                     "as_group": data["scaling_group_id"]})
            self.ports[port] = sid
            data["instances"].append({"instance_id": sid, "instance_name": name,
                                      "scaling_group_id": data["scaling_group_id"],
                                      "life_cycle_state": "INSERVICE", "health_status": "NORMAL",
                                      "scaling_configuration_id": data["scaling_configuration_id"]})
        while len(data["instances"]) > data["desire_instance_number"]:
            instance = data["instances"].pop()
            self._remove_server(instance["instance_id"], release_eip=True)
