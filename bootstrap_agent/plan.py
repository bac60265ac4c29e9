"""``plan()``: settings + facts + peers → the files and services a node should have. Pure.

Everything the configuration logic needs arrives as values, and the result is a value: no network, no
filesystem, no clock. That keeps the whole of "what should this node look like" testable in microseconds and
makes ``render`` and ``once`` agree by construction (both call this function).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent import alluxio_jvm
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.facts import Facts
from bootstrap_agent.schema import AUTO, Ramdisk, Settings
from bootstrap_agent.sizes import GiB, MiB, format_size
from bootstrap_agent.spark import SPARK_DEFAULTS, SPARK_ENV_SH, shuffle_environment, spark_files, spark_node
from bootstrap_agent.templates import render
from bootstrap_agent.zk.paths import CLIENT_PORT

ZOO_CFG = "/etc/zookeeper/conf/zoo.cfg"
# ZooKeeper reads myid from its dataDir. Debian's zookeeper package ships /var/lib/zookeeper/myid itself (a
# symlink to the example conffile /etc/zookeeper/conf/myid) and puts it back at every upgrade, so the dataDir is
# a folder the package does not own (the unit's StateDirectory= hands it to the zookeeper user).
ZOO_DATA_DIR = "/var/lib/zookeeper/data"
ZOO_MYID = f"{ZOO_DATA_DIR}/myid"
MESOS_MASTER_ENV = "/etc/default/mesos-master"
MESOS_AGENT_ENV = "/etc/default/mesos-agent"
ALLUXIO_SITE = "/opt/alluxio/conf/alluxio-site.properties"
ALLUXIO_ENV = "/etc/default/alluxio"  # EnvironmentFile of the Alluxio units
# The oneshot unit (systemd/) that runs `bin/alluxio formatJournal`: once per instance, before the first start.
ALLUXIO_JOURNAL_FORMAT = "alluxio-journal-format"
AWS_CREDENTIALS = "/var/lib/bootstrap-agent/aws/credentials"  # agency keys, rotated without restarts
NGINX_DASHBOARD = "/etc/nginx/conf.d/bootstrap-agent-dashboard.conf"
DASHBOARD_CERT = "/etc/nginx/tls/bootstrap-agent-dashboard.crt"
DASHBOARD_KEY = "/etc/nginx/tls/bootstrap-agent-dashboard.key"
DASHBOARD_HTPASSWD = "/etc/nginx/bootstrap-agent-dashboard.htpasswd"
DASHBOARD_INDEX = "/var/lib/bootstrap-agent/www/index.html"
ETC_HOSTS = "/etc/hosts"
UNIT_DIR = "/etc/systemd/system"  # where the rendered mount units go (the static units come with the image)
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"  # dockerd reads it by default
DOCKER_SOCKET = "/run/docker.sock"
SPARK_SHUFFLE_ENV = "/etc/default/spark-shuffle"
ZEPPELIN_ENV = "/etc/default/zeppelin"
JENKINS_ENV = "/etc/default/jenkins"

# The folders that may live in RAM, and how their mounts are made. Alluxio's tier 0 is only ever read and
# written as files by the worker and by local clients' short-circuit reads: no executables, no devices. Mesos
# runs fetched executors from its work_dir and Docker keeps image layers (with setuid binaries and device
# nodes) in its data-root: those stay exec/suid/dev. 0710 for Docker, as dockerd sets it itself.
ALLUXIO_TIER0 = "/var/lib/alluxio/ramdisk"
MESOS_WORK_DIR = "/var/lib/mesos"
DOCKER_DATA_ROOT = "/var/lib/docker"
MOUNT_OPTIONS = {
    ALLUXIO_TIER0: ("0755", "nosuid,nodev,noexec"),
    MESOS_WORK_DIR: ("0755", ""),
    DOCKER_DATA_ROOT: ("0710", ""),
}

DASHBOARD_PORT = 443  # HTTPS; port 80 stays the node's loopback-only metadata cache
# The Mesos and Alluxio web UIs fetch their data by absolute path, so each is served at the root of an HTTPS port
# of its own (the landing page's /mesos/ and /alluxio/ lead there); provision_min opens both to public_cidr.
MESOS_UI_PORT = 5443
ALLUXIO_UI_PORT = 5444
SPARK_UI_PORT = 4040
# The optional tools listen on the master's loopback only: nginx on 443 is their one way in. Zeppelin keeps its
# default 8080 (nothing of Mesos, Alluxio or ZooKeeper uses it on a master); Jenkins, whose default is 8080
# too, moves to 8081.
ZEPPELIN_PORT = 8080
JENKINS_PORT = 8081
TOOLS_ADDRESS = "127.0.0.1"
ZK_CLIENT_PORT = CLIENT_PORT
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
SPARK_SHUFFLE_HEAP = 512 * MiB  # SPARK_DAEMON_MEMORY of the shuffle service
DOCKER_DAEMON_MEMORY = 256 * MiB  # dockerd + containerd, without the containers (those are Mesos tasks)
RAMDISK_AUTO_FRACTION = 1 / 3  # Alluxio's tier 0: a third of what is left after the reserve
FOLDER_AUTO_FRACTION = 1 / 8  # Mesos work_dir, Docker data-root: an eighth each
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
    # Mount units (``var-lib-mesos.mount``) the unit's folders live on. Part of the digest: a folder that moves
    # into RAM (or back) restarts the unit that uses it; a new size only remounts the folder (its reload).
    requires: tuple[str, ...] = ()
    unit_file: str | None = None  # the unit's own file when the plan renders it (mounts): removed with the unit
    sockets: tuple[str, ...] = ()  # unix sockets its own processes must have bound to be up (dockerd's API)
    # A oneshot unit run once per instance, before the unit's first start: the Alluxio master's journal format.
    first_start: str | None = None


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
        if service.requires:  # only then: units without mounts keep the digest they were started with
            digest.update(b"\0requires\0" + ",".join(service.requires).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Peers:
    """Other members as seen in ZooKeeper; empty until the node has registered."""

    members: tuple[dict[str, Any], ...] = ()  # Member fields: uuid, role, ip, hostname, state, reason, services


@dataclass(frozen=True)
class Memory:
    """How an agent's memory is split between the system, the RAM disks and Mesos tasks (bytes)."""

    reserved: int
    ramdisk: int  # Alluxio's tier 0
    mesos: int  # offered to tasks
    work_dir: int = 0  # Mesos work_dir in RAM
    docker: int = 0  # Docker data-root in RAM


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
        data_dir=layout.path(ZOO_DATA_DIR),
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
        heap = alluxio_jvm.master_memory(settings, facts).alluxio_heap
        inputs = (ALLUXIO_SITE, *_alluxio_env(settings, facts, layout, files, "master", heap))
        version = settings.alluxio.version
        services.append(DesiredService(
            "alluxio-master", inputs, _alluxio_master_ready(facts, len(masters)), version,
            first_start=ALLUXIO_JOURNAL_FORMAT,
        ))
        services.append(DesiredService("alluxio-proxy", inputs, ((facts.ip, ALLUXIO_PROXY_WEB),), version))

    _spark_client(settings, facts, layout, files)  # spark-shell/spark-submit on the masters
    tools = _tools(settings, layout, files, services)
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
    files.append(_text(DASHBOARD_INDEX, render(
        "index.html.j2", cluster=settings.cluster, masters=masters, alluxio=settings.alluxio is not None,
        members=members, tools=tools,
    )))
    files.append(_text(NGINX_DASHBOARD, render(
        "nginx-dashboard.conf.j2", cluster=settings.cluster, ip=facts.ip, port=DASHBOARD_PORT, www_dir=www,
        alluxio=settings.alluxio is not None, spark_ui_port=SPARK_UI_PORT,
        cert=layout.path(DASHBOARD_CERT), key=layout.path(DASHBOARD_KEY),
        auth="off" if not dashboard.auth else ("on" if dashboard.password_hash else "locked"),
        htpasswd=layout.path(DASHBOARD_HTPASSWD), tools=tools, masters=masters, mesos_port=MESOS_MASTER_PORT,
        alluxio_web_port=ALLUXIO_MASTER_WEB, mesos_ui_port=MESOS_UI_PORT, alluxio_ui_port=ALLUXIO_UI_PORT,
    ), check="nginx"))
    # index.html is served as a file: a new landing page needs no reload.
    nginx_ports = (DASHBOARD_PORT, MESOS_UI_PORT, *((ALLUXIO_UI_PORT,) if settings.alluxio else ()))
    services.append(DesiredService("nginx", tuple(nginx_inputs), tuple((facts.ip, p) for p in nginx_ports),
                                   reload=True))


def _alluxio_master_ready(facts: Facts, masters: int) -> tuple[tuple[str, int], ...]:
    """The ports that show an Alluxio master is up. A single master is always primary: RPC and web. With
    several (2.9, embedded journal) a standby answers neither: its RPC and web ports are a RejectingServer
    until it is promoted, and are free for a moment at each promotion and demotion (v2.9.3
    ``RpcServerService``, ``PrimaryOnlyWebServerService``); the Raft journal's port is held by every master
    whatever its role."""
    if masters > 1:
        return ((facts.ip, ALLUXIO_EMBEDDED_JOURNAL_PORT),)
    return ((facts.ip, ALLUXIO_MASTER_RPC), (facts.ip, ALLUXIO_MASTER_WEB))


def _tools(
    settings: Settings, layout: Layout, files: list[DesiredFile], services: list[DesiredService]
) -> list[dict[str, Any]]:
    """Zeppelin and Jenkins, when enabled: an EnvironmentFile each, a unit each (run as their own users, see
    ``systemd/``), on the master's loopback; nginx proxies ``/zeppelin/`` and ``/jenkins/`` to them. Returns what
    the dashboard templates need: only enabled tools get a proxy and a link."""
    tools: list[dict[str, Any]] = []
    if settings.zeppelin.enabled:
        files.append(_text(ZEPPELIN_ENV, render(
            "env.j2", cluster=settings.cluster, program="Zeppelin", variables=[
                ("ZEPPELIN_ADDR", TOOLS_ADDRESS), ("ZEPPELIN_PORT", str(ZEPPELIN_PORT)),
                ("ZEPPELIN_SERVER_CONTEXT_PATH", "/zeppelin"),
                ("ZEPPELIN_NOTEBOOK_DIR", layout.path("/var/lib/zeppelin/notebook")),
                # Zeppelin writes below ZEPPELIN_HOME by default, read-only under the unit's ProtectSystem=strict:
                # the WAR's unpack dir (default webapps/) and interpreter.json (default conf/) go to the unit's
                # CacheDirectory/StateDirectory instead (systemd/zeppelin.service).
                ("ZEPPELIN_WAR_TEMPDIR", layout.path("/var/cache/zeppelin/webapps")),
                ("ZEPPELIN_CONFIG_FS_DIR", layout.path("/var/lib/zeppelin/conf")),
                ("ZEPPELIN_INTERPRETER_LOCALREPO", layout.path("/var/cache/zeppelin/local-repo")),
                ("MASTER", zk_url(settings.masters).replace("zk://", "mesos://zk://", 1)),
            ],
        )))
        services.append(DesiredService("zeppelin", (ZEPPELIN_ENV,), ((TOOLS_ADDRESS, ZEPPELIN_PORT),)))
        tools.append({"name": "zeppelin", "title": "Zeppelin", "port": ZEPPELIN_PORT, "websocket": True})
    if settings.jenkins.enabled:
        files.append(_text(JENKINS_ENV, render(
            "env.j2", cluster=settings.cluster, program="Jenkins", variables=[
                ("JENKINS_HOME", layout.path("/var/lib/jenkins")), ("JENKINS_LISTEN_ADDRESS", TOOLS_ADDRESS),
                ("JENKINS_PORT", str(JENKINS_PORT)), ("JENKINS_PREFIX", "/jenkins"),
            ],
        )))
        services.append(DesiredService("jenkins", (JENKINS_ENV,), ((TOOLS_ADDRESS, JENKINS_PORT),)))
        tools.append({"name": "jenkins", "title": "Jenkins", "port": JENKINS_PORT, "websocket": False})
    return tools


# --- agents ----------------------------------------------------------------------------------------------


def agent_memory(settings: Settings, facts: Facts) -> Memory:
    """Split the agent's memory; RAM disks that leave Mesos tasks too little are an input error.

    The rule (README, "RAM disks"): the node first keeps a reserve for the OS (max(1 GiB, 10 %)) and the
    heaps of its own daemons (Alluxio worker 1 GiB, Spark shuffle service 512 MiB, dockerd 256 MiB, each only
    when it runs). Of the rest, the RAM disks take their sizes (explicit ones as given; ``auto``: Alluxio a
    third, the Mesos work_dir and Docker's data-root an eighth each), and whatever remains is offered to Mesos
    tasks, which must get at least 512 MiB. A tmpfs takes memory only as it fills, but it can fill, so its
    whole size is kept away from the tasks: the sum is checked here, before anything is written, instead of
    being found by the OOM killer.
    """
    reserved = max(SYSTEM_RESERVE_MIN, int(facts.memory * SYSTEM_RESERVE_FRACTION))
    if settings.alluxio is not None:
        reserved += ALLUXIO_WORKER_JVM + alluxio_jvm.ALLUXIO_PROXY_JVM
    if settings.spark.shuffle_service:
        reserved += SPARK_SHUFFLE_HEAP
    if settings.mesos.docker:
        reserved += DOCKER_DAEMON_MEMORY
    available = facts.memory - reserved
    if available < MIN_MESOS_TASK_MEMORY:
        raise InvalidInput(
            "facts.memory", f"{format_size(facts.memory)} leaves no memory for Mesos tasks after the system reserve"
        )

    def size(setting: Ramdisk, fraction: float) -> int:
        if setting is None:
            return 0
        if setting == AUTO:
            share = int(available * fraction)
            return max(RAMDISK_GRANULE, share - share % RAMDISK_GRANULE)
        return setting

    used = 0
    sizes: dict[str, int] = {}
    wanted = [
        ("alluxio.worker_ramdisk", (settings.alluxio.worker_ramdisk or AUTO) if settings.alluxio else None,
         RAMDISK_AUTO_FRACTION),
        ("mesos.work_dir_ramdisk", settings.mesos.work_dir_ramdisk, FOLDER_AUTO_FRACTION),
        ("mesos.docker_ramdisk", settings.mesos.docker_ramdisk if settings.mesos.docker else None,
         FOLDER_AUTO_FRACTION),
    ]
    for field_path, setting, fraction in wanted:
        sizes[field_path] = size(setting, fraction)
        used += sizes[field_path]
        if available - used < MIN_MESOS_TASK_MEMORY:
            others = ", ".join(f"{k} {format_size(v)}" for k, v in sizes.items() if v and k != field_path)
            raise InvalidInput(
                field_path,
                f"{format_size(sizes[field_path])} does not fit: this node has {format_size(facts.memory)}, "
                f"{format_size(reserved)} stay reserved{', ' + others + ' are taken' if others else ''} and "
                f"Mesos tasks need at least {format_size(MIN_MESOS_TASK_MEMORY)}",
            )
    return Memory(reserved, sizes["alluxio.worker_ramdisk"], available - used, sizes["mesos.work_dir_ramdisk"],
                  sizes["mesos.docker_ramdisk"])


def _agent(
    settings: Settings, facts: Facts, layout: Layout, files: list[DesiredFile], services: list[DesiredService]
) -> None:
    memory = agent_memory(settings, facts)
    mesos = settings.mesos
    # RAM disks first: in start order a folder is mounted before anything that uses it.
    work_mount = _mount(MESOS_WORK_DIR, memory.work_dir, layout, files, services)
    docker_mount = _mount(DOCKER_DATA_ROOT, memory.docker, layout, files, services)
    tier0_mount = _mount(ALLUXIO_TIER0, memory.ramdisk, layout, files, services)

    flags = {
        "master": zk_url(settings.masters),
        "work_dir": layout.path(MESOS_WORK_DIR),
        "log_dir": layout.path("/var/log/mesos"),
        "ip": facts.ip,
        "hostname": facts.ip,
        "port": str(MESOS_AGENT_PORT),
        "containerizers": ",".join(mesos.containerizers),
        "resources": f"cpus:{facts.cpus};mem:{memory.mesos // MiB}",
    }
    if mesos.attributes:
        flags["attributes"] = ";".join(f"{k}:{v}" for k, v in mesos.attributes)
    if mesos.docker:
        # Pulling an image easily takes longer than Mesos' default of one minute (the original used 5mins), and
        # finished containers go after 5 minutes rather than Mesos' 6 hours: with Docker's data in RAM that
        # matters. Both may be overridden in mesos.agent_flags; the socket is the one our dockerd listens on.
        flags["executor_registration_timeout"] = "5mins"
        flags["docker_remove_delay"] = "5mins"
        flags["docker_socket"] = layout.path(DOCKER_SOCKET)
        files.append(_text(DOCKER_DAEMON_JSON, json.dumps({
            # live-restore: a restart of dockerd (a changed daemon.json) leaves the running containers alone.
            "data-root": layout.path(DOCKER_DATA_ROOT),
            "live-restore": True,
            "log-driver": "json-file",
            "log-opts": {"max-size": "50m", "max-file": "3"},
        }, indent=2, sort_keys=True) + "\n"))
        services.append(DesiredService("docker", (DOCKER_DAEMON_JSON,), (), requires=docker_mount,
                                       sockets=(layout.path(DOCKER_SOCKET),)))
    flags.update(mesos.agent_flags)
    files.append(_mesos_env(MESOS_AGENT_ENV, "mesos-agent", settings, flags))
    services.append(DesiredService(
        "mesos-agent", (MESOS_AGENT_ENV,), ((facts.ip, MESOS_AGENT_PORT),), mesos.version, requires=work_mount,
    ))

    if settings.alluxio is not None:
        version = settings.alluxio.version
        files.append(_alluxio_site(settings, facts, layout, "worker", memory.ramdisk))
        inputs = (ALLUXIO_SITE, *_alluxio_env(settings, facts, layout, files, "worker"))
        services.append(DesiredService(
            "alluxio-worker", inputs, tuple((facts.ip, port) for port in ALLUXIO_WORKER_PORTS[version]), version,
            requires=tier0_mount,
        ))
        services.append(DesiredService("alluxio-proxy", inputs, ((facts.ip, ALLUXIO_PROXY_WEB),), version))

    _spark_client(settings, facts, layout, files)
    if settings.spark.shuffle_service:  # Spark's MesosExternalShuffleService (bootstrap_agent/spark.py)
        port = settings.spark.shuffle_port
        node = spark_node(settings, facts, layout.path, zk_url(settings.masters).replace("zk://", "mesos://zk://", 1))
        files.append(_text(SPARK_SHUFFLE_ENV, render(
            "env.j2", cluster=settings.cluster, program="the Spark external shuffle service",
            variables=shuffle_environment(node, SPARK_SHUFFLE_HEAP // MiB),
        )))
        inputs = (SPARK_SHUFFLE_ENV, SPARK_DEFAULTS, SPARK_ENV_SH)
        services.append(DesiredService("spark-shuffle", inputs, ((facts.ip, port),), requires=work_mount))


def mount_unit_name(path: str) -> str:
    """The mount unit systemd expects for ``path``: ``systemd-escape --path --suffix=mount`` in Python.

    systemd refuses a mount unit whose name does not match its ``Where=``, so the rules are systemd's own:
    surrounding and repeated slashes dropped, ``/`` becomes ``-``, every byte outside ``[A-Za-z0-9:_.]`` (and a
    leading ``.``) becomes ``\\xNN``, and the root is ``-``.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "-.mount"
    out = []
    for index, ch in enumerate("/".join(parts).encode("utf-8")):
        char = chr(ch)
        if char == "/":
            out.append("-")
        elif (char.isascii() and (char.isalnum() or char in ":_.")) and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"\\x{ch:02x}")
    return "".join(out) + ".mount"


def _mount(
    folder: str, size: int, layout: Layout, files: list[DesiredFile], services: list[DesiredService]
) -> tuple[str, ...]:
    """A tmpfs mount unit for ``folder`` when ``size`` says so; the unit names the services' ``requires``.

    The unit is named after the folder on the node (``var-lib-mesos.mount``), which is its systemd name on a
    real node (root ``/``); ``Where=`` carries the layout's path, so the process manager (which only creates the
    folder) works below ``--root`` too.
    """
    if not size:
        return ()
    unit = mount_unit_name(folder)
    mode, extra = MOUNT_OPTIONS[folder]
    options = f"size={size // MiB}m,mode={mode}" + (f",{extra}" if extra else "")
    unit_file = posixpath.join(UNIT_DIR, unit)
    files.append(_text(unit_file, render(
        "tmpfs.mount.j2", where=layout.path(folder), options=options, size=format_size(size),
    )))
    services.append(DesiredService(unit, (unit_file,), (), reload=True, unit_file=unit_file))
    return (unit,)


# --- shared pieces ---------------------------------------------------------------------------------------


def _spark_client(settings: Settings, facts: Facts, layout: Layout, files: list[DesiredFile]) -> None:
    """``spark-defaults.conf``, ``spark-env.sh`` and the root-only S3 profile: every node (bootstrap_agent/spark.py)."""
    master_url = zk_url(settings.masters).replace("zk://", "mesos://zk://", 1)
    for spark_file in spark_files(settings, facts, layout.path, master_url):
        files.append(_text(spark_file.path, spark_file.text, mode=spark_file.mode, secret=spark_file.secret))


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
    props.update(alluxio_jvm.s3_signing_properties(alluxio))
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
        props["alluxio.worker.tieredstore.level0.dirs.path"] = layout.path(ALLUXIO_TIER0)
        props["alluxio.worker.memory.size" if v1 else "alluxio.worker.ramdisk.size"] = format_size(ramdisk)
    content = render(
        "alluxio-site.properties.j2", cluster=settings.cluster, version=alluxio.version, role=role,
        properties=sorted(props.items()),
    )
    return _text(ALLUXIO_SITE, content, mode=0o600 if secret else 0o644, secret=secret)


def _alluxio_env(
    settings: Settings, facts: Facts, layout: Layout, files: list[DesiredFile], role: str,
    master_heap: int | None = None,
) -> tuple[str, ...]:
    """The Alluxio units' EnvironmentFile: the processes' heaps (``alluxio_jvm``) and, with an ECS agency, the
    AWS profile file (``_agency_files``)."""
    variables = alluxio_jvm.java_opts_variables(role, master_heap) + _agency_files(settings, facts, layout, files)
    files.append(_text(ALLUXIO_ENV, render("alluxio.env.j2", cluster=settings.cluster, variables=variables)))
    return (ALLUXIO_ENV,)


def _agency_files(
    settings: Settings, facts: Facts, layout: Layout, files: list[DesiredFile]
) -> list[tuple[str, str]]:
    """With an ECS agency, Alluxio reads temporary keys from an AWS profile file instead of its properties.

    No Alluxio property carries a session token, but the AWS SDK's default provider chain reads
    ``aws_session_token`` from the profile file named by ``AWS_CREDENTIAL_PROFILES_FILE`` and re-reads that
    file every few minutes. So the keys rotate (hourly, on OTC) by rewriting the file alone: it is not an input
    of any unit, and a rotation restarts nothing. The EnvironmentFile naming it is an input.
    """
    if settings.credentials is None or settings.credentials.source != "agency":
        return []
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
    return [("AWS_CREDENTIAL_PROFILES_FILE", profile), ("AWS_SHARED_CREDENTIALS_FILE", profile)]


def _hosts(facts: Facts) -> DesiredFile:
    return _text(ETC_HOSTS, render("hosts.j2", ip=facts.ip, hostname=facts.hostname))


def _text(path: str, text: str, mode: int = 0o644, check: str | None = None, secret: bool = False) -> DesiredFile:
    return DesiredFile(path, text.encode("utf-8"), mode, check, secret)
