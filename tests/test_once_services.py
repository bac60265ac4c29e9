"""Issue 7 through `bootstrap-agent once` on real nodes (network namespaces, real nginx and metadata cache,
``--service-manager process``): docker and the Spark shuffle service on agents, RAM folders, Zeppelin behind
the master's HTTPS dashboard, and no secret in logs, ``status`` output or readable files.

Docker, Spark's shuffle service and Zeppelin are the project's stand-ins (``standins.tools``):
they read the rendered files the way the real programs do and refuse what those would refuse. Under the
process manager a mount unit is only its folder (no tmpfs without systemd); ``tests/test_units.py`` checks the
units themselves with ``systemd-analyze verify``.
"""

from __future__ import annotations

import json
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.node import AGENT_IP, MASTER_IP, S3_SECRET, SECRET, Node, user_data

PASSWORD_HASH = "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"  # of "secretpw"
AUTH = ("eo", "secretpw")


def docker_ping(node: Node) -> bytes:
    """dockerd's answer to ``GET /_ping`` on its socket, asked once: ``once`` counts docker as up only when
    its own process has bound the socket, so by then it answers."""
    path = str(node.root / "run/docker.sock")

    def ask() -> bytes:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):  # HTTP/1.0: the server closes after the body
                answer += chunk
            return answer
    return node.ns.call(ask)


def agent_data(**changes: object) -> dict[str, object]:
    data = user_data("agent", mesos__containerizers=["docker", "mesos"], mesos__work_dir_ramdisk="1GB",
                     mesos__docker_ramdisk="1GB")
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data.setdefault(section, {})[key] = value  # type: ignore[union-attr]
    return data


def test_agent_runs_docker_and_spark_shuffle_and_restarts_them_only_when_their_inputs_change(
    make_node: Callable[..., Node],
) -> None:
    node = make_node("agent", data=agent_data())
    run = node.once()
    assert run.returncode == 0, run.stderr
    started = run.units("started")
    assert started == ["var-lib-mesos.mount", "var-lib-docker.mount", "var-lib-alluxio-ramdisk.mount", "docker",
                       "mesos-agent", "alluxio-worker", "alluxio-proxy", "alluxio-job-worker",
                       "spark-shuffle"]  # folders first
    assert docker_ping(node).endswith(b"OK")
    assert node.ns.port_open(AGENT_IP, 7337)  # the shuffle service, on the node's address
    state = json.loads(node.get(f"http://{AGENT_IP}:5051/state")[1])
    assert state["flags"]["containerizers"] == "docker,mesos"
    assert state["flags"]["docker_socket"] == str(node.root / "run/docker.sock")
    # Without systemd the RAM folders are plain folders, with the mount unit's mode.
    assert stat.S_IMODE((node.root / "var/lib/docker").stat().st_mode) == 0o710
    assert (node.root / "var/lib/mesos").is_dir()
    status = json.loads((node.root / "var/lib/bootstrap-agent/status.json").read_text())
    assert status["services"]["docker"] == status["services"]["var-lib-mesos.mount"] == "active"

    # Same inputs: nothing restarts.
    pids = node.pids()
    run = node.once()
    assert run.returncode == 0 and not (run.units("started") or run.units("restarted") or run.units("reloaded"))
    assert node.pids() == pids

    # A new shuffle port restarts the shuffle service alone.
    node.set_user_data(agent_data(spark__shuffle_port=7444))
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.units("restarted") == ["spark-shuffle"] and not run.units("reloaded")
    assert node.ns.port_open(AGENT_IP, 7444) and not node.ns.port_open(AGENT_IP, 7337)
    after = node.pids()
    assert {u: p for u, p in after.items() if u != "spark-shuffle"} == {
        u: p for u, p in pids.items() if u != "spark-shuffle"}

    # A bigger Docker RAM disk: the folder is remounted (reloaded), dockerd keeps running; Mesos offers less.
    node.set_user_data(agent_data(spark__shuffle_port=7444, mesos__docker_ramdisk="2GB"))
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.units("reloaded") == ["var-lib-docker.mount"]
    assert run.units("restarted") == ["mesos-agent"]
    assert node.pids()["docker"] == pids["docker"]

    # Docker's data back on disk: the mount unit goes (its file too), dockerd restarts on the plain folder.
    node.set_user_data(agent_data(spark__shuffle_port=7444, mesos__docker_ramdisk="off"))
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert [e["unit"] for e in run.named("unit_removed")] == ["var-lib-docker.mount"]
    assert "docker" in run.units("restarted")
    assert not (node.root / "etc/systemd/system/var-lib-docker.mount").exists()
    assert docker_ping(node).endswith(b"OK")


def test_docker_standin_refuses_what_dockerd_refuses(make_node: Callable[..., Node]) -> None:
    """The stand-in is not a yes-man: a daemon.json key dockerd does not know fails the unit, named."""
    node = make_node("agent", data=agent_data())
    assert node.once().returncode == 0
    daemon = node.root / "etc/docker/daemon.json"
    config = json.loads(daemon.read_text())
    config["no-such-option"] = True
    bad = node.root / "bad-daemon.json"
    bad.write_text(json.dumps(config))
    result = node.ns.run([sys.executable, "-m", "standins.tools", "docker", "--config-file",
                          str(bad), "-H", f"unix://{node.root}/run/other.sock"], capture_output=True, text=True,
                         timeout=30)
    assert result.returncode == 2 and "no-such-option" in result.stderr


def test_zeppelin_is_proxied_only_when_enabled(make_node: Callable[..., Node]) -> None:
    data = user_data("master", dashboard={"user": "eo", "password_hash": PASSWORD_HASH}, zeppelin={"enabled": True})
    node = make_node("master", data=data)
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert "zeppelin" in run.units("started")
    base = f"https://{MASTER_IP}"
    assert node.ns.https_get(f"{base}/zeppelin/").status == 401  # behind the dashboard's password
    page = node.ns.https_get(f"{base}/zeppelin/", auth=AUTH)
    assert page.status == 200 and b"zeppelin (stand-in)" in page.body
    assert node.ns.https_get(f"{base}/zeppelin/api/version", auth=AUTH).status == 200
    assert node.ns.https_get(f"{base}/jenkins/", auth=AUTH).status == 404  # not enabled: no proxy
    landing = node.ns.https_get(f"{base}/", auth=AUTH).body
    assert b'href="/zeppelin/"' in landing and b'href="/jenkins/"' not in landing
    assert not node.ns.port_open(MASTER_IP, 8080), "Zeppelin listens on the loopback only"

    del data["zeppelin"]
    node.set_user_data(data)
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert [e["unit"] for e in run.named("unit_removed")] == ["zeppelin"]
    assert run.units("reloaded") == ["nginx"]
    assert node.ns.https_get(f"{base}/zeppelin/", auth=AUTH).status == 404
    assert b'href="/zeppelin/"' not in node.ns.https_get(f"{base}/", auth=AUTH).body


def test_no_secret_in_logs_status_or_readable_files(make_node: Callable[..., Node]) -> None:
    data = user_data("master", dashboard={"user": "eo", "password_hash": PASSWORD_HASH},
                     zeppelin={"enabled": True}, jenkins={"enabled": True})
    node = make_node("master", data=data)
    run = node.once()
    assert run.returncode == 0, run.stderr
    secrets = [SECRET, S3_SECRET, PASSWORD_HASH]
    key_pem = (node.root / "var/lib/bootstrap-agent/tls/dashboard.key").read_text()
    outputs = [run.stdout + run.stderr]
    for extra in ([], ["--json"]):
        status = node.ns.run([sys.executable, "-m", "bootstrap_agent.cli", "status", *extra, "--root",
                              str(node.root)], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        outputs.append(status.stdout + status.stderr)
    outputs += [p.read_text(errors="replace") for p in (node.root / "var/log").rglob("*") if p.is_file()]
    for text in outputs:
        for secret in secrets:
            assert secret not in text
        assert key_pem.strip().splitlines()[1] not in text

    # Every file below the node's root that holds a secret is closed to others (0600, or 0640 for a group).
    holding: dict[str, int] = {}
    for path in node.root.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.suffix == ".sock":
            continue
        content = path.read_bytes()
        if any(s.encode() in content for s in secrets) or key_pem.encode() in content:
            holding[path.relative_to(node.root).as_posix()] = stat.S_IMODE(path.stat().st_mode)
    assert holding, "the test must see the secret files"
    for rel, mode in holding.items():
        assert not mode & 0o007, f"{rel} holds a secret and is {oct(mode)}"
        assert mode in (0o600, 0o640), f"{rel}: {oct(mode)}"
    assert {"opt/alluxio/conf/alluxio-site.properties", "var/lib/bootstrap-agent/user-data.json",
            "etc/nginx/tls/bootstrap-agent-dashboard.key", "etc/nginx/bootstrap-agent-dashboard.htpasswd"} <= set(
        holding)
    assert not any(Path(rel).name in ("zeppelin", "jenkins") for rel in holding)  # their files hold no secret
