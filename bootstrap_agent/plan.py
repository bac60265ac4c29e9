"""``plan()``: settings + facts + peers → the files and services a node should have. Pure.

Everything the configuration logic needs arrives as values, and the result is a value: no network, no
filesystem, no clock. That keeps the whole of "what should this node look like" testable in microseconds and
makes ``render`` and ``once`` agree by construction (both call this function).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.schema import Settings
from bootstrap_agent.sizes import GiB, MiB, format_size
from bootstrap_agent.templates import render

ZOO_CFG = "/etc/zookeeper/conf/zoo.cfg"
ZOO_MYID = "/var/lib/zookeeper/myid"
MESOS_MASTER_ENV = "/etc/default/mesos-master"
MESOS_AGENT_ENV = "/etc/default/mesos-agent"
ALLUXIO_SITE = "/opt/alluxio/conf/alluxio-site.properties"
ALLUXIO_ENV = "/etc/default/alluxio"  # EnvironmentFile of the Alluxio units
AWS_CREDENTIALS = "/var/lib/bootstrap-agent/aws/credentials"  # agency keys, rotated without restarts
NGINX_DASHBOARD = "/etc/nginx/conf.d/bootstrap-agent-dashboard.conf"
DASHBOARD_CERT = "/etc/nginx/tls/bootstrap-agent-dashboard.crt"
DASHBOARD_KEY = "/etc/nginx/tls/bootstrap-agent-dashboard.key"
DASHBOARD_HTPASSWD = "/etc/nginx/bootstrap-agent-dashboard.htpasswd"
DASHBOARD_INDEX = "/var/lib/bootstrap-agent/www/index.html"
ETC_HOSTS = "/etc/hosts"

DASHBOARD_PORT = 443  # HTTPS; port 80 stays the node's loopback-only metadata cache
SPARK_UI_PORT = 4040
ZK_CLIENT_PORT = 2181
MESOS_MASTER_PORT = 5050
MESOS_AGENT_PORT = 5051
ALLUXIO_MASTER_RPC, ALLUXIO_MASTER_WEB = 19998, 19999
ALLUXIO_PROXY_WEB = 39999
ALLUXIO_WORKER_PORTS = {"1.8": (29998, 29999, 30000), "2.9": (29999, 30000)}
ALLUXIO_EMBEDDED_JOURNAL_PORT = 19200

# Memory the node keeps for the OS, the Mesos agent, Docker and the Alluxio worker's JVM: never offered to
# tasks and never put in the RAM disk.
SYSTEM_RESERVE_MIN = 1 * GiB
SYSTEM_RESERVE_FRACTION = 0.10
ALLUXIO_WORKER_JVM = 1 * GiB
MIN_MESOS_TASK_MEMORY = 512 * MiB
RAMDISK_AUTO_FRACTION = 1 / 3
RAMDISK_GRANULE = 256 * MiB


@dataclass(frozen=True)
class Layout:
    """Where the node's tree is: ``/`` on a real node, a temporary folder in tests and the process manager.

    Paths written *inside* files (ZooKeeper's dataDir, Mesos' work_dir) go through ``path()`` too, so a node
    run under ``--root`` never touches the host's own ``/var/lib``.
    """

    root: str = "/"

    def path(self, node_path: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, node_path.lstrip("/")))


@dataclass(frozen=True)
class DesiredFile:
    path: str  # absolute path on the node, before the layout's root is applied
    content: bytes = field(repr=False)
    mode: int = 0o644
    check: str | None = None  # name of a checker run on the staged file (e.g. "nginx")
    secret: bool = False
    group: str | None = None  # group owner (e.g. www-data for a 0640 file nginx workers read); owner is root


@dataclass(frozen=True)
class DesiredService:
    unit: str
    inputs: tuple[str, ...]  # node paths whose content the running unit depends on
    ports: tuple[tuple[str, int], ...]  # (host, port) that answer once the unit is up
    version: str | None = None  # of the program, for stand-ins and process supervision
    reload: bool = False  # apply input changes with a reload instead of a restart


@dataclass(frozen=True)
class Plan:
    files: tuple[DesiredFile, ...]
    services: tuple[DesiredService, ...]  # in start order: dependencies first

    def file(self, path: str) -> DesiredFile:
        for desired in self.files:
            if desired.path == path:
                return desired
        raise KeyError(path)

    def inputs_digest(self, service: DesiredService) -> str:
        """Identity of what a unit was started with: it is restarted exactly when this changes."""
        digest = hashlib.sha256(service.unit.encode())
        for path in service.inputs:
            desired = self.file(path)
            digest.update(b"\0" + path.encode() + b"\0" + desired.content + oct(desired.mode).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Peers:
    """Other members as seen in ZooKeeper; empty until the node has registered."""

    members: tuple[dict[str, Any], ...] = ()  # Member fields: uuid, role, ip, hostname, state, reason, services


@dataclass(frozen=True)
class Memory:
    """How an agent's memory is split between the system, Alluxio's RAM disk and Mesos tasks."""

    reserved: int
    ramdisk: int
    mesos: int


def plan(settings: Settings, facts: Facts, peers: Peers | None = None, layout: Layout | None = None) -> Plan:
    """The complete desired state of this node; raises ``InvalidInput`` when it cannot work here."""
    layout = layout or Layout()
    peers = peers or Peers()
    if settings.role == "master" and facts.ip not in settings.masters:
        raise InvalidInput(
            "masters", f"this node is a master but its address {facts.ip} is not in masters {list(settings.masters)}"
        )
    files: list[DesiredFile] = [_hosts(facts)]
    services: list[DesiredService] = []
    if settings.role == "master":
        _master(settings, facts, peers, layout, files, services)
    else:
        _agent(settings, facts, layout, files, services)
    return Plan(tuple(files), tuple(services))


# --- masters ---------------------------------------------------------------------------------------------


def _master(
    settings: Settings, facts: Facts, peers: Peers, layout: Layout, files: list[DesiredFile],
    services: list[DesiredService],
) -> None:
    masters = settings.masters
    myid = masters.index(facts.ip) + 1
    files.append(_text(ZOO_CFG, render(
        "zoo.cfg.j2",
        cluster=settings.cluster,
        data_dir=layout.path("/var/lib/zookeeper"),
        servers=[{"id": i + 1, "ip": ip} for i, ip in enumerate(masters)],
    )))
    files.append(_text(ZOO_MYID, f"{myid}\n"))
    services.append(DesiredService("zookeeper", (ZOO_CFG, ZOO_MYID), ((facts.ip, ZK_CLIENT_PORT),)))

    flags = {
        "zk": zk_url(masters),
        "quorum": str(len(masters) // 2 + 1),
        "work_dir": layout.path("/var/lib/mesos"),
        "log_dir": layout.path("/var/log/mesos"),
        "cluster": settings.cluster,
        "ip": facts.ip,
        "hostname": facts.ip,
        "port": str(MESOS_MASTER_PORT),
    }
    flags.update(settings.mesos.master_flags)
    files.append(_mesos_env(MESOS_MASTER_ENV, "mesos-master", settings, flags))
    services.append(DesiredService(
        "mesos-master", (MESOS_MASTER_ENV,), ((facts.ip, MESOS_MASTER_PORT),), settings.mesos.version
    ))

    if settings.alluxio is not None:
        files.append(_alluxio_site(settings, facts, layout, "master", None))
        inputs = (ALLUXIO_SITE, *_agency_files(settings, facts, layout, files))
        version = settings.alluxio.version
        services.append(DesiredService(
            "alluxio-master", inputs, ((facts.ip, ALLUXIO_MASTER_RPC), (facts.ip, ALLUXIO_MASTER_WEB)), version,
        ))
        services.append(DesiredService("alluxio-proxy", inputs, ((facts.ip, ALLUXIO_PROXY_WEB),), version))

    dashboard = settings.dashboard
    if dashboard.tls_certificate and dashboard.tls_key:
        cert, key = dashboard.tls_certificate, dashboard.tls_key
    elif facts.tls:
        cert, key = facts.tls
    else:
        raise InvalidInput("dashboard.tls_certificate", "no certificate for the dashboard: give one in the "
                           "user-data, or let the node make its own (it does in once/run)")
    files.append(_text(DASHBOARD_CERT, cert))
    files.append(_text(DASHBOARD_KEY, key, mode=0o600, secret=True))
    nginx_inputs = [NGINX_DASHBOARD, DASHBOARD_CERT, DASHBOARD_KEY]
    if dashboard.auth and dashboard.password_hash:
        files.append(DesiredFile(DASHBOARD_HTPASSWD, f"{dashboard.user}:{dashboard.password_hash}\n".encode(),
                                 0o640, secret=True, group="www-data"))
        nginx_inputs.append(DASHBOARD_HTPASSWD)
    www = layout.path(posixpath.dirname(DASHBOARD_INDEX))
    members = sorted(peers.members, key=lambda m: (m.get("role") != "master", str(m.get("ip")), str(m.get("uuid"))))
    worker_web = ALLUXIO_WORKER_PORTS[settings.alluxio.version][-1] if settings.alluxio else None
    files.append(_text(DASHBOARD_INDEX, render(
        "index.html.j2", cluster=settings.cluster, masters=masters, alluxio=settings.alluxio is not None,
        members=members, mesos_agent_port=MESOS_AGENT_PORT, alluxio_worker_web=worker_web,
    )))
    files.append(_text(NGINX_DASHBOARD, render(
        "nginx-dashboard.conf.j2", cluster=settings.cluster, ip=facts.ip, port=DASHBOARD_PORT, www_dir=www,
        alluxio=settings.alluxio is not None, spark_ui_port=SPARK_UI_PORT,
        cert=layout.path(DASHBOARD_CERT), key=layout.path(DASHBOARD_KEY),
        auth="off" if not dashboard.auth else ("on" if dashboard.password_hash else "locked"),
        htpasswd=layout.path(DASHBOARD_HTPASSWD),
    ), check="nginx"))
    # index.html is served as a file: a new landing page needs no reload.
    services.append(DesiredService("nginx", tuple(nginx_inputs), ((facts.ip, DASHBOARD_PORT),), reload=True))


# --- agents ----------------------------------------------------------------------------------------------


def agent_memory(settings: Settings, facts: Facts) -> Memory:
    """Split the agent's memory; an explicit RAM disk that leaves Mesos too little is an input error."""
    reserved = max(SYSTEM_RESERVE_MIN, int(facts.memory * SYSTEM_RESERVE_FRACTION))
    if settings.alluxio is not None:
        reserved += ALLUXIO_WORKER_JVM
    available = facts.memory - reserved
    if available < MIN_MESOS_TASK_MEMORY:
        raise InvalidInput(
            "facts.memory", f"{format_size(facts.memory)} leaves no memory for Mesos tasks after the system reserve"
        )
    ramdisk = 0
    if settings.alluxio is not None:
        if settings.alluxio.worker_ramdisk is None:
            share = int(available * RAMDISK_AUTO_FRACTION)
            ramdisk = max(RAMDISK_GRANULE, share - share % RAMDISK_GRANULE)
        else:
            ramdisk = settings.alluxio.worker_ramdisk
        if available - ramdisk < MIN_MESOS_TASK_MEMORY:
            raise InvalidInput(
                "alluxio.worker_ramdisk",
                f"{format_size(ramdisk)} does not fit: this node has {format_size(facts.memory)}, "
                f"{format_size(reserved)} stay reserved and Mesos tasks need at least "
                f"{format_size(MIN_MESOS_TASK_MEMORY)}",
            )
    return Memory(reserved, ramdisk, available - ramdisk)


def _agent(
    settings: Settings, facts: Facts, layout: Layout, files: list[DesiredFile], services: list[DesiredService]
) -> None:
    memory = agent_memory(settings, facts)
    mesos = settings.mesos
    flags = {
        "master": zk_url(settings.masters),
        "work_dir": layout.path("/var/lib/mesos"),
        "log_dir": layout.path("/var/log/mesos"),
        "ip": facts.ip,
        "hostname": facts.ip,
        "port": str(MESOS_AGENT_PORT),
        "containerizers": ",".join(mesos.containerizers),
        "resources": f"cpus:{facts.cpus};mem:{memory.mesos // MiB}",
    }
    if mesos.attributes:
        flags["attributes"] = ";".join(f"{k}:{v}" for k, v in mesos.attributes)
    if "docker" in mesos.containerizers:
        # Pulling an image easily takes longer than Mesos' default of one minute (the original used 5mins).
        flags["executor_registration_timeout"] = "5mins"
    flags.update(mesos.agent_flags)
    files.append(_mesos_env(MESOS_AGENT_ENV, "mesos-agent", settings, flags))
    services.append(DesiredService(
        "mesos-agent", (MESOS_AGENT_ENV,), ((facts.ip, MESOS_AGENT_PORT),), mesos.version
    ))

    if settings.alluxio is not None:
        version = settings.alluxio.version
        files.append(_alluxio_site(settings, facts, layout, "worker", memory.ramdisk))
        inputs = (ALLUXIO_SITE, *_agency_files(settings, facts, layout, files))
        services.append(DesiredService(
            "alluxio-worker", inputs, tuple((facts.ip, port) for port in ALLUXIO_WORKER_PORTS[version]), version,
        ))
        services.append(DesiredService("alluxio-proxy", inputs, ((facts.ip, ALLUXIO_PROXY_WEB),), version))


# --- shared pieces ---------------------------------------------------------------------------------------


def zk_url(masters: Iterable[str]) -> str:
    return "zk://" + ",".join(f"{ip}:{ZK_CLIENT_PORT}" for ip in masters) + "/mesos"


def _mesos_env(path: str, program: str, settings: Settings, flags: dict[str, str]) -> DesiredFile:
    return _text(path, render(
        "mesos.env.j2", cluster=settings.cluster, program=program, version=settings.mesos.version,
        flags=sorted(flags.items()),
    ))


def _alluxio_site(
    settings: Settings, facts: Facts, layout: Layout, role: str, ramdisk: int | None
) -> DesiredFile:
    alluxio = settings.alluxio
    assert alluxio is not None
    v1 = alluxio.version == "1.8"
    masters = settings.masters
    props: dict[str, str] = {}
    if len(masters) == 1:
        props["alluxio.master.hostname"] = facts.ip if role == "master" else masters[0]
    else:
        # 2.x embedded journal HA (validation refuses 1.8 with several masters: no shared journal here).
        if role == "master":
            props["alluxio.master.hostname"] = facts.ip
        props["alluxio.master.rpc.addresses"] = ",".join(f"{ip}:{ALLUXIO_MASTER_RPC}" for ip in masters)
        props["alluxio.master.embedded.journal.addresses"] = ",".join(
            f"{ip}:{ALLUXIO_EMBEDDED_JOURNAL_PORT}" for ip in masters
        )
    if role == "master":
        props["alluxio.master.journal.folder"] = layout.path("/var/lib/alluxio/journal")
    props["alluxio.work.dir"] = layout.path("/var/lib/alluxio")
    ufs = "s3a://" + alluxio.root_ufs.split("://", 1)[1]
    props["alluxio.underfs.address" if v1 else "alluxio.master.mount.table.root.ufs"] = ufs
    if alluxio.s3_endpoint:
        props["alluxio.underfs.s3.endpoint"] = alluxio.s3_endpoint
    if alluxio.block_size:
        props["alluxio.user.block.size.bytes.default"] = format_size(alluxio.block_size)
    secret = False
    creds = settings.credentials
    if creds is not None and creds.source == "keys":
        assert creds.access_key_id and creds.secret_access_key
        props["aws.accessKeyId" if v1 else "s3a.accessKeyId"] = creds.access_key_id
        props["aws.secretKey" if v1 else "s3a.secretKey"] = creds.secret_access_key
        secret = True
    if role == "worker":
        assert ramdisk is not None
        props["alluxio.worker.hostname"] = facts.ip
        props["alluxio.worker.tieredstore.levels"] = "1"
        props["alluxio.worker.tieredstore.level0.alias"] = "MEM"
        props["alluxio.worker.tieredstore.level0.dirs.path"] = layout.path("/var/lib/alluxio/ramdisk")
        props["alluxio.worker.memory.size" if v1 else "alluxio.worker.ramdisk.size"] = format_size(ramdisk)
    content = render(
        "alluxio-site.properties.j2", cluster=settings.cluster, version=alluxio.version, role=role,
        properties=sorted(props.items()),
    )
    return _text(ALLUXIO_SITE, content, mode=0o600 if secret else 0o644, secret=secret)


def _agency_files(settings: Settings, facts: Facts, layout: Layout, files: list[DesiredFile]) -> tuple[str, ...]:
    """With an ECS agency, Alluxio reads temporary keys from an AWS profile file instead of its properties.

    No Alluxio property carries a session token, but the AWS SDK's default provider chain reads
    ``aws_session_token`` from the profile file named by ``AWS_CREDENTIAL_PROFILES_FILE`` and re-reads that
    file every few minutes. So the keys rotate (hourly, on OTC) by rewriting the file alone: it is not an input
    of any unit, and a rotation restarts nothing. The EnvironmentFile naming it is an input.
    """
    if settings.credentials is None or settings.credentials.source != "agency":
        return ()
    keys = facts.s3_credentials
    if keys is None:
        raise InvalidInput("credentials.source", "'agency' needs the ECS agency's temporary keys, and none were given")
    files.append(_text(
        AWS_CREDENTIALS,
        f"[default]\naws_access_key_id = {keys.access}\naws_secret_access_key = {keys.secret}\n"
        f"aws_session_token = {keys.token}\n",
        mode=0o600, secret=True,
    ))
    profile = layout.path(AWS_CREDENTIALS)
    files.append(_text(ALLUXIO_ENV, render(
        "alluxio.env.j2", cluster=settings.cluster,
        variables=[("AWS_CREDENTIAL_PROFILES_FILE", profile), ("AWS_SHARED_CREDENTIALS_FILE", profile)],
    )))
    return (ALLUXIO_ENV,)


def _hosts(facts: Facts) -> DesiredFile:
    return _text(ETC_HOSTS, render("hosts.j2", ip=facts.ip, hostname=facts.hostname))


def _text(path: str, text: str, mode: int = 0o644, check: str | None = None, secret: bool = False) -> DesiredFile:
    return DesiredFile(path, text.encode("utf-8"), mode, check, secret)
