"""``provision-min migrate-credentials``: move a single-secret cluster to the node and operator credentials.

A cluster created before issue 14 has one secret, in every node's user-data, that may do everything in its
ZooKeeper tree. This gives its state file an operator credential (0600, never in user-data) and has the tree's
ACLs set so that the user-data's secret becomes the node credential (``bootstrap_agent.zk.acls``). Nodes keep
their user-data and keep working throughout. Idempotent: run again, it repairs ACLs that drifted.

On the local cloud this machine reaches ZooKeeper and sets the ACLs itself. An OTC workstation does not (the
masters' ZooKeeper is on the private network), so the command prints the one line that does it on a master,
the secret piped over ssh, never resting on the node.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TextIO

from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ProvisionError


def on_otc(config: ClusterConfig, state_path: Path, out: TextIO) -> int:
    from provision_min import state

    _, added = state.add_operator_secret(state_path, config)
    print(f"operator credential {'added to' if added else 'already in'} {state_path} (key operator_secret)", file=out)
    print("set the ACLs from a master, once (the master's user-data stays as it is):", file=out)
    print(f"  jq -r .operator_secret {state_path} | ssh -i KEY.pem linux@<master public IP> "
          "sudo bootstrap-agent config migrate --operator-secret-file -", file=out)
    return 0


def on_local(config: ClusterConfig, out: TextIO, timeout: float = 30.0) -> int:
    from bootstrap_agent.cluster import ClusterUnavailable
    from provision_min.local.cloud import load_state
    from provision_min.local.layout import Paths
    from provision_min.local.readiness import store_of

    with Paths.of(config.cluster).locked():
        paths, current = load_state(config)
        if current is None:
            raise InputError(f"cluster {config.cluster}: no local cloud of that name (nothing to migrate)")
        if not current.operator_secret:
            current.operator_secret = secrets.token_urlsafe(32)
            paths.save(current)
        store = store_of(current)
        store.start()
        try:
            if not store.wait_connected(timeout):
                raise ProvisionError(f"ZooKeeper of cluster {config.cluster} not reachable within {timeout:.0f} s; "
                                     "run migrate-credentials again when the masters are up")
            store.ensure_tree()
        except ClusterUnavailable as exc:
            raise ProvisionError(str(exc)) from None
        finally:
            store.stop()
    print(f"{store.paths.base}: node and operator credentials in place (operator credential in "
          f"{paths.state_file})", file=out)
    return 0
