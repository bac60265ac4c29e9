"""User-data schema 1: parse and validate into immutable ``Settings``.

Everything a node will ever do comes from this document, so it is checked completely before anything is
touched: unknown keys at any level, types, formats, and combinations that could not work on a real cluster
(a flag Mesos does not know, temporary credentials an Alluxio version cannot use). Each problem is reported
as one line naming the field by its path (``alluxio.block_size``), the way ``cloud-init schema`` should have.
The rules here are the contract of docs/architecture.md; the provisioner builds user-data with the same code.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bootstrap_agent import names
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.sizes import parse_size

SCHEMA_VERSION = 1
MAX_USER_DATA_BYTES = 32 * 1024  # OTC's limit before base64; anything larger never came from a real cloud

Role = Literal["master", "agent"]
CredentialSource = Literal["keys", "agency"]

CLUSTER_NAME = re.compile(r"^[a-z0-9-]{1,32}$")
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
BUCKET_UFS = re.compile(r"^(s3a?)://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s]*)?$")
ACCESS_KEY = re.compile(r"^[A-Za-z0-9+/=._-]{8,256}$")
CONTAINERIZERS = ("mesos", "docker")
PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
MIN_SECRET_LENGTH = 16

# Flags the agent derives itself: letting user-data override them would silently break the cluster.
MANAGED_AGENT_FLAGS = frozenset(
    {"master", "work_dir", "ip", "hostname", "port", "resources", "attributes", "containerizers", "log_dir"}
)
MANAGED_MASTER_FLAGS = frozenset({"zk", "quorum", "work_dir", "cluster", "ip", "hostname", "port", "log_dir"})


# A RAM disk setting: ``None`` = off (the folder stays on disk), ``AUTO`` = sized from the node's memory, else
# bytes. Off by default for the Mesos and Docker folders, so user-data written before these keys existed
# gives the node exactly what it gave before.
AUTO = -1
Ramdisk = int | None


@dataclass(frozen=True)
class MesosSettings:
    version: str = "1.11"
    containerizers: tuple[str, ...] = ("mesos",)
    attributes: tuple[tuple[str, str], ...] = ()
    agent_flags: tuple[tuple[str, str], ...] = ()
    master_flags: tuple[tuple[str, str], ...] = ()
    work_dir_ramdisk: Ramdisk = None  # the agent's work_dir (sandboxes, checkpoints) in RAM
    docker_ramdisk: Ramdisk = None  # Docker's data-root in RAM; only with the docker containerizer

    @property
    def docker(self) -> bool:
        """Docker runs on agents exactly when Mesos is told to use it."""
        return "docker" in self.containerizers


@dataclass(frozen=True)
class SparkSettings:
    """Spark's external shuffle service on every agent (executors on Mesos need it for dynamic allocation:
    their shuffle files outlive them)."""

    shuffle_service: bool = True
    shuffle_port: int = 7337


@dataclass(frozen=True)
class ToolSettings:
    """An optional tool on the masters (Zeppelin, Jenkins): off unless the user-data turns it on."""

    enabled: bool = False


@dataclass(frozen=True)
class AlluxioSettings:
    root_ufs: str
    version: str = "2.9"
    s3_endpoint: str | None = None
    block_size: int | None = None
    worker_ramdisk: int | None = None  # bytes; None = "auto", sized from the node's memory
    s3_region: str | None = None  # signing region; None = from the endpoint (obs.<region>.otc.t-systems.com)


@dataclass(frozen=True)
class Credentials:
    source: CredentialSource
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DashboardSettings:
    """The master's HTTPS dashboards. Auth is on unless the user-data turns it off explicitly; without a
    password hash the dashboards stay locked rather than open."""

    auth: bool = True
    user: str = "admin"
    password_hash: str | None = field(default=None, repr=False)
    tls_certificate: str | None = None
    tls_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    cluster: str
    role: Role
    masters: tuple[str, ...]
    secret: str = field(repr=False)
    mesos: MesosSettings = MesosSettings()
    alluxio: AlluxioSettings | None = None
    credentials: Credentials | None = None
    dashboard: DashboardSettings = DashboardSettings()
    spark: SparkSettings = SparkSettings()
    zeppelin: ToolSettings = ToolSettings()
    jenkins: ToolSettings = ToolSettings()

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never reach a log line or a world-readable file."""
        values = [self.secret]
        if self.credentials and self.credentials.secret_access_key:
            values.append(self.credentials.secret_access_key)
        values.extend(v for v in (self.dashboard.password_hash, self.dashboard.tls_key) if v)
        return tuple(values)


# --- parsing -------------------------------------------------------------------------------------------


def parse_user_data(raw: bytes | str) -> Settings:
    """Decode and validate user-data; raise ``InvalidInput`` naming the field for anything wrong."""
    return validate(decode_user_data(raw))


def decode_user_data(raw: bytes | str) -> Any:
    """The JSON document in user-data, without judging its content yet."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_USER_DATA_BYTES:
            raise InvalidInput("", f"user-data is {len(raw)} bytes, more than the cloud's limit of 32 KB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("", f"user-data is not UTF-8 text (byte {exc.start})") from None
    else:
        text = raw
    if text.lstrip().startswith("#cloud-config"):
        raise InvalidInput("", "user-data is a cloud-config, not bootstrap-agent schema-1 JSON")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise InvalidInput("", "not valid user-data: nested too deeply") from None
    return document


# Run-time configuration (``bootstrap-agent config set``) may change how the cluster runs, never what it is:
# its identity and its secrets stay where the provisioner put them.
FIXED_KEYS = ("schema", "cluster", "role", "masters", "secret", "credentials")


def check_override_key(key: str) -> list[str]:
    """The dotted path of a run-time override, split; ``InvalidInput`` for keys that may not be overridden."""
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise InvalidInput(key or "config", "not a dotted key such as alluxio.block_size")
    if parts[0] in FIXED_KEYS:
        raise InvalidInput(key, f"'{parts[0]}' is fixed at provisioning and cannot be changed at run time")
    if parts[0] not in TOP_KEYS:
        raise InvalidInput(key, f"unknown key (known: {', '.join(sorted(TOP_KEYS - set(FIXED_KEYS)))})")
    return parts


def with_overrides(document: Any, overrides: Mapping[str, Any]) -> Any:
    """``document`` with every dotted override applied (``None`` removes the key); the caller validates."""
    import copy

    if not isinstance(document, dict):
        return document
    result = copy.deepcopy(document)
    for key in sorted(overrides):
        parts = check_override_key(key)
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if overrides[key] is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = overrides[key]
    return result


def _no_constant(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def validate(document: Any) -> Settings:
    """Validate an already decoded user-data object."""
    top = _object(document, "", TOP_KEYS)
    schema = top.get("schema")
    if schema is None:
        raise InvalidInput("schema", "required (1)")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise InvalidInput("schema", f"must be {SCHEMA_VERSION}, got {json.dumps(schema)}")
    cluster = _string(_required(top, "cluster", ""), "cluster")
    if not CLUSTER_NAME.match(cluster):
        raise InvalidInput("cluster", f"{cluster!r} must be 1-32 characters of a-z, 0-9 and '-'")
    role = _string(_required(top, "role", ""), "role")
    if role not in ("master", "agent"):
        raise InvalidInput("role", f"must be 'master' or 'agent', got {role!r}")
    masters = _masters(_required(top, "masters", ""))
    secret = _string(_required(top, "secret", ""), "secret")
    if len(secret) < MIN_SECRET_LENGTH:
        raise InvalidInput("secret", f"must be at least {MIN_SECRET_LENGTH} characters")
    mesos = _mesos(top.get("mesos", {}))
    alluxio = _alluxio(top["alluxio"]) if "alluxio" in top else None
    credentials = _credentials(top["credentials"]) if "credentials" in top else None
    dashboard = _dashboard(top["dashboard"]) if "dashboard" in top else DashboardSettings()
    spark = _spark(top["spark"]) if "spark" in top else SparkSettings()
    zeppelin = _tool(top["zeppelin"], "zeppelin") if "zeppelin" in top else ToolSettings()
    jenkins = _tool(top["jenkins"], "jenkins") if "jenkins" in top else ToolSettings()
    for name, tool in (("zeppelin", zeppelin), ("jenkins", jenkins)):
        if tool.enabled and not dashboard.auth:
            # Both run code on the cluster for whoever reaches them: never without the dashboard's password.
            raise InvalidInput(f"{name}.enabled", f"{name} runs code on the cluster and is reached only through "
                               "the dashboard: it cannot be enabled with dashboard.auth false")
    taken = AGENT_PORTS[alluxio.version] if alluxio is not None else AGENT_PORTS[""]
    if spark.shuffle_service and spark.shuffle_port in taken:
        raise InvalidInput("spark.shuffle_port", f"{spark.shuffle_port} is taken by the agent's Mesos or Alluxio")
    if alluxio is not None:
        if alluxio.version == "1.8" and len(masters) > 1:
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
    )


TOP_KEYS = frozenset({
    "schema", "cluster", "role", "masters", "secret", "mesos", "alluxio", "credentials", "dashboard", "spark",
    "zeppelin", "jenkins",
})
SPARK_KEYS = frozenset({"shuffle_service", "shuffle_port"})
TOOL_KEYS = frozenset({"enabled"})
# Ports an agent's own services hold (Mesos agent; Alluxio worker and proxy per version): the shuffle service
# must not take one of them.
AGENT_PORTS = {"": (5051,), "1.8": (5051, 29998, 29999, 30000, 39999), "2.9": (5051, 29999, 30000, 39999)}
DASHBOARD_KEYS = frozenset({"auth", "user", "password_hash", "tls_certificate", "tls_key"})
DASHBOARD_USER = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
# Hashes nginx's auth_basic_user_file understands on Debian 12 (its own $apr1$, glibc/libxcrypt crypt(),
# salted SHA). {PLAIN} and unsalted {SHA} are refused: a leaked user-data must not leak the password too.
PASSWORD_HASH = re.compile(
    r"^(\$apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}"
    r"|\$(?:5|6)\$(?:rounds=\d{4,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43,86}"
    r"|\$2[aby]\$\d{2}\$[./0-9A-Za-z]{53}"
    r"|\$y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{43}"
    r"|\{SSHA\}[A-Za-z0-9+/=]{28,})$"
)
PEM_TEXT = re.compile(r"^(?:-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END \1-----\n)+$")
MESOS_KEYS = frozenset({
    "version", "containerizers", "attributes", "agent_flags", "master_flags", "work_dir_ramdisk", "docker_ramdisk",
})
ALLUXIO_KEYS = frozenset({"version", "root_ufs", "s3_endpoint", "s3_region", "block_size", "worker_ramdisk"})
S3_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+){1,3}$")  # eu-de, eu-nl, us-east-1, cn-north-4
CREDENTIAL_KEYS = frozenset({"source", "access_key_id", "secret_access_key"})


def _masters(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidInput("masters", f"expected a list of IPv4 addresses, got {_kind(value)}")
    if len(value) not in (1, 3, 5):
        raise InvalidInput("masters", f"must hold 1, 3 or 5 addresses (a ZooKeeper quorum), got {len(value)}")
    seen: list[str] = []
    for index, item in enumerate(value):
        path = f"masters[{index}]"
        text = _string(item, path)
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


def _mesos(value: Any) -> MesosSettings:
    obj = _object(value, "mesos", MESOS_KEYS)
    version = _choice(obj.get("version", MesosSettings.version), "mesos.version", names.MESOS_VERSIONS)
    containerizers: tuple[str, ...] = MesosSettings.containerizers
    if "containerizers" in obj:
        raw = obj["containerizers"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("mesos.containerizers", f"expected a non-empty list, got {_kind(raw)}")
        items = [
            _choice(item, f"mesos.containerizers[{i}]", CONTAINERIZERS) for i, item in enumerate(raw)
        ]
        if len(set(items)) != len(items):
            raise InvalidInput("mesos.containerizers", "lists a containerizer twice")
        containerizers = tuple(items)
    attributes = tuple(_attributes(obj.get("attributes", {})))
    agent_flags = _flags(obj.get("agent_flags", {}), "mesos.agent_flags", version, "agent", MANAGED_AGENT_FLAGS)
    master_flags = _flags(
        obj.get("master_flags", {}), "mesos.master_flags", version, "master", MANAGED_MASTER_FLAGS
    )
    work_dir_ramdisk = _ramdisk(obj.get("work_dir_ramdisk", "off"), "mesos.work_dir_ramdisk")
    docker_ramdisk = _ramdisk(obj.get("docker_ramdisk", "off"), "mesos.docker_ramdisk")
    if docker_ramdisk is not None and "docker" not in containerizers:
        raise InvalidInput("mesos.docker_ramdisk", "Docker runs only with the docker containerizer "
                           "(mesos.containerizers); without it there is no Docker data to put in RAM")
    return MesosSettings(version, containerizers, attributes, agent_flags, master_flags, work_dir_ramdisk,
                         docker_ramdisk)


def _ramdisk(value: Any, path: str) -> Ramdisk:
    """``off``, ``auto`` or a size (at least 64 MiB: less holds no sandbox, image or block worth having)."""
    if value == "off":
        return None
    if value == "auto":
        return AUTO
    if isinstance(value, bool):
        raise InvalidInput(path, f"expected 'off', 'auto' or a size, got {_kind(value)}")
    size = _size(value, path)
    if size < 64 << 20:
        raise InvalidInput(path, f"{value!r} is less than 64MB; use 'off' for no RAM disk")
    return size


def _spark(value: Any) -> SparkSettings:
    obj = _object(value, "spark", SPARK_KEYS)
    enabled = _bool(obj.get("shuffle_service", True), "spark.shuffle_service")
    port = obj.get("shuffle_port", SparkSettings.shuffle_port)
    if type(port) is not int or not 1024 <= port <= 65535:
        raise InvalidInput("spark.shuffle_port", f"expected a port number 1024-65535, got {json.dumps(port)}")
    return SparkSettings(enabled, port)


def _tool(value: Any, name: str) -> ToolSettings:
    obj = _object(value, name, TOOL_KEYS)
    return ToolSettings(_bool(obj.get("enabled", False), f"{name}.enabled"))


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(path, f"expected true or false, got {_kind(value)}")
    return value


def _attributes(value: Any) -> list[tuple[str, str]]:
    obj = _object(value, "mesos.attributes", None)
    result = []
    for key, raw in obj.items():
        path = f"mesos.attributes.{key}"
        if not ATTRIBUTE_NAME.match(key):
            raise InvalidInput(path, "attribute names are 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        text = _scalar(raw, path)
        if ";" in text or not text.strip():
            raise InvalidInput(path, f"{text!r} must be non-empty and must not contain ';' (attribute separator)")
        result.append((key, text))
    return result


def _flags(
    value: Any, path: str, version: str, role: names.MesosRole, managed: frozenset[str]
) -> tuple[tuple[str, str], ...]:
    obj = _object(value, path, None)
    known = names.mesos_flags(version, role)
    result = []
    for name, raw in obj.items():
        flag_path = f"{path}.{name}"
        if name in managed:
            raise InvalidInput(flag_path, f"--{name} is set by bootstrap-agent itself and cannot be overridden")
        if name not in known:
            binary = "mesos-agent" if role == "agent" else "mesos-master"
            raise InvalidInput(flag_path, f"{binary} {version} has no flag --{name}")
        result.append((name, _scalar(raw, flag_path)))
    return tuple(sorted(result))


def _alluxio(value: Any) -> AlluxioSettings:
    obj = _object(value, "alluxio", ALLUXIO_KEYS)
    version = _choice(obj.get("version", AlluxioSettings.version), "alluxio.version", names.ALLUXIO_VERSIONS)
    root_ufs = _string(_required(obj, "root_ufs", "alluxio"), "alluxio.root_ufs")
    if not BUCKET_UFS.match(root_ufs):
        raise InvalidInput(
            "alluxio.root_ufs", f"{root_ufs!r} must be s3://bucket/path or s3a://bucket/path (a valid bucket name)"
        )
    endpoint = None
    if "s3_endpoint" in obj:
        endpoint = _url(obj["s3_endpoint"], "alluxio.s3_endpoint")
    block_size = _size(obj["block_size"], "alluxio.block_size") if "block_size" in obj else None
    ramdisk = None
    if "worker_ramdisk" in obj and obj["worker_ramdisk"] != "auto":
        ramdisk = _size(obj["worker_ramdisk"], "alluxio.worker_ramdisk")
    region = None
    if "s3_region" in obj:
        region = _string(obj["s3_region"], "alluxio.s3_region")
        if not S3_REGION.match(region):
            raise InvalidInput("alluxio.s3_region", f"{region!r} is not a region name such as eu-de")
    return AlluxioSettings(root_ufs, version, endpoint, block_size, ramdisk, region)


def _credentials(value: Any) -> Credentials:
    obj = _object(value, "credentials", CREDENTIAL_KEYS)
    source = _choice(_required(obj, "source", "credentials"), "credentials.source", ("keys", "agency"))
    if source == "agency":
        for key in ("access_key_id", "secret_access_key"):
            if key in obj:
                raise InvalidInput(f"credentials.{key}", "not used with source 'agency' (keys come from the cloud)")
        return Credentials("agency")
    keys = {}
    for key in ("access_key_id", "secret_access_key"):
        path = f"credentials.{key}"
        if key not in obj:
            raise InvalidInput(path, "required with source 'keys'")
        text = _string(obj[key], path)
        if not ACCESS_KEY.match(text):
            raise InvalidInput(path, "must be 8-256 characters of A-Z, a-z, 0-9, '+/=._-'")
        keys[key] = text
    return Credentials("keys", keys["access_key_id"], keys["secret_access_key"])


def _dashboard(value: Any) -> DashboardSettings:
    obj = _object(value, "dashboard", DASHBOARD_KEYS)
    auth = _bool(obj.get("auth", True), "dashboard.auth")
    user = _string(obj.get("user", "admin"), "dashboard.user")
    if not DASHBOARD_USER.match(user):
        raise InvalidInput("dashboard.user", "1-32 characters of A-Z, a-z, 0-9, '._-'")
    password_hash = None
    if "password_hash" in obj:
        password_hash = _string(obj["password_hash"], "dashboard.password_hash")
        if not PASSWORD_HASH.match(password_hash):
            raise InvalidInput("dashboard.password_hash", "not a password hash nginx accepts "
                               "($apr1$ from 'openssl passwd -apr1', $5$/$6$ from 'openssl passwd -6', bcrypt, "
                               "yescrypt or {SSHA}); plain text and {SHA} are refused")
    certificate = _pem(obj["tls_certificate"], "dashboard.tls_certificate", "CERTIFICATE") \
        if "tls_certificate" in obj else None
    key = _pem(obj["tls_key"], "dashboard.tls_key", "PRIVATE KEY") if "tls_key" in obj else None
    if (certificate is None) != (key is None):
        missing = "dashboard.tls_key" if key is None else "dashboard.tls_certificate"
        raise InvalidInput(missing, "tls_certificate and tls_key come together")
    return DashboardSettings(auth, user, password_hash, certificate, key)


def _pem(value: Any, path: str, kind: str) -> str:
    """PEM text: the one place where user-data strings may hold newlines (and nothing else unusual)."""
    if not isinstance(value, str):
        raise InvalidInput(path, f"expected a PEM string, got {_kind(value)}")
    text = value.replace("\r\n", "\n").strip() + "\n"
    if not PEM_TEXT.match(text):
        raise InvalidInput(path, "not PEM: only -----BEGIN ...----- / -----END ...----- blocks of base64")
    first = text[len("-----BEGIN "):text.index("-----\n")]
    if not first.endswith(kind):
        raise InvalidInput(path, f"expected a {kind} block, got {first}")
    return text


# --- small typed readers ---------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    kinds: Mapping[type, str] = {
        dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
        float: "a number", type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)


def _object(value: Any, path: str, allowed: frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(path, f"expected an object, got {_kind(value)}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                raise InvalidInput(where, f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def _required(obj: Mapping[str, Any], key: str, parent: str) -> Any:
    if key not in obj:
        raise InvalidInput(f"{parent}.{key}" if parent else key, "required")
    return obj[key]


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(path, f"expected a string, got {_kind(value)}")
    _no_control(value, path)
    return value


def _scalar(value: Any, path: str) -> str:
    """Flag and attribute values: strings, numbers and booleans, rendered the way Mesos reads them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _string(value, path)


def _no_control(text: str, path: str) -> None:
    if any(ch in text for ch in "\n\r\x00"):
        raise InvalidInput(path, "must not contain a newline or NUL")


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    text = _string(value, path)
    if text not in allowed:
        raise InvalidInput(path, f"must be one of {', '.join(allowed)}; got {text!r}")
    return text


def _size(value: Any, path: str) -> int:
    text = _string(value, path) if not isinstance(value, int) or isinstance(value, bool) else str(value)
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InvalidInput(path, str(exc)) from None


def _url(value: Any, path: str) -> str:
    text = _string(value, path)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidInput(path, f"{text!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(path, f"{text!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment or " " in text:
        raise InvalidInput(path, f"{text!r} must not carry credentials, a query or a fragment")
    return text

