"""User-data schema 1: parse and validate into immutable ``Settings``.

Everything a node will ever do comes from this document, so it is checked completely before anything is
touched: unknown keys at any level, types, formats, and combinations that could not work on a real cluster
(a flag Mesos does not know, temporary credentials an Alluxio version cannot use). Each problem is reported
as one line naming the field by its path (``alluxio.block_size``), the way ``cloud-init schema`` should have.
The rules here are the contract of docs/architecture.md; the provisioner builds user-data with the same code.

This module checks the top level and the rules that span sections; each section has its own module
(``mesos``, ``alluxio`` with ``credentials``, ``dashboard``, ``tools`` for Spark, Zeppelin and Jenkins).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.ports import AGENT_PORTS
from bootstrap_agent.schema.alluxio import parse_alluxio, parse_credentials
from bootstrap_agent.schema.autoscaling import AutoscalingSettings, parse_autoscaling
from bootstrap_agent.schema.dashboard import parse_dashboard
from bootstrap_agent.schema.document import (
    MAX_USER_DATA_BYTES,
    SCHEMA_VERSION,
    TOP_KEYS,
    check_override_key,
    decode_user_data,
    with_overrides,
)
from bootstrap_agent.schema.lifecycle import DrainSettings, parse_drain, parse_lifecycle
from bootstrap_agent.schema.mesos import parse_mesos
from bootstrap_agent.schema.ramdisk import AUTO, OFF, RamDisk
from bootstrap_agent.schema.readers import kind, read_object, read_string, required
from bootstrap_agent.schema.settings import (
    AlluxioSettings,
    Credentials,
    CredentialSource,
    DashboardSettings,
    MesosSettings,
    Role,
    Settings,
    SparkSettings,
    ToolSettings,
)
from bootstrap_agent.schema.tools import check_tools, parse_spark, parse_tool

__all__ = [
    "AUTO", "MAX_USER_DATA_BYTES", "OFF", "PRIVATE_NETWORKS", "SCHEMA_VERSION", "AlluxioSettings", "CredentialSource",
    "Credentials", "DashboardSettings", "MesosSettings", "RamDisk", "Role", "Settings", "SparkSettings",
    "ToolSettings", "check_override_key", "decode_user_data", "parse_user_data", "validate", "with_overrides",
]

CLUSTER_NAME = re.compile(r"^[a-z0-9-]{1,32}$")
PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
MIN_SECRET_LENGTH = 16
OPERATOR_ACL_ID = re.compile(r"bootstrap-operator:[A-Za-z0-9+/]{27}=\Z")


def parse_user_data(raw: bytes | str) -> Settings:
    """Decode and validate user-data; raise ``InvalidInput`` naming the field for anything wrong."""
    return validate(decode_user_data(raw))


def validate(document: Any) -> Settings:
    """Validate an already decoded user-data object."""
    top = read_object(document, "", TOP_KEYS)
    schema = top.get("schema")
    if schema is None:
        raise InvalidInput("schema", "required (1)")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise InvalidInput("schema", f"must be {SCHEMA_VERSION}, got {json.dumps(schema)}")
    cluster = read_string(required(top, "cluster", ""), "cluster")
    if not CLUSTER_NAME.match(cluster):
        raise InvalidInput("cluster", f"{cluster!r} must be 1-32 characters of a-z, 0-9 and '-'")
    role = read_string(required(top, "role", ""), "role")
    if role not in ("master", "agent"):
        raise InvalidInput("role", f"must be 'master' or 'agent', got {role!r}")
    masters = _masters(required(top, "masters", ""))
    secret = read_string(required(top, "secret", ""), "secret")
    if len(secret) < MIN_SECRET_LENGTH:
        raise InvalidInput("secret", f"must be at least {MIN_SECRET_LENGTH} characters")
    operator_acl_id = _operator_acl_id(top.get("operator_acl_id"), role)
    mesos = parse_mesos(top.get("mesos", {}))
    alluxio = parse_alluxio(top["alluxio"]) if "alluxio" in top else None
    credentials = parse_credentials(top["credentials"]) if "credentials" in top else None
    dashboard = parse_dashboard(top["dashboard"]) if "dashboard" in top else DashboardSettings()
    spark = parse_spark(top["spark"]) if "spark" in top else SparkSettings()
    zeppelin = parse_tool(top["zeppelin"], "zeppelin") if "zeppelin" in top else ToolSettings()
    jenkins = parse_tool(top["jenkins"], "jenkins") if "jenkins" in top else ToolSettings()
    check_tools(dashboard, {"zeppelin": zeppelin, "jenkins": jenkins})
    autoscaling = parse_autoscaling(top["autoscaling"], role) if "autoscaling" in top else AutoscalingSettings()
    lifecycle = parse_lifecycle(top["lifecycle"], role) if "lifecycle" in top else None
    drain = parse_drain(top["drain"], role) if "drain" in top else DrainSettings()
    taken = AGENT_PORTS[alluxio.version] if alluxio is not None else AGENT_PORTS[""]
    if spark.shuffle_service and spark.shuffle_port in taken:
        raise InvalidInput("spark.shuffle_port",
                           f"{spark.shuffle_port} is taken by the agent's Mesos, Alluxio or metrics exporter")
    if alluxio is not None:
        _check_alluxio(alluxio, len(masters), credentials)
    return Settings(
        cluster=cluster,
        role="master" if role == "master" else "agent",
        masters=masters,
        secret=secret,
        mesos=mesos,
        alluxio=alluxio,
        credentials=credentials,
        dashboard=dashboard,
        spark=spark,
        zeppelin=zeppelin,
        jenkins=jenkins,
        operator_acl_id=operator_acl_id,
        autoscaling=autoscaling,
        lifecycle=lifecycle,
        drain=drain,
    )


def _operator_acl_id(value: Any, role: str) -> str | None:
    """The operator credential's digest id (``bootstrap-operator:`` and base64 of a SHA-1): with it a master
    creates a new cluster's tree already split; an agent never needs it, so it is refused there."""
    if value is None:
        return None
    if role != "master":
        raise InvalidInput("operator_acl_id", "only a master's user-data may carry it")
    if not isinstance(value, str) or not OPERATOR_ACL_ID.match(value):
        raise InvalidInput("operator_acl_id", "must be a ZooKeeper digest id 'bootstrap-operator:<base64 SHA-1>'")
    return value


def _check_alluxio(alluxio: AlluxioSettings, masters: int, credentials: Credentials | None) -> None:
    """What Alluxio needs of the rest of the document: one journal it can share, keys it can use."""
    if alluxio.version == "1.8" and masters > 1:
        raise InvalidInput(
            "alluxio.version",
            "Alluxio 1.8 with several masters needs a shared journal filesystem (HDFS/NFS), which this "
            "cluster does not have; use Alluxio 2.9 (embedded journal) or a single master",
        )
    if credentials is None:
        raise InvalidInput("credentials", "required when 'alluxio' is set (the under-FS is S3/OBS)")
    if credentials.source == "agency" and alluxio.version == "1.8":
        raise InvalidInput(
            "credentials.source",
            "'agency' hands out temporary keys with a session token, which Alluxio 1.8 cannot use; "
            "use 'keys' or Alluxio 2.9",
        )


def _masters(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidInput("masters", f"expected a list of IPv4 addresses, got {kind(value)}")
    if len(value) not in (1, 3, 5):
        raise InvalidInput("masters", f"must hold 1, 3 or 5 addresses (a ZooKeeper quorum), got {len(value)}")
    seen: list[str] = []
    for index, item in enumerate(value):
        path = f"masters[{index}]"
        text = read_string(item, path)
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise InvalidInput(path, f"{text!r} is not an IPv4 address") from None
        if str(address) != text or not any(address in net for net in PRIVATE_NETWORKS):
            raise InvalidInput(path, f"{text!r} is not a private IPv4 address (10/8, 172.16/12, 192.168/16)")
        if text in seen:
            raise InvalidInput(path, f"{text} is listed twice")
        seen.append(text)
    return tuple(seen)
