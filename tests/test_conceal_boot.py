"""Metadata concealment as the image installs it, under real systemd: the node image booted in a
systemd-nspawn container (its own network namespace: the rules stay there), with a metadata service on
169.254.169.254 inside that container only.

``bootstrap-agent-conceal.service`` is enabled, ordered before Docker, Mesos and the agent, and active at
every boot; uid 65534 is refused at the nginx cache and at every metadata path while root reads them; with
the table removed the agent's own check names the concealment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bootstrap_agent.conceal import TABLE, UNIT
from bootstrap_agent.metadata_cache import METADATA_UPSTREAM
from tests.support.conceal import fetch_argv
from tests.support.container import Container

SECRET = "boot-concealed-secret-91c2"
PATHS = ("/openstack/latest/user_data", "/openstack/latest/meta_data.json", "/openstack/latest/securitykey")
AGENT_PYTHON = "/opt/bootstrap-agent/venv/bin/python"
CHECK = ("from bootstrap_agent.conceal import concealment_problem\nfrom bootstrap_agent.layout import Layout\n"
         "print(repr(concealment_problem(Layout('/'))))\n")


@pytest.fixture
def node(node_image: Any) -> Iterator[Container]:
    """The node image booted without network and without the agent (the check is run by hand)."""
    masked = ("bootstrap-agent.service", "systemd-networkd-wait-online.service")
    with Container(node_image.path, boot_args=[f"systemd.mask={u}" for u in masked], boot_timeout=90) as booted:
        yield booted


def serve_metadata(node: Container) -> None:
    """A metadata service on 169.254.169.254:80 inside the container (its lo), as root."""
    for path in PATHS:
        node.write_file(f"/run/md{path}", json.dumps({"secret": SECRET, "path": path}))
    node.exec(["ip", "addr", "add", f"{METADATA_UPSTREAM}/32", "dev", "lo"], check=True)
    node.exec(["systemd-run", "--unit=ba-metadata", "/usr/bin/python3", "-m", "http.server", "80", "--bind",
               METADATA_UPSTREAM, "--directory", "/run/md"], check=True, capture_output=True)
    node.exec(["sh", "-c", f"for i in $(seq 50); do ss -Hltn 'sport = :80' | grep -q {METADATA_UPSTREAM} && "
               "exit 0; sleep 0.1; done; exit 1"], check=True)


def fetch(node: Container, url: str, uid: int | None = None) -> str:
    done = node.exec(fetch_argv("/usr/bin/python3", url, uid), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def agent_check(node: Container) -> str:
    done = node.exec([AGENT_PYTHON, "-c", CHECK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return str(done.stdout.strip())


def assert_concealed(node: Container) -> None:
    assert node.systemctl("is-active", UNIT).stdout.strip() == "active", node.journal(UNIT)
    serve_metadata(node)
    urls = ["http://127.0.0.1/user-data", "http://localhost/user-data",
            *(f"http://{METADATA_UPSTREAM}{path}" for path in PATHS)]
    for url in urls:
        assert fetch(node, url, uid=65534).startswith("refused:"), url  # a Mesos task, a Spark executor
        assert SECRET in fetch(node, url), url  # root: the agent (through nginx, whose worker is www-data)
    assert agent_check(node) == "''"


def test_the_image_conceals_the_metadata_at_every_boot_and_the_agent_notices_when_it_is_gone(
        node: Container) -> None:
    assert node.systemctl("is-enabled", UNIT).stdout.strip() == "enabled"
    before = node.systemctl("show", "--property=Before", "--value", UNIT).stdout.split()
    assert {"docker.service", "mesos-agent.service", "bootstrap-agent.service", "network-pre.target"} <= set(before)
    assert_concealed(node)

    node.exec(["nft", "delete", "table", "inet", TABLE], check=True)
    assert SECRET in fetch(node, "http://127.0.0.1/user-data", uid=65534)  # the hole the check must find
    problem = agent_check(node)
    assert problem.startswith("'metadata concealment missing: uid 65534 reaches 127.0.0.1:80, 169.254.169.254:80")

    node.reboot(timeout=60)
    assert_concealed(node)
