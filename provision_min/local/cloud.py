"""``provision-min up|status|scale|down --cloud local``: the same cluster, on this machine.

The local cloud plays OTC's part with real parts: the node image built by ``image.local``, instances as
systemd-nspawn containers booted from it (``machine``/``supervise``), a subnet of the cluster's own
(``network``), a metadata service answering each instance by its address (``metadata_service``) and an
autoscaling group emulated here: ``up`` and ``scale`` start or power off agents until the group has its
desired size, newest agents first out. Nodes configure themselves exactly as on OTC: the agent in the image
reads its user-data through nginx, joins ZooKeeper and starts its services. Readiness is what ZooKeeper
says: a node is ready when its member znode says ``ready``.

From the cluster file only the cluster name, ``masters``, ``agents`` and the sections handed to the nodes are
used; the VPC/subnet, flavors, image and key pair are OTC's business (the local subnet is ``--subnet`` or the
first free /24 of 10.231.0.0/16). Everything ``down`` must remove is named in the state file before it is
created, so ``down`` also works after ``provision-min`` was killed midway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ProvisionError
from provision_min.files import write_private
from provision_min.local import machine, network
from provision_min.local.layout import AUTO_SUBNETS, METADATA_IP, CloudState, Names, NodeRecord, Paths, state_root
from provision_min.local.machine import MachineSpec
from provision_min.local.progress import Progress, Row

TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "ip", "mount", "openssl")
DEFAULT_READY_TIMEOUT = 600.0
METADATA_MODULE = "provision_min.local.metadata_service"


class NotReady(ProvisionError):
    """Nodes did not become ready in time; the message names them, their last state and where to look."""


# -- before anything ---------------------------------------------------------------------------------------------
def preflight() -> None:
    """Refuse, before anything is created, on a machine that cannot run the local cloud."""
    if os.geteuid() != 0:
        raise InputError("the local cloud needs root (a bridge, network namespaces, systemd-nspawn containers): "
                         "run it with sudo")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise InputError(f"the local cloud needs {', '.join(missing)}: apt-get install systemd-container "
                         "debootstrap iproute2 util-linux openssl (or run .ci/setup)")
    if not machine.cgroup_folders("probe"):
        raise InputError(f"no usable cgroup hierarchy below {machine.CGROUP_ROOT}")


def local_config(config: ClusterConfig, subnet: ipaddress.IPv4Network) -> ClusterConfig:
    """The cluster file with the local subnet: the masters' fixed addresses follow the same rule as on OTC."""
    return dataclasses.replace(config, subnet_cidr=subnet, vpc_cidr=subnet)


def _taken_subnets(cluster: str) -> list[ipaddress.IPv4Network]:
    taken = []
    root = state_root()
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name == cluster:
                continue
            with contextlib.suppress(ProvisionError, OSError):
                other = Paths(folder).load()
                if other is not None:
                    taken.append(other.network)
    return taken


def pick_subnet(cluster: str, wanted: str | None) -> ipaddress.IPv4Network:
    host = network.host_ipv4_networks()
    taken = _taken_subnets(cluster)
    if wanted is not None:
        try:
            subnet = ipaddress.IPv4Network(wanted)
        except ValueError as exc:
            raise InputError(f"--subnet: {exc}") from None
        if subnet.prefixlen != 24 or not subnet.is_private:
            raise InputError(f"--subnet {wanted}: must be a private /24 (e.g. 10.231.7.0/24)")
        clash = [str(i) for i in host if i.network.overlaps(subnet)] + [str(t) for t in taken if t.overlaps(subnet)]
        if clash:
            raise InputError(f"--subnet {wanted}: overlaps {', '.join(clash)} already in use on this machine")
        return subnet
    found = network.choose_subnet(taken, AUTO_SUBNETS, host)
    if found is None:
        raise InputError(f"no free /24 left in {AUTO_SUBNETS} on this machine: pass --subnet")
    return found


# -- the cluster's answers for each instance -------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """A SHA-512 crypt hash (``$6$``) nginx's basic auth accepts; made by openssl, the password on stdin."""
    result = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True,
                            timeout=30, check=False)
    if result.returncode != 0 or not result.stdout.startswith("$6$"):
        raise ProvisionError(f"openssl passwd failed: {result.stderr.strip()}")
    return result.stdout.strip()


def user_data(config: ClusterConfig, state: CloudState, role: str) -> dict[str, Any]:
    """The instance's user-data, validated; the dashboard's password hash only where the dashboard is."""
    dashboard = None
    if role == "master" and state.dashboard_password_hash:
        dashboard = {"user": state.dashboard_user, "password_hash": state.dashboard_password_hash}
    return local_config(config, state.network).user_data(role, state.secret, dashboard)


def meta_data(config: ClusterConfig, node: NodeRecord) -> dict[str, Any]:
    """``meta_data.json`` as OTC documents it: uuid, availability_zone, hostname (.novalocal), name, ..."""
    return {"uuid": node.uuid, "name": node.name, "hostname": f"{node.name}.novalocal",
            "availability_zone": config.availability_zone, "project_id": "local", "launch_index": 0,
            "meta": {"cluster": config.cluster, "role": node.role}}


def publish(paths: Paths, config: ClusterConfig, state: CloudState, node: NodeRecord) -> None:
    """The metadata service's answers for ``node``, by its address (files replaced atomically, 0600)."""
    folder = paths.metadata_dir / node.ip
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(folder / "user_data", json.dumps(user_data(config, state, node.role), indent=2).encode())
    write_private(folder / "meta_data.json", json.dumps(meta_data(config, node)).encode())


def unpublish(paths: Paths, node: NodeRecord) -> None:
    machine.remove_folder(paths.metadata_dir / node.ip)


# -- the metadata service ---------------------------------------------------------------------------------------------
def metadata_running(paths: Paths, state: CloudState) -> bool:
    pid = state.metadata_pid
    if pid is None:
        return False
    cmdline = machine.cmdline(pid)
    return METADATA_MODULE in cmdline and str(paths.metadata_dir) in cmdline


def start_metadata(paths: Paths, state: CloudState, timeout: float = 15.0) -> None:
    if metadata_running(paths, state):
        return
    paths.metadata_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    offset = paths.metadata_log.stat().st_size if paths.metadata_log.exists() else 0
    with paths.metadata_log.open("ab") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", Names(state.cluster).metadata_ns, sys.executable, "-m", METADATA_MODULE,
             "--bind", METADATA_IP, "--port", "80", "--dir", str(paths.metadata_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd="/")
    state.metadata_pid = proc.pid  # ip netns exec execs the server: same pid
    paths.save(state)
    deadline = time.monotonic() + timeout
    while True:
        with paths.metadata_log.open("rb") as log:
            log.seek(offset)
            if b'"event": "listening"' in log.read():
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = paths.metadata_log.read_text(errors="replace")[-1500:]
            raise ProvisionError(f"the metadata service did not start (log {paths.metadata_log}):\n{tail}")
        time.sleep(0.05)


def stop_metadata(paths: Paths, state: CloudState) -> bool:
    if not metadata_running(paths, state):
        return False
    assert state.metadata_pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.metadata_pid, 15)
    deadline = time.monotonic() + 5
    while metadata_running(paths, state) and machine.alive(state.metadata_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


# -- instances ------------------------------------------------------------------------------------------------------
def spec_of(paths: Paths, state: CloudState, node: NodeRecord) -> MachineSpec:
    return MachineSpec(name=node.name, image=state.image, uuid=node.uuid, bridge=Names(state.cluster).bridge,
                       node_dir=str(paths.node_dir(node.name)))


def launch(paths: Paths, config: ClusterConfig, state: CloudState, node: NodeRecord) -> None:
    """Answer for the instance at the metadata service, then boot it (unless its supervisor already runs)."""
    publish(paths, config, state, node)
    spec = spec_of(paths, state, node)
    if machine.supervisor_pid(spec.folder) is not None:
        return
    spec.folder.mkdir(parents=True, exist_ok=True)
    spec.network_file.write_text(network.networkd_text(state, node.ip))
    machine.start(spec)


def new_node(state: CloudState, role: str, index: int, ip: str) -> NodeRecord:
    return NodeRecord(name=Names(state.cluster).machine(role, index), role=role, index=index, ip=ip,
                      uuid=str(uuidlib.uuid4()), created_at=time.time())


# -- what ZooKeeper says ----------------------------------------------------------------------------------------------
class _Quiet:
    """A logger for the probing ZooKeeper client: connection refusals while masters boot are expected."""

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *a, **k: None

    def bind(self, **_kw: Any) -> _Quiet:
        return self


@contextlib.contextmanager
def cluster_view(state: CloudState) -> Iterator[Callable[[], dict[str, Any] | None]]:
    """A function returning ``{uuid: member}`` from ZooKeeper (None while it cannot be asked)."""
    from bootstrap_agent.cluster import ClusterStore
    from bootstrap_agent.zk.paths import ensemble

    masters = [n.ip for n in state.masters()]
    store = ClusterStore(ensemble(masters), state.cluster, state.secret,
                         on_event=lambda kind, detail: None, log=_Quiet(), call_timeout=3.0)
    store.start()

    try:
        yield lambda: read_members(store)
    finally:
        store.stop()


def read_members(store: Any) -> dict[str, Any] | None:
    """``{uuid: member}``, or None while ZooKeeper cannot be asked (asked again on the next poll). Anything
    else is a bug and is raised: reported as an outage it would cost a user a 600 s wait for nothing."""
    from bootstrap_agent.cluster import ClusterUnavailable

    if not store.connected():
        return None
    try:
        return {m.uuid: m for m in store.members()}
    except ClusterUnavailable:
        return None


def node_row(paths: Paths, node: NodeRecord, members: dict[str, Any] | None) -> Row:
    folder = paths.node_dir(node.name)
    status = machine.read_status(folder)
    member = (members or {}).get(node.uuid)
    if machine.supervisor_pid(folder) is None:
        return Row(node.name, node.role, node.ip, "off", f"see {folder / 'console.log'}")
    if member is not None:
        return Row(node.name, node.role, node.ip, member.state, member.reason)
    if machine.systemd_pid(folder) is None:
        return Row(node.name, node.role, node.ip, "starting" if status.get("state") != "rebooting" else "rebooting")
    return Row(node.name, node.role, node.ip, "booting")


def wait_ready(paths: Paths, state: CloudState, nodes: Sequence[NodeRecord], progress: Progress, timeout: float,
               gone: Sequence[NodeRecord] = ()) -> float:
    """Until every one of ``nodes`` is a ready member and every one of ``gone`` has left ZooKeeper."""
    started = time.monotonic()
    deadline = started + timeout
    with cluster_view(state) as view:
        while True:
            members = view()
            rows = [node_row(paths, n, members) for n in nodes]
            rows += [Row(n.name, n.role, n.ip, "leaving" if members is None or n.uuid in members else "gone")
                     for n in gone]
            progress.update(rows)
            if members is not None and all(r.state == "ready" for r in rows[:len(nodes)]) \
                    and all(r.state == "gone" for r in rows[len(nodes):]):
                return time.monotonic() - started
            if time.monotonic() > deadline or any(r.state == "off" for r in rows[:len(nodes)]):
                late = [f"{r.name} {r.state}{f' ({r.detail})' if r.detail else ''}" for r in rows if
                        r.state not in ("ready", "gone")]
                raise NotReady(f"not ready after {time.monotonic() - started:.0f} s: {'; '.join(late)}. Look "
                               f"inside with: nsenter -t <pid from status --json> -a journalctl -u bootstrap-agent; "
                               f"up or scale again continues, down removes everything")
            time.sleep(0.2)


# -- the commands ------------------------------------------------------------------------------------------------------
@dataclass
class UpResult:
    state: CloudState
    paths: Paths
    created: int
    seconds: float


def load_state(config: ClusterConfig) -> tuple[Paths, CloudState | None]:
    paths = Paths.of(config.cluster)
    state = paths.load()
    if state is not None and state.cluster != config.cluster:
        raise InputError(f"{paths.state_file}: belongs to cluster {state.cluster!r}")
    return paths, state


def up(config: ClusterConfig, *, subnet: str | None, out: TextIO, ready_timeout: float = DEFAULT_READY_TIMEOUT,
       packages: tuple[str, str] | None = None, interactive: bool | None = None) -> UpResult:
    """Create what is missing (network, metadata service, masters, agents up to desired), wait until ready."""
    preflight()
    with Paths.of(config.cluster).locked():
        return _up(config, subnet, out, ready_timeout, packages, interactive)


def _up(config: ClusterConfig, subnet: str | None, out: TextIO, ready_timeout: float,
        packages: tuple[str, str] | None, interactive: bool | None) -> UpResult:
    started = time.monotonic()
    paths, state = load_state(config)
    if state is not None and subnet is not None and ipaddress.IPv4Network(subnet) != state.network:
        raise InputError(f"--subnet {subnet}: cluster {config.cluster} already runs on {state.subnet} "
                         "(down first to move it)")
    if state is not None and len(state.masters()) not in (0, config.masters):
        raise InputError(f"masters: cluster {config.cluster} runs {len(state.masters())} master(s), the cluster "
                         f"file says {config.masters}; the ZooKeeper ensemble of a running cluster is fixed")
    progress = Progress(out, title=f"cluster {config.cluster} (local)", interactive=interactive)
    if state is None:
        chosen = pick_subnet(config.cluster, subnet)
        local_config(config, chosen).user_data("master", "x" * 43)  # the user-data must be valid before anything
        progress.say("node image: checking the cache (a first build takes 2-4 minutes; log in "
                     "/var/cache/bootstrap-agent/images/)")
        image_started = time.monotonic()
        image = build_image(config, packages)
        how = f"built in {time.monotonic() - image_started:.0f} s" if image.built else "from the cache"
        progress.say(f"node image: {how} ({image.path.name})")
        password = secrets.token_urlsafe(18)
        state = CloudState(cluster=config.cluster, subnet=str(chosen), image=str(image.path),
                           image_digest=image.digest, secret=secrets.token_urlsafe(32),
                           dashboard_password=password, dashboard_password_hash=hash_password(password),
                           desired=config.agents.desired)
        paths.save(state)  # before anything exists: down finds all from here on
    state.phase = "creating"
    paths.save(state)
    progress.say(f"subnet {state.subnet}: bridge {Names(state.cluster).bridge}, this machine {state.host_ip}, "
                 f"metadata service {METADATA_IP}")
    network.create(state)
    start_metadata(paths, state)
    created = 0
    for i in range(1, config.masters + 1):
        if not any(n.index == i for n in state.masters()):
            state.nodes.append(new_node(state, "master", i, local_config(config, state.network).master_ips[i - 1]))
            paths.save(state)
    for node in state.masters():
        created += _ensure_running(paths, config, state, node)
    booted, removed = _reconcile_group(paths, config, state, progress)
    created += len(booted)
    wait_ready(paths, state, state.masters() + state.agents(), progress, ready_timeout, gone=removed)
    state.phase = "ready"
    paths.save(state)
    return UpResult(state, paths, created, time.monotonic() - started)


def source_tree() -> Path:
    """The checkout this provision-min runs from: the node image is built from its ``image/`` recipe and its
    agent sources (so what boots is exactly this version)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "image" / "recipe.py").is_file() or not (root / "bootstrap_agent").is_dir():
        raise InputError(f"the local cloud builds its node image from a source checkout, and {root} is none: "
                         "run provision-min from a clone (pip install -e .)")
    return root


def image_options(config: ClusterConfig, packages: tuple[str, str] | None) -> Any:
    """The node image for this cluster file: its Mesos and Alluxio versions (the stand-ins check flags and keys
    against those versions' lists), stand-ins unless ``packages`` gives a Mesos .deb and an Alluxio tarball."""
    root = str(source_tree())
    if root not in sys.path:
        sys.path.insert(0, root)
    from bootstrap_agent.names import ALLUXIO_VERSIONS, MESOS_VERSIONS
    from image.recipe import NodeOptions

    mesos = str(config.mesos.get("version", "1.11"))
    alluxio = str((config.alluxio or {}).get("version", "2.9"))
    if mesos not in MESOS_VERSIONS or alluxio not in ALLUXIO_VERSIONS:
        raise InputError(f"the local image has Mesos {'/'.join(MESOS_VERSIONS)} and Alluxio "
                         f"{'/'.join(ALLUXIO_VERSIONS)}, the cluster file asks for Mesos {mesos}, Alluxio {alluxio}")
    options = NodeOptions(mesos_version=mesos, alluxio_version=alluxio)
    if packages is not None:
        options = NodeOptions(standins=False, mesos_version=mesos, alluxio_version=alluxio, mesos_deb=packages[0],
                              alluxio_tarball=packages[1])
    return options


def build_image(config: ClusterConfig, packages: tuple[str, str] | None) -> Any:
    options = image_options(config, packages)
    from image.local import LocalBuilder
    from image.recipe import BuildError

    try:
        return LocalBuilder(options).build()
    except BuildError as exc:
        raise ProvisionError(f"node image: {exc}") from None


def _ensure_running(paths: Paths, config: ClusterConfig, state: CloudState, node: NodeRecord) -> int:
    running = machine.supervisor_pid(paths.node_dir(node.name)) is not None
    launch(paths, config, state, node)
    return 0 if running else 1


def _reconcile_group(paths: Paths, config: ClusterConfig, state: CloudState, progress: Progress | None = None
                     ) -> tuple[list[NodeRecord], list[NodeRecord]]:
    """The emulated AS group: start agents up to ``desired``, power off the newest beyond it, boot again any
    that is off (a health check's job on OTC). Returns the agents started and the agents removed."""
    while len(state.agents()) < state.desired:
        index = state.next_agent_index()
        state.nodes.append(new_node(state, "agent", index, state.agent_ip(index)))
        paths.save(state)  # named before it exists: down finds it whatever happens next
    removed = state.agents()[state.desired:]  # the newest first out, as OTC's NEW_INSTANCE removal policy
    started = [n for n in state.agents()[:state.desired] if _ensure_running(paths, config, state, n)]
    if removed:
        if progress is not None:
            progress.say(f"powering off {', '.join(n.name for n in removed)} (each leaves the cluster itself)")
        stop_all(paths, removed)
        for node in removed:
            unpublish(paths, node)
            state.nodes.remove(node)
        paths.save(state)
    return started, removed


def stop_all(paths: Paths, nodes: Sequence[NodeRecord] | Sequence[str]) -> None:
    """Power instances off in parallel (a clean poweroff takes a few seconds each); the first error is raised
    after all were tried."""
    names = [n if isinstance(n, str) else n.name for n in nodes]
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        results = list(pool.map(lambda name: _try(machine.stop, name, paths.node_dir(name)), names))
    for error in results:
        if error is not None:
            raise error


def _try(fn: Callable[..., None], *args: Any) -> BaseException | None:
    try:
        fn(*args)
    except BaseException as exc:  # reported by the caller once every instance was tried
        return exc
    return None


def scale(config: ClusterConfig, count: int, *, out: TextIO, ready_timeout: float = DEFAULT_READY_TIMEOUT,
          interactive: bool | None = None) -> tuple[int, int, float]:
    """Set the emulated AS group's desired size; return (before, after, seconds until settled)."""
    preflight()
    with Paths.of(config.cluster).locked():
        return _scale(config, count, out, ready_timeout, interactive)


def _scale(config: ClusterConfig, count: int, out: TextIO, ready_timeout: float,
           interactive: bool | None) -> tuple[int, int, float]:
    paths, state = load_state(config)
    if state is None:
        raise InputError(f"cluster {config.cluster} does not run locally: up first")
    before = state.desired
    state.desired = count
    paths.save(state)
    progress = Progress(out, title=f"cluster {config.cluster} (local): {before} -> {count} agents",
                        interactive=interactive)
    _started, removed = _reconcile_group(paths, config, state, progress)
    seconds = wait_ready(paths, state, state.agents(), progress, ready_timeout, gone=removed)
    return before, count, seconds


def status(config: ClusterConfig, timeout: float = 5.0) -> dict[str, Any]:
    paths, state = load_state(config)
    if state is None:
        return {"cloud": "local", "cluster": config.cluster, "exists": False, "complete": False, "nodes": []}
    members: dict[str, Any] | None = None
    with cluster_view(state) as view:
        deadline = time.monotonic() + timeout
        while members is None and time.monotonic() < deadline:
            members = view()
            if members is None:
                time.sleep(0.2)
    nodes = []
    for node in state.masters() + state.agents():
        folder = paths.node_dir(node.name)
        member = (members or {}).get(node.uuid)
        sup = machine.read_status(folder)
        nodes.append({
            "name": node.name, "role": node.role, "ip": node.ip, "uuid": node.uuid,
            "running": machine.supervisor_pid(folder) is not None, "pid": machine.systemd_pid(folder),
            "boots": sup.get("boots", 0), "memory_rss_bytes": machine.memory_rss(node.name),
            "member": None if member is None else {"state": member.state, "reason": member.reason,
                                                   "services": member.services, "hostname": member.hostname},
        })
    listed = {m.uuid for m in (members or {}).values()}
    strangers = sorted(m.ip for m in (members or {}).values() if m.uuid not in {n.uuid for n in state.nodes})
    complete = (members is not None and len(state.agents()) == state.desired
                and all(n["running"] and n["member"] and n["member"]["state"] == "ready" for n in nodes))
    return {
        "cloud": "local", "cluster": state.cluster, "exists": True, "phase": state.phase, "subnet": state.subnet,
        "host_ip": state.host_ip, "bridge": Names(state.cluster).bridge, "image": state.image,
        "metadata_service": {"pid": state.metadata_pid, "running": metadata_running(paths, state),
                             "address": METADATA_IP},
        "group": {"name": f"{state.cluster}-agents", "desired": state.desired, "instances": len(state.agents())},
        "zookeeper": "reachable" if members is not None else "unreachable",
        "members_listed": len(listed), "unknown_members": strangers,
        "nodes": nodes, "complete": complete,
        "dashboard": dashboard_url(state), "dashboard_user": state.dashboard_user,
        "state_file": str(paths.state_file),
    }


def dashboard_url(state: CloudState) -> str | None:
    masters = state.masters()
    return f"https://{masters[0].ip}/" if masters else None


def render_status(report: dict[str, Any]) -> str:
    if not report["exists"]:
        return f"cluster {report['cluster']}: does not run locally"
    md = report["metadata_service"]
    lines = [
        f"cluster {report['cluster']} (local, {report['phase']}): subnet {report['subnet']}, bridge "
        f"{report['bridge']}, this machine {report['host_ip']}",
        f"  metadata service {md['address']}: {'running' if md['running'] else 'STOPPED'}",
        f"  AS group {report['group']['name']}: desired {report['group']['desired']}, "
        f"{report['group']['instances']} instance(s)",
        f"  ZooKeeper: {report['zookeeper']}",
        f"  {'NAME':28} {'ROLE':6} {'IP':15} {'INSTANCE':9} MEMBER",
    ]
    for n in report["nodes"]:
        member = n["member"]
        state = "-" if member is None else member["state"] + (f" ({member['reason']})" if member["reason"] else "")
        lines.append(f"  {n['name']:28} {n['role']:6} {n['ip']:15} {'running' if n['running'] else 'off':9} {state}")
    if report["unknown_members"]:
        lines.append(f"  members not started by provision-min: {', '.join(report['unknown_members'])}")
    if report["dashboard"]:
        lines.append(f"  dashboard: {report['dashboard']} (user {report['dashboard_user']}; password: "
                     f"dashboard_password in {report['state_file']})")
    lines.append("  complete" if report["complete"] else "  NOT complete")
    return "\n".join(lines)


@dataclass
class DownResult:
    removed: list[str]
    seconds: float


def down(config: ClusterConfig) -> DownResult:
    """Remove every instance, the metadata service, the namespaces, the bridge and the state; idempotent."""
    preflight()
    with Paths.of(config.cluster).locked(remove=True):
        return _down(config)


def _down(config: ClusterConfig) -> DownResult:
    started = time.monotonic()
    paths = Paths.of(config.cluster)
    removed: list[str] = []
    try:
        state = paths.load()
    except InputError:
        state = None  # unreadable: what the names find is removed all the same
    if state is not None:
        state.phase = "removing"
        paths.save(state)
    names = Names(config.cluster)
    folders = {p.name: p for p in paths.node_dirs()}
    if state is not None:
        folders.update({n.name: paths.node_dir(n.name) for n in state.nodes})
    for hierarchy in machine.cgroup_folders(""):  # instances whose folder is gone but whose cgroups are not
        if hierarchy.is_dir():
            for cg in hierarchy.iterdir():
                name = cg.name.removeprefix("bal-")
                if cg.name.startswith("bal-") and names.machine_pattern.fullmatch(name):
                    folders.setdefault(name, paths.node_dir(name))
    agents = sorted(n for n in folders if n.startswith(f"{config.cluster}-agent-"))
    others = sorted(n for n in folders if n not in agents)
    for group in (agents, others):  # agents first: they leave while ZooKeeper still runs on the masters
        stop_all(paths, group)
        removed += [f"instance {name}" for name in group]
    if state is not None and stop_metadata(paths, state):
        removed.append("metadata service")
    removed += network.destroy(config.cluster)
    if paths.root.exists():
        machine.remove_folder(paths.root)
        removed.append(f"state {paths.root}")
    return DownResult(removed, time.monotonic() - started)
