"""The emulated autoscaling group: instances started up to the desired count, the newest powered off first.

On OTC the group does this by itself; here it happens when a command runs (``up`` also boots again an
instance that is off, which OTC's health check would replace).
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provision_min.config import ClusterConfig
from provision_min.local import machine, network
from provision_min.local.layout import CloudState, Names, NodeRecord, Paths
from provision_min.local.machine import MachineSpec
from provision_min.local.metadata_host import publish, unpublish
from provision_min.local.progress import Progress


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


def ensure_running(paths: Paths, config: ClusterConfig, state: CloudState, node: NodeRecord) -> int:
    running = machine.supervisor_pid(paths.node_dir(node.name)) is not None
    launch(paths, config, state, node)
    return 0 if running else 1


def reconcile_group(paths: Paths, config: ClusterConfig, state: CloudState, progress: Progress | None = None
                     ) -> tuple[list[NodeRecord], list[NodeRecord]]:
    """The emulated AS group: start agents up to ``desired``, power off the newest beyond it, boot again any
    that is off (a health check's job on OTC). Returns the agents started and the agents removed."""
    while len(state.agents()) < state.desired:
        index = state.next_agent_index()
        state.nodes.append(new_node(state, "agent", index, state.agent_ip(index)))
        paths.save(state)  # named before it exists: down finds it whatever happens next
    removed = state.agents()[state.desired:]  # the newest first out, as OTC's NEW_INSTANCE removal policy
    started = [n for n in state.agents()[:state.desired] if ensure_running(paths, config, state, n)]
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
