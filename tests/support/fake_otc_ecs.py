"""The OTC fake's ECS service (a mixin of ``fake_otc.FakeOtc``; ``shared/reference/otc-api.md``): servers
created through jobs (``RUNNING`` → ``SUCCESS``/``FAIL``, ``fail_next_job``), their user-data decoded and
validated with the agent's own schema code, interfaces, flavors, deletion (with or without the EIP). The
state lives on ``FakeOtc``; ``_require``, ``_find`` and ``_new_id`` are its shared helpers.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import re
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import MAX_USER_DATA_BYTES, parse_user_data
from tests.support.fake_otc_core import FakeOtcState, Recorded, Reject, Res, _get


class FakeEcs(FakeOtcState):
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
                          "flavor": body["flavorRef"], "key_name": body["key_name"], "image": body["imageRef"],
                          "metadata": dict(body.get("metadata") or {})})
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
                "security_groups": [{"id": g} for g in data["sg_ids"]], "metadata": dict(data.get("metadata") or {}),
                "image": {"id": data.get("image", "")}}

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
