"""Starting and stopping the local cloud's instances by name: the masters (``up``) and, in parallel, whatever
``down`` removes. The agents' group is the local AS service's (``as_service``), which starts and removes them
itself, as OTC's group does.
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
from provision_min.local.metadata_host import publish
from provision_min.rollout import digest


def spec_of(paths: Paths, state: CloudState, node: NodeRecord) -> MachineSpec:
    return MachineSpec(name=node.name, image=state.image, uuid=node.uuid, bridge=Names(state.cluster).bridge,
                       node_dir=str(paths.node_dir(node.name)))


def launch(paths: Paths, config: ClusterConfig, state: CloudState, node: NodeRecord) -> None:
    """Answer for the instance at the metadata service, then boot it (unless its supervisor already runs).

    A master keeps the user-data it was made with for as long as it lives (as OTC keeps a server's): a changed
    cluster file reaches it by its replacement (``master_rollout``), not by its daemon re-reading new user-data
    in place. So it is published once, with what it was made from recorded on ``node`` (the caller saves the
    state); a master from before that record gets today's user-data once and the record with it."""
    answers = paths.metadata_dir / node.ip / "user_data"
    if node.user_data_sha256 is None or not answers.exists():
        node.user_data_sha256 = digest(publish(paths, config, state, node))
        node.image = state.image
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
