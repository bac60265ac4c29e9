"""The operator credential at daemon level: a master's node credential cannot change the run-time config, the
operator's (from a 0600 file, never an argument) can, and the change rolls through the agents as before.

A cluster that starts with the single secret is migrated by ``bootstrap-agent config migrate`` while its
daemons run; they keep working (issue 14, point 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from bootstrap_agent.zk import acls
from tests.support.daemon_node import AGENT_IPS, MASTER_IP, SECRET, DaemonNode, cluster_user_data
from tests.test_daemon import BASE, config, start_master, zk

OPERATOR = "operator-secret-daemon-test-4242"


def test_config_set_needs_the_operator_credential(cluster: Callable[..., DaemonNode], tmp_path: Path) -> None:
    net = cluster.net  # type: ignore[attr-defined]
    master = start_master(cluster)
    agent = cluster("agent", AGENT_IPS[0]).start()
    agent.wait_for("ready", lambda: agent.status().get("state") == "ready")
    secret_file = tmp_path / "cluster.state.json"  # provision-min's state file, as the operator has it
    secret_file.write_text(json.dumps({"cluster": "eo-live", "secret": SECRET, "operator_secret": OPERATOR}))
    os.chmod(secret_file, 0o644)
    loose = config(net, master.root, "migrate", "--operator-secret-file", str(secret_file))
    assert loose.returncode == 2 and "--operator-secret-file" in loose.stderr and "chmod 600" in loose.stderr
    os.chmod(secret_file, 0o600)

    before = config(net, master.root, "set", "mesos.attributes.rack", "r1")  # a single-secret cluster: works
    assert before.returncode == 0, before.stderr
    migrated = config(net, master.root, "migrate", "--operator-secret-file", str(secret_file))
    assert migrated.returncode == 0, migrated.stderr

    refused = config(net, master.root, "set", "mesos.attributes.rack", "r7")
    assert refused.returncode == 2, refused.stderr
    assert "refused, nothing changed" in refused.stderr and "--operator-secret-file" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert json.loads(config(net, master.root, "get").stdout) == {"mesos.attributes.rack": "r1"}

    def node_writes_config(client: KazooClient) -> None:
        with pytest.raises(NoAuthError):
            client.set(f"{BASE}/config", b"{}")
        with pytest.raises(NoAuthError):
            client.set_acls(f"{BASE}/config", client.get_acls(f"{BASE}/config")[0])

    zk(net, node_writes_config)

    changed = config(net, master.root, "set", "mesos.attributes.rack", "r7",
                     "--operator-secret-file", str(secret_file))
    assert changed.returncode == 0, changed.stderr

    def attributes() -> Any:
        try:
            return json.loads(net.http_get(f"http://{agent.ip}:5051/state").body)["attributes"]
        except OSError:
            return None  # restarting right now

    agent.wait_for("the new attribute", lambda: attributes() == {"rack": "r7"}, timeout=60)
    agent.wait_for("the lock released", lambda: len(agent.events("restart_lock_released")) >= 2, timeout=30)
    for output in (loose, before, migrated, refused, changed):
        assert OPERATOR not in output.stdout + output.stderr and SECRET not in output.stdout + output.stderr
    for node in (master, agent):
        assert OPERATOR not in node.log_path.read_text(errors="replace")


def test_a_master_with_the_operator_id_starts_the_cluster_split(
    cluster: Callable[..., DaemonNode], tmp_path: Path
) -> None:
    """A new cluster as ``provision-min up`` makes it: the masters' user-data names the operator's digest id,
    so the config is the operator's from the first second, with no migration."""
    net = cluster.net  # type: ignore[attr-defined]
    operator_id = acls.operator_id(OPERATOR)
    master = cluster("master", MASTER_IP, {**cluster_user_data("master"), "operator_acl_id": operator_id}).start()
    master.wait_for("registration", lambda: master.events("member_registered"), timeout=40)
    assert master.events("zk_tree_split")
    refused = config(net, master.root, "set", "mesos.attributes.rack", "r1")
    assert refused.returncode == 2 and "refused, nothing changed" in refused.stderr, refused.stderr
    secret_file = tmp_path / "operator.secret"
    secret_file.write_text(OPERATOR)
    secret_file.chmod(0o600)
    changed = config(net, master.root, "set", "mesos.attributes.rack", "r1", "--operator-secret-file", str(secret_file))
    assert changed.returncode == 0, changed.stderr
    log = master.log_path.read_text(errors="replace")
    assert operator_id.split(":", 1)[1] not in log and OPERATOR not in log
