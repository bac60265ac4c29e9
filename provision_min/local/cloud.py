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

import dataclasses
import ipaddress
import os
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from bootstrap_agent.autoscaling import AutoScalingError
from provision_min import dashboard, scaler_status
from provision_min.capacity_view import cluster_totals, figures_text, node_figures, totals_text
from provision_min.config import ClusterConfig
from provision_min.errors import InputError
from provision_min.local import as_host, machine, network, subnets
from provision_min.local.group import ensure_running, new_node, stop_all
from provision_min.local.layout import METADATA_IP, CloudState, Names, Paths
from provision_min.local.master_rollout import roll_local_masters
from provision_min.local.metadata_host import metadata_running, start_metadata, stop_metadata
from provision_min.local.node_image import build_image
from provision_min.local.progress import Progress
from provision_min.local.readiness import DEFAULT_READY_TIMEOUT, cluster_view, wait_ready
from provision_min.local.rollout import roll_local_agents
from provision_min.local.scale_members import local_members
from provision_min.local.subnets import local_config, pick_subnet
from provision_min.scale import render as render_scale
from provision_min.scale import run_scale
from provision_min.victims import LEAVING
from provision_min.wait import Poller

TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "ip", "mount", "openssl")
AGENT_DAEMON = "bootstrap-agent.service"  #: the node's daemon (image/units): an agent's drains when it powers off


# -- before anything -------------------------------------------------------------------------------------------
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


# -- the commands ----------------------------------------------------------------------------------------------
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
        # the cluster file's login when it gives a hash, else a password of ours (only its hash reaches a master)
        password, password_hash = dashboard.generate() if dashboard.needs_password(config.dashboard) else ("", "")
        with subnets.reserving():  # chosen again, and claimed (state, bridge), with no other up in between
            chosen = pick_subnet(config.cluster, subnet)
            state = CloudState(cluster=config.cluster, subnet=str(chosen), image=str(image.path),
                               image_digest=image.digest, secret=secrets.token_urlsafe(32),
                               operator_secret=secrets.token_urlsafe(32),
                               dashboard_user=dashboard.user_of(config.dashboard), dashboard_password=password,
                               dashboard_password_hash=password_hash, desired=config.agents.desired)
            as_host.ensure_operator_key(state)
            paths.save(state)  # before anything exists: down finds all from here on
            network.create(state)
    state.phase = "creating"
    paths.save(state)
    progress.say(f"subnet {state.subnet}: bridge {Names(state.cluster).bridge}, this machine {state.host_ip}, "
                 f"metadata service {METADATA_IP}")
    network.create(state)
    start_metadata(paths, state)
    if as_host.ensure_operator_key(state):  # a cluster from before the AS service
        paths.save(state)
    as_host.start_service(paths, state, config)
    created = 0
    for i in range(1, config.masters + 1):
        if not any(n.index == i for n in state.masters()):
            state.nodes.append(new_node(state, "master", i, local_config(config, state.network).master_ips[i - 1]))
            paths.save(state)
    for node in state.masters():
        created += ensure_running(paths, config, state, node)
    paths.save(state)  # what each master was made from (master_rollout)
    asc = as_host.client(state)
    known = {n.uuid for n in state.agents()}
    group = as_host.ensure_group(config, state, asc, progress)
    created += as_host.boot_again(paths, state)
    instances = as_host.wait_settled(asc, group.id, ready_timeout, progress)
    created += len({i.id for i in instances} - known)
    state = paths.load() or state  # the agents as the AS service started them
    wait_ready(paths, state, state.masters() + state.agents(), progress, ready_timeout)
    if roll_local_agents(config, state, asc, out):  # a changed cluster file: agents replaced through their drain
        state = paths.load() or state
        wait_ready(paths, state, state.masters() + state.agents(), progress, ready_timeout)
    if roll_local_masters(paths, config, state, progress, out, ready_timeout):  # then the masters, one at a time
        state = paths.load() or state
        wait_ready(paths, state, state.masters() + state.agents(), progress, ready_timeout)
    state.phase = "ready"
    paths.save(state)
    return UpResult(state, paths, created, time.monotonic() - started)


def scale(config: ClusterConfig, count: int, *, out: TextIO, ready_timeout: float = DEFAULT_READY_TIMEOUT,
          interactive: bool | None = None, wait: bool = True) -> tuple[int, int, float]:
    """Raise the AS group's desired size, or remove the least loaded agents through their drain
    (``provision_min.scale``); return (before, after, seconds until settled)."""
    preflight()
    with Paths.of(config.cluster).locked():
        return _scale(config, count, out, ready_timeout, interactive, wait)


def _scale(config: ClusterConfig, count: int, out: TextIO, ready_timeout: float,
           interactive: bool | None, wait: bool = True) -> tuple[int, int, float]:
    paths, state = load_state(config)
    if state is None:
        raise InputError(f"cluster {config.cluster} does not run locally: up first")
    asc = as_host.client(state)
    try:
        group = asc.find_group(as_host.group_name(config.cluster))
        if group is None:
            raise InputError(f"cluster {config.cluster}: its AS group is missing: up first")
        before = group.desired
        progress = Progress(out, title=f"cluster {config.cluster} (local): {before} -> {count} agents",
                            interactive=interactive)
        staying = [i for i in asc.instances(group.id) if i.state not in LEAVING]
        if count >= len(staying):
            asc.set_desired(group.id, count)  # the AS service starts the new instances
    except AutoScalingError as exc:
        raise InputError(f"scale {count}: the local AS service refused: {exc}") from None
    old = state.agents()
    started = time.monotonic()
    if count < len(staying):  # the least loaded leave, each through its drain (provision_min.scale), as on OTC
        with local_members(state) as members:
            result = run_scale(config, asc, count, members, Poller(interval=1.0, max_interval=3.0), out, wait=wait)
        for line in render_scale(result)[1:]:
            out.write(line + "\n")
        if not wait:
            return before, count, time.monotonic() - started
    as_host.wait_settled(asc, group.id, ready_timeout, progress)
    state = paths.load() or state
    gone = [n for n in old if n.uuid not in {a.uuid for a in state.agents()}]
    wait_ready(paths, state, state.agents(), progress, max(1.0, ready_timeout - (time.monotonic() - started)),
               gone=gone)
    return before, count, time.monotonic() - started


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
    now = time.time()
    for node in state.masters() + state.agents():
        folder = paths.node_dir(node.name)
        member = (members or {}).get(node.uuid)
        sup = machine.read_status(folder)
        nodes.append({
            "name": node.name, "role": node.role, "ip": node.ip, "uuid": node.uuid,
            "running": machine.supervisor_pid(folder) is not None, "pid": machine.systemd_pid(folder),
            "boots": sup.get("boots", 0), "memory_rss_bytes": machine.memory_rss(node.name),
            "member": None if member is None else {"state": member.state, "reason": member.reason,
                                                   "services": member.services, "hostname": member.hostname,
                                                   # while draining: phase, what it waits for, deadline
                                                   "drain": member.drain.to_dict() if member.drain else None,
                                                   "load": member.load.to_dict() if member.load else None,
                                                   # CPUs, memory, Alluxio RAM and time in state (issue 17)
                                                   **node_figures(dataclasses.asdict(member), now)},
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
        "as_service": {"pid": as_host.service_pid(paths), "endpoint": state.as_endpoint or state.as_url},
        "group": {"name": f"{state.cluster}-agents", "desired": state.desired, "instances": len(state.agents())},
        "zookeeper": "reachable" if members is not None else "unreachable",
        "members_listed": len(listed), "unknown_members": strangers,
        "totals": None if members is None else cluster_totals(map(dataclasses.asdict, members.values())),
        "nodes": nodes, "complete": complete,
        "dashboard": dashboard_url(state), "dashboard_user": state.dashboard_user,
        "login": login(config, state, paths).as_json(),
        "state_file": str(paths.state_file),
        "scaler": scaler_status.local_summary(config, state, timeout),  # None: autoscaling off
    }


def login(config: ClusterConfig, state: CloudState, paths: Paths) -> dashboard.Login:
    """How to log in to the dashboards: the cluster file's user and hash, or our password in the state file."""
    return dashboard.login(config.dashboard, paths.state_file, bool(state.dashboard_password))


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
        f"  AS service {report['as_service']['endpoint']}: "
        f"{'running' if report['as_service']['pid'] else 'STOPPED'}",
        f"  AS group {report['group']['name']}: desired {report['group']['desired']}, "
        f"{report['group']['instances']} instance(s)",
        f"  ZooKeeper: {report['zookeeper']}",
        f"  {'NAME':28} {'ROLE':6} {'IP':15} {'INSTANCE':9} {'CAPACITY, TIME IN STATE':54} MEMBER",
    ]
    for n in report["nodes"]:
        member = n["member"]
        state = "-" if member is None else member["state"] + (f" ({member['reason']})" if member["reason"] else "")
        figures = figures_text(member) if member else ""
        lines.append(f"  {n['name']:28} {n['role']:6} {n['ip']:15} {'running' if n['running'] else 'off':9} "
                     f"{figures:54} {state}")
    lines += totals_text(report.get("totals"))
    if report["unknown_members"]:
        lines.append(f"  members not started by provision-min: {', '.join(report['unknown_members'])}")
    lines += scaler_status.render(report.get("scaler"))
    if report["dashboard"]:
        lines.append(f"  dashboard: {report['dashboard']}")
        lines.append(f"  dashboard login: {report['login']['hint']}")
    lines.append("  complete" if report["complete"] else "  NOT complete")
    return "\n".join(lines)


@dataclass
class DownResult:
    removed: list[str]
    seconds: float


def down(config: ClusterConfig, confirm: Callable[[list[str]], None] = lambda items: None) -> DownResult:
    """Remove every instance (no agent drains: the whole cluster goes), the metadata service, the namespaces,
    the bridge and the state; idempotent. ``confirm`` sees the listing first and stops everything by raising."""
    preflight()
    with Paths.of(config.cluster).locked(remove=True):
        return _down(config, confirm)


def _down(config: ClusterConfig, confirm: Callable[[list[str]], None]) -> DownResult:
    started = time.monotonic()
    paths = Paths.of(config.cluster)
    removed: list[str] = []
    try:
        state = paths.load()
    except InputError:
        state = None  # unreadable: what the names find is removed all the same
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
    listing = [f"instance {name}" for name in agents + others]
    if as_host.service_pid(paths) is not None:
        listing.append("AS service")
    if state is not None and metadata_running(paths, state):
        listing.append("metadata service")
    listing += network.existing(config.cluster)
    if paths.root.exists():
        listing.append(f"state {paths.root} (the cluster secret and the dashboard password)")
    if listing:
        confirm(listing)
    if state is not None:
        state.phase = "removing"
        paths.save(state)
    if as_host.stop_service(paths):  # first: it would start again the instances removed below
        removed.append("AS service")
    # The whole cluster goes, so no agent drains (its tasks, blocks and shuffle files go with it): each agent's
    # daemon stops first, as on a restart (it leaves ZooKeeper while the masters still run), then every
    # instance powers off at once. An agent whose daemon did not stop powers off before the masters, so that
    # the drain its poweroff starts still finds them.
    quiet = _stop_daemons(paths, agents)
    stop_all(paths, [name for name in agents if name not in quiet])
    stop_all(paths, quiet + others)
    removed += [f"instance {name}" for name in agents + others]
    if state is not None and stop_metadata(paths, state):
        removed.append("metadata service")
    removed += network.destroy(config.cluster)
    if paths.root.exists():
        machine.remove_folder(paths.root)
        removed.append(f"state {paths.root}")
    return DownResult(removed, time.monotonic() - started)


def _stop_daemons(paths: Paths, agents: list[str]) -> list[str]:
    """Stop the daemon in every running agent at once; the agents whose daemon stopped."""
    if not agents:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(agents))) as pool:
        stopped = list(pool.map(lambda name: machine.stop_unit(paths.node_dir(name), AGENT_DAEMON), agents))
    return [name for name, ok in zip(agents, stopped, strict=True) if ok]
