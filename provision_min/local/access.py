"""``ssh``/``logs`` on the local cloud: into a container's namespaces, the node named as ``status`` lists it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from provision_min.config import ClusterConfig
from provision_min.errors import InputError
from provision_min.local import machine
from provision_min.local.cloud import load_state
from provision_min.node_access import NodeRef, find_node, nsenter_argv


def node_pid(config: ClusterConfig, wanted: str) -> tuple[NodeRef, int]:
    """The node and its systemd's pid on this machine; one-line errors for no cluster, an unknown node, one off."""
    paths, state = load_state(config)
    if state is None:
        raise InputError(f"cluster {config.cluster}: does not run locally (provision-min up --cloud local)")
    pids = {n.name: machine.systemd_pid(paths.node_dir(n.name)) for n in state.nodes}
    refs = [NodeRef(n.name, n.role, n.ip, running=pids[n.name] is not None)
            for n in state.masters() + state.agents()]
    node = find_node(refs, wanted, config.cluster)
    pid = pids[node.name]
    assert pid is not None  # find_node refused a node that is not running
    return node, pid


def run_in(config: ClusterConfig, wanted: str, command: Sequence[str]) -> int:
    """Run ``command`` (a login shell when empty) in the node; its exit code."""
    _node, pid = node_pid(config, wanted)
    return subprocess.run(nsenter_argv(pid, command, dict(os.environ)), check=False).returncode
