"""`bootstrap-agent once` on a node of its own: real nginx cache, real metadata server, real ZooKeeper.

Each test node is a network namespace holding the node's private address and 169.254.169.254 (the metadata
service, as on OTC), with nginx caching the user-data on 127.0.0.1:80 inside it, so the agent runs with its
default URLs. Services run under ``--service-manager process`` below a temporary ``--root``; Mesos and Alluxio
are the project's stand-ins, which refuse any flag or key their version does not know.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable

from tests.support.netns import HttpResponse
from tests.support.node import AGENT_IP, MASTER_IP, S3_SECRET, Node, meta_data, user_data
from tests.support.waiting import wait_for


def zk_ruok(node: Node, ip: str) -> str:
    def ask() -> str:
        with socket.create_connection((ip, 2181), timeout=3) as sock:
            sock.sendall(b"ruok")
            return sock.recv(16).decode()
    return node.ns.call(ask)


# --- happy paths -------------------------------------------------------------------------------------------


def test_master_configures_itself_and_runs_its_services(make_node: Callable[..., Node]) -> None:
    node = make_node("master")
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.named("user_data_fetched")[0]["source"] == "cache"
    assert set(run.units("started")) == {"zookeeper", "mesos-master", "alluxio-master", "alluxio-proxy",
                                         "alluxio-job-master", "nginx"}

    assert zk_ruok(node, MASTER_IP) == "imok"  # the real ZooKeeper, from the rendered zoo.cfg
    assert (node.root / "var/lib/zookeeper/data/myid").read_text() == "1\n"
    status, body = node.get(f"http://{MASTER_IP}:5050/state")
    state = json.loads(body)
    assert status == 200 and state["flags"]["zk"] == f"zk://{MASTER_IP}:2181/mesos" and state["flags"]["quorum"] == "1"
    status, body = node.get(f"http://{MASTER_IP}:19999/api/v1/master/info")
    assert status == 200 and S3_SECRET not in body.decode()
    locked = node.ns.https_get(f"https://{MASTER_IP}/")  # no password hash in this user-data: locked, not open
    assert locked.status == 403 and b"dashboard.password_hash" in locked.body

    site = node.root / "opt/alluxio/conf/alluxio-site.properties"
    assert stat.S_IMODE(site.stat().st_mode) == 0o600
    saved = node.root / "var/lib/bootstrap-agent/user-data.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert (node.root / "etc/hosts").read_text().splitlines()[-1] == f"{MASTER_IP}\teo-once-master"

    status_run = node.ns.run([sys.executable, "-m", "bootstrap_agent.cli", "status", "--json", "--root",
                              str(node.root)], capture_output=True, text=True, timeout=30)
    assert status_run.returncode == 0
    assert json.loads(status_run.stdout)["services"]["zookeeper"] == "active"


def test_agent_configures_itself_and_runs_its_services(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert set(run.units("started")) == {"var-lib-alluxio-ramdisk.mount", "mesos-agent", "alluxio-worker",
                                         "alluxio-proxy", "alluxio-job-worker", "spark-shuffle"}
    state = json.loads(node.get(f"http://{AGENT_IP}:5051/state")[1])
    assert state["flags"]["master"] == f"zk://{MASTER_IP}:2181/mesos"
    assert state["attributes"] == {"az": "eu-de-02"}
    assert state["resources"]["cpus"] == os.cpu_count()
    status, body = node.get(f"http://{AGENT_IP}:30000/api/v1/worker/info")
    assert status == 200 and S3_SECRET not in body.decode()
    props = (node.root / "opt/alluxio/conf/alluxio-site.properties").read_text()
    assert "alluxio.worker.ramdisk.size=1GB" in props and f"alluxio.worker.hostname={AGENT_IP}" in props


# --- idempotence and minimal restarts ---------------------------------------------------------------------


def test_second_run_writes_nothing_and_restarts_nothing(make_node: Callable[..., Node]) -> None:
    node = make_node("master")
    assert node.once().returncode == 0
    before, pids = node.snapshot(), node.pids()
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert node.snapshot() == before
    assert node.pids() == pids
    assert not run.named("file_installed")
    assert not (run.units("started") or run.units("restarted") or run.units("reloaded"))


def test_changed_user_data_restarts_only_the_affected_units(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    assert node.once().returncode == 0
    pids = node.pids()

    node.set_user_data(user_data("agent", mesos__attributes={"az": "eu-de-01"}))
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.units("restarted") == ["mesos-agent"]
    assert [e["path"] for e in run.named("file_installed")] == ["/etc/default/mesos-agent"]
    after = node.pids()
    assert after["mesos-agent"] != pids["mesos-agent"]
    assert after["alluxio-worker"] == pids["alluxio-worker"] and after["alluxio-proxy"] == pids["alluxio-proxy"]
    assert json.loads(node.get(f"http://{AGENT_IP}:5051/state")[1])["attributes"] == {"az": "eu-de-01"}
    assert (node.root / "etc/default/mesos-agent.bak").read_text().count("az:eu-de-02") == 1

    node.set_user_data(user_data("agent", mesos__attributes={"az": "eu-de-01"}, alluxio__block_size="8MB"))
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.units("restarted") == ["alluxio-worker", "alluxio-proxy", "alluxio-job-worker"]  # each once, in order
    assert node.pids()["mesos-agent"] == after["mesos-agent"]
    backup = node.root / "opt/alluxio/conf/alluxio-site.properties.bak"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600  # the backup of a secret file is secret too


def test_removed_alluxio_section_stops_alluxio(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    assert node.once().returncode == 0
    data = user_data("agent")
    del data["alluxio"], data["credentials"]
    node.set_user_data(data)
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert sorted(e["unit"] for e in run.named("unit_removed")) == [
        "alluxio-job-worker", "alluxio-proxy", "alluxio-worker", "var-lib-alluxio-ramdisk.mount"]
    assert set(node.pids()) == {"mesos-agent", "spark-shuffle"}
    assert not (node.root / "etc/systemd/system/var-lib-alluxio-ramdisk.mount").exists()
    assert not node.ns.port_open(AGENT_IP, 30000)


# --- sources of user-data ------------------------------------------------------------------------------------


def test_metadata_down_configures_from_nginx_stale_copy(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    assert node.once().returncode == 0
    node.set_user_data(user_data("agent", mesos__attributes={"az": "eu-de-03"}))
    assert node.cache.get().status == 200  # the cache has seen the new user-data...
    node.metadata.stop()  # ...and now the metadata service is gone
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.named("user_data_fetched")[0]["source"] == "cache"
    assert run.named("meta_data_from_last_good")
    assert "az:eu-de-03" in (node.root / "etc/default/mesos-agent").read_text()


def test_nginx_down_too_configures_from_last_good_copy(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    assert node.once().returncode == 0
    pids = node.pids()
    node.metadata.stop()
    node.cache.stop()
    started = time.monotonic()
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 20, "fetching must be bounded"
    assert run.named("user_data_from_last_good")
    assert len(run.named("user_data_source_failed")) == 2
    assert node.pids() == pids


def test_nothing_at_all_on_a_fresh_node_is_a_clear_failure(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    node.metadata.stop()
    node.cache.stop()
    image = node.snapshot()
    run = node.once()
    assert run.returncode == 1
    assert "metadata unavailable" in run.stderr.splitlines()[-1]
    assert node.snapshot() == image


def test_first_boot_is_keyed_on_instance_uuid(make_node: Callable[..., Node]) -> None:
    node = make_node("agent", uuid="uuid-old")
    run = node.once()
    assert run.returncode == 0 and run.named("first_boot")
    assert not node.once().named("first_boot")

    # An image of this node booted as a new instance: it first-boots, and never uses the old instance's copy.
    node.metadata.set_meta_data(meta_data("uuid-new", "eo-once-agent"))
    node.metadata.set_user_data(None)
    node.cache.stop()
    run = node.once()
    assert run.returncode == 1
    assert "no last good copy for this instance" in run.stderr
    node.cache.start()
    node.set_user_data(user_data("agent"))
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert run.named("first_boot")[0]["previous"] == "uuid-old"
    assert (node.root / "var/lib/bootstrap-agent/instance-id").read_text().strip() == "uuid-new"


# --- bad input changes nothing --------------------------------------------------------------------------------


def test_invalid_user_data_exits_2_and_changes_nothing(make_node: Callable[..., Node]) -> None:
    node = make_node("master")
    assert node.once().returncode == 0
    before, pids = node.snapshot(), node.pids()
    bad = user_data("master", alluxio__block_size="four megabytes")
    node.set_user_data(bad)
    run = node.once()
    assert run.returncode == 2
    assert "alluxio.block_size" in run.stderr.splitlines()[-1]
    assert run.named("user_data_invalid")[0]["field"] == "alluxio.block_size"
    assert node.snapshot() == before
    assert node.pids() == pids
    assert zk_ruok(node, MASTER_IP) == "imok"


def test_invalid_user_data_on_a_fresh_node_writes_nothing(make_node: Callable[..., Node]) -> None:
    node = make_node("agent", data=user_data("agent", mesos__agent_flags={"no_such_flag": "1"}))
    image = node.snapshot()
    run = node.once()
    assert run.returncode == 2
    assert "mesos.agent_flags.no_such_flag" in run.stderr
    assert node.snapshot() == image
    assert node.pids() == {}


def test_master_not_in_masters_is_an_input_error(make_node: Callable[..., Node]) -> None:
    data = user_data("master", masters=["10.77.0.99"])
    node = make_node("master", data=data)
    image = node.snapshot()
    run = node.once()
    assert run.returncode == 2
    assert "not in masters" in run.stderr
    assert node.snapshot() == image


def test_a_unit_that_does_not_come_up_is_named_and_exit_is_1(make_node: Callable[..., Node]) -> None:
    node = make_node("agent")
    blocker = node.ns.popen([sys.executable, "-c",
                             "import socket,time; s=socket.socket(); s.bind(('" + AGENT_IP + "',5051)); s.listen();"
                             "time.sleep(120)"])
    node.ns.wait_port(AGENT_IP, 5051)
    try:
        run = node.once()
    finally:
        blocker.kill()
        blocker.wait()
    assert run.returncode == 1
    failed = run.named("node_failed")[0]
    assert failed["failed"] == ["mesos-agent"]
    assert "mesos-agent" in run.stderr.splitlines()[-1]
    status = json.loads((node.root / "var/lib/bootstrap-agent/status.json").read_text())
    assert status["state"] == "failed" and status["services"]["alluxio-worker"] == "active"


def test_copy_of_user_data_is_exactly_what_was_fetched(make_node: Callable[..., Node]) -> None:
    data = copy.deepcopy(user_data("agent"))
    node = make_node("agent", data=data)
    assert node.once().returncode == 0
    saved = json.loads((node.root / "var/lib/bootstrap-agent/user-data.json").read_text())
    assert json.loads(saved["user_data"]) == data and saved["instance_uuid"] == "uuid-0001"


def test_agency_credentials_come_from_the_metadata_service_and_rotate_without_restarts(
    make_node: Callable[..., Node],
) -> None:
    data = user_data("agent")
    data["credentials"] = {"source": "agency"}
    node = make_node("agent", data=data)
    node.metadata.set_security_key("TEMPAKID0001", "temporary-secret-0001", "temporary-token-0001")
    run = node.once()
    assert run.returncode == 0, run.stderr
    profile = node.root / "var/lib/bootstrap-agent/aws/credentials"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert "aws_session_token = temporary-token-0001" in profile.read_text()
    assert "temporary-secret-0001" not in run.stderr
    pids = node.pids()

    node.metadata.set_security_key("TEMPAKID0002", "temporary-secret-0002", "temporary-token-0002")
    run = node.once()
    assert run.returncode == 0, run.stderr
    assert "temporary-token-0002" in profile.read_text()
    assert not run.units("restarted") and node.pids() == pids
    assert "temporary-secret-0002" not in run.stderr

    node.metadata.set_security_key(None)  # the ECS lost its agency
    before = node.snapshot()
    run = node.once()
    assert run.returncode == 1 and "agency credentials unavailable" in run.stderr.splitlines()[-1]
    assert node.snapshot() == before and node.pids() == pids


def test_master_dashboard_is_https_with_its_own_certificate_and_basic_auth(make_node: Callable[..., Node]) -> None:
    data = user_data("master")
    data["dashboard"] = {"user": "eo", "password_hash": "$apr1$3vT8N4I8$9hN9WDxB1VEkoHsYu3HHn0"}  # secretpw
    node = make_node("master", data=data)
    run = node.once()
    assert run.returncode == 0, run.stderr
    url = f"https://{MASTER_IP}/"
    assert node.ns.https_get(url).status == 401
    assert node.ns.https_get(url, auth=("eo", "wrong")).status == 401
    page = node.ns.https_get(url, auth=("eo", "secretpw"))
    assert page.status == 200 and b"Cluster eo-once" in page.body
    # The Mesos UI has an HTTPS server of its own (its paths are absolute), behind the same password; the
    # master elects itself through its ZooKeeper within a moment.
    assert node.ns.https_get(f"https://{MASTER_IP}/mesos/", auth=("eo", "secretpw")).status == 302
    def leader_state() -> HttpResponse | None:
        answer = node.ns.https_get(f"https://{MASTER_IP}:5443/master/state", auth=("eo", "secretpw"))
        return answer if answer.status == 200 else None

    mesos = wait_for("the leader's state through the Mesos UI's server", leader_state, 10.0)
    assert json.loads(mesos.body)["flags"]["quorum"] == "1"  # proxied read-only view
    assert node.ns.https_get(f"https://{MASTER_IP}:5443/master/state").status == 401

    # The certificate is this instance's own, kept in the agent's state, and the same on the next pass.
    own = (node.root / "var/lib/bootstrap-agent/tls/dashboard.crt").read_text()
    assert page.header("x-test-peer-certificate") == own
    key = node.root / "etc/nginx/tls/bootstrap-agent-dashboard.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    htpasswd = node.root / "etc/nginx/bootstrap-agent-dashboard.htpasswd"
    assert stat.S_IMODE(htpasswd.stat().st_mode) == 0o640
    assert node.once().returncode == 0
    assert node.ns.https_get(url, auth=("eo", "secretpw")).header("x-test-peer-certificate") == own

    # Turning auth off has to be said explicitly.
    data["dashboard"] = {"auth": False}
    node.set_user_data(data)
    run = node.once()
    assert run.returncode == 0 and run.units("reloaded") == ["nginx"]
    assert node.ns.https_get(url).status == 200
