"""The OTC fake's VPC service (a mixin of ``fake_otc.FakeOtc``; ``shared/reference/otc-api.md``): VPCs
(``CREATING`` → ``OK``), subnets (``UNKNOWN`` → ``ACTIVE``), security groups and rules, EIPs (``PENDING_CREATE``
→ ``DOWN`` → ``ACTIVE``), refusing what the cloud refuses (a VPC with a subnet, a group or subnet still used).
The state lives on ``FakeOtc``; ``_require``, ``_find`` and ``_new_id`` are its shared helpers.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from tests.support.fake_otc_core import PROJECT_ID, FakeOtcState, Recorded, Reject, Res, _get


class FakeVpc(FakeOtcState):
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
