"""The cluster file: what the user edits (JSON or YAML), read and checked completely before any API call.

Every problem is one line naming the field (``agents.max: ...``) and nothing is changed anywhere: a typo in a
flag or a CIDR that cannot hold the masters must be caught at the desk, not after the VPC exists. The
``mesos``, ``alluxio`` and ``credentials`` sections are passed to the nodes unchanged, so they are checked by
building both roles' user-data with the agent's own schema code.

Master addresses are not configured but derived (see ``master_ips``): they are the ZooKeeper ensemble and
must stay fixed for the life of the cluster, so they come from the subnet by a rule nobody can get wrong.

The ``agents``, ``drain`` and ``autoscaling`` sections are read in ``config_sections.py``, single fields
(strings, CIDRs, whole numbers, choices) in ``config_fields.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provision_min import dashboard as dashboard_login
from provision_min import s3_keys, userdata
from provision_min.config_fields import agency, choice, image_id, kind, name_like, network, show, string, whole
from provision_min.config_sections import HOOK_TIMEOUT as HOOK_TIMEOUT  # re-exported: scale.py
from provision_min.config_sections import Agents, Drain, agents_section, autoscaling_section, drain_section
from provision_min.errors import InputError

MASTER_IP_OFFSET = 10  # masters are .10, .11, ... of the subnet (network address + 10 + i)
MASTER_COUNTS = (1, 3, 5)
DEFAULT_DNS = ("100.125.4.25", "100.125.129.199")  # OTC's internal resolvers (also resolve the API hosts)
WORLD = ipaddress.IPv4Network("0.0.0.0/0")
RESERVED_ADDRESSES = 6  # network, gateway, broadcast and the cloud's own DHCP/DNS addresses, with margin

REQUIRED = (
    "cluster", "region", "availability_zone", "vpc_cidr", "subnet_cidr", "masters", "master_flavor",
    "agent_flavor", "image_id", "key_name", "agents",
)
OPTIONAL = (
    "mesos", "alluxio", "credentials", "root_volume_gb", "volume_type", "eip_bandwidth_mbit", "public_cidr",
    "dns_servers", "dashboard", "autoscaling", "drain", "agency",
)
CLUSTER_NAME = re.compile(r"^[a-z0-9-]{1,32}$")  # the schema's rule: the name is in every node's user-data
REGION = re.compile(r"^[a-z0-9-]{2,32}$")
VOLUME_TYPES = ("SATA", "SAS", "SSD", "co-p1", "uh-l1", "GPSSD", "ESSD")
PRIVATE_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


# The lifecycle section as config parsing checks it, before the catalog names the real AS endpoint.
PLACEHOLDER_AS_ENDPOINT = "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/project-id"


@dataclass(frozen=True)
class ClusterConfig:
    """A checked cluster file. ``mesos``/``alluxio``/``credentials`` are the sections handed to the nodes."""

    path: Path
    cluster: str
    region: str
    availability_zone: str
    vpc_cidr: ipaddress.IPv4Network
    subnet_cidr: ipaddress.IPv4Network
    masters: int
    master_flavor: str
    agent_flavor: str
    image_id: str
    key_name: str
    agents: Agents
    mesos: dict[str, Any] = field(default_factory=dict)
    alluxio: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = field(default=None, repr=False)
    root_volume_gb: int = 40
    volume_type: str = "SSD"
    eip_bandwidth_mbit: int = 10
    public_cidr: ipaddress.IPv4Network = WORLD
    dns_servers: tuple[str, str] = DEFAULT_DNS
    dashboard: dict[str, Any] | None = None  # the masters' login: user, password_hash, auth (provision_min.dashboard)
    autoscaling: dict[str, Any] | None = None  # the scaler's policy, min/max filled from agents (masters only)
    drain: Drain = Drain()  # noqa: RUF009 - a frozen dataclass (config_sections.py): one shared default is safe
    agency: str | None = None  # the IAM agency attached to every node (ECS metadata agency_name), OTC only

    @property
    def server_metadata(self) -> dict[str, str]:
        """What every node's ECS (a master's server, the agents' AS configuration) carries as metadata besides
        our own keys: the agency that hands the node its temporary AK/SK."""
        return {"agency_name": self.agency} if self.agency else {}

    @property
    def gateway_ip(self) -> str:
        """The subnet's gateway: its first address, as OTC's console proposes."""
        return str(self.subnet_cidr.network_address + 1)

    @property
    def master_ips(self) -> tuple[str, ...]:
        """Fixed master addresses: network address + 10, + 11, ... (192.168.0.0/24 -> .10, .11, .12)."""
        return master_ips(self.subnet_cidr, self.masters)

    def user_data(self, role: str, secret: str, dashboard: Mapping[str, Any] | None = None,
                  operator_acl_id: str | None = None, as_endpoint: str | None = None) -> dict[str, Any]:
        """The validated schema-1 user-data of ``role`` (``master`` or ``agent``) with ``secret``; a master's
        ``dashboard`` section is the given one, else the cluster file's; ``operator_acl_id`` masters only.
        An agent's carries ``drain`` and, with ``as_endpoint`` (the AS API of the catalog, or the local
        cloud's), ``lifecycle``: the hook it polls to learn that it is being removed. A master's ``autoscaling``
        (when the cluster file enables it) gets the same ``as_endpoint`` and the agents' group: what its scaler
        acts on."""
        if dashboard is None and role == "master":
            dashboard = self.dashboard
        autoscaling = self.autoscaling
        if autoscaling is not None and autoscaling.get("enabled") is True and as_endpoint is not None:
            autoscaling = {**autoscaling, "endpoint": as_endpoint, "group": f"{self.cluster}-agents"}
        lifecycle = drain = None
        if role == "agent":
            drain = {"grace": self.drain.grace, "stop_timeout": self.drain.stop_timeout}
            if as_endpoint is not None:
                from provision_min.lifecycle import lifecycle_section

                lifecycle = lifecycle_section(self, as_endpoint, f"{self.cluster}-agents")
        return userdata.build(
            cluster=self.cluster, role=role, masters=self.master_ips, secret=secret, mesos=self.mesos,
            alluxio=self.alluxio, credentials=self.credentials, dashboard=dashboard, operator_acl_id=operator_acl_id,
            autoscaling=autoscaling, lifecycle=lifecycle, drain=drain,
        )


def master_ips(subnet: ipaddress.IPv4Network, count: int) -> tuple[str, ...]:
    base = subnet.network_address + MASTER_IP_OFFSET
    return tuple(str(base + i) for i in range(count))


# --- loading ---------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice is an error instead of silently winning."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_document(path: Path) -> Any:
    """The file's content as plain data: JSON for ``*.json``, YAML (safe subset) otherwise."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such cluster file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: not valid YAML: {problem}{where}") from None


def load(path: Path | str, env: Mapping[str, str] | None = None) -> ClusterConfig:
    """Read and check a cluster file; ``InputError`` (one line, naming the field) for anything wrong. ``env``
    (default: this process's) holds the variables that ``credentials.*_env`` name."""
    path = Path(path)
    document = read_document(path)
    try:
        return parse(document, path, env)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def parse(document: Any, path: Path, env: Mapping[str, str] | None = None) -> ClusterConfig:
    if not isinstance(document, dict):
        raise InputError(f"expected a mapping of settings at the top, got {kind(document)}")
    for key in document:
        if key not in REQUIRED and key not in OPTIONAL:
            raise InputError(f"{key}: unknown key (known: {', '.join(sorted(REQUIRED + OPTIONAL))})")
    for key in REQUIRED:
        if key not in document:
            raise InputError(f"{key}: required")

    cluster = string(document, "cluster")
    if not CLUSTER_NAME.match(cluster):
        raise InputError(f"cluster: {cluster!r} must be 1-32 characters of a-z, 0-9 and '-'")
    region = string(document, "region")
    if not REGION.match(region):
        raise InputError(f"region: {region!r} is not a region name such as eu-de")
    zone = string(document, "availability_zone")
    if not REGION.match(zone):
        raise InputError(f"availability_zone: {zone!r} is not an availability zone such as eu-de-02")
    if not zone.startswith(f"{region}-"):
        raise InputError(f"availability_zone: {zone!r} is not a zone of region {region} (such as {region}-01)")

    vpc_cidr = network(document, "vpc_cidr")
    subnet_cidr = network(document, "subnet_cidr")
    for name, net in (("vpc_cidr", vpc_cidr), ("subnet_cidr", subnet_cidr)):
        if not any(net.subnet_of(private) for private in PRIVATE_NETWORKS):
            raise InputError(f"{name}: {net} is not inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if not subnet_cidr.subnet_of(vpc_cidr):
        raise InputError(f"subnet_cidr: {subnet_cidr} is not inside vpc_cidr {vpc_cidr}")

    masters = document["masters"]
    if type(masters) is not int or masters not in MASTER_COUNTS:
        raise InputError(f"masters: must be 1, 3 or 5 (a ZooKeeper quorum), got {show(masters)}")

    agents = agents_section(document["agents"])
    needed = MASTER_IP_OFFSET + masters + agents.max + RESERVED_ADDRESSES
    if subnet_cidr.num_addresses < needed:
        raise InputError(
            f"subnet_cidr: {subnet_cidr} has {subnet_cidr.num_addresses} addresses; the masters "
            f"(from .{MASTER_IP_OFFSET}) and agents.max={agents.max} agents need at least {needed}"
        )

    public_cidr = network(document, "public_cidr") if "public_cidr" in document else ClusterConfig.public_cidr
    dns = DEFAULT_DNS
    if "dns_servers" in document:
        raw_dns = document["dns_servers"]
        if not isinstance(raw_dns, list) or len(raw_dns) not in (1, 2):
            raise InputError("dns_servers: expected a list of one or two IPv4 addresses")
        items = []
        for index, item in enumerate(raw_dns):
            try:
                items.append(str(ipaddress.IPv4Address(item)))
            except (ValueError, TypeError):
                raise InputError(f"dns_servers[{index}]: {item!r} is not an IPv4 address") from None
        dns = (items[0], items[-1])

    mesos = document.get("mesos", {})
    if not isinstance(mesos, dict):
        raise InputError(f"mesos: expected a mapping, got {kind(mesos)}")
    alluxio = document.get("alluxio")
    if alluxio is not None and not isinstance(alluxio, dict):
        raise InputError(f"alluxio: expected a mapping, got {kind(alluxio)}")
    credentials = document.get("credentials")
    if credentials is not None and not isinstance(credentials, dict):
        raise InputError(f"credentials: expected a mapping, got {kind(credentials)}")
    if credentials is not None:
        credentials = s3_keys.resolve(credentials, os.environ if env is None else env, path.parent)

    config = ClusterConfig(
        path=path,
        cluster=cluster,
        region=region,
        availability_zone=zone,
        vpc_cidr=vpc_cidr,
        subnet_cidr=subnet_cidr,
        masters=masters,
        master_flavor=name_like(document, "master_flavor"),
        agent_flavor=name_like(document, "agent_flavor"),
        image_id=image_id(document),
        key_name=name_like(document, "key_name"),
        agents=agents,
        mesos=mesos,
        alluxio=alluxio,
        credentials=credentials,
        root_volume_gb=whole(document, "root_volume_gb", ClusterConfig.root_volume_gb, 10, 1024),
        volume_type=choice(document, "volume_type", ClusterConfig.volume_type, VOLUME_TYPES),
        eip_bandwidth_mbit=whole(document, "eip_bandwidth_mbit", ClusterConfig.eip_bandwidth_mbit, 1, 2000),
        public_cidr=public_cidr,
        dns_servers=dns,
        dashboard=dashboard_login.check_section(document.get("dashboard")),
        autoscaling=autoscaling_section(document.get("autoscaling"), agents),
        drain=drain_section(document.get("drain", {})),
        agency=agency(document),
    )
    # Both roles' user-data must pass the agent's validation (and its 32 KB limit) with a secret of real size.
    config.user_data("master", userdata.PLACEHOLDER_SECRET, operator_acl_id=userdata.PLACEHOLDER_OPERATOR_ACL_ID,
                     as_endpoint=PLACEHOLDER_AS_ENDPOINT)
    config.user_data("agent", userdata.PLACEHOLDER_SECRET, as_endpoint=PLACEHOLDER_AS_ENDPOINT)
    return config


