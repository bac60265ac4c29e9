"""``provision-min ssh`` and ``logs``: naming a node as ``status`` lists it, and reaching it on each cloud.

The local cloud's path (nsenter into a container) runs for real in ``tests/test_local_cloud.py``. On OTC the
route goes through the master's public address, which no test may reach: the API is the documented fake and
``ssh`` is a recorder on PATH that keeps its argv, so these tests check what would be run, exactly.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from provision_min.errors import InputError
from provision_min.node_access import NodeRef, SshRoute, find_node, journal_command, nsenter_argv
from tests.support.fake_otc import FakeOtc
from tests.support.moto_s3 import S3Server
from tests.support.provision_env import Env
from tests.test_provision_up_down import cluster_with_bucket

NODES = [NodeRef("c-master-1", "master", "10.0.0.10"), NodeRef("c-agent-1", "agent", "10.0.0.20"),
         NodeRef("c-agent-2", "agent", "10.0.0.21", running=False)]


def test_a_node_is_found_by_name_or_address() -> None:
    assert find_node(NODES, "c-agent-1", "c").ip == "10.0.0.20"
    assert find_node(NODES, "10.0.0.10", "c").name == "c-master-1"


def test_unknown_and_powered_off_nodes_are_one_line_errors() -> None:
    with pytest.raises(InputError, match=r"^c-agent-7: no such node in cluster c \(nodes: c-master-1, c-agent-1, "
                                         r"c-agent-2\)$"):
        find_node(NODES, "c-agent-7", "c")
    with pytest.raises(InputError, match=r"^c-agent-2: is not running \(powered off\); provision-min up starts it"):
        find_node(NODES, "c-agent-2", "c")


def test_the_journal_command_refuses_what_is_not_a_unit_name() -> None:
    assert journal_command("mesos-agent", False, 50) == ["journalctl", "--no-pager", "-u", "mesos-agent", "-n", "50"]
    assert journal_command("var-lib-mesos.mount", True, 0)[-1] == "-f"
    with pytest.raises(InputError, match="not a systemd unit name"):
        journal_command("x; rm -rf /", False, 10)
    with pytest.raises(InputError, match="--lines"):
        journal_command("nginx", False, -1)


def test_a_container_shell_gets_a_clean_environment_not_this_machines() -> None:
    argv = nsenter_argv(4242, ["echo", "$HOME"], {"TERM": "xterm", "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/h"})
    assert argv[:3] == ["nsenter", "--target", "4242"]
    assert "AWS_SECRET_ACCESS_KEY=x" not in argv and "TERM=xterm" in argv and "PATH=/h" not in argv
    assert argv[-3:] == ["/bin/sh", "-c", "echo $HOME"]
    assert nsenter_argv(1, [], {})[-2:] == ["/bin/bash", "-l"]


def test_agents_are_reached_through_the_master_and_the_master_directly(tmp_path: Path) -> None:
    route = SshRoute("80.158.1.2", "10.0.0.10", "linux", tmp_path / "c.known_hosts", tmp_path / "id")
    master = route.argv(NODES[0], [], tty=True)
    assert master[-1] == "linux@80.158.1.2" and "-t" in master and "ProxyCommand" not in " ".join(master)
    agent = route.argv(NODES[1], ["uptime"], tty=False)
    assert agent[-3:] == ["linux@10.0.0.20", "--", "uptime"]
    proxy = next(o for o in agent if o.startswith("ProxyCommand="))
    jump = shlex.split(proxy.removeprefix("ProxyCommand="))
    assert jump[-3:] == ["-W", "%h:%p", "linux@80.158.1.2"] and "IdentitiesOnly=yes" in jump
    assert f"UserKnownHostsFile={tmp_path / 'c.known_hosts'}" in agent


# --- OTC end to end through the CLI (documented fake API; a recording ssh) -----------------------------------
@pytest.fixture
def recorder(tmp_path: Path, env: Env) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh-argv.json"
    script = bin_dir / "ssh"
    script.write_text("#!/usr/bin/python3\nimport json, sys\n"
                      f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\nsys.exit(5)\n")
    script.chmod(0o755)
    env.vars["PATH"] = f"{bin_dir}:{env.vars['PATH']}"
    return record


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_with_bucket(s3))
    return desk


def test_otc_ssh_goes_through_the_masters_public_address(env: Env, cloud: FakeOtc, recorder: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.run("up").code == 0
    monkeypatch.setenv("PATH", env.vars["PATH"])
    agent = next(iter(cloud.groups.values())).data["instances"][0]
    server = cloud.servers[agent["instance_id"]].data
    result = env.run("ssh", agent["instance_name"], "-i", str(env.work / "key.pem"), "--", "hostname")
    assert result.code == 5  # the remote command's exit code passes through
    argv = json.loads(recorder.read_text())
    (eip,) = cloud.eips.values()
    assert argv[-3:] == [f"linux@{server['ip']}", "--", "hostname"]
    assert any(o.startswith("ProxyCommand=") and f"linux@{eip.data['public_ip_address']}" in o for o in argv)
    assert f"UserKnownHostsFile={env.state_file.parent / 'analytics11.known_hosts'}" in argv, argv
    logs = env.run("logs", "analytics11-master-1", "mesos-master", "-n", "20", "--user", "ops")
    assert logs.code == 5
    argv = json.loads(recorder.read_text())
    assert argv[-3:] == [f"ops@{eip.data['public_ip_address']}", "--",
                         "sudo journalctl --no-pager -u mesos-master -n 20"]
    unknown = env.run("ssh", "analytics11-agents-nope")
    assert unknown.code == 2 and "no such node in cluster analytics11" in unknown.error_line()


def test_otc_only_options_are_refused_on_the_local_cloud(env: Env) -> None:
    refused = env.run("ssh", "x", "--cloud", "local", "--identity", "k")
    assert refused.code == 2
    assert refused.error_line() == "provision-min: --identity: not with --cloud local (an OTC option)"
