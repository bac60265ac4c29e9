"""The build ECS's own temporary network, for builds that are given none: a VPC, a subnet and a security
group with only the default egress rules, created before the ECS and deleted after it, also when the build
fails.

An image is built before any cluster exists, so asking for the ids of a cluster's network (``up`` makes it)
would put the cart before the horse. The calls and payloads are the ones ``provision-min up`` makes
(``provision_min/plan.py``, ``shared/reference/otc-api.md``): ``POST /v1/{pid}/vpcs`` → ``vpc.status``
``CREATING`` → ``OK``; ``POST /v1/{pid}/subnets`` (with OTC's internal DNS servers, which also resolve the
Debian mirror and OBS) → ``UNKNOWN`` → ``ACTIVE``; ``POST /v1/{pid}/security-groups`` (no ingress rule: nothing
needs to reach the build ECS, it fetches and reports by itself). Deleting goes the other way: the group, the
subnet (asynchronous: polled until 404), then the VPC, which OTC refuses while it still has a subnet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from provision_min.config import DEFAULT_DNS
from provision_min.errors import ResourceFailed
from provision_min.otc import OtcClient
from provision_min.wait import Poller, Progress

VPC_CIDR = "192.168.0.0/16"
SUBNET_CIDR = "192.168.0.0/24"
GATEWAY_IP = "192.168.0.1"
WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class Network:
    """Where the build ECS goes: ``vpc_id``, ``subnet_id`` (its Neutron network id) and the security group."""

    vpc_id: str
    subnet_id: str
    security_group_id: str


class TemporaryNetwork:
    """``create()`` the build's network, ``delete()`` whatever of it exists (safe to call after a partial create)."""

    def __init__(self, client: OtcClient, poller: Poller, name: str, progress: Callable[[str], None]) -> None:
        self.client = client
        self.poller = poller
        self.name = name
        self.progress = progress
        self.vpc_id: str | None = None
        self.subnet_id: str | None = None
        self.security_group_id: str | None = None

    def create(self) -> Network:
        answer = self.client.post("vpc", "/vpcs", {"vpc": {"name": self.name, "cidr": VPC_CIDR}})
        self.vpc_id = str(answer["vpc"]["id"])
        self._wait_status("vpc", f"/vpcs/{self.vpc_id}", "OK")
        subnet = {"name": self.name, "cidr": SUBNET_CIDR, "gateway_ip": GATEWAY_IP, "vpc_id": self.vpc_id,
                  "primary_dns": DEFAULT_DNS[0], "secondary_dns": DEFAULT_DNS[1]}
        answer = self.client.post("vpc", "/subnets", {"subnet": subnet})
        self.subnet_id = str(answer["subnet"]["id"])
        self._wait_status("subnet", f"/subnets/{self.subnet_id}", "ACTIVE")
        answer = self.client.post("vpc", "/security-groups",
                                  {"security_group": {"name": self.name, "vpc_id": self.vpc_id}})
        self.security_group_id = str(answer["security_group"]["id"])
        self.progress(f"temporary network {self.name} created (vpc {self.vpc_id})")
        return Network(self.vpc_id, self.subnet_id, self.security_group_id)

    def delete(self) -> list[str]:
        """Delete what exists, in reverse order; what could not be deleted, for the error's "left behind"."""
        left: list[str] = []
        if self.security_group_id is not None:
            try:
                self.client.delete("vpc", f"/security-groups/{self.security_group_id}")
                self.security_group_id = None
            except Exception as exc:
                left.append(f"security group {self.security_group_id} ({exc})")
        if self.subnet_id is not None and self.vpc_id is not None:
            try:
                self.client.delete("vpc", f"/vpcs/{self.vpc_id}/subnets/{self.subnet_id}")
                self._wait_gone(f"/subnets/{self.subnet_id}")
                self.subnet_id = None
            except Exception as exc:
                left.append(f"subnet {self.subnet_id} ({exc})")
        if self.vpc_id is not None and self.subnet_id is None:
            try:
                self.client.delete("vpc", f"/vpcs/{self.vpc_id}")
                self.vpc_id = None
            except Exception as exc:
                left.append(f"VPC {self.vpc_id} ({exc})")
        elif self.vpc_id is not None:
            left.append(f"VPC {self.vpc_id} (its subnet is left)")
        if not left:
            self.progress(f"temporary network {self.name} deleted")
        return left

    def _wait_status(self, kind: str, path: str, ready: str) -> None:
        def probe() -> Progress[str]:
            status = str(self.client.get("vpc", path)[kind].get("status", ""))
            if status == "ERROR":
                raise ResourceFailed(f"the build's {kind} {path.rsplit('/', 1)[1]} is in ERROR")
            return Progress(status == ready, status, status)

        self.poller.until(f"the build's {kind} to be {ready}", probe, WAIT_SECONDS)

    def _wait_gone(self, path: str) -> None:
        def probe() -> Progress[bool]:
            answer = self.client.get_or_none("vpc", path)
            return Progress(answer is None, "DELETING" if answer else "gone", True)

        self.poller.until("the build's subnet to be deleted", probe, WAIT_SECONDS)
